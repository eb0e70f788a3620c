//! Decisions waiting for their outcome: [`PendingDecisions`] split into
//! shards by decision id, so that concurrent requests rarely share a lock.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tuneloop_core::{DecisionId, TaskOutcome};
use tuneloop_counterfactual::{JoinError, LoggedDecision, PendingDecisions};

use crate::error::{Error, Result};
use tuneloop_counterfactual::AbandonReason;

const SHARDS: usize = 16;

/// The pending decisions of one optimizer. Each entry is the decision's
/// log record, waiting for its outcome and reward.
#[derive(Debug)]
pub(crate) struct Pending {
    shards: [Mutex<PendingDecisions>; SHARDS],
}

fn lock(m: &Mutex<PendingDecisions>) -> MutexGuard<'_, PendingDecisions> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pending {
    /// Waits `ttl` for each outcome, then logs `default_reward`.
    pub(crate) fn new(ttl: Duration, default_reward: f64) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "decision_ttl",
                format!("({ttl:?}, {default_reward})"),
                "a time to live of more than 0 s and at most PendingDecisions::MAX_WAIT, and a default reward in [0, 1] (rewards are)",
            )
        };
        if !(0.0..=1.0).contains(&default_reward) {
            return Err(bad());
        }
        let one = PendingDecisions::new(ttl, default_reward).map_err(|_| bad())?;
        Ok(Pending {
            shards: std::array::from_fn(|_| Mutex::new(one.clone())),
        })
    }

    fn shard(&self, id: DecisionId) -> &Mutex<PendingDecisions> {
        &self.shards[(id.as_u128() % SHARDS as u128) as usize]
    }

    /// Starts waiting for `decision`'s outcome.
    pub(crate) fn insert(&self, decision: LoggedDecision) {
        lock(self.shard(decision.decision_id)).insert(decision);
    }

    /// Takes decision `id`, its outcome and reward filled in.
    ///
    /// # Errors
    /// [`Error::UnknownDecision`], [`Error::Expired`] (the decision stays
    /// for [`expire`](Self::expire)).
    pub(crate) fn join(
        &self,
        id: DecisionId,
        outcome: &TaskOutcome,
        reward: f64,
        now: DateTime<Utc>,
    ) -> Result<LoggedDecision> {
        lock(self.shard(id))
            .join(id, outcome.clone(), reward, now)
            .map_err(|e| match e {
                JoinError::Expired(id) => Error::Expired(id),
                _ => Error::UnknownDecision(id),
            })
    }

    /// Takes every decision whose time to live has passed, with the
    /// default reward applied and marked.
    pub(crate) fn expire(&self, now: DateTime<Utc>) -> Vec<LoggedDecision> {
        self.shards
            .iter()
            .flat_map(|s| lock(s).expire(now))
            .collect()
    }

    /// Takes decision `id` without an outcome, the default reward applied
    /// and `reason` recorded.
    ///
    /// # Errors
    /// [`Error::UnknownDecision`].
    pub(crate) fn abandon(&self, id: DecisionId, reason: AbandonReason) -> Result<LoggedDecision> {
        lock(self.shard(id))
            .abandon(id, reason)
            .map_err(|_| Error::UnknownDecision(id))
    }

    /// Takes decision `id` whatever its deadline, without an outcome.
    pub(crate) fn take(&self, id: DecisionId) -> Option<LoggedDecision> {
        lock(self.shard(id)).take(id)
    }

    /// Takes every waiting decision as [`abandon`](Self::abandon) does.
    pub(crate) fn abandon_all(&self, reason: &AbandonReason) -> Vec<LoggedDecision> {
        self.shards
            .iter()
            .flat_map(|s| lock(s).abandon_all(reason))
            .collect()
    }

    /// How many decisions wait.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}
