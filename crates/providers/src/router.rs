//! [`Router`]: online providers before local ones, ordered fallback,
//! retries with exponential backoff and jitter that honour retry-after, a
//! deadline per call, a circuit breaker per provider, optional weighting by
//! the scorecard, and an audit trail of every routing decision.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::error::{ProviderError, RouterError};
use crate::provider::Provider;
use crate::scorecard::{ScoreWeights, Scorecard, Standing};
use crate::types::{GenerationRequest, GenerationResponse, Tier};

/// How the router retries, waits and weighs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Attempts per provider (default 3).
    pub max_attempts: u32,
    /// First backoff (default 100 ms), doubled per retry.
    pub base_backoff: Duration,
    /// Largest backoff (default 5 s).
    pub max_backoff: Duration,
    /// Total time allowed for one call, retries and fallbacks included
    /// (default 30 s).
    pub deadline: Duration,
    /// Circuit breakers.
    pub breaker: BreakerConfig,
    /// Order providers within a tier by scorecard score (needs a scorecard).
    pub weights: Option<ScoreWeights>,
    /// Probability of trying a random provider of the tier first
    /// (exploration, with weights; default 0.05).
    pub exploration: f64,
    /// Routing records kept (default 1,000).
    pub audit_capacity: usize,
    /// Seed of the jitter and exploration draws.
    pub seed: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            breaker: BreakerConfig::default(),
            weights: None,
            exploration: 0.05,
            audit_capacity: 1_000,
            seed: 0,
        }
    }
}

/// What happened with one provider during a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Attempt {
    /// It answered.
    Answered {
        /// The provider.
        provider: String,
        /// Its latency.
        latency: Duration,
    },
    /// It failed.
    Failed {
        /// The error.
        error: ProviderError,
    },
    /// Skipped: its circuit breaker is open.
    SkippedOpenCircuit {
        /// The provider.
        provider: String,
    },
    /// Skipped: it does not serve the model.
    SkippedModel {
        /// The provider.
        provider: String,
    },
    /// Skipped: the scorecard dropped the model for low accuracy.
    SkippedLowAccuracy {
        /// The provider.
        provider: String,
    },
}

/// The audit record of one routed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingRecord {
    /// The request's id.
    pub request_id: String,
    /// The request's prompt hash.
    pub prompt_hash: String,
    /// The order providers were considered in.
    pub order: Vec<String>,
    /// Everything that happened, in order.
    pub attempts: Vec<Attempt>,
    /// Who answered, if anyone.
    pub answered_by: Option<String>,
    /// Why the order was what it was.
    pub reason: String,
}

/// An answer with its routing record.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The answer.
    pub response: GenerationResponse,
    /// How it was obtained.
    pub record: RoutingRecord,
}

/// Routes calls over providers.
#[derive(Debug)]
pub struct Router {
    providers: Vec<Arc<dyn Provider>>,
    config: RouterConfig,
    breakers: Mutex<HashMap<String, Breaker>>,
    scorecard: Option<Arc<Scorecard>>,
    /// The scorecard weighting in effect (the configuration's at first;
    /// [`set_weights`](Router::set_weights) changes it while it runs).
    weights: RwLock<Option<ScoreWeights>>,
    audit: Mutex<VecDeque<RoutingRecord>>,
    draws: Mutex<fastrand::Rng>,
}

impl Router {
    /// A router over `providers` (their order is the fallback order within
    /// a tier).
    ///
    /// # Errors
    /// [`RouterError::Config`] for no provider, duplicate ids, zero
    /// attempts, a duration over 100 years, or an exploration rate outside
    /// `[0, 1]`.
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        config: RouterConfig,
    ) -> Result<Self, RouterError> {
        if providers.is_empty() {
            return Err(RouterError::Config("no provider".into()));
        }
        let mut ids: Vec<&str> = providers.iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(RouterError::Config(format!(
                "provider id `{}` appears twice",
                w[0]
            )));
        }
        if config.max_attempts == 0 {
            return Err(RouterError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        for (name, d) in [
            ("deadline", config.deadline),
            ("base_backoff", config.base_backoff),
            ("max_backoff", config.max_backoff),
            ("breaker.cooldown", config.breaker.cooldown),
        ] {
            if d > tuneloop_core::duration::MAX {
                return Err(RouterError::Config(format!(
                    "{name} {d:?} is longer than 100 years"
                )));
            }
        }
        if !(config.exploration.is_finite() && (0.0..=1.0).contains(&config.exploration)) {
            return Err(RouterError::Config(format!(
                "exploration {} is not in [0, 1]",
                config.exploration
            )));
        }
        let breakers = providers
            .iter()
            .map(|p| (p.id().to_owned(), Breaker::new(config.breaker)))
            .collect();
        let seed = config.seed;
        Ok(Router {
            providers,
            weights: RwLock::new(config.weights),
            config,
            breakers: Mutex::new(breakers),
            scorecard: None,
            audit: Mutex::new(VecDeque::new()),
            draws: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    /// Records every call in `scorecard` (the domain is the request's task
    /// type, or ""), and orders providers by its score when `weights` are
    /// configured.
    #[must_use]
    pub fn with_scorecard(mut self, scorecard: Arc<Scorecard>) -> Self {
        self.scorecard = Some(scorecard);
        self
    }

    /// Changes the scorecard weighting for the calls that start from now
    /// on (`None`: the configured order only).
    ///
    /// # Errors
    /// A weight that is negative or not finite, or all three zero, is
    /// refused with a message naming it (nothing changes).
    pub fn set_weights(&self, weights: Option<ScoreWeights>) -> Result<(), String> {
        if let Some(w) = &weights {
            for (name, v) in [
                ("latency", w.latency),
                ("cost", w.cost),
                ("reliability", w.reliability),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("weights.{name}: {v} is not a finite weight >= 0"));
                }
            }
            if w.latency + w.cost + w.reliability <= 0.0 {
                return Err("weights: all zero".into());
            }
        }
        *self.weights.write().unwrap_or_else(PoisonError::into_inner) = weights;
        Ok(())
    }

    /// The scorecard weighting in effect.
    pub fn weights(&self) -> Option<ScoreWeights> {
        *self.weights.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn uniform(&self) -> f64 {
        self.draws
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .f64()
    }

    /// The state of a provider's breaker.
    pub fn breaker_state(&self, provider: &str) -> Option<BreakerState> {
        let b = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        b.get(provider).map(|b| b.state(Instant::now()))
    }

    /// The most recent routing records, oldest first.
    pub fn audit(&self) -> Vec<RoutingRecord> {
        self.audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn order(&self, model: &str, domain: &str) -> (Vec<Arc<dyn Provider>>, String) {
        let mut out = Vec::with_capacity(self.providers.len());
        let mut reason = String::from("online before local");
        for tier in [Tier::Online, Tier::Local] {
            let mut group: Vec<Arc<dyn Provider>> = self
                .providers
                .iter()
                .filter(|p| p.tier() == tier)
                .cloned()
                .collect();
            if let (Some(w), Some(sc)) = (&self.weights(), &self.scorecard) {
                let mut scored: Vec<(f64, Arc<dyn Provider>)> = group
                    .into_iter()
                    .map(|p| (sc.score(p.id(), model, domain, w), p))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                group = scored.into_iter().map(|(_, p)| p).collect();
                if group.len() > 1 && self.uniform() < self.config.exploration {
                    let i = ((self.uniform() * group.len() as f64) as usize).min(group.len() - 1);
                    let p = group.remove(i);
                    group.insert(0, p);
                    reason = String::from("online before local; by scorecard score, exploring");
                } else {
                    reason = String::from("online before local; by scorecard score");
                }
            }
            out.extend(group);
        }
        (out, reason)
    }

    fn push_audit(&self, record: RoutingRecord) {
        let mut a = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        a.push_back(record);
        while a.len() > self.config.audit_capacity {
            a.pop_front();
        }
    }

    /// Routes one call.
    ///
    /// # Errors
    /// [`RouterError::Deadline`] when the deadline passes,
    /// [`RouterError::Exhausted`] when every provider failed or was skipped.
    pub async fn generate(&self, request: &GenerationRequest) -> Result<Routed, RouterError> {
        let start = Instant::now();
        // Checked at construction: at most 100 years, so this cannot overflow.
        let deadline = start + self.config.deadline;
        let (order, reason) = self.order(&request.model, request.domain());
        let mut record = RoutingRecord {
            request_id: request.request_id.clone(),
            prompt_hash: request.prompt_hash.clone(),
            order: order.iter().map(|p| p.id().to_owned()).collect(),
            attempts: Vec::new(),
            answered_by: None,
            reason,
        };
        let mut last = None;
        let mut made = 0;
        for p in &order {
            let id = p.id().to_owned();
            if !p.capabilities().serves(&request.model) {
                record.attempts.push(Attempt::SkippedModel { provider: id });
                continue;
            }
            if let Some(sc) = &self.scorecard
                && sc.standing(&id, &request.model, request.domain()) == Standing::Dropped
            {
                record
                    .attempts
                    .push(Attempt::SkippedLowAccuracy { provider: id });
                continue;
            }
            for attempt in 0..self.config.max_attempts {
                let allowed = {
                    let mut b = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
                    b.get_mut(&id).is_some_and(|b| b.allow(Instant::now()))
                };
                if !allowed {
                    record.attempts.push(Attempt::SkippedOpenCircuit {
                        provider: id.clone(),
                    });
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    self.push_audit(record);
                    return Err(RouterError::Deadline(self.config.deadline));
                }
                made += 1;
                let remaining = deadline - now;
                let result = match tokio::time::timeout(remaining, p.generate(request)).await {
                    Ok(r) => r,
                    Err(_) => Err(ProviderError::Timeout {
                        provider: id.clone(),
                        after: remaining,
                    }),
                };
                let latency = Instant::now() - now;
                match result {
                    Ok(response) => {
                        if let Some(b) = self
                            .breakers
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_mut(&id)
                        {
                            b.success();
                        }
                        if let Some(sc) = &self.scorecard {
                            sc.record(&id, &request.model, request.domain(), true, latency, 0.0);
                        }
                        record.attempts.push(Attempt::Answered {
                            provider: id.clone(),
                            latency,
                        });
                        record.answered_by = Some(id);
                        self.push_audit(record.clone());
                        return Ok(Routed { response, record });
                    }
                    Err(e) => {
                        if let Some(b) = self
                            .breakers
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_mut(&id)
                        {
                            b.failure(Instant::now());
                        }
                        if let Some(sc) = &self.scorecard {
                            sc.record(&id, &request.model, request.domain(), false, latency, 0.0);
                        }
                        tracing::debug!(provider = %id, error = %e, attempt, "provider call failed");
                        record.attempts.push(Attempt::Failed { error: e.clone() });
                        let retry = e.is_retryable() && attempt + 1 < self.config.max_attempts;
                        let wait = match &e {
                            ProviderError::RateLimited {
                                retry_after: Some(d),
                                ..
                            } => Some(*d),
                            _ => None,
                        };
                        last = Some(e);
                        if !retry {
                            break;
                        }
                        // Exponential backoff with jitter in [0.5, 1), at
                        // least the retry-after the provider asked for.
                        let exp = self
                            .config
                            .base_backoff
                            .saturating_mul(1u32 << attempt.min(16));
                        let mut backoff = exp
                            .min(self.config.max_backoff)
                            .mul_f64(0.5 + 0.5 * self.uniform());
                        if let Some(d) = wait {
                            backoff = backoff.max(d);
                        }
                        // A wait from outside (a Retry-After of any size)
                        // is compared, never added to an instant.
                        if backoff >= deadline.saturating_duration_since(Instant::now()) {
                            break;
                        }
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
        self.push_audit(record);
        if Instant::now() >= deadline {
            return Err(RouterError::Deadline(self.config.deadline));
        }
        Err(RouterError::Exhausted {
            attempts: made,
            last,
        })
    }
}
