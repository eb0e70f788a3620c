//! The HTTP provider against a real OpenAI-compatible server: llama.cpp's
//! server with SmolLM2-135M, started by `scripts/local-llm`.
//!
//! ```text
//! TUNELOOP_LLM_URL=$(scripts/local-llm start) \
//!     cargo test -p tuneloop-providers --features http --test real_llm
//! scripts/local-llm stop
//! ```
//!
//! Without `TUNELOOP_LLM_URL` every test says how to run it and passes
//! without doing anything; `.ci/run` starts the server and sets it. The
//! assertions are on behaviour (same seed, same text; a token limit
//! reached; a fallback taken; a deadline met), never on time.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::time::Duration;

use tuneloop_core::ParameterSet;
use tuneloop_providers::{
    Attempt, FinishReason, GenerationRequest, GenerationResponse, Message, OpenAiCompatible,
    OpenAiConfig, Provider, ProviderError, Router, RouterConfig, RouterError, Tier,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const URL_VAR: &str = "TUNELOOP_LLM_URL";

/// The server's base URL, or `None` after saying how to start it.
fn base_url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "skipped: needs a real server; run with {URL_VAR}=$(scripts/local-llm start) (.ci/run does)"
        );
    }
    url
}

fn provider(base: &str, stream: bool) -> Result<OpenAiCompatible, RouterError> {
    OpenAiCompatible::new(OpenAiConfig {
        id: if stream { "llama-stream" } else { "llama" }.into(),
        tier: Tier::Local,
        base_url: base.into(),
        api_key_env: None,
        stream,
        read_timeout: Duration::from_secs(120),
        ..OpenAiConfig::default()
    })
}

fn request(prompt: &str, params: &ParameterSet) -> GenerationRequest {
    GenerationRequest::new("test", vec![Message::user(prompt)], params)
}

fn params(
    temperature: f64,
    max_tokens: u32,
    seed: u64,
) -> Result<ParameterSet, tuneloop_core::Error> {
    ParameterSet::builder("smollm2")
        .temperature(temperature)
        .max_tokens(max_tokens)
        .seed(Some(seed))
        .build()
}

async fn ask(
    p: &OpenAiCompatible,
    prompt: &str,
    params: &ParameterSet,
) -> Result<GenerationResponse, ProviderError> {
    p.generate(&request(prompt, params)).await
}

const STORY: &str = "Write a short story about a cat who learns to fly.";

#[tokio::test]
async fn the_same_seed_gives_the_same_text_at_temperature_0_8() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    let p = provider(&base, false)?;
    let a = ask(&p, STORY, &params(0.8, 24, 7)?).await?;
    let b = ask(&p, STORY, &params(0.8, 24, 7)?).await?;
    assert!(!a.text.is_empty());
    assert_eq!(a.text, b.text);
    // Seeds do steer the sampling: of four other seeds, one at least
    // tells a different story.
    let mut others = Vec::new();
    for seed in [8, 9, 10, 11] {
        others.push(ask(&p, STORY, &params(0.8, 24, seed)?).await?.text);
    }
    assert!(others.iter().any(|t| *t != a.text), "{others:?}");
    Ok(())
}

#[tokio::test]
async fn max_tokens_ends_with_length_and_exactly_that_many_tokens() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    for stream in [false, true] {
        let p = provider(&base, stream)?;
        let r = ask(&p, STORY, &params(0.0, 5, 1)?).await?;
        assert_eq!(
            r.finish_reason,
            FinishReason::Length,
            "stream {stream}: {r:?}"
        );
        assert_eq!(r.usage.completion_tokens, 5, "stream {stream}: {r:?}");
        assert!(r.usage.prompt_tokens > 0 || stream, "{r:?}");
    }
    Ok(())
}

#[tokio::test]
async fn top_p_0_01_at_temperature_1_5_is_the_same_across_seeds() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    let p = provider(&base, false)?;
    let nucleus = |seed| {
        ParameterSet::builder("smollm2")
            .temperature(1.5)
            .top_p(0.01)
            .max_tokens(24)
            .seed(Some(seed))
            .build()
    };
    let a = ask(&p, STORY, &nucleus(1)?).await?;
    for seed in [2, 3] {
        assert_eq!(
            ask(&p, STORY, &nucleus(seed)?).await?.text,
            a.text,
            "seed {seed}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn top_k_1_an_arms_server_extra_makes_sampling_greedy() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    let p = provider(&base, false)?;
    let greedy = |seed| {
        ParameterSet::builder("smollm2")
            .temperature(1.5)
            .top_k(Some(1))
            .max_tokens(24)
            .seed(Some(seed))
            .build()
    };
    let a = ask(&p, STORY, &greedy(1)?).await?;
    for seed in [2, 3] {
        assert_eq!(
            ask(&p, STORY, &greedy(seed)?).await?.text,
            a.text,
            "seed {seed}"
        );
    }
    // Without it the same seeds sample different stories.
    let mut free = Vec::new();
    for seed in [1, 2, 3] {
        free.push(ask(&p, STORY, &params(1.5, 24, seed)?).await?.text);
    }
    assert!(free.iter().any(|t| *t != free[0]), "{free:?}");
    Ok(())
}

#[tokio::test]
async fn streamed_text_equals_the_unstreamed_text_for_the_same_seed() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    let whole = ask(&provider(&base, false)?, STORY, &params(0.8, 32, 42)?).await?;
    let streamed = ask(&provider(&base, true)?, STORY, &params(0.8, 32, 42)?).await?;
    assert_eq!(streamed.text, whole.text);
    assert_eq!(streamed.finish_reason, whole.finish_reason);
    assert_eq!(
        streamed.usage.completion_tokens,
        whole.usage.completion_tokens
    );
    let first = streamed
        .time_to_first_token
        .ok_or("no time to first token")?;
    assert!(first <= streamed.latency);
    assert_eq!(whole.time_to_first_token, None);
    Ok(())
}

#[tokio::test]
async fn the_router_falls_back_from_a_dead_endpoint_to_the_real_server() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    // A port that was free a moment ago: nothing listens there.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dead = OpenAiCompatible::new(OpenAiConfig {
        id: "dead".into(),
        tier: Tier::Online,
        base_url: format!("http://127.0.0.1:{dead_port}/v1"),
        api_key_env: None,
        ..OpenAiConfig::default()
    })?;
    let router = Router::new(
        vec![
            Arc::new(dead) as Arc<dyn Provider>,
            Arc::new(provider(&base, false)?) as Arc<dyn Provider>,
        ],
        RouterConfig {
            max_attempts: 1,
            deadline: Duration::from_secs(120),
            ..RouterConfig::default()
        },
    )?;
    let routed = router
        .generate(&request("Say hi.", &params(0.0, 8, 1)?))
        .await?;
    assert_eq!(routed.record.answered_by.as_deref(), Some("llama"));
    assert_eq!(routed.response.provider, "llama");
    assert!(
        matches!(&routed.record.attempts[0], Attempt::Failed { error: ProviderError::Transient { provider, .. } } if provider == "dead"),
        "{:?}",
        routed.record.attempts
    );
    Ok(())
}

#[tokio::test]
async fn a_deadline_shorter_than_the_generation_cuts_the_stream() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    let streaming = Arc::new(provider(&base, true)?);
    let router = Router::new(
        vec![streaming.clone() as Arc<dyn Provider>],
        RouterConfig {
            deadline: Duration::from_millis(300),
            ..RouterConfig::default()
        },
    )?;
    // 400 tokens take seconds at this model's speed on one thread.
    let long = params(0.8, 400, 3)?;
    match router.generate(&request(STORY, &long)).await {
        Err(RouterError::Deadline(d)) => assert_eq!(d, Duration::from_millis(300)),
        Err(RouterError::Exhausted {
            last: Some(ProviderError::Timeout { .. }),
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The cut stream's connection is closed, and the server answers the
    // next call in full.
    let next = ask(&streaming, "Say hi.", &params(0.0, 4, 1)?).await?;
    assert_eq!(
        next.usage.completion_tokens.min(4),
        next.usage.completion_tokens
    );
    assert!(!next.text.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_servers_validation_error_is_permanent() -> TestResult {
    let Some(base) = base_url() else {
        return Ok(());
    };
    // Out of the server's range (top_p <= 1); tuneloop's own parameter
    // sets cannot hold it, a hand-made request can.
    let mut req = request("Say hi.", &params(0.0, 4, 1)?);
    req.top_p = 2.0;
    match provider(&base, false)?.generate(&req).await {
        Err(ProviderError::Permanent { message, .. }) => {
            assert!(message.contains("500"), "{message}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    Ok(())
}
