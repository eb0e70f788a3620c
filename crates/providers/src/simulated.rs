//! A seeded, deterministic provider for examples, tests and simulations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tuneloop_core::hash::StableHasher;

use crate::error::ProviderError;
use crate::provider::Provider;
use crate::types::{
    Capabilities, FinishReason, GenerationRequest, GenerationResponse, Tier, Usage,
};

/// Where a task type's quality peaks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityProfile {
    /// Temperature at which quality peaks.
    pub best_temperature: f64,
    /// max_tokens at which quality peaks.
    pub best_max_tokens: f64,
    /// Quality at the peak.
    pub peak_quality: f64,
}

/// A known answer: when a request's text contains `key`, the provider
/// answers `correct` with probability equal to the request's quality and
/// `wrong` otherwise, so a scorer's mean over many calls estimates that
/// quality. Each phrase of `requires` missing from the request's text costs
/// [`MISSING_PHRASE_PENALTY`] of quality: a prompt that says what the model
/// needs to hear scores better, which is what prompt refinement can find.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedAnswer {
    /// A substring of the request's text that selects this answer.
    pub key: String,
    /// The answer given when the draw succeeds.
    pub correct: String,
    /// The answer given otherwise (default "I am not sure.").
    #[serde(default = "default_wrong")]
    pub wrong: String,
    /// Phrases the prompt must contain for full quality.
    #[serde(default)]
    pub requires: Vec<String>,
}

fn default_wrong() -> String {
    "I am not sure.".into()
}

/// Quality lost for each phrase of [`SimulatedAnswer::requires`] that the
/// request's text lacks.
pub const MISSING_PHRASE_PENALTY: f64 = 0.25;

/// What a [`SimulatedProvider`] does with a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimulatedRole {
    /// Answers the request (the default): a known answer from
    /// [`SimulatedConfig::answers`], or a text that reports its quality.
    #[default]
    Answer,
    /// Acts as a prompt interviewer: reads the prompt between
    /// [`PROMPT_OPEN`] and [`PROMPT_CLOSE`] in the request and replies with
    /// an analysis and that prompt plus the first of `hints` it lacks (no
    /// prompt at all when it has every hint).
    Interviewer {
        /// Instructions to suggest, in order.
        hints: Vec<String>,
    },
    /// Acts as a grader: replies `SCORE: s` where `s` is the word overlap
    /// (Jaccard) of the texts between `<reference>` and `<answer>` tags.
    Judge,
}

/// Opening tag around a prompt in interview requests and replies.
pub const PROMPT_OPEN: &str = "<prompt>";
/// Closing tag around a prompt in interview requests and replies.
pub const PROMPT_CLOSE: &str = "</prompt>";

/// How a [`SimulatedProvider`] behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Its id.
    pub id: String,
    /// Its tier.
    pub tier: Tier,
    /// Models it serves (empty: any).
    pub models: Vec<String>,
    /// Its context window, in tokens.
    pub context_window: u64,
    /// Latency before the first token, in ms.
    pub base_latency_ms: f64,
    /// Latency per generated token, in ms.
    pub ms_per_token: f64,
    /// Every latency is multiplied by this (inject a slowdown).
    pub slowdown: f64,
    /// Probability of a transient failure per call.
    pub failure_rate: f64,
    /// Probability of a rate limit per call.
    pub rate_limit_rate: f64,
    /// The retry-after a rate limit asks for. In JSON:
    /// `retry_after_seconds`.
    #[serde(
        rename = "retry_after_seconds",
        with = "tuneloop_core::duration::seconds"
    )]
    pub retry_after: Duration,
    /// Never answers (to test deadlines).
    pub hang: bool,
    /// Refuses every call as unauthenticated.
    pub reject_credentials: bool,
    /// Temperature at which quality peaks.
    pub best_temperature: f64,
    /// max_tokens at which quality peaks.
    pub best_max_tokens: f64,
    /// Quality at the peak.
    pub peak_quality: f64,
    /// Per task type (the request's `task_type`): where quality peaks;
    /// task types not listed use the three fields above.
    pub profiles: std::collections::BTreeMap<String, QualityProfile>,
    /// Known answers (first matching key wins).
    pub answers: Vec<SimulatedAnswer>,
    /// What the provider does with a request.
    pub role: SimulatedRole,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            id: "simulated".into(),
            tier: Tier::Online,
            models: Vec::new(),
            context_window: 128_000,
            base_latency_ms: 300.0,
            ms_per_token: 0.8,
            slowdown: 1.0,
            failure_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after: Duration::from_millis(500),
            hang: false,
            reject_credentials: false,
            best_temperature: 0.3,
            best_max_tokens: 1024.0,
            peak_quality: 0.9,
            profiles: std::collections::BTreeMap::new(),
            answers: Vec::new(),
            role: SimulatedRole::Answer,
            seed: 0,
        }
    }
}

/// A provider that answers after a simulated latency (it really waits, on
/// tokio's clock), with a quality that depends on the task type and the
/// parameters (reported in the answer's text as `quality=0.xyz`), and with
/// injectable failures, rate limits, slowdowns and hangs. Draws are a
/// function of the seed, the request id and the call count, so a sequence
/// of calls replays exactly.
#[derive(Debug)]
pub struct SimulatedProvider {
    config: SimulatedConfig,
    capabilities: Capabilities,
    calls: AtomicU64,
}

impl SimulatedProvider {
    /// A provider behaving as `config` says.
    pub fn new(config: SimulatedConfig) -> Self {
        let capabilities = Capabilities {
            models: config.models.clone(),
            context_window: config.context_window,
        };
        SimulatedProvider {
            config,
            capabilities,
            calls: AtomicU64::new(0),
        }
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The expected quality of an answer to `request` (before noise).
    pub fn expected_quality(&self, request: &GenerationRequest) -> f64 {
        let c = &self.config;
        let p = request
            .task_type
            .as_ref()
            .and_then(|t| c.profiles.get(t))
            .copied()
            .unwrap_or(QualityProfile {
                best_temperature: c.best_temperature,
                best_max_tokens: c.best_max_tokens,
                peak_quality: c.peak_quality,
            });
        let dt = request.temperature - p.best_temperature;
        let dk = (f64::from(request.max_tokens) / p.best_max_tokens.max(1.0)).log2();
        let missing = self.answer_for(request).map_or(0, |(a, text)| {
            a.requires
                .iter()
                .filter(|phrase| !text.contains(phrase.as_str()))
                .count()
        });
        (p.peak_quality - 0.6 * dt * dt - 0.04 * dk * dk - MISSING_PHRASE_PENALTY * missing as f64)
            .clamp(0.0, 1.0)
    }

    /// The known answer the request selects, with the request's text.
    fn answer_for(&self, request: &GenerationRequest) -> Option<(&SimulatedAnswer, String)> {
        if self.config.answers.is_empty() {
            return None;
        }
        let text = request_text(request);
        self.config
            .answers
            .iter()
            .find(|a| text.contains(a.key.as_str()))
            .map(|a| (a, text))
    }

    /// The reply of a provider in [`SimulatedRole::Interviewer`] or
    /// [`SimulatedRole::Judge`]; `None` in [`SimulatedRole::Answer`].
    fn role_reply(&self, request: &GenerationRequest) -> Option<String> {
        let text = request_text(request);
        match &self.config.role {
            SimulatedRole::Answer => None,
            SimulatedRole::Interviewer { hints } => {
                let Some(prompt) = between(&text, PROMPT_OPEN, PROMPT_CLOSE) else {
                    return Some("ANALYSIS: I cannot find the prompt to improve.".into());
                };
                let prompt = prompt.trim();
                Some(match hints.iter().find(|h| !prompt.contains(h.as_str())) {
                    Some(hint) => format!(
                        "ANALYSIS: the prompt does not say \"{hint}\"; the model needs it.\n\
                         {PROMPT_OPEN}\n{prompt}\n{hint}\n{PROMPT_CLOSE}\n\
                         REASONING: explicit instructions remove ambiguity."
                    ),
                    None => "ANALYSIS: the prompt already says all I would add. No change.".into(),
                })
            }
            SimulatedRole::Judge => {
                let words = |s: Option<&str>| -> std::collections::BTreeSet<String> {
                    s.unwrap_or("")
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_lowercase)
                        .collect()
                };
                let r = words(between(&text, "<reference>", "</reference>"));
                let a = words(between(&text, "<answer>", "</answer>"));
                let union = r.union(&a).count();
                let score = if union == 0 {
                    0.0
                } else {
                    r.intersection(&a).count() as f64 / union as f64
                };
                Some(format!("SCORE: {score:.3}"))
            }
        }
    }
}

/// Every message's content, joined by newlines.
fn request_text(request: &GenerationRequest) -> String {
    let mut text = String::new();
    for m in &request.messages {
        text.push_str(&m.content);
        text.push('\n');
    }
    text
}

/// The text between the first `open` and the next `close` after it.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

#[async_trait]
impl Provider for SimulatedProvider {
    fn id(&self) -> &str {
        &self.config.id
    }
    fn tier(&self) -> Tier {
        self.config.tier
    }
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn generate(
        &self,
        request: &GenerationRequest,
    ) -> Result<GenerationResponse, ProviderError> {
        let c = &self.config;
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut h = StableHasher::new();
        h.write_u64(c.seed);
        h.write_str(&request.request_id);
        h.write_u64(n);
        let mut rng = fastrand::Rng::with_seed(h.finish());
        let mut uniform = || rng.f64();
        let provider = c.id.clone();
        if c.reject_credentials {
            return Err(ProviderError::Authentication { provider });
        }
        if !self.capabilities.serves(&request.model) {
            return Err(ProviderError::Permanent {
                provider,
                message: format!("model `{}` is not served", request.model),
            });
        }
        let prompt = request.approx_prompt_tokens();
        if prompt + u64::from(request.max_tokens) > c.context_window {
            return Err(ProviderError::ContextLength {
                provider,
                message: format!(
                    "{} prompt + {} completion tokens > {}",
                    prompt, request.max_tokens, c.context_window
                ),
            });
        }
        if c.hang {
            std::future::pending::<()>().await;
        }
        if uniform() < c.rate_limit_rate {
            return Err(ProviderError::RateLimited {
                provider,
                retry_after: Some(c.retry_after),
            });
        }
        let fails = uniform() < c.failure_rate;
        let used = (f64::from(request.max_tokens) * (0.4 + 0.5 * uniform()))
            .round()
            .max(1.0);
        let latency_ms = (c.base_latency_ms + c.ms_per_token * used) * c.slowdown.max(0.0);
        let latency = Duration::from_secs_f64(latency_ms / 1000.0);
        tokio::time::sleep(latency).await;
        if fails {
            return Err(ProviderError::Transient {
                provider,
                message: "simulated 503".into(),
            });
        }
        let quality = (self.expected_quality(request) + 0.1 * (uniform() - 0.5)).clamp(0.0, 1.0);
        let text = if let Some(reply) = self.role_reply(request) {
            reply
        } else if let Some((answer, _)) = self.answer_for(request) {
            // Correct with probability equal to the expected quality.
            if uniform() < self.expected_quality(request) {
                answer.correct.clone()
            } else {
                answer.wrong.clone()
            }
        } else {
            format!("[simulated {} quality={quality:.3}]", request.model)
        };
        Ok(GenerationResponse {
            text,
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: used as u64,
            },
            latency,
            time_to_first_token: None,
            finish_reason: if used as u32 >= request.max_tokens {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
            provider: c.id.clone(),
            model: request.model.clone(),
        })
    }
}
