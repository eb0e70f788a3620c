//! A benchmark and a refinement over the OpenAI-compatible HTTP provider,
//! against an HTTP server on 127.0.0.1 that the test starts: it answers
//! "Canberra" when the prompt asks for the capital *and* says to answer
//! with the city name only, and "I am not sure." otherwise. Real time.
#![cfg(feature = "http")]
// Scores here are exact: 0, 1 or ratios of small integers.
#![allow(clippy::float_cmp)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tuneloop_core::ParameterSet;
use tuneloop_eval::{
    BenchmarkConfig, Candidate, RefineConfig, Refiner, StopReason, Suite, run_benchmark,
};
use tuneloop_providers::{OpenAiCompatible, OpenAiConfig, Provider, Tier};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const INSTRUCTION: &str = "Answer with the city name only.";

fn reply(body: &str) -> String {
    let content = if body.contains("interviewer-model") {
        // The interviewer: propose the instruction.
        format!(
            "ANALYSIS: the prompt does not constrain the format.\\n<prompt>\\nWhat is the capital of Australia? {INSTRUCTION}\\n</prompt>"
        )
    } else if body.contains("capital of Australia") && body.contains(INSTRUCTION) {
        "Canberra".to_owned()
    } else {
        "I am not sure.".to_owned()
    };
    format!(
        r#"{{"model":"served","choices":[{{"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":20,"completion_tokens":2}}}}"#
    )
}

async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
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
            let body = reply(&String::from_utf8_lossy(&buf[head_end..]));
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

async fn provider() -> Result<Arc<dyn Provider>, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(Arc::new(OpenAiCompatible::new(OpenAiConfig {
        id: "local-http".into(),
        tier: Tier::Local,
        base_url: format!("http://{addr}/v1"),
        api_key_env: None,
        ..OpenAiConfig::default()
    })?))
}

fn params(model: &str) -> Result<ParameterSet, tuneloop_core::Error> {
    ParameterSet::builder(model)
        .temperature(0.0)
        .max_tokens(32)
        .build()
}

#[tokio::test]
async fn a_benchmark_runs_over_http() -> TestResult {
    let mut suite = Suite::standard();
    suite
        .cases
        .retain(|c| c.id == "capital" || c.id == "shortest");
    let mut bench = BenchmarkConfig::new(vec![provider().await?], vec![params("any")?]);
    bench.repetitions = 2;
    let run = run_benchmark(&suite, &bench, 0, None).await?;
    assert_eq!(run.calls.len(), 4);
    for c in &run.calls {
        assert!(c.success, "{c:?}");
        assert_eq!((c.prompt_tokens, c.completion_tokens), (20, 2));
        // The standard capital prompt says "Answer with the city name only."
        let expected = if c.case_id == "capital" { 1.0 } else { 0.0 };
        assert!((c.quality - expected).abs() < 1e-12, "{c:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_refinement_runs_over_http() -> TestResult {
    let mut suite = Suite::standard();
    suite.cases.retain(|c| c.id == "capital");
    suite.cases[0].prompt = "What is the capital of Australia?".into();
    let http = provider().await?;
    let refiner = Refiner::new(
        Candidate {
            provider: http.clone(),
            parameters: params("interviewer-model")?,
        },
        RefineConfig {
            repetitions: 2,
            ..RefineConfig::default()
        },
    )?;
    let s = refiner
        .refine(
            &suite.cases[0],
            &Candidate {
                provider: http,
                parameters: params("candidate-model")?,
            },
        )
        .await?;
    assert_eq!(s.stop_reason, StopReason::Success);
    assert_eq!((s.initial_score, s.best_score), (0.0, 1.0));
    assert!(s.best_prompt.ends_with(INSTRUCTION));
    Ok(())
}
