//! [`Episode`]: an agent task of several LLM calls with one outcome at the
//! end (plan, act, check), credited to each of its decisions.

use tuneloop_core::{DecisionId, TaskOutcome};
use tuneloop_rollout::RolloutEvent;

use crate::context::Context;
use crate::decide::{RecommendOptions, Recommendation};
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use crate::task_handle::{TaskType, with_state};
use tuneloop_counterfactual::{AbandonReason, Resolution};

/// What a dropped, unfinished [`Episode`] logs as its decisions' reason.
pub const EPISODE_DROPPED: &str = "episode dropped unfinished";

/// What [`Episode::finish`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpisodeRecorded {
    /// The reward of the episode's outcome, credited to each decision.
    pub reward: f64,
    /// Decisions credited.
    pub decisions: usize,
    /// Rollout events the outcome caused.
    pub events: Vec<RolloutEvent>,
}

/// Several decisions, one outcome, from [`Optimizer::episode`].
///
/// Each [`recommend`](Self::recommend) joins the episode (its log record
/// carries the episode's id); [`finish`](Self::finish) credits every
/// decision with the episode's outcome: each learner learns the episode's
/// reward for its choice, the budget is charged the outcome's spend once,
/// the quality floor and the SLO monitor see the outcome once per
/// decision, and every decision is logged with it. The decisions share a
/// rollout cohort (keyed by the episode, unless the options give a key).
/// Dropped unfinished, the episode abandons its decisions.
///
/// Offline, [`OfflineEvaluator::evaluate_episodes`](crate::counterfactual::OfflineEvaluator::evaluate_episodes)
/// weighs whole episodes (`tuneloop evaluate` does when the log has them):
/// the right estimator when the best choice at one step depends on
/// another.
///
/// ```
/// use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.7]).build()?;
/// let opt = Optimizer::builder()
///     .task_type("plan", TaskTypeConfig::new(arms.clone()))
///     .task_type("act", TaskTypeConfig::new(arms))
///     .build()?;
/// let mut episode = opt.episode();
/// let plan = episode.recommend("plan", &TaskFeatures::default(), &RecommendOptions::default())?;
/// let act = episode.recommend("act", &TaskFeatures::default(), &RecommendOptions::default())?;
/// // ... call the model with plan.params, then with act.params, check the result ...
/// let done = episode.finish(&TaskOutcome::success(1.0, 2_400.0))?;
/// assert_eq!(done.decisions, 2);
/// # let _ = (plan, act);
/// # Ok::<(), tuneloop::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "finish the episode with its outcome, or abandon it; dropped, its decisions are logged with the default reward"]
pub struct Episode {
    optimizer: Optimizer,
    id: DecisionId,
    key: String,
    decisions: Vec<DecisionId>,
    open: bool,
}

impl Optimizer {
    /// Starts an episode: an agent task of several calls with one outcome.
    pub fn episode(&self) -> Episode {
        let (id, _, _) = self.inner.ids.next();
        Episode {
            optimizer: self.clone(),
            id,
            key: id.to_string(),
            decisions: Vec::new(),
            open: true,
        }
    }
}

impl Episode {
    /// The episode's id (in each of its decisions' log records).
    pub fn id(&self) -> DecisionId {
        self.id
    }

    /// The decisions so far, in order.
    pub fn decisions(&self) -> &[DecisionId] {
        &self.decisions
    }

    /// The episode's next decision, on any [`Context`] (see
    /// [`Optimizer::recommend_parameters`]): recorded with the episode's
    /// outcome by [`finish`](Self::finish).
    ///
    /// # Errors
    /// As [`Optimizer::recommend_parameters`].
    pub fn recommend(
        &mut self,
        task_type: &(impl TaskType + ?Sized),
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
    ) -> Result<Recommendation> {
        let options = RecommendOptions {
            key: Some(options.key.unwrap_or(&self.key)),
            ..*options
        };
        let (optimizer, id) = (&self.optimizer, self.id);
        let rec = with_state(task_type, optimizer, |name, task| {
            optimizer.decide(name, task, context, &options, Some(id))
        })?;
        self.decisions.push(rec.decision_id);
        Ok(rec)
    }

    /// Credits the episode's outcome to each of its decisions (see
    /// [`Episode`]), even those whose time to live has passed, if the
    /// expiry sweep has not taken them yet.
    ///
    /// # Errors
    /// An invalid outcome (nothing changes: the episode is abandoned when
    /// dropped); [`Error::UnknownDecision`] naming a decision the sweep
    /// already took (the others are credited).
    pub fn finish(mut self, outcome: &TaskOutcome) -> Result<EpisodeRecorded> {
        let o = self.optimizer.clone();
        let inner = &*o.inner;
        let reward = inner.reward.reward(outcome)?;
        self.open = false;
        let now = inner.clock.now();
        let (mut events, mut credited, mut missing) = (Vec::new(), 0, None);
        for &id in &self.decisions {
            let Some(mut record) = inner.pending.take(id) else {
                missing.get_or_insert(id);
                continue;
            };
            record.resolution = Resolution::Recorded {
                outcome: Some(outcome.clone()),
                reward,
            };
            // The episode's spend is charged once, with its first decision.
            events.extend(o.learn(record, outcome, reward, credited == 0, now)?);
            credited += 1;
        }
        if let Some(id) = missing {
            return Err(Error::UnknownDecision(id));
        }
        Ok(EpisodeRecorded {
            reward,
            decisions: credited,
            events,
        })
    }

    /// Gives up on the episode: each decision is abandoned with `reason`
    /// (see [`Optimizer::abandon`]).
    ///
    /// # Errors
    /// [`Error::UnknownDecision`] naming a decision the sweep already took.
    pub fn abandon(mut self, reason: &str) -> Result<()> {
        self.open = false;
        self.abandon_all(&AbandonReason::Caller(reason.to_owned()))
    }

    fn abandon_all(&self, reason: &AbandonReason) -> Result<()> {
        let mut first_error = Ok(());
        for &id in &self.decisions {
            if let Err(e) = self.optimizer.abandon_for(id, reason.clone())
                && first_error.is_ok()
            {
                first_error = Err(e);
            }
        }
        first_error
    }
}

impl Drop for Episode {
    fn drop(&mut self) {
        if self.open {
            let _ = self.abandon_all(&AbandonReason::EpisodeDropped);
        }
    }
}
