//! Requests, responses and what a provider can do.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tuneloop_core::hash::StableHasher;
use tuneloop_core::{ParameterSet, SamplingExtras};

/// Version of the request format.
pub const REQUEST_SCHEMA_VERSION: u32 = 1;

/// Who speaks in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
}

/// One generation call, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    /// The caller's id for the call (a decision id, say).
    pub request_id: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// The model to ask for.
    pub model: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Frequency penalty.
    pub frequency_penalty: f64,
    /// Presence penalty.
    pub presence_penalty: f64,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling seed, if any.
    pub seed: Option<u64>,
    /// Server-specific sampling settings (top_k, min_p, repeat_penalty):
    /// the arm's own; a provider fills the ones unset here from its
    /// configuration.
    #[serde(default, skip_serializing_if = "SamplingExtras::is_empty")]
    pub extras: SamplingExtras,
    /// Stable hash of the messages (16 hex digits), for caches and logs.
    pub prompt_hash: String,
    /// The task type, if known: the scorecard's domain, and what a
    /// simulated provider's quality depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Version of this format.
    pub schema_version: u32,
}

impl GenerationRequest {
    /// A request for `messages` with the generation parameters `params`
    /// (as recommended by the optimizer).
    pub fn new(
        request_id: impl Into<String>,
        messages: Vec<Message>,
        params: &ParameterSet,
    ) -> Self {
        let mut h = StableHasher::new();
        h.write_str("tuneloop.prompt.v1");
        for m in &messages {
            h.write_str(match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            });
            h.write_str(&m.content);
        }
        GenerationRequest {
            request_id: request_id.into(),
            prompt_hash: format!("{:016x}", h.finish()),
            messages,
            model: params.model().to_owned(),
            max_tokens: params.max_tokens(),
            temperature: params.temperature(),
            top_p: params.top_p(),
            frequency_penalty: params.frequency_penalty(),
            presence_penalty: params.presence_penalty(),
            stop: params.stop().to_vec(),
            seed: params.seed(),
            extras: *params.extras(),
            task_type: None,
            schema_version: REQUEST_SCHEMA_VERSION,
        }
    }

    /// Sets the task type.
    #[must_use]
    pub fn with_task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    /// The scorecard domain: the task type, or "".
    pub fn domain(&self) -> &str {
        self.task_type.as_deref().unwrap_or("")
    }

    /// A rough prompt size in tokens (4 characters a token).
    pub fn approx_prompt_tokens(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| m.content.chars().count() as u64)
            .sum::<u64>()
            .div_ceil(4)
    }
}

/// Tokens billed for a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// A content filter intervened.
    ContentFilter,
    /// Anything else.
    Other,
}

impl GenerationResponse {
    /// Completion tokens per second after the first token, for a streamed
    /// answer of more than one token.
    pub fn tokens_per_second(&self) -> Option<f64> {
        self.outcome(0.0).tokens_per_second()
    }

    /// The outcome to record for this answer, scored `quality` by the
    /// caller: latency, tokens, finish reason and, for a streamed answer,
    /// the time to its first token.
    pub fn outcome(&self, quality: f64) -> tuneloop_core::TaskOutcome {
        let mut o = tuneloop_core::TaskOutcome::success(quality, self.latency.as_secs_f64() * 1e3)
            .with_tokens(self.usage.prompt_tokens, self.usage.completion_tokens)
            .with_finish_reason(match self.finish_reason {
                FinishReason::Stop => tuneloop_core::FinishReason::Stop,
                FinishReason::Length => tuneloop_core::FinishReason::Length,
                FinishReason::ContentFilter => tuneloop_core::FinishReason::ContentFilter,
                FinishReason::Other => tuneloop_core::FinishReason::Other,
            });
        if let Some(t) = self.time_to_first_token {
            let ms = (t.as_secs_f64() * 1e3).min(o.latency_ms);
            o = o.with_time_to_first_token(ms);
        }
        o
    }
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationResponse {
    /// The generated text.
    pub text: String,
    /// Tokens billed.
    pub usage: Usage,
    /// Time from sending to the full answer.
    pub latency: Duration,
    /// Time from sending to the first generated token, for a streamed
    /// answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token: Option<Duration>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
}

/// Where a provider runs: online providers are tried before local ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Tier 1: online (cloud) providers.
    Online,
    /// Tier 2: local models, the fallback.
    Local,
}

/// What a provider can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Models it serves (empty: any).
    pub models: Vec<String>,
    /// Largest prompt + completion, in tokens.
    pub context_window: u64,
}

impl Capabilities {
    /// Whether it serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}
