//! The HTTP provider against a wiremock HTTP server on 127.0.0.1, with
//! faults: 429 with Retry-After, 500, 401, a context-length
//! 400, malformed JSON, an oversized body, and a server that never
//! answers. Real time (a paused clock would fire deadlines during I/O).
#![cfg(feature = "http")]

use std::sync::Arc;
use std::time::Duration;

use tuneloop_core::ParameterSet;
use tuneloop_providers::{
    Attempt, GenerationRequest, Message, OpenAiCompatible, OpenAiConfig, Provider, ProviderError,
    Router, RouterConfig, RouterError,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY_VAR: &str = "TUNELOOP_TEST_HTTP_KEY";
const SECRET: &str = "sk-test-do-not-leak-123";

const OK_BODY: &str = r#"{"model":"served-model","choices":[{"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1}}"#;

/// A wiremock server on 127.0.0.1 with one scenario per first path
/// segment: `/ok/v1/chat/completions` answers when the key is right, and
/// so on.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    let json = |status: u16, body: &[u8]| {
        ResponseTemplate::new(status).set_body_raw(body.to_vec(), "application/json")
    };
    let scenarios: [(&str, ResponseTemplate); 10] = [
        // A 4xx body that echoes the request's Authorization header.
        (
            "echo",
            json(
                400,
                format!(
                    r#"{{"error":"bad request","headers":{{"authorization":"Bearer {SECRET}"}}}}"#
                )
                .as_bytes(),
            ),
        ),
        // A redirect to a path that answers: must not be followed.
        (
            "redirect",
            ResponseTemplate::new(307).insert_header("Location", "/ok/v1/chat/completions"),
        ),
        ("ok", json(401, b"{}")),
        ("auth", json(401, b"{}")),
        (
            "ratelimited",
            json(429, b"{}").insert_header("Retry-After", "1"),
        ),
        ("error", json(500, b"oops")),
        (
            "context",
            json(400, br#"{"error":{"code":"context_length_exceeded"}}"#),
        ),
        ("malformed", json(200, b"{not json")),
        ("huge", json(200, &vec![b'x'; 1 << 20])),
        // Never answers in a test's lifetime: only a deadline ends the call.
        (
            "hang",
            json(200, b"{}").set_delay(Duration::from_secs(3_600)),
        ),
    ];
    // The authorized `ok` is mounted first, so it wins over its 401.
    Mock::given(method("POST"))
        .and(path("/ok/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {SECRET}").as_str()))
        .respond_with(json(200, OK_BODY.as_bytes()))
        .mount(&server)
        .await;
    for (scenario, response) in scenarios {
        Mock::given(method("POST"))
            .and(path(format!("/{scenario}/v1/chat/completions")))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    server
}

fn provider(base: &str, scenario: &str) -> Result<Arc<OpenAiCompatible>, RouterError> {
    Ok(Arc::new(OpenAiCompatible::new(OpenAiConfig {
        id: scenario.into(),
        base_url: format!("{base}/{scenario}/v1"),
        api_key_env: Some(KEY_VAR.into()),
        max_response_bytes: 64 << 10,
        ..OpenAiConfig::default()
    })?))
}

fn request() -> Result<GenerationRequest, tuneloop_core::Error> {
    let p = ParameterSet::builder("gpt-test").max_tokens(16).build()?;
    Ok(GenerationRequest::new(
        "h1",
        vec![Message::system("Be terse."), Message::user("2 + 2?")],
        &p,
    ))
}

#[tokio::test]
async fn http_faults_are_classified_and_the_router_falls_back() -> TestResult {
    // The key reaches the provider only through the environment, which a
    // test cannot safely change in its own process: without the variable
    // the test runs itself again in a child process that has it.
    if std::env::var(KEY_VAR).is_err() {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "http_faults_are_classified_and_the_router_falls_back",
                "--nocapture",
            ])
            .env(KEY_VAR, SECRET)
            .status()?;
        assert!(status.success(), "the run with {KEY_VAR} set failed");
        return Ok(());
    }
    let server = server().await;
    let base = server.uri();
    let req = request()?;
    let ok = provider(&base, "ok")?.generate(&req).await?;
    assert_eq!(
        (ok.text.as_str(), ok.model.as_str(), ok.usage.prompt_tokens),
        ("4", "served-model", 12)
    );
    let classify = |e: Result<_, ProviderError>| e.err();
    assert!(matches!(
        classify(provider(&base, "ratelimited")?.generate(&req).await),
        Some(ProviderError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(1)
    ));
    assert!(matches!(
        classify(provider(&base, "error")?.generate(&req).await),
        Some(ProviderError::Transient { .. })
    ));
    assert!(matches!(
        classify(provider(&base, "auth")?.generate(&req).await),
        Some(ProviderError::Authentication { .. })
    ));
    assert!(matches!(
        classify(provider(&base, "context")?.generate(&req).await),
        Some(ProviderError::ContextLength { .. })
    ));
    assert!(matches!(
        classify(provider(&base, "malformed")?.generate(&req).await),
        Some(ProviderError::Transient { .. })
    ));
    assert!(matches!(
        classify(provider(&base, "huge")?.generate(&req).await),
        Some(ProviderError::Permanent { .. })
    ));

    // A chain of faulty providers before a good one: the router falls back.
    let chain: Vec<Arc<dyn Provider>> = vec![
        provider(&base, "ratelimited")?,
        provider(&base, "error")?,
        provider(&base, "malformed")?,
        provider(&base, "huge")?,
        provider(&base, "ok")?,
    ];
    let router = Router::new(
        chain,
        RouterConfig {
            max_attempts: 1,
            ..RouterConfig::default()
        },
    )?;
    let routed = router.generate(&req).await?;
    assert_eq!(routed.response.provider, "ok");
    assert_eq!(
        routed
            .record
            .attempts
            .iter()
            .filter(|a| matches!(a, Attempt::Failed { .. }))
            .count(),
        4
    );

    // A provider that never answers: the call returns at all only because
    // the deadline ends it. (The outer guard turns a broken deadline into a
    // failure instead of a hung test; it measures nothing.)
    let hang: Vec<Arc<dyn Provider>> = vec![provider(&base, "hang")?];
    let router = Router::new(
        hang,
        RouterConfig {
            max_attempts: 1,
            deadline: Duration::from_millis(500),
            ..RouterConfig::default()
        },
    )?;
    let result = tokio::time::timeout(Duration::from_secs(60), router.generate(&req))
        .await
        .map_err(|_| "the router did not honour its deadline")?;
    assert!(
        matches!(result, Err(RouterError::Deadline(_))),
        "{result:?}"
    );

    // A body echoing the key: redacted from the error.
    let echoed = format!("{:?}", provider(&base, "echo")?.generate(&req).await.err());
    assert!(
        echoed.contains("<redacted>") && !echoed.contains(SECRET),
        "{echoed}"
    );
    // A redirect is an error, not a second request elsewhere.
    assert!(matches!(
        classify(provider(&base, "redirect")?.generate(&req).await),
        Some(ProviderError::Permanent { message, .. }) if message.contains("redirect")
    ));
    // Without a router, a stalled server still fails the call: the read
    // timeout ends it (the outer guard only keeps a broken one from hanging
    // the test).
    let stalled = Arc::new(OpenAiCompatible::new(OpenAiConfig {
        id: "hang".into(),
        base_url: format!("{base}/hang/v1"),
        api_key_env: Some(KEY_VAR.into()),
        read_timeout: Duration::from_millis(300),
        ..OpenAiConfig::default()
    })?);
    let stalled = tokio::time::timeout(Duration::from_secs(60), stalled.generate(&req))
        .await
        .map_err(|_| "the read timeout did not end the call")?;
    assert!(stalled.is_err(), "{stalled:?}");

    // The key never shows: not in Debug output, not in any error or record.
    let p = provider(&base, "error")?;
    assert!(!format!("{p:?}").contains(SECRET));
    let errors = format!("{:?} {:?}", router.audit(), p.generate(&req).await.err());
    assert!(!errors.contains(SECRET));
    Ok(())
}

#[test]
fn a_missing_key_is_a_configuration_error_naming_the_variable() {
    let err = OpenAiCompatible::new(OpenAiConfig {
        api_key_env: Some("TUNELOOP_SURELY_UNSET_KEY".into()),
        ..OpenAiConfig::default()
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("TUNELOOP_SURELY_UNSET_KEY"), "{err}");
}

/// A server that answers a byte every 50 ms never trips the read timeout
/// (300 ms); the call's own deadline (1 s) ends it, with a timeout error.
#[tokio::test]
async fn a_server_that_trickles_is_cut_by_the_calls_deadline() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if s.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let provider = OpenAiCompatible::new(OpenAiConfig {
        id: "trickle".into(),
        base_url: format!("http://{addr}/v1"),
        api_key_env: None,
        read_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_secs(1),
        ..OpenAiConfig::default()
    })?;
    let params = ParameterSet::builder("m").build()?;
    let req = GenerationRequest::new("t", vec![Message::user("hi")], &params);
    let result = tokio::time::timeout(Duration::from_secs(60), provider.generate(&req))
        .await
        .map_err(|_| "the call's deadline did not end the call")?;
    assert!(
        matches!(result, Err(ProviderError::Timeout { .. })),
        "{result:?}"
    );
    server.abort();
    Ok(())
}
