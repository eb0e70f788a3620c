//! Recording: reward → learner → budget → floor → monitor → log, for an
//! outcome of a recommendation, one of an outside decision, or none (the
//! expiry sweep).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tuneloop_core::{ArmId, Cohort, DecisionId, Features, Phase, TaskFeatures, TaskOutcome};
use tuneloop_counterfactual::LoggedDecision;
use tuneloop_rollout::{Observation, RolloutEvent, ShadowRound};

use crate::counters::{add, add_reward};
use crate::decide::{Recommendation, decision_record};
use crate::error::{Error, Result};
use crate::optimizer::{Optimizer, lock};
use crate::task::TaskState;
use tuneloop_counterfactual::{AbandonReason, Resolution};

/// What recording an outcome did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// The reward computed from the outcome.
    pub reward: f64,
    /// Rollout events it caused (promotion, rollback).
    pub events: Vec<RolloutEvent>,
}

impl Optimizer {
    /// Records what the call of `decision_id` produced: the reward updates
    /// the learner, commits the budget, feeds the quality floor and the SLO
    /// monitor (which may promote or roll back), and the joined record is
    /// logged.
    ///
    /// # Errors
    /// [`Error::UnknownDecision`] (never made, or already recorded),
    /// [`Error::Expired`], an invalid outcome; on error nothing changes
    /// (an expired decision is left for the expiry sweep, which logs it
    /// with the default reward).
    pub fn record_outcome(
        &self,
        decision_id: DecisionId,
        outcome: &TaskOutcome,
    ) -> Result<Recorded> {
        let _span = tracing::debug_span!("record_outcome", %decision_id).entered();
        let inner = &*self.inner;
        let now = inner.clock.now();
        let reward = inner.reward.reward(outcome)?;
        let mut record = inner.pending.join(decision_id, outcome, reward, now)?;
        // An outcome without a cost is priced by the budget's price table,
        // for the arm's model: the budget, the reward's cost term and the
        // log then see dollars.
        let priced = inner
            .budget
            .as_ref()
            .and_then(|b| b.price_outcome(record.params.model(), outcome))
            .map(|cost| TaskOutcome {
                cost_usd: cost,
                ..outcome.clone()
            });
        // (The priced outcome is the caller's with a finite cost >= 0: its
        // reward is computed as the caller's was.)
        if let Some((priced, reward)) =
            priced.and_then(|p| inner.reward.reward(&p).ok().map(|r| (p, r)))
        {
            record.resolution = Resolution::Recorded {
                outcome: Some(priced.clone()),
                reward,
            };
            let events = self.learn(record, &priced, reward, true, now)?;
            return Ok(Recorded { reward, events });
        }
        let events = self.learn(record, outcome, reward, true, now)?;
        Ok(Recorded { reward, events })
    }

    /// The part of recording after the join: the learner, the budget (its
    /// spend committed when `spend`, else its reservation released), the
    /// floor, the monitor, the counters and the log.
    pub(crate) fn learn(
        &self,
        record: LoggedDecision,
        outcome: &TaskOutcome,
        reward: f64,
        spend: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<RolloutEvent>> {
        let inner = &*self.inner;
        let decision_id = record.decision_id;
        let (_, task) = self.task_state(&record.task_type)?;
        let mut record = record;
        let mut applied = true;
        if let Some(reason) = misapplied(&record, outcome) {
            self.flag_misapplied(task, &record, &reason);
            record.resolution = Resolution::Misapplied {
                outcome: Some(outcome.clone()),
                reward,
                reason,
            };
            applied = false;
        }
        // The runtime configuration may have turned learning off.
        if applied && task.live.learning() {
            let context = Features::new(record.context.clone())?;
            task.learn(&context, record.arm, reward)?;
        }
        if spend && let Some(s) = lock(&task.spend).get_mut(record.arm) {
            s.0 = s.0.saturating_add(outcome.total_tokens());
            if outcome.cost_usd.is_finite() {
                s.1 += outcome.cost_usd;
            }
        }
        if let Some(b) = &inner.budget {
            // The reservation may have expired meanwhile; the spend is
            // recorded either way as far as the budget still knows it.
            if spend {
                let _ = b.commit(decision_id, outcome.total_tokens(), outcome.cost_usd, now);
            } else {
                let _ = b.release(decision_id, now);
            }
        }
        if let (Some(f), true) = (&inner.floor, applied) {
            f.observe(&record.task_type, record.arm_id, outcome.quality)?;
        }
        let events = self.observe_rollout(task, &record, outcome, reward, now)?;
        add(&inner.counters.outcomes, 1);
        add_reward(&inner.counters, reward);
        self.log(record);
        Ok(events)
    }

    /// Feeds `task`'s rollout, if it has one: the SLO monitor, the cohort
    /// rewards of canary and guarded, and in shadow the off-policy proof.
    pub(crate) fn observe_rollout(
        &self,
        task: &TaskState,
        record: &LoggedDecision,
        outcome: &TaskOutcome,
        reward: f64,
        now: DateTime<Utc>,
    ) -> Result<Vec<RolloutEvent>> {
        let (Some(r), Some(cohort)) = (&task.rollout, record.cohort) else {
            return Ok(Vec::new());
        };
        let mut rollout = lock(r);
        let o = Observation {
            latency_ms: outcome.latency(rollout.monitor().config().latency_metric),
            quality: outcome.quality,
            error: !outcome.success,
        };
        let mut events: Vec<RolloutEvent> = task
            .live
            .apply_hold(&mut rollout, now)
            .into_iter()
            .collect();
        rollout.observe_reward(cohort, reward)?;
        events.extend(rollout.observe(cohort, o, now)?);
        if let (Some(candidate_arm), Some(Phase::Shadow)) = (record.shadow_arm, record.phase) {
            // The pair is only defined where the incumbent could be served,
            // and only for a call made as the arm says (the proof is
            // off-policy: a misapplied call's reward is not the arm's).
            let applied = !matches!(record.resolution, Resolution::Misapplied { .. });
            if applied && record.eligible.contains(&task.incumbent) {
                let round = ShadowRound {
                    reward,
                    arm: record.arm,
                    propensity: record.propensity,
                    candidate_arm,
                    incumbent_arm: task.incumbent,
                };
                events.extend(rollout.observe_shadow(round, now)?);
            }
        }
        drop(rollout);
        let task_type = &*record.task_type;
        for e in &events {
            match e {
                RolloutEvent::Promoted { from, to, .. } => {
                    add(&self.inner.counters.promotions, 1);
                    tracing::info!(task_type, ?from, ?to, "rollout promoted");
                }
                RolloutEvent::RolledBack {
                    from, to, breach, ..
                } => {
                    add(&self.inner.counters.rollbacks, 1);
                    tracing::warn!(task_type, ?from, ?to, metric = ?breach.metric, "rollout rolled back");
                }
                _ => {}
            }
        }
        Ok(events)
    }

    fn log(&self, record: LoggedDecision) {
        if let Some(log) = &self.inner.log {
            log.send(record);
        }
    }

    /// Logs every decision whose time to live has passed with the default
    /// reward (marked as such), releases its budget reservation, and
    /// forgets it. Called now and then by `recommend_parameters`; call it
    /// yourself on a timer if traffic is sparse. Returns how many expired.
    pub fn sweep_expired(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let expired = inner.pending.expire(now);
        let n = expired.len();
        for record in expired {
            if let Some(b) = &inner.budget {
                let _ = b.release(record.decision_id, now);
            }
            self.log(record);
        }
        add(&inner.counters.expired, n as u64);
        n
    }

    /// Gives up on the outcome of `decision_id`: it is logged at once with
    /// the default reward (as an expiry would, after the time to live) and
    /// `reason`, its budget reservation is released, and the learner does
    /// not learn from it. For a call that was never made or whose result
    /// is unknown; [`Decision`](crate::Decision) does this when dropped
    /// unrecorded.
    ///
    /// # Errors
    /// [`Error::UnknownDecision`] (never made, already recorded or
    /// abandoned, or expired and swept).
    pub fn abandon(&self, decision_id: DecisionId, reason: &str) -> Result<()> {
        self.abandon_for(decision_id, AbandonReason::Caller(reason.to_owned()))
    }

    /// [`abandon`](Self::abandon) for `reason`.
    pub(crate) fn abandon_for(&self, decision_id: DecisionId, reason: AbandonReason) -> Result<()> {
        let inner = &*self.inner;
        let record = inner.pending.abandon(decision_id, reason)?;
        if let Some(b) = &inner.budget {
            let _ = b.release(decision_id, inner.clock.now());
        }
        add(&inner.counters.abandoned, 1);
        self.log(record);
        Ok(())
    }

    /// Abandons every pending decision with `reason` (see
    /// [`abandon`](Self::abandon)); returns how many.
    pub(crate) fn abandon_all(&self, reason: &AbandonReason) -> usize {
        let inner = &*self.inner;
        let records = inner.pending.abandon_all(reason);
        let (n, now) = (records.len(), inner.clock.now());
        for record in records {
            if let Some(b) = &inner.budget {
                let _ = b.release(record.decision_id, now);
            }
            self.log(record);
        }
        add(&inner.counters.abandoned, n as u64);
        n
    }

    /// Records a decision made outside the optimizer (by another system,
    /// with its own propensity): the learner learns from it and it is
    /// logged. `features` are featurized as for a recommendation.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::InvalidPropensity`] for a
    /// propensity outside `(0, 1]`, [`Error::UnknownArm`] for an arm id not
    /// in the task type's arms, an invalid outcome.
    pub fn record_external(
        &self,
        task_type: &str,
        features: &TaskFeatures,
        arm_id: ArmId,
        propensity: f64,
        outcome: &TaskOutcome,
    ) -> Result<Recorded> {
        let inner = &*self.inner;
        let (name, task) = self.task_state(task_type)?;
        if !(propensity.is_finite() && propensity > 0.0 && propensity <= 1.0) {
            return Err(Error::InvalidPropensity { value: propensity });
        }
        let arm_index = task
            .arms
            .index_of(arm_id)
            .ok_or_else(|| Error::UnknownArm {
                task_type: task_type.to_owned(),
                arm_id,
            })?;
        let arm = task.arms.arm(arm_index)?;
        let reward = inner.reward.reward(outcome)?;
        let x = inner.featurizer.featurize(features)?;
        if task.live.learning() {
            task.learn(&x, arm_index, reward)?;
        }
        let (decision_id, _, _) = inner.ids.next();
        let rec = Recommendation {
            decision_id,
            params: arm.params.clone(),
            arm: arm_index,
            arm_id,
            propensity,
            propensity_estimated: false,
            cohort: Cohort::Baseline,
            phase: None,
            shadow_arm: None,
            policy_version: 0,
            reasons: Vec::new(),
            fell_back_to_incumbent: false,
            prompt: task.prompts.get(arm_index).cloned().flatten(),
        };
        let mut record = decision_record(
            name,
            task,
            x,
            task.arms.all_indices(),
            &rec,
            "external",
            inner.clock.now(),
        );
        record.resolution = Resolution::Recorded {
            outcome: Some(outcome.clone()),
            reward,
        };
        add(&inner.counters.outcomes, 1);
        add_reward(&inner.counters, reward);
        self.log(record);
        Ok(Recorded {
            reward,
            events: Vec::new(),
        })
    }
}

/// Why the call that produced `outcome` was not the one `record`'s arm
/// describes, if it was not: a completion longer than the arm's
/// `max_tokens` (a server that ignored the limit, or a client that did not
/// send it in the field the server reads).
///
/// An episode's outcome sums the tokens of all its calls: it is not
/// checked against one call's limit.
fn misapplied(record: &LoggedDecision, outcome: &TaskOutcome) -> Option<String> {
    let limit = u64::from(record.params.max_tokens());
    (record.episode_id.is_none() && outcome.completion_tokens > limit).then(|| {
        format!(
            "completion of {} tokens over the arm's max_tokens {limit}",
            outcome.completion_tokens
        )
    })
}

impl Optimizer {
    /// Counts a misapplied outcome, and warns once per task type and arm.
    fn flag_misapplied(&self, task: &TaskState, record: &LoggedDecision, reason: &str) {
        add(&self.inner.counters.misapplied, 1);
        if task.mark_misapplied(record.arm) {
            tracing::warn!(
                task_type = &*record.task_type,
                arm = record.arm,
                model = record.params.model(),
                reason,
                "a call was not made as its arm says: not learned, left out of offline evaluation, and the arm is no longer chosen (is the token limit sent in the field the server reads?)"
            );
        }
    }
}
