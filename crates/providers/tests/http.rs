//! The HTTP provider against a real HTTP server on 127.0.0.1 that the test
//! starts, with faults: 429 with Retry-After, 500, 401, a context-length
//! 400, malformed JSON, an oversized body, and a server that never
//! answers. Real time (a paused clock would fire deadlines during I/O).
#![cfg(feature = "http")]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tuneloop_core::ParameterSet;
use tuneloop_providers::{
    Attempt, GenerationRequest, Message, OpenAiCompatible, OpenAiConfig, Provider, ProviderError,
    Router, RouterConfig, RouterError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY_VAR: &str = "TUNELOOP_TEST_HTTP_KEY";
const SECRET: &str = "sk-test-do-not-leak-123";

/// Serves one response per connection, chosen by the first path segment.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            // Read the head, then the body by Content-Length.
            let head_end = loop {
                let Ok(n) = sock.read(&mut tmp).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&tmp[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let Ok(n) = sock.read(&mut tmp).await else {
                    return;
                };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let authorized = head
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {SECRET}")));
            let ok_body = r#"{"model":"served-model","choices":[{"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1}}"#;
            let (status, extra, body): (&str, &str, Vec<u8>) =
                match path.split('/').nth(1).unwrap_or("") {
                    "ok" if authorized => ("200 OK", "", ok_body.as_bytes().to_vec()),
                    "ok" | "auth" => ("401 Unauthorized", "", b"{}".to_vec()),
                    "ratelimited" => (
                        "429 Too Many Requests",
                        "Retry-After: 1\r\n",
                        b"{}".to_vec(),
                    ),
                    "error" => ("500 Internal Server Error", "", b"oops".to_vec()),
                    "context" => (
                        "400 Bad Request",
                        "",
                        br#"{"error":{"code":"context_length_exceeded"}}"#.to_vec(),
                    ),
                    "malformed" => ("200 OK", "", b"{not json".to_vec()),
                    "huge" => ("200 OK", "", vec![b'x'; 1 << 20]),
                    "hang" => {
                        // Never answers: only a deadline ends the call.
                        std::future::pending::<()>().await;
                        return;
                    }
                    _ => ("404 Not Found", "", b"{}".to_vec()),
                };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            let _ = sock.shutdown().await;
        });
    }
}

async fn server() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(format!("http://{addr}"))
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
    // The key reaches the provider only through the environment.
    if std::env::var(KEY_VAR).is_err() {
        return Err(format!("run with {KEY_VAR}={SECRET} (the CI script sets it)").into());
    }
    let base = server().await?;
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
