//! The adapters with the real clients, against an OpenAI-compatible server
//! on 127.0.0.1 (wiremock): every field of the parameter set reaches the
//! HTTP request, and the response's usage, finish reason and latency come
//! back in the outcome.

use std::time::Duration;

use serde_json::{Value, json};
use tuneloop::core::{FinishReason, ParameterSet};
use tuneloop_adapters::{self as adapters, async_openai as oa, genai as ga};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn params() -> Result<ParameterSet, tuneloop::core::Error> {
    ParameterSet::builder("small-model")
        .temperature(0.25)
        .top_p(0.5)
        .max_tokens(64)
        .frequency_penalty(0.5)
        .presence_penalty(-0.25)
        .seed(Some(7))
        .stop(["\n\n"])
        .build()
}

fn reply() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "small-model",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": "Lima is the capital"}}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 64, "total_tokens": 85}
    })
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(reply())
                .set_delay(Duration::from_millis(50)),
        )
        .mount(&server)
        .await;
    server
}

/// The JSON body of the one request the server received.
async fn body(server: &MockServer) -> Result<Value, Box<dyn std::error::Error>> {
    let requests = server.received_requests().await.ok_or("no recording")?;
    let [request] = requests.as_slice() else {
        return Err(format!("{} requests", requests.len()).into());
    };
    Ok(serde_json::from_slice(&request.body)?)
}

/// The sampling fields of `params()` in a request body; `max_tokens` is
/// the name the client gives the token limit.
fn assert_sent(sent: &Value, max_tokens: &str) {
    assert_eq!(sent["model"], "small-model");
    assert_close(sent, "temperature", 0.25);
    assert_close(sent, "top_p", 0.5);
    assert_close(sent, "frequency_penalty", 0.5);
    assert_close(sent, "presence_penalty", -0.25);
    assert_eq!(sent[max_tokens], 64, "{sent}");
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["stop"], json!(["\n\n"]));
}

fn assert_close(body: &Value, field: &str, expected: f64) {
    let got = body[field].as_f64();
    assert!(
        got.is_some_and(|g| (g - expected).abs() < 1e-6),
        "{field}: {got:?}, expected {expected} in {body}"
    );
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[test]
fn async_openai_requests_carry_every_parameter_and_responses_give_the_outcome() -> TestResult {
    runtime()?.block_on(async {
        let server = server().await;
        let client = async_openai::Client::with_config(
            async_openai::config::OpenAIConfig::new()
                .with_api_base(format!("{}/v1", server.uri()))
                .with_api_key("sk-test"),
        );
        let p = params()?;
        let mut request = async_openai::types::chat::CreateChatCompletionRequest {
            messages: vec![
                async_openai::types::chat::ChatCompletionRequestUserMessage::from(
                    "Capital of Peru?",
                )
                .into(),
            ],
            ..Default::default()
        };
        oa::apply(&p, &mut request);
        let (response, latency) = adapters::timed(client.chat().create(request)).await;
        let response = response?;
        let sent = body(&server).await?;
        assert_sent(&sent, "max_completion_tokens");
        // Both fields: llama.cpp's server reads `max_tokens` only.
        assert_sent(&sent, "max_tokens");
        assert_eq!(oa::answer(&response), Some("Lima is the capital"));
        let o = oa::outcome(&response, latency, 0.75);
        assert_eq!((o.prompt_tokens, o.completion_tokens), (21, 64));
        assert_eq!(o.finish_reason, Some(FinishReason::Length));
        assert!(o.latency_ms >= 50.0, "{}", o.latency_ms);
        assert!((o.quality - 0.75).abs() < 1e-12);
        o.validate()?;
        Ok(())
    })
}

#[test]
fn genai_requests_carry_every_parameter_and_responses_give_the_outcome() -> TestResult {
    use genai::adapter::AdapterKind;
    use genai::chat::{ChatMessage, ChatRequest};
    use genai::resolver::{AuthData, Endpoint};
    use genai::{ModelIden, ServiceTarget};
    runtime()?.block_on(async {
        let server = server().await;
        let p = params()?;
        let target = ServiceTarget {
            model: ModelIden::new(AdapterKind::OpenAI, p.model()),
            endpoint: Endpoint::from_owned(format!("{}/v1/", server.uri())),
            auth: AuthData::from_single("sk-test"),
        };
        let request = ChatRequest::new(vec![ChatMessage::user("Capital of Peru?")]);
        let client = genai::Client::new()?;
        let options = ga::chat_options(&p);
        let (response, latency) =
            adapters::timed(client.exec_chat(target, request, Some(&options))).await;
        let response = response?;
        let sent = body(&server).await?;
        assert_sent(&sent, "max_tokens");
        assert!(sent.get("top_k").is_none(), "{sent}");
        // An arm's server-specific extras go out as extra body fields.
        let server = self::server().await;
        let target = ServiceTarget {
            model: ModelIden::new(AdapterKind::OpenAI, p.model()),
            endpoint: Endpoint::from_owned(format!("{}/v1/", server.uri())),
            auth: AuthData::from_single("sk-test"),
        };
        let with_extras = p.to_builder().top_k(Some(1)).min_p(Some(0.1)).build()?;
        let request = ChatRequest::new(vec![ChatMessage::user("Capital of Peru?")]);
        client
            .exec_chat(target, request, Some(&ga::chat_options(&with_extras)))
            .await?;
        let sent_extras = body(&server).await?;
        assert_eq!(sent_extras["top_k"], 1, "{sent_extras}");
        assert_close(&sent_extras, "min_p", 0.1);
        assert!(sent_extras.get("repeat_penalty").is_none());
        assert_eq!(response.first_text(), Some("Lima is the capital"));
        let o = ga::outcome(&response, latency, 0.75);
        assert_eq!((o.prompt_tokens, o.completion_tokens), (21, 64));
        assert_eq!(o.finish_reason, Some(FinishReason::Length));
        assert!(o.latency_ms >= 50.0, "{}", o.latency_ms);
        o.validate()?;
        Ok(())
    })
}

/// A dollar budget with the async-openai adapter, whose outcomes carry
/// tokens and no cost: at 1 USD per 1,000 tokens each call of 21 prompt
/// and 64 completion tokens costs 0.085 USD, priced from the budget's own
/// table when it is recorded. A limit of 0.5 USD serves 5 calls (0.425)
/// and refuses the 6th (0.51 would pass it), naming the budget.
#[test]
fn a_dollar_budget_runs_down_with_the_adapters_outcomes_and_refuses_by_name() -> TestResult {
    use tuneloop::core::{ArmSet, ErrorKind, TaskFeatures};
    use tuneloop::gates::{BudgetConfig, Price};
    use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    runtime()?.block_on(async {
        let server = server().await;
        let client = async_openai::Client::with_config(
            async_openai::config::OpenAIConfig::new()
                .with_api_base(format!("{}/v1", server.uri()))
                .with_api_key("sk-test"),
        );
        let arms = ArmSet::grid()
            .models(["small-model"])
            .temperatures([0.0, 0.5])
            .max_tokens([64])
            .build()?;
        let price = Price {
            prompt_per_1k_usd: 1.0,
            completion_per_1k_usd: 1.0,
        };
        let o = Optimizer::builder()
            .task_type("qa", TaskTypeConfig::new(arms))
            .budget(BudgetConfig {
                cost_limit_usd: Some(0.5),
                default_price: Some(price),
                ..BudgetConfig::default()
            })
            .seed(3)
            .build()?;
        let features = TaskFeatures {
            prompt_tokens: 21,
            ..TaskFeatures::default()
        };
        let mut served = 0;
        let refusal = loop {
            let d = match o.recommend("qa", &features, &RecommendOptions::default()) {
                Ok(d) => d,
                Err(e) => break e,
            };
            let mut request = async_openai::types::chat::CreateChatCompletionRequest {
                messages: vec![
                    async_openai::types::chat::ChatCompletionRequestUserMessage::from("Hi").into(),
                ],
                ..Default::default()
            };
            oa::apply(d.params(), &mut request);
            let (response, latency) = adapters::timed(client.chat().create(request)).await;
            let outcome = oa::outcome(&response?, latency, 0.9);
            assert!(
                outcome.cost_usd.abs() < f64::EPSILON,
                "the adapter reports no cost"
            );
            d.record(&outcome)?;
            served += 1;
            assert!(served <= 5, "the budget did not run down");
        };
        assert_eq!(served, 5);
        assert_eq!(refusal.kind(), ErrorKind::Refused);
        let message = refusal.to_string();
        assert!(message.contains("budget"), "{message}");
        let spent = o.budget_usage().ok_or("no budget")?.spent_cost_usd;
        assert!((spent - 5.0 * 0.085).abs() < 1e-9, "{spent}");
        // The same spend, per task type and model (what /metrics exports).
        let by_model = o.spend();
        assert_eq!(by_model.len(), 1);
        assert_eq!(
            (by_model[0].task_type.as_str(), by_model[0].model.as_str()),
            ("qa", "small-model")
        );
        assert_eq!(by_model[0].tokens, 5 * 85);
        assert!((by_model[0].cost_usd - 5.0 * 0.085).abs() < 1e-9);
        Ok(())
    })
}
