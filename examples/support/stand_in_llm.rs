//! A stand-in for an OpenAI-compatible server on 127.0.0.1, for the adapter
//! examples when no real one is configured: it answers short factual
//! questions correctly at low temperature and less often as the
//! temperature rises, and cuts answers short below 16 tokens, as a small
//! real model does (see the real-LLM notes in docs/integration.md).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Questions and the word a right answer contains.
pub(crate) const QUESTIONS: [(&str, &str); 4] = [
    ("What is the capital of Peru? One word.", "Lima"),
    ("What is 7 times 6? Digits only.", "42"),
    ("Which planet is called the red planet? One word.", "Mars"),
    ("What is the chemical symbol of gold?", "Au"),
];

/// Calls answered so far: the stand-in's "randomness".
static CALLS: AtomicU64 = AtomicU64::new(0);

fn answer(body: &Value) -> (String, &'static str, u64) {
    let question = body["messages"][0]["content"].as_str().unwrap_or_default();
    let temperature = body["temperature"].as_f64().unwrap_or(1.0);
    let max_tokens = body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
        .unwrap_or(256);
    let right = QUESTIONS
        .iter()
        .find(|(q, _)| *q == question)
        .map_or("I do not know", |(_, a)| *a);
    // Deterministic "sampling" (a low-discrepancy sequence): wrong with
    // probability temperature / 1.5, so never at 0 and 80% of the time at 1.2.
    let draw = CALLS.fetch_add(1, Ordering::Relaxed) as f64 * 0.618_034 % 1.0;
    let text = if draw >= temperature / 1.5 {
        format!("The answer is {right}.")
    } else {
        "I am not sure, it could be several things.".to_owned()
    };
    if max_tokens < 16 {
        (text.chars().take(8).collect(), "length", max_tokens)
    } else {
        (text, "stop", 12)
    }
}

/// Starts the stand-in; its base URL ends in `/v1`.
pub(crate) async fn start() -> (MockServer, String) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let (text, finish, tokens) = answer(&body);
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "stand-in", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
            }))
        })
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

/// How often the answers were right early and late.
pub(crate) fn summary(right: &[f64]) -> String {
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let first = &right[..right.len().min(40)];
    let last = &right[right.len().saturating_sub(100)..];
    format!(
        "right answers: {:.0}% in the first 40 calls, {:.0}% in the last 100 ({} calls)",
        100.0 * mean(first),
        100.0 * mean(last),
        right.len()
    )
}
