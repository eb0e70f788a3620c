//! LLM backends for tuneloop: one async [`Provider`] trait, a tiered
//! [`Router`] (online providers first, local models as fallback) with
//! retries, exponential backoff with jitter that honours retry-after, a
//! deadline per call and a circuit breaker per provider, a persisted
//! [`Scorecard`] for adaptive selection, and a seeded
//! [`SimulatedProvider`].
//!
//! With the `http` feature, `OpenAiCompatible` speaks the chat-completions
//! API of OpenAI, vLLM, Ollama and the llama.cpp server (reqwest with
//! rustls), with API keys that never reach logs, errors or `Debug` output.
//! It sends every field of the [`ParameterSet`](tuneloop_core::ParameterSet)
//! and its server-specific extras (`top_k`, `min_p`, `repeat_penalty`, set
//! per arm or per provider); streamed (`OpenAiConfig::stream`), the answer
//! carries its time to the first token, which
//! [`GenerationResponse::outcome`] passes to the
//! [`TaskOutcome`](tuneloop_core::TaskOutcome) for the reward and the SLO
//! monitor (`LatencyMetric::FirstToken`). `tests/real_llm.rs` runs it
//! against a real server (`scripts/local-llm start`).
//!
//! ```
//! use std::sync::Arc;
//! use tuneloop_core::ParameterSet;
//! use tuneloop_providers::{GenerationRequest, Message, Provider, Router, RouterConfig, SimulatedConfig, SimulatedProvider, Tier};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| e.to_string())?.block_on(async {
//! let flaky: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(SimulatedConfig { id: "cloud".into(), failure_rate: 1.0, ..Default::default() }));
//! let local: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(SimulatedConfig { id: "local".into(), tier: Tier::Local, ..Default::default() }));
//! let router = Router::new(vec![flaky, local], RouterConfig::default()).map_err(|e| e.to_string())?;
//! let params = ParameterSet::builder("any-model").max_tokens(64).build().map_err(|e| e.to_string())?;
//! let routed = router.generate(&GenerationRequest::new("r1", vec![Message::user("hi")], &params)).await.map_err(|e| e.to_string())?;
//! assert_eq!(routed.response.provider, "local");
//! # Ok::<(), String>(())
//! # })?;
//! # Ok::<(), String>(())
//! ```

mod breaker;
mod error;
#[cfg(feature = "http")]
mod http;
mod provider;
mod router;
mod scorecard;
mod simulated;
mod types;

pub use breaker::{BreakerConfig, BreakerState};
pub use error::{ProviderError, RouterError};
#[cfg(feature = "http")]
pub use http::{OpenAiCompatible, OpenAiConfig};
pub use provider::Provider;
pub use router::{Attempt, Routed, Router, RouterConfig, RoutingRecord};
pub use scorecard::{
    Entry, LATENCY_WINDOW, SCORECARD_ENV, ScoreWeights, Scorecard, ScorecardConfig, Standing,
};
pub use simulated::{
    MISSING_PHRASE_PENALTY, PROMPT_CLOSE, PROMPT_OPEN, QualityProfile, SimulatedAnswer,
    SimulatedConfig, SimulatedProvider, SimulatedRole,
};
pub use types::{
    Capabilities, FinishReason, GenerationRequest, GenerationResponse, Message,
    REQUEST_SCHEMA_VERSION, Role, Tier, Usage,
};

#[cfg(test)]
mod tests {
    use super::*;

    // The trait is dyn-compatible: heterogeneous fallback chains compile.
    fn _object_safe(_: &dyn Provider) {}

    static_assertions::assert_impl_all!(ProviderError: Send, Sync);
    static_assertions::assert_impl_all!(RouterError: Send, Sync);
    static_assertions::assert_impl_all!(Router: Send, Sync);
    static_assertions::assert_impl_all!(Scorecard: Send, Sync);
    static_assertions::assert_impl_all!(SimulatedProvider: Send, Sync);
    static_assertions::assert_impl_all!(GenerationRequest: Send, Sync);
    static_assertions::assert_impl_all!(GenerationResponse: Send, Sync);
    static_assertions::assert_impl_all!(RoutingRecord: Send, Sync);
    static_assertions::assert_impl_all!(std::sync::Arc<dyn Provider>: Send, Sync);
}
