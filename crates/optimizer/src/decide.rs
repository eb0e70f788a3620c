//! Deciding: cohort → gates → choice → reservation, then the decision
//! waits for its outcome.

use std::sync::{Arc, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tuneloop_bandit::Fixed;
use tuneloop_core::hash::StableHasher;
use tuneloop_core::{
    ActionDistribution, ArmId, Cohort, DecisionId, Features, ParameterSet, Phase, Policy,
    Selection, SelectionKey,
};
use tuneloop_counterfactual::LoggedDecision;
use tuneloop_counterfactual::log::LOG_SCHEMA_VERSION;
use tuneloop_gates::{Constraints, Eligibility, Exclusion, Gate, GateContext};

use crate::context::Context;
use crate::counters::add;
use crate::error::Result;
use crate::optimizer::{Optimizer, lock};
use crate::task::TaskState;
use crate::task_handle::{TaskType, with_state};
use tuneloop_counterfactual::Resolution;

/// Per-request options of [`Optimizer::recommend`] and
/// [`Optimizer::recommend_parameters`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RecommendOptions<'a> {
    /// Key of the user or request for sticky rollout cohorts (default: a
    /// key of its own per request, drawn from the seed).
    pub key: Option<&'a str>,
    /// Extra hard rules for this request only.
    pub constraints: Option<&'a Constraints>,
}

/// What to call the model with, and what to report back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Pass it to [`Optimizer::record_outcome`].
    pub decision_id: DecisionId,
    /// The parameters to apply.
    pub params: ParameterSet,
    /// Index of the chosen arm.
    pub arm: usize,
    /// Stable id of the chosen arm.
    pub arm_id: ArmId,
    /// Probability with which it was chosen (logged).
    pub propensity: f64,
    /// Whether that probability is an estimate.
    pub propensity_estimated: bool,
    /// Which policy's choice was applied.
    pub cohort: Cohort,
    /// Rollout phase, if a rollout runs.
    pub phase: Option<Phase>,
    /// In shadow: the learner's choice (logged, not applied).
    pub shadow_arm: Option<usize>,
    /// Version of the policy that chose.
    pub policy_version: u64,
    /// Arms the gates excluded, and why.
    pub reasons: Vec<Exclusion>,
    /// True when every arm was gated and the incumbent was used.
    pub fell_back_to_incumbent: bool,
    /// The prompt the arm's prompt variant stands for, as registered with
    /// [`TaskTypeConfig::prompt`](crate::TaskTypeConfig::prompt); `None`
    /// for an arm without a variant. Not serialized: the variant's name is
    /// in `params`.
    #[serde(skip)]
    pub prompt: Option<Arc<str>>,
}

/// The rollout's word on one request.
struct Assigned {
    phase: Option<Phase>,
    cohort: Cohort,
    shadow: bool,
    /// In shadow: the share of requests served the candidate's choice.
    probe: f64,
}

/// The applied choice and who made it.
struct Choice {
    selection: Selection,
    cohort: Cohort,
    shadow_arm: Option<usize>,
    policy_kind: &'static str,
    policy_version: u64,
}

/// How often (in decisions) `recommend_parameters` sweeps expired ones.
const SWEEP_EVERY: u64 = 4096;

impl Optimizer {
    /// Parameters for the next call of `task_type` on `context` (the
    /// built-in [`TaskFeatures`](tuneloop_core::TaskFeatures), or any [`Context`]), for an outcome
    /// recorded later by id ([`record_outcome`](Self::record_outcome)):
    /// [`recommend`](Self::recommend) without the handle.
    ///
    /// The gates apply in this order: the task type's constraints, its
    /// trust region, the quality floor, the optimizer's own gates
    /// ([`OptimizerBuilder::gate`](crate::OptimizerBuilder::gate)), the
    /// task type's own ([`TaskTypeConfig::gate`](crate::TaskTypeConfig::gate)),
    /// the request's constraints, then the budget. The budget is held from
    /// its gate to the reservation of the chosen arm, so an arm it lets
    /// through always fits.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`](crate::Error::UnknownTaskType); gate
    /// errors (nothing eligible); the context's or the featurizer's
    /// errors, and a context of the wrong dimension
    /// ([`Error::Core`](crate::Error::Core)).
    pub fn recommend_parameters(
        &self,
        task_type: &(impl TaskType + ?Sized),
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
    ) -> Result<Recommendation> {
        with_state(task_type, self, |name, task| {
            self.decide(name, task, context, options, None)
        })
    }

    /// The decision for the task type `name` (its state `task`), as one
    /// of `episode` when given.
    pub(crate) fn decide(
        &self,
        name: &Arc<str>,
        task: &TaskState,
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
        episode: Option<DecisionId>,
    ) -> Result<Recommendation> {
        let task_type: &str = name;
        let _span = tracing::debug_span!("recommend", task_type).entered();
        let inner = &*self.inner;
        let x = context.features(&*inner.featurizer)?;
        let (risk_tier, prompt_tokens) = (context.risk_tier(), context.prompt_tokens());
        x.expect_dim(inner.featurizer.dim())?;
        let now = inner.clock.now();
        let (decision_id, key, n) = inner.ids.next();
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep_expired();
        }
        let assigned = assign(task, options.key, &key);
        let ctx = GateContext {
            task_type,
            risk_tier,
            incumbent: Some(task.incumbent),
            prompt_tokens,
            now,
        };
        let mut hold = inner.budget.as_ref().map(|b| b.hold(now));
        let held_gate = hold.as_ref().map(|h| h.gate());
        let extra: Vec<&dyn Gate> = [
            options.constraints.map(|c| c as &dyn Gate),
            held_gate.as_ref().map(|g| g as &dyn Gate),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut eligibility =
            task.gates
                .evaluate_with(&ctx, &task.arms, &task.arms.all_indices(), &extra)?;
        // Arms whose calls came back not as they say are no longer chosen,
        // unless nothing else is left.
        if eligibility.eligible.iter().any(|&a| task.is_misapplied(a))
            && eligibility.eligible.iter().any(|&a| !task.is_misapplied(a))
        {
            eligibility.eligible.retain(|&a| !task.is_misapplied(a));
        }
        let choice = choose(task, &x, &eligibility.eligible, &key, &assigned)?;
        let arm = task.arms.arm(choice.selection.arm)?;
        if let (Some(hold), Some(budget)) = (hold.as_mut(), &inner.budget) {
            let (tokens, cost) = budget.estimate(&arm.params, prompt_tokens)?;
            hold.reserve(decision_id, tokens, cost)?;
        }
        drop(hold);
        self.count_decision(task_type, &eligibility);
        tracing::trace!(task_type, %decision_id, arm = choice.selection.arm, propensity = choice.selection.propensity, "recommendation");
        let rec = Recommendation {
            decision_id,
            params: arm.params.clone(),
            arm: choice.selection.arm,
            arm_id: arm.id,
            propensity: choice.selection.propensity,
            propensity_estimated: choice.selection.propensity_estimated,
            cohort: choice.cohort,
            phase: assigned.phase,
            shadow_arm: choice.shadow_arm,
            policy_version: choice.policy_version,
            reasons: eligibility.excluded,
            fell_back_to_incumbent: eligibility.fell_back_to_incumbent,
            prompt: task.prompts.get(choice.selection.arm).cloned().flatten(),
        };
        let mut record = decision_record(
            name,
            task,
            x,
            eligibility.eligible,
            &rec,
            choice.policy_kind,
            now,
        );
        record.episode_id = episode;
        inner.pending.insert(record);
        Ok(rec)
    }

    fn count_decision(&self, task_type: &str, eligibility: &Eligibility) {
        let c = &self.inner.counters;
        add(&c.recommendations, 1);
        for e in &eligibility.excluded {
            add(&c.gate_exclusions_by_reason[e.reason.kind_index()], 1);
        }
        if eligibility.fell_back_to_incumbent {
            add(&c.fallbacks, 1);
            tracing::debug!(task_type, "every arm gated: incumbent used");
        }
    }
}

/// The request's cohort: sticky by its key, else drawn from its selection
/// key (so the same seed assigns the same cohorts in every process).
fn assign(task: &TaskState, key: Option<&str>, selection: &SelectionKey) -> Assigned {
    match &task.rollout {
        Some(r) => {
            let r = lock(r);
            let a = match key {
                Some(key) => r.assign(key),
                None => r.assign(&selection.decision.to_string()),
            };
            Assigned {
                phase: Some(a.phase),
                cohort: a.cohort,
                shadow: a.shadow,
                probe: r.config().proof.shadow_probe,
            }
        }
        None => Assigned {
            phase: None,
            cohort: Cohort::Candidate,
            shadow: false,
            probe: 0.0,
        },
    }
}

/// The logging policy of a probed shadow decision.
const SHADOW_PROBE_KIND: &str = "shadow-probe";

/// The learner chooses; in the baseline cohort (and in shadow) the
/// incumbent's choice is applied instead, except that in shadow a share
/// `probe` of requests gets the learner's choice: the decision is drawn
/// from `(1 − probe) · incumbent + probe · candidate`, whose probability of
/// the drawn arm is logged, so the shadow log supports an off-policy
/// estimate of the candidate (see [`tuneloop_rollout::proof`]).
fn choose(
    task: &TaskState,
    x: &Features,
    eligible: &[usize],
    key: &SelectionKey,
    assigned: &Assigned,
) -> Result<Choice> {
    let learner = task.learner.read().unwrap_or_else(PoisonError::into_inner);
    let learned = learner.select(x, eligible, key)?;
    if assigned.cohort == Cohort::Candidate && !assigned.shadow {
        return Ok(Choice {
            selection: learned,
            cohort: Cohort::Candidate,
            shadow_arm: None,
            policy_kind: learner.kind(),
            policy_version: learner.version(),
        });
    }
    drop(learner);
    // The incumbent with the runtime configuration's exploration floor now.
    // A new one only when the rate differs from the built one.
    let rate = task.live.exploration_rate();
    let changed;
    let baseline = if rate.to_bits() == task.baseline.exploration_floor().to_bits() {
        &task.baseline
    } else {
        changed = Fixed::new(
            task.incumbent,
            task.arms.len(),
            task.baseline.context_dim(),
            rate,
        )?;
        &changed
    };
    if assigned.shadow && assigned.probe > 0.0 {
        let base = baseline.distribution(x, eligible)?;
        return Ok(Choice {
            selection: sample_mixture(&base, learned.arm, assigned.probe, probe_uniform(key)),
            cohort: Cohort::Baseline,
            shadow_arm: Some(learned.arm),
            policy_kind: SHADOW_PROBE_KIND,
            policy_version: task.baseline.version(),
        });
    }
    Ok(Choice {
        selection: baseline.select(x, eligible, key)?,
        cohort: Cohort::Baseline,
        shadow_arm: assigned.shadow.then_some(learned.arm),
        policy_kind: task.baseline.kind(),
        policy_version: task.baseline.version(),
    })
}

/// The arm at quantile `u` of `(1 − probe) · base + probe · 1[candidate]`
/// (inverse CDF in `base`'s arm order, as [`ActionDistribution::sample`])
/// and its probability under the mixture, without building the mixture.
/// `candidate` is one of `base`'s arms (the learner chose among the same
/// eligible arms).
fn sample_mixture(base: &ActionDistribution, candidate: usize, probe: f64, u: f64) -> Selection {
    let mass = |(a, p): (usize, f64)| {
        (
            a,
            (1.0 - probe) * p + if a == candidate { probe } else { 0.0 },
        )
    };
    let mut cumulative = 0.0;
    let mut last = (
        candidate,
        probe + (1.0 - probe) * base.probability_of(candidate),
    );
    for (a, m) in base.iter().map(mass) {
        if m > 0.0 {
            last = (a, m);
            cumulative += m;
            if u < cumulative {
                break;
            }
        }
    }
    Selection {
        arm: last.0,
        propensity: last.1,
        propensity_estimated: false,
    }
}

/// A uniform draw for the shadow mixture, independent of the draws the
/// learner made from the same key.
fn probe_uniform(key: &SelectionKey) -> f64 {
    let mut h = StableHasher::new();
    h.write_str("tuneloop.shadow-probe.v1");
    h.write_bytes(&key.rng_seed());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The log record of a decision, waiting for its outcome.
pub(crate) fn decision_record(
    task_type: &str,
    task: &TaskState,
    context: Features,
    eligible: Vec<usize>,
    rec: &Recommendation,
    policy_kind: &str,
    now: DateTime<Utc>,
) -> LoggedDecision {
    let eligible_ids = eligible
        .iter()
        .filter_map(|&a| task.arms.get(a).map(|a| a.id))
        .collect();
    LoggedDecision {
        schema_version: LOG_SCHEMA_VERSION,
        decision_id: rec.decision_id,
        request_id: None,
        episode_id: None,
        task_type: task_type.to_owned(),
        model: rec.params.model().to_owned(),
        context_fingerprint: format!("{:016x}", context.fingerprint()),
        context: context.into_vec(),
        eligible,
        eligible_ids,
        arm: rec.arm,
        arm_id: rec.arm_id,
        params: rec.params.clone(),
        propensity: rec.propensity,
        propensity_estimated: rec.propensity_estimated,
        policy_kind: policy_kind.to_owned(),
        policy_version: rec.policy_version,
        cohort: Some(rec.cohort),
        phase: rec.phase,
        shadow_arm: rec.shadow_arm,
        timestamp: now,
        resolution: Resolution::Unresolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_mixture_is_sampled_with_its_own_probabilities() -> tuneloop_core::Result<()> {
        // Base: the incumbent (arm 0) with a floor of 0.3 over three arms:
        // 0.8, 0.1, 0.1. A probe of 0.2 toward arm 2: 0.64, 0.08, 0.28.
        let base = ActionDistribution::point(0, &[0, 1, 2])?.with_floor(0.3)?;
        let cases = [
            (0.0, 0, 0.64),
            (0.63, 0, 0.64),
            (0.65, 1, 0.08),
            (0.75, 2, 0.28),
        ];
        for (u, arm, p) in cases {
            let s = sample_mixture(&base, 2, 0.2, u);
            assert_eq!(s.arm, arm, "u = {u}");
            assert!(
                (s.propensity - p).abs() < 1e-12,
                "u = {u}: {}",
                s.propensity
            );
        }
        // Through rounding at the top end: the last arm of positive mass.
        let s = sample_mixture(&base, 2, 0.2, 1.0);
        assert!(s.arm == 2 && (s.propensity - 0.28).abs() < 1e-12);
        Ok(())
    }
}
