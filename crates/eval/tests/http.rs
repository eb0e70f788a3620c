//! A benchmark and a refinement over the OpenAI-compatible HTTP provider,
//! against a wiremock HTTP server on 127.0.0.1: it answers
//! "Canberra" when the prompt asks for the capital *and* says to answer
//! with the city name only, and "I am not sure." otherwise. Real time.
#![cfg(feature = "http")]
// Scores here are exact: 0, 1 or ratios of small integers.
#![allow(clippy::float_cmp)]

use std::sync::Arc;

use tuneloop_core::ParameterSet;
use tuneloop_eval::{
    BenchmarkConfig, Candidate, RefineConfig, Refiner, StopReason, Suite, run_benchmark,
};
use tuneloop_providers::{OpenAiCompatible, OpenAiConfig, Provider, Tier};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

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

/// A wiremock server on 127.0.0.1 answering every chat completion by
/// [`reply`], and a provider pointed at it (the server lives as long as the
/// returned guard).
async fn provider() -> Result<(Arc<dyn Provider>, MockServer), Box<dyn std::error::Error>> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(|req: &Request| {
            ResponseTemplate::new(200).set_body_raw(
                reply(&String::from_utf8_lossy(&req.body)).into_bytes(),
                "application/json",
            )
        })
        .mount(&server)
        .await;
    let provider = Arc::new(OpenAiCompatible::new(OpenAiConfig {
        id: "local-http".into(),
        tier: Tier::Local,
        base_url: format!("{}/v1", server.uri()),
        api_key_env: None,
        ..OpenAiConfig::default()
    })?);
    Ok((provider, server))
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
    let (http, _server) = provider().await?;
    let mut bench = BenchmarkConfig::new(vec![http], vec![params("any")?]);
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
    let (http, _server) = provider().await?;
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
