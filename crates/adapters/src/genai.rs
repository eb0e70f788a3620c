//! [genai](https://docs.rs/genai)'s chat options and responses (feature
//! `genai`).
//!
//! ```
//! use tuneloop_adapters::genai::chat_options;
//! use tuneloop::core::ParameterSet;
//!
//! let params = ParameterSet::builder("gpt-4o-mini")
//!     .temperature(0.2)
//!     .max_tokens(256)
//!     .frequency_penalty(0.5)
//!     .build()?;
//! let options = chat_options(&params);
//! assert_eq!((options.temperature, options.max_tokens), (Some(0.2), Some(256)));
//! // Penalties have no field of their own in genai: they travel in the body.
//! assert_eq!(options.extra_body.as_ref().map(|b| b["frequency_penalty"].clone()), Some(0.5.into()));
//! // ... client.exec_chat(params.model(), request, Some(&options)).await ...
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use genai::chat::{ChatOptions, ChatResponse, StopReason};
use tuneloop_core::{FinishReason, ParameterSet, TaskOutcome};

/// Chat options carrying every sampling field of `params`: temperature,
/// top_p, max_tokens, seed (when set), stop sequences (when not empty),
/// usage capture on, and the frequency and presence penalties (when not
/// 0) and the server-specific `top_k`, `min_p` and `repeat_penalty` (when
/// set) as `extra_body` fields, which genai merges into the request of
/// OpenAI-compatible adapters (others may ignore them). Call the model
/// named [`params.model()`](ParameterSet::model).
pub fn chat_options(params: &ParameterSet) -> ChatOptions {
    let mut o = ChatOptions::default()
        .with_temperature(params.temperature())
        .with_top_p(params.top_p())
        .with_max_tokens(params.max_tokens())
        .with_capture_usage(true);
    if let Some(seed) = params.seed() {
        o = o.with_seed(seed);
    }
    if !params.stop().is_empty() {
        o = o.with_stop_sequences(params.stop().to_vec());
    }
    let mut body = serde_json::Map::new();
    for (name, value) in [
        ("frequency_penalty", params.frequency_penalty()),
        ("presence_penalty", params.presence_penalty()),
    ] {
        if value != 0.0 {
            body.insert(name.into(), value.into());
        }
    }
    let extras = params.extras();
    if let Some(k) = extras.top_k {
        body.insert("top_k".into(), k.into());
    }
    if let Some(m) = extras.min_p {
        body.insert("min_p".into(), m.into());
    }
    if let Some(r) = extras.repeat_penalty {
        body.insert("repeat_penalty".into(), r.into());
    }
    if !body.is_empty() {
        o = o.with_extra_body(serde_json::Value::Object(body));
    }
    o
}

/// A successful call's outcome: `quality` (the caller's score of the
/// answer, in `[0, 1]`), the measured `latency`, the usage genai reported
/// (0 for what it did not; negative counts read as 0) and the stop reason.
pub fn outcome(response: &ChatResponse, latency: Duration, quality: f64) -> TaskOutcome {
    let tokens = |n: Option<i32>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let u = &response.usage;
    let mut o = TaskOutcome::success(quality, crate::millis(latency))
        .with_tokens(tokens(u.prompt_tokens), tokens(u.completion_tokens));
    if let Some(reason) = &response.stop_reason {
        o = o.with_finish_reason(match reason {
            StopReason::Completed(_) | StopReason::StopSequence(_) => FinishReason::Stop,
            StopReason::MaxTokens(_) => FinishReason::Length,
            StopReason::ToolCall(_) => FinishReason::ToolCalls,
            StopReason::ContentFilter(_) => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        });
    }
    o
}
