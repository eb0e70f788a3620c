//! The HTTP provider's streaming and request body against a wiremock
//! server on 127.0.0.1: server-sent events assembled into one answer, usage
//! from the last chunk or counted, truncated and oversized streams, the
//! sampling extras in the body, and a 500 reporting a validation error
//! classified as permanent (not retried).
#![cfg(feature = "http")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tuneloop_core::{ParameterSet, SamplingExtras};
use tuneloop_providers::{
    FinishReason, GenerationRequest, Message, OpenAiCompatible, OpenAiConfig, Provider,
    ProviderError, Router, RouterConfig, RouterError,
};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn chunk(content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => json!({ "content": c }),
        None => json!({}),
    };
    let v = json!({
        "model": "served",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {v}\n\n")
}

fn sse(events: &[String]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(events.concat().into_bytes(), "text/event-stream")
}

fn provider(
    base: &str,
    scenario: &str,
    tweak: impl FnOnce(&mut OpenAiConfig),
) -> Result<OpenAiCompatible, RouterError> {
    let mut config = OpenAiConfig {
        id: scenario.into(),
        base_url: format!("{base}/{scenario}/v1"),
        api_key_env: None,
        stream: true,
        ..OpenAiConfig::default()
    };
    tweak(&mut config);
    OpenAiCompatible::new(config)
}

fn request(params: &ParameterSet) -> GenerationRequest {
    GenerationRequest::new("r1", vec![Message::user("Count: one, two,")], params)
}

async fn mount(server: &MockServer, scenario: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(format!("/{scenario}/v1/chat/completions")))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_stream_is_assembled_with_usage_from_its_last_chunk_or_counted() -> TestResult {
    let server = MockServer::start().await;
    let usage = json!({
        "model": "served", "choices": [],
        "usage": { "prompt_tokens": 9, "completion_tokens": 3 },
    });
    let with_usage = vec![
        chunk(Some(""), None), // a role-only first chunk is not a token
        chunk(Some(" three"), None),
        chunk(Some(","), None),
        chunk(Some(" four"), Some("length")),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ];
    mount(&server, "usage", sse(&with_usage)).await;
    let counted = vec![
        chunk(Some("A"), None),
        chunk(Some("B"), None),
        chunk(None, Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ];
    mount(&server, "counted", sse(&counted)).await;
    let params = ParameterSet::builder("m").max_tokens(3).build()?;

    let a = provider(&server.uri(), "usage", |_| {})?
        .generate(&request(&params))
        .await?;
    assert_eq!(a.text, " three, four");
    assert_eq!((a.usage.prompt_tokens, a.usage.completion_tokens), (9, 3));
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.model, "served");
    let first = a.time_to_first_token.ok_or("no time to first token")?;
    assert!(first <= a.latency, "{first:?} > {:?}", a.latency);
    let outcome = a.outcome(1.0);
    assert!(outcome.validate().is_ok());
    assert_eq!(
        outcome.finish_reason,
        Some(tuneloop_core::FinishReason::Length)
    );
    assert!(outcome.time_to_first_token_ms.is_some());

    let b = provider(&server.uri(), "counted", |_| {})?
        .generate(&request(&params))
        .await?;
    assert_eq!(b.text, "AB");
    assert_eq!((b.usage.prompt_tokens, b.usage.completion_tokens), (0, 2));
    assert_eq!(b.finish_reason, FinishReason::Stop);
    Ok(())
}

#[tokio::test]
async fn truncated_oversized_and_failing_streams_are_errors() -> TestResult {
    let server = MockServer::start().await;
    mount(&server, "cut", sse(&[chunk(Some("half"), None)])).await;
    // llama.cpp's server cuts a stream short for a newer request so.
    mount(
        &server,
        "interrupted",
        sse(&[chunk(Some("half"), None), "data: [DONE]\n\n".to_owned()]),
    )
    .await;
    mount(&server, "garbage", sse(&["data: {not json\n\n".to_owned()])).await;
    // One event line of 64 KiB without an end: the limit, not memory, stops it.
    let endless = format!("data: {}", "x".repeat(64 << 10));
    mount(&server, "big", sse(&[endless])).await;
    let error_event =
        json!({ "error": { "message": "1 validation error: Input should be a valid number" } });
    mount(
        &server,
        "invalid",
        sse(&[format!("data: {error_event}\n\n")]),
    )
    .await;
    let params = ParameterSet::builder("m").build()?;
    let req = request(&params);

    let cut = provider(&server.uri(), "cut", |_| {})?.generate(&req).await;
    assert!(
        matches!(&cut, Err(ProviderError::Transient { message, .. }) if message.contains("[DONE]")),
        "{cut:?}"
    );
    let interrupted = provider(&server.uri(), "interrupted", |_| {})?
        .generate(&req)
        .await;
    assert!(
        matches!(&interrupted, Err(ProviderError::Transient { message, .. }) if message.contains("finish reason")),
        "{interrupted:?}"
    );
    let garbage = provider(&server.uri(), "garbage", |_| {})?
        .generate(&req)
        .await;
    assert!(
        matches!(&garbage, Err(ProviderError::Transient { message, .. }) if message.contains("malformed stream")),
        "{garbage:?}"
    );
    let big = provider(&server.uri(), "big", |c| c.max_response_bytes = 16 << 10)?
        .generate(&req)
        .await;
    assert!(
        matches!(&big, Err(ProviderError::Permanent { message, .. }) if message.contains("16384 bytes")),
        "{big:?}"
    );
    let invalid = provider(&server.uri(), "invalid", |_| {})?
        .generate(&req)
        .await;
    assert!(
        matches!(&invalid, Err(ProviderError::Permanent { .. })),
        "{invalid:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_body_carries_every_parameter_and_the_extras_arm_first() -> TestResult {
    let server = MockServer::start().await;
    let ok = json!({
        "choices": [{ "message": { "content": "ok" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1 },
    });
    // Matches only a body with every field: the arm's top_k (1) over the
    // provider's (40), the provider's min_p where the arm has none.
    Mock::given(method("POST"))
        .and(path("/extras/v1/chat/completions"))
        .and(body_partial_json(json!({
            "model": "m",
            "max_tokens": 7,
            "temperature": 0.25,
            "top_p": 0.5,
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "stop": ["\n"],
            "seed": 11,
            "top_k": 1,
            "min_p": 0.1,
            "repeat_penalty": 1.0,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok))
        .mount(&server)
        .await;
    let params = ParameterSet::builder("m")
        .max_tokens(7)
        .temperature(0.25)
        .top_p(0.5)
        .frequency_penalty(0.5)
        .presence_penalty(-0.5)
        .stop(["\n"])
        .seed(Some(11))
        .top_k(Some(1))
        .repeat_penalty(Some(1.0))
        .build()?;
    let p = provider(&server.uri(), "extras", |c| {
        c.stream = false;
        c.extras = SamplingExtras {
            top_k: Some(40),
            min_p: Some(0.1),
            repeat_penalty: None,
        };
    })?;
    let answer = p.generate(&request(&params)).await?;
    assert_eq!(answer.text, "ok");
    assert_eq!(answer.time_to_first_token, None);
    Ok(())
}

#[tokio::test]
async fn a_500_reporting_a_validation_error_is_permanent_and_not_retried() -> TestResult {
    let server = MockServer::start().await;
    // The shape of llama-cpp-python's answer to an invalid parameter.
    let invalid = json!({ "error": { "message": "1 validation error for CreateChatCompletionRequest\ntemperature\n  Input should be less than or equal to 2", "type": "internal_server_error" } });
    Mock::given(method("POST"))
        .and(path("/invalid/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(invalid))
        .expect(1)
        .mount(&server)
        .await;
    mount(
        &server,
        "fault",
        ResponseTemplate::new(500).set_body_string("internal error"),
    )
    .await;
    let params = ParameterSet::builder("m").build()?;
    let req = request(&params);
    let invalid = Arc::new(provider(&server.uri(), "invalid", |c| c.stream = false)?);
    let router = Router::new(
        vec![invalid as Arc<dyn Provider>],
        RouterConfig {
            max_attempts: 3,
            base_backoff: Duration::from_millis(1),
            ..RouterConfig::default()
        },
    )?;
    match router.generate(&req).await.map(|r| r.response) {
        Err(RouterError::Exhausted { attempts, last }) => {
            assert_eq!(attempts, 1, "{last:?}");
            assert!(
                matches!(last, Some(ProviderError::Permanent { .. })),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let fault = provider(&server.uri(), "fault", |c| c.stream = false)?
        .generate(&req)
        .await;
    assert!(
        matches!(fault, Err(ProviderError::Transient { .. })),
        "{fault:?}"
    );
    Ok(())
}
