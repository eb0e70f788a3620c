//! Policy-level evaluation: a decision log and a candidate [`Policy`] →
//! estimates of the candidate and the logging policy, their paired
//! difference, and the verdict the project promises.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};

use crate::data::{OpeData, OpeRound};
use crate::error::{Error, Result, check_setting};
use crate::estimators::{
    Estimate, EstimatorKind, EstimatorSettings, Paired, bootstrap_mean, dr_rounds, estimate,
    paired_difference, percentile_sorted, unsupported_rounds,
};
use crate::log::LoggedDecision;
use crate::resolution::Resolution;
use crate::reward_model::cross_fit_ridge;
use crate::warnings::{EvaluationWarning, evaluation_warnings};

/// How a candidate is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineEvaluator {
    /// Estimators, intervals and bootstrap.
    pub settings: EstimatorSettings,
    /// The estimator the verdict uses (default DR).
    pub decision_estimator: EstimatorKind,
    /// Folds of the reward model's cross-fitting (default 3).
    pub folds: usize,
    /// Ridge λ of the reward model (default 1).
    pub ridge_lambda: f64,
    /// Decisions logged with the configured default reward (abandoned or
    /// expired): left out and counted (the default), as the learner leaves
    /// them out, or counted at their default reward.
    pub defaulted: DefaultedRewards,
}

/// What an evaluation does with decisions whose reward is the configured
/// default ([`Resolution::Abandoned`](crate::Resolution::Abandoned),
/// [`Resolution::Expired`](crate::Resolution::Expired)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultedRewards {
    /// Left out of every estimate and counted (`skipped_defaulted`): no
    /// call was observed, and the learner does not learn them either.
    #[default]
    Exclude,
    /// Counted at the default reward, as if the call had earned it (a
    /// cancelled call that you want to weigh against its arm).
    Include,
}

impl DefaultedRewards {
    /// The reward `r` contributes under this rule; `None` when it
    /// contributes none.
    pub fn reward_of(self, r: &LoggedDecision) -> Option<f64> {
        match self {
            DefaultedRewards::Exclude => r.resolution.recorded_reward(),
            DefaultedRewards::Include => match r.resolution {
                // Not the arm's reward, whatever the rule for defaults.
                Resolution::Misapplied { .. } => None,
                _ => r.resolution.reward(),
            },
        }
    }
}

impl Default for OfflineEvaluator {
    fn default() -> Self {
        OfflineEvaluator {
            settings: EstimatorSettings::default(),
            decision_estimator: EstimatorKind::Dr,
            folds: 3,
            ridge_lambda: 1.0,
            defaulted: DefaultedRewards::Exclude,
        }
    }
}

/// The result of [`OfflineEvaluator::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Rounds used (those with a reward).
    pub rounds: usize,
    /// Rounds skipped because no reward was known.
    pub skipped_without_reward: usize,
    /// Rounds left out because their reward is the configured default
    /// (abandoned or expired decisions, under
    /// [`DefaultedRewards::Exclude`]).
    #[serde(default)]
    pub skipped_defaulted: usize,
    /// Rounds left out because the call was not made as their arm says
    /// ([`Resolution::Misapplied`](crate::Resolution::Misapplied)): the
    /// reward is not the arm's.
    #[serde(default)]
    pub skipped_misapplied: usize,
    /// Rounds where the logger was deterministic (propensity 1) and the
    /// candidate put mass on another arm: the log cannot say what that arm
    /// would have earned.
    pub unsupported_rounds: usize,
    /// The candidate's value by every estimator.
    pub candidate: Vec<(EstimatorKind, Estimate)>,
    /// The logging policy's value: the mean logged reward, with its
    /// bootstrap interval.
    pub baseline: Estimate,
    /// Candidate minus baseline by `decision_estimator`, paired bootstrap.
    pub difference: Paired,
    /// True when the one-sided lower bound of the difference is `>= 0`.
    pub candidate_is_better: bool,
    /// What should make a reader doubt the figures.
    #[serde(default)]
    pub warnings: Vec<EvaluationWarning>,
}

/// The result of [`OfflineEvaluator::evaluate_episodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeEvaluation {
    /// Episodes used (those with a reward); a decision outside any episode
    /// counts as an episode of one step.
    pub episodes: usize,
    /// Decisions in them.
    pub decisions: usize,
    /// Episodes skipped because no reward was known.
    pub skipped_without_reward: usize,
    /// Episodes left out because every decision of theirs carries the
    /// configured default reward (under [`DefaultedRewards::Exclude`]).
    #[serde(default)]
    pub skipped_defaulted: usize,
    /// Episodes skipped because their decisions carry different rewards
    /// (some expired, or were abandoned, before the episode finished).
    pub skipped_inconsistent: usize,
    /// Episodes the logger played deterministically (every propensity 1)
    /// while the candidate put mass on another course.
    pub unsupported_episodes: usize,
    /// The candidate's value per episode: trajectory IPW and SNIPW.
    pub candidate: Vec<(EstimatorKind, Estimate)>,
    /// The logging policy's value: the mean episode reward.
    pub baseline: Estimate,
    /// Candidate (SNIPW) minus baseline, paired bootstrap.
    pub difference: Paired,
    /// True when the one-sided lower bound of the difference is `>= 0`.
    pub candidate_is_better: bool,
}

/// Two policies compared on one log by [`OfflineEvaluator::compare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Rounds used.
    pub rounds: usize,
    /// The candidate's DR value with its interval.
    pub candidate: Paired,
    /// The baseline policy's DR value with its interval.
    pub baseline: Paired,
    /// Candidate minus baseline, paired bootstrap.
    pub difference: Paired,
    /// True when the one-sided lower bound of the difference is `>= 0`.
    pub candidate_is_better: bool,
}

impl OfflineEvaluator {
    /// Evaluates `candidate` (frozen: it is not updated) on `records`.
    ///
    /// The candidate's distribution is computed on every logged context over
    /// that round's eligible arms; importance weights use the logged
    /// propensities; DM and the DR family use per-arm ridge reward models
    /// with cross-fitting. The verdict: the candidate is better when the
    /// one-sided lower `1 − alpha` bound of (candidate − baseline), from a
    /// paired bootstrap, is at least 0.
    ///
    /// # Errors
    /// [`Error::Empty`] with no rewarded round, [`Error::InvalidRound`] for a
    /// record that does not fit the candidate (dimension, arm index), and
    /// the candidate's own errors.
    pub fn evaluate(
        &self,
        records: &[LoggedDecision],
        candidate: &dyn Policy,
    ) -> Result<Evaluation> {
        self.settings.check()?;
        let refs: Vec<&LoggedDecision> = records.iter().collect();
        let (data, skipped) = self.data(&refs, candidate)?;
        self.evaluation(&data, skipped, self.left_out(&refs))
    }

    /// The evaluation of `data`, the rounds of a log of which `skipped`
    /// had no reward that counts, `left_out` of those for carrying the
    /// default or being misapplied.
    pub(crate) fn evaluation(
        &self,
        data: &OpeData,
        skipped: usize,
        left_out: LeftOut,
    ) -> Result<Evaluation> {
        let LeftOut {
            defaulted: skipped_defaulted,
            misapplied: skipped_misapplied,
        } = left_out;
        let candidate_estimates = estimate(data, &EstimatorKind::ALL, &self.settings)?;
        let (baseline, difference) =
            paired_difference(data, self.decision_estimator, &self.settings)?;
        let warnings = self.warnings(data, &candidate_estimates);
        Ok(Evaluation {
            rounds: data.len(),
            skipped_without_reward: skipped - skipped_defaulted - skipped_misapplied,
            skipped_defaulted,
            skipped_misapplied,
            unsupported_rounds: unsupported_rounds(data),
            candidate: candidate_estimates,
            baseline,
            candidate_is_better: difference.lower_one_sided >= 0.0,
            difference,
            warnings,
        })
    }

    /// The warnings `estimates` of `data` deserve.
    fn warnings(
        &self,
        data: &OpeData,
        estimates: &[(EstimatorKind, Estimate)],
    ) -> Vec<EvaluationWarning> {
        evaluation_warnings(data, estimates, self.decision_estimator)
    }

    /// Compares two frozen policies on one log: each one's doubly robust
    /// value, and the paired difference (the same resamples for both, so
    /// the noise they share cancels). The candidate is better when the
    /// one-sided lower `1 − alpha` bound of the difference is at least 0.
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub fn compare(
        &self,
        records: &[LoggedDecision],
        candidate: &dyn Policy,
        baseline: &dyn Policy,
    ) -> Result<Comparison> {
        self.settings.check()?;
        let s = &self.settings;
        check_setting(
            "bootstrap",
            s.bootstrap as f64,
            s.bootstrap >= 10,
            "at least 10 resamples",
        )?;
        let refs: Vec<&LoggedDecision> = records.iter().collect();
        let c = dr_rounds(&self.data(&refs, candidate)?.0)?;
        let b = dr_rounds(&self.data(&refs, baseline)?.0)?;
        let d: Vec<f64> = c.iter().zip(&b).map(|(x, y)| x - y).collect();
        let summarize = |v: &[f64]| {
            let boot = bootstrap_mean(v, s.bootstrap, s.seed);
            Paired {
                estimate: v.iter().sum::<f64>() / v.len() as f64,
                ci_low: percentile_sorted(&boot, s.alpha / 2.0),
                ci_high: percentile_sorted(&boot, 1.0 - s.alpha / 2.0),
                lower_one_sided: percentile_sorted(&boot, s.alpha),
            }
        };
        let difference = summarize(&d);
        Ok(Comparison {
            rounds: d.len(),
            candidate: summarize(&c),
            baseline: summarize(&b),
            candidate_is_better: difference.lower_one_sided >= 0.0,
            difference,
        })
    }

    /// Evaluates `candidate` on episodes: agent tasks of several decisions
    /// with one outcome at the end (decisions sharing an `episode_id`; a
    /// decision without one is an episode of one step).
    ///
    /// An episode's importance weight is the product over its decisions of
    /// `π(a_t | x_t) / μ(a_t | x_t)`, the candidate's probability of the
    /// logged arm over the logged one's, and its value is that weight times
    /// the episode's reward (trajectory importance sampling, Precup et al.,
    /// 2000): unbiased for the candidate's mean episode reward when every
    /// logged propensity is right and positive wherever the candidate puts
    /// mass, when each decision's context is what the policy saw (later
    /// contexts may depend on earlier choices), and when the reward depends
    /// on nothing the log leaves out. Crediting each decision alone with
    /// the episode's reward is biased whenever the best choice at one step
    /// depends on another. SNIPW divides by the mean weight instead of 1
    /// (biased by `O(1/n)`, far lower variance); the verdict uses it. The
    /// weights grow with the number of steps: read the effective sample
    /// size.
    ///
    /// An episode whose decisions carry different rewards (some expired
    /// or were abandoned before it finished) is skipped and counted.
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub fn evaluate_episodes(
        &self,
        records: &[LoggedDecision],
        candidate: &dyn Policy,
    ) -> Result<EpisodeEvaluation> {
        self.evaluate_episodes_by_task_type(records.iter(), &|_| Some(candidate))
    }

    /// [`evaluate_episodes`](Self::evaluate_episodes) with each decision
    /// valued by the candidate `candidates` gives for its task type (an
    /// episode may span task types: a plan, then code).
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate); [`Error::InvalidRound`] for a
    /// decision of a task type without a candidate.
    pub fn evaluate_episodes_by_task_type<'a, 'c>(
        &self,
        records: impl IntoIterator<Item = &'a LoggedDecision>,
        candidates: &dyn Fn(&str) -> Option<&'c (dyn Policy + 'c)>,
    ) -> Result<EpisodeEvaluation> {
        self.settings.check()?;
        // Episodes in the order of their first decision.
        let mut order: Vec<DecisionId> = Vec::new();
        let mut groups: HashMap<DecisionId, Vec<&LoggedDecision>> = HashMap::new();
        for r in records {
            let key = r.episode_id.unwrap_or(r.decision_id);
            let g = groups.entry(key).or_default();
            if g.is_empty() {
                order.push(key);
            }
            g.push(r);
        }
        let (mut rounds, mut skipped, mut inconsistent, mut decisions) = (Vec::new(), 0, 0, 0);
        let mut defaulted = 0;
        let reward_of = |r: &LoggedDecision| self.defaulted.reward_of(r);
        for (i, key) in order.into_iter().enumerate() {
            let steps = &groups[&key];
            if steps.iter().any(|r| reward_of(r) != reward_of(steps[0])) {
                inconsistent += 1;
                continue;
            }
            let Some(reward) = reward_of(steps[0]) else {
                if steps[0].resolution.is_defaulted() {
                    defaulted += 1;
                } else {
                    skipped += 1;
                }
                continue;
            };
            let (mut target, mut propensity) = (1.0_f64, 1.0_f64);
            for r in steps {
                r.validate()?;
                let candidate = candidates(&r.task_type).ok_or_else(|| Error::InvalidRound {
                    round: i,
                    field: "task_type",
                    reason: format!("no candidate for task type `{}`", r.task_type),
                })?;
                target *= distribution(candidate, r, i)?.probability_of(r.arm);
                propensity *= r.propensity;
            }
            decisions += steps.len();
            // An episode is a round of two "actions": the logged course
            // (0) and every other one (1), whose value the log cannot see.
            let target = target.clamp(0.0, 1.0);
            rounds.push(OpeRound {
                action: 0,
                reward,
                propensity: propensity.max(f64::MIN_POSITIVE),
                target: vec![target, 1.0 - target],
                reward_hat: None,
            });
        }
        if rounds.is_empty() {
            return Err(Error::Empty);
        }
        let data = OpeData::new(rounds)?;
        let kinds = [EstimatorKind::Ipw, EstimatorKind::Snipw];
        let candidate_estimates = estimate(&data, &kinds, &self.settings)?;
        let (baseline, difference) =
            paired_difference(&data, EstimatorKind::Snipw, &self.settings)?;
        Ok(EpisodeEvaluation {
            episodes: data.len(),
            decisions,
            skipped_without_reward: skipped,
            skipped_defaulted: defaulted,
            skipped_inconsistent: inconsistent,
            unsupported_episodes: unsupported_rounds(&data),
            candidate: candidate_estimates,
            baseline,
            candidate_is_better: difference.lower_one_sided >= 0.0,
            difference,
        })
    }

    /// The estimator-level data of `records` for `policy`: its distribution
    /// on every logged context, cross-fitted reward predictions. Returns the
    /// data and the rounds skipped for lack of a reward.
    pub(crate) fn data(
        &self,
        records: &[&LoggedDecision],
        policy: &dyn Policy,
    ) -> Result<(OpeData, usize)> {
        check_setting(
            "folds",
            self.folds as f64,
            self.folds >= 2,
            "at least 2 folds",
        )?;
        let k = policy.num_arms();
        let used: Vec<&LoggedDecision> = records
            .iter()
            .copied()
            .filter(|r| self.defaulted.reward_of(r).is_some())
            .collect();
        if used.is_empty() {
            return Err(Error::Empty);
        }
        let mut contexts = Vec::with_capacity(used.len());
        let mut targets = Vec::with_capacity(used.len());
        for (i, r) in used.iter().enumerate() {
            r.validate().map_err(|e| match e {
                Error::InvalidRound { field, reason, .. } => Error::InvalidRound {
                    round: i,
                    field,
                    reason,
                },
                other => other,
            })?;
            let dist = distribution(policy, r, i)?;
            let mut t = vec![0.0; k];
            for (a, p) in dist.iter() {
                t[a] = p;
            }
            contexts.push(r.context.clone());
            targets.push(t);
        }
        let actions: Vec<usize> = used.iter().map(|r| r.arm).collect();
        let rewards: Vec<f64> = used
            .iter()
            .map(|r| self.defaulted.reward_of(r).unwrap_or(0.0))
            .collect();
        let q = cross_fit_ridge(
            &contexts,
            &actions,
            &rewards,
            k,
            self.folds,
            self.ridge_lambda,
        )?;
        let data = OpeData::new(used.iter().enumerate().map(|(i, r)| OpeRound {
            action: r.arm,
            reward: rewards[i],
            propensity: r.propensity,
            target: std::mem::take(&mut targets[i]),
            reward_hat: Some(q[i * k..(i + 1) * k].to_vec()),
        }))?;
        Ok((data, records.len() - used.len()))
    }

    /// How many of `records` this evaluator leaves out for carrying the
    /// default reward, and for being misapplied.
    pub(crate) fn left_out(&self, records: &[&LoggedDecision]) -> LeftOut {
        let mut out = LeftOut::default();
        for r in records {
            match r.resolution {
                Resolution::Misapplied { .. } => out.misapplied += 1,
                Resolution::Abandoned { .. } | Resolution::Expired { .. }
                    if self.defaulted == DefaultedRewards::Exclude =>
                {
                    out.defaulted += 1;
                }
                _ => {}
            }
        }
        out
    }
}

/// Rounds an evaluation leaves out although they carry a reward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub(crate) defaulted: usize,
    pub(crate) misapplied: usize,
}

/// `policy`'s distribution over the eligible arms of record `r` (round `i`
/// in errors), on its logged context.
fn distribution(
    policy: &dyn Policy,
    r: &LoggedDecision,
    i: usize,
) -> Result<tuneloop_core::ActionDistribution> {
    let k = policy.num_arms();
    if let Some(&a) = r.eligible.iter().find(|&&a| a >= k) {
        return Err(Error::InvalidRound {
            round: i,
            field: "eligible",
            reason: format!("arm {a} is beyond the candidate's {k} arms"),
        });
    }
    let x = Features::new(r.context.clone())?;
    policy
        .distribution(&x, &r.eligible)
        .map_err(|e| Error::InvalidRound {
            round: i,
            field: "context",
            reason: e.to_string(),
        })
}

/// The replay estimator (Li et al., 2011) for uniformly logged data: the
/// candidate chooses on every logged context (keyed by `seed` and the
/// decision id); the rounds where it chose the logged arm are an unbiased
/// sample of its rewards. Decisions without an observed reward (unresolved,
/// abandoned, expired) are left out. Returns `(value, matched rounds)`.
///
/// # Errors
/// [`Error::InvalidRound`] when a round was not logged uniformly over its
/// eligible arms; [`Error::Empty`] when no round matches.
pub fn replay(
    records: &[LoggedDecision],
    candidate: &dyn Policy,
    seed: u64,
) -> Result<(f64, usize)> {
    let mut total = 0.0;
    let mut matched = 0;
    for (i, r) in records.iter().enumerate() {
        // Defaulted rewards (abandoned, expired) are no observation.
        let Some(reward) = r.resolution.recorded_reward() else {
            continue;
        };
        let uniform = 1.0 / r.eligible.len() as f64;
        if (r.propensity - uniform).abs() > 1e-9 {
            return Err(Error::InvalidRound {
                round: i,
                field: "propensity",
                reason: format!(
                    "{} is not uniform over {} eligible arms; replay needs uniform logging",
                    r.propensity,
                    r.eligible.len()
                ),
            });
        }
        let x = Features::new(r.context.clone())?;
        let s = candidate.select(&x, &r.eligible, &SelectionKey::new(seed, r.decision_id))?;
        if s.arm == r.arm {
            total += reward;
            matched += 1;
        }
    }
    if matched == 0 {
        return Err(Error::Empty);
    }
    Ok((total / matched as f64, matched))
}
