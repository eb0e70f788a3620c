//! The adapters against the real local LLM server (llama.cpp's, serving
//! SmolLM2): an arm's token limit is the one the server applies.
//!
//! ```sh
//! TUNELOOP_LLM_URL=$(scripts/local-llm start) \
//!     cargo test -p tuneloop-adapters --features async-openai,genai --test real_llm
//! scripts/local-llm stop
//! ```
//!
//! Without `TUNELOOP_LLM_URL` each test says how to run it and passes
//! without doing anything; `.ci/run` starts the server and sets it.

use tuneloop::core::{FinishReason, ParameterSet};
use tuneloop_adapters::{self as adapters, async_openai as oa, genai as ga};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PROMPT: &str = "Write a long story about a dragon who learns to bake bread.";

fn base_url() -> Option<String> {
    let url = std::env::var("TUNELOOP_LLM_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: no LLM server (TUNELOOP_LLM_URL=$(scripts/local-llm start))");
    }
    url
}

/// An arm of 8 tokens, at a temperature that keeps the story going.
fn eight_tokens() -> Result<ParameterSet, tuneloop::core::Error> {
    ParameterSet::builder("smollm2")
        .temperature(0.8)
        .max_tokens(8)
        .seed(Some(3))
        .build()
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[test]
fn an_eight_token_arm_gets_at_most_eight_tokens_through_async_openai() -> TestResult {
    let Some(url) = base_url() else {
        return Ok(());
    };
    runtime()?.block_on(async {
        let client = async_openai::Client::with_config(
            async_openai::config::OpenAIConfig::new()
                .with_api_base(url)
                .with_api_key("none"),
        );
        let mut request = async_openai::types::chat::CreateChatCompletionRequest {
            messages: vec![
                async_openai::types::chat::ChatCompletionRequestUserMessage::from(PROMPT).into(),
            ],
            ..Default::default()
        };
        oa::apply(&eight_tokens()?, &mut request);
        let (response, latency) = adapters::timed(client.chat().create(request)).await;
        let o = oa::outcome(&response?, latency, 1.0);
        assert!(
            (1..=8).contains(&o.completion_tokens),
            "{} tokens",
            o.completion_tokens
        );
        assert_eq!(o.finish_reason, Some(FinishReason::Length));
        Ok(())
    })
}

#[test]
fn an_eight_token_arm_gets_at_most_eight_tokens_through_genai() -> TestResult {
    use genai::adapter::AdapterKind;
    use genai::chat::{ChatMessage, ChatRequest};
    use genai::resolver::{AuthData, Endpoint};
    use genai::{ModelIden, ServiceTarget};
    let Some(url) = base_url() else {
        return Ok(());
    };
    runtime()?.block_on(async {
        let p = eight_tokens()?;
        let target = ServiceTarget {
            model: ModelIden::new(AdapterKind::OpenAI, p.model()),
            endpoint: Endpoint::from_owned(format!("{}/", url.trim_end_matches('/'))),
            auth: AuthData::from_single("none"),
        };
        let request = ChatRequest::new(vec![ChatMessage::user(PROMPT)]);
        let (response, latency) = adapters::timed(genai::Client::new()?.exec_chat(
            target,
            request,
            Some(&ga::chat_options(&p)),
        ))
        .await;
        let o = ga::outcome(&response?, latency, 1.0);
        assert!(
            (1..=8).contains(&o.completion_tokens),
            "{} tokens",
            o.completion_tokens
        );
        Ok(())
    })
}
