//! Adapters for LLM clients: a [`ParameterSet`](tuneloop_core::ParameterSet)
//! applied to the client's own request types, and its response read back
//! into a [`TaskOutcome`](tuneloop_core::TaskOutcome).
//!
//! | feature | client | module |
//! |---|---|---|
//! | `async-openai` | [async-openai](https://docs.rs/async-openai)'s chat completions (its types only: bring its client) | `tuneloop_adapters::async_openai` |
//! | `genai` | [genai](https://docs.rs/genai)'s `ChatOptions` and `ChatResponse` | `tuneloop_adapters::genai` |
//!
//! Neither adapter touches the prompt: a
//! [`prompt_variant`](tuneloop_core::ParameterSet::prompt_variant) is the
//! caller's to apply (the facade's `Decision::prompt` gives the prompt the
//! task type registered for it). Quality is the caller's too: score the answer, then
//! pass the score to `outcome`.
//!
//! The adapters depend on `tuneloop-core` alone (the vocabulary the
//! facade re-exports as `tuneloop::core`), so the types they take and
//! give are the ones the optimizer uses:
//!
//! ```toml
//! [dependencies]
//! tuneloop = { path = "../tuneloop/crates/optimizer" }
//! tuneloop-adapters = { path = "../tuneloop/crates/adapters", features = ["async-openai"] }
//! async-openai = { version = "0.43", default-features = false, features = ["chat-completion", "rustls"] }
//! ```

#[cfg(feature = "async-openai")]
pub mod async_openai;
#[cfg(feature = "genai")]
pub mod genai;

use std::time::{Duration, Instant};

/// Runs `call` and measures its wall-clock time, on any executor.
///
/// ```
/// # futures_lite_block_on(async {
/// let (answer, latency) = tuneloop_adapters::timed(async { 42 }).await;
/// assert_eq!(answer, 42);
/// assert!(latency.as_secs() < 1);
/// # });
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = call.await;
    (out, start.elapsed())
}

#[cfg(any(feature = "async-openai", feature = "genai"))]
/// Milliseconds of `d`, as [`TaskOutcome::latency_ms`](tuneloop_core::TaskOutcome::latency_ms) takes them.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
