//! A circuit breaker per provider: closed → open after consecutive
//! failures → half-open after a cooldown (one probe) → closed on success.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// How long it stays open before a probe (default 30 s).
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// One probe call is let through.
    HalfOpen,
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            failures: 0,
            opened_at: None,
            probing: false,
        }
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.saturating_duration_since(t) >= self.config.cooldown => {
                BreakerState::HalfOpen
            }
            Some(_) => BreakerState::Open,
        }
    }

    /// Whether a call may go through now (a half-open breaker lets one).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.probing {
                    false
                } else {
                    self.probing = true;
                    true
                }
            }
        }
    }

    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.probing = false;
    }

    pub(crate) fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= self.config.failure_threshold.max(1) {
            self.opened_at = Some(now);
        }
        self.probing = false;
    }
}
