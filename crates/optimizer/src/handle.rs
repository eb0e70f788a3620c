//! [`Decision`]: a recommendation in hand, recorded or abandoned exactly
//! once.

use tuneloop_core::{DecisionId, ParameterSet, TaskOutcome};

use crate::context::Context;
use crate::decide::{RecommendOptions, Recommendation};
use crate::error::Result;
use crate::optimizer::Optimizer;
use crate::record::Recorded;
use crate::task_handle::TaskType;
use tuneloop_counterfactual::AbandonReason;

/// What a dropped, unrecorded [`Decision`] logs as its reason.
pub const DROPPED: &str = "dropped unrecorded";

/// A recommendation and the duty to report on it, from
/// [`Optimizer::recommend`].
///
/// Call the model with [`params`](Self::params), then
/// [`record`](Self::record) what it produced, or
/// [`abandon`](Self::abandon) it when the call was not made or its result
/// is unknown. Dropping it unrecorded abandons it: the decision is logged
/// at once with the configured default reward (reason [`DROPPED`]) instead
/// of waiting for its time to live. For an outcome that arrives later or
/// in another process, [`into_recommendation`](Self::into_recommendation)
/// keeps it pending for [`Optimizer::record_outcome`].
///
/// ```
/// use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.7]).build()?;
/// let opt = Optimizer::builder().task_type("qa", TaskTypeConfig::new(arms)).build()?;
/// let decision = opt.recommend("qa", &TaskFeatures::default(), &RecommendOptions::default())?;
/// let temperature = decision.params().temperature(); // ... call the model ...
/// decision.record(&TaskOutcome::success(0.9, 420.0))?;
/// assert_eq!(opt.pending(), 0);
/// # let _ = temperature;
/// # Ok::<(), tuneloop::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "record the outcome (`record`) or `abandon` it; dropped, it is logged with the default reward"]
pub struct Decision {
    optimizer: Optimizer,
    recommendation: Recommendation,
    /// Still pending: neither recorded, abandoned nor handed over.
    open: bool,
}

impl Decision {
    /// The decision's id (for logs, or [`Optimizer::record_outcome`]).
    pub fn id(&self) -> DecisionId {
        self.recommendation.decision_id
    }

    /// The parameters to call the model with.
    pub fn params(&self) -> &ParameterSet {
        &self.recommendation.params
    }

    /// The prompt of the arm's prompt variant (see
    /// [`TaskTypeConfig::prompt`](crate::TaskTypeConfig::prompt)); `None`
    /// when the arm names no variant, and your usual prompt applies.
    pub fn prompt(&self) -> Option<&str> {
        self.recommendation.prompt.as_deref()
    }

    /// Everything the optimizer decided (arm, propensity, cohort, gates).
    pub fn recommendation(&self) -> &Recommendation {
        &self.recommendation
    }

    /// Records what the call produced (see [`Optimizer::record_outcome`]).
    ///
    /// # Errors
    /// As [`Optimizer::record_outcome`]. An outcome that is refused (a
    /// quality outside `[0, 1]`, say) abandons the decision, with the
    /// error as its reason, so that nothing is left pending.
    pub fn record(mut self, outcome: &TaskOutcome) -> Result<Recorded> {
        self.open = false;
        let result = self.optimizer.record_outcome(self.id(), outcome);
        if let Err(e) = &result {
            // Expired or unknown decisions are the sweep's, or gone.
            let _ = self
                .optimizer
                .abandon_for(self.id(), AbandonReason::OutcomeRefused(e.to_string()));
        }
        result
    }

    /// Gives up on the outcome (see [`Optimizer::abandon`]).
    ///
    /// # Errors
    /// [`Error::UnknownDecision`](crate::Error::UnknownDecision) when the
    /// decision expired and was swept meanwhile.
    pub fn abandon(mut self, reason: &str) -> Result<()> {
        self.open = false;
        self.optimizer.abandon(self.id(), reason)
    }

    /// Hands the decision over to id-based recording: it stays pending
    /// until [`Optimizer::record_outcome`] or its time to live.
    pub fn into_recommendation(mut self) -> Recommendation {
        self.open = false;
        self.recommendation.clone()
    }
}

impl Drop for Decision {
    fn drop(&mut self) {
        if self.open {
            let _ = self
                .optimizer
                .abandon_for(self.id(), AbandonReason::Dropped);
        }
    }
}

impl Optimizer {
    /// Parameters for the next call of `task_type` on `context` (the
    /// built-in [`TaskFeatures`](tuneloop_core::TaskFeatures), or any
    /// [`Context`]), as a [`Decision`] that records its outcome (or its
    /// absence) itself. [`recommend_parameters`](Self::recommend_parameters)
    /// is the same decision without the handle, for an outcome recorded
    /// later by id.
    ///
    /// # Errors
    /// As [`recommend_parameters`](Self::recommend_parameters).
    pub fn recommend(
        &self,
        task_type: &(impl TaskType + ?Sized),
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
    ) -> Result<Decision> {
        let recommendation = self.recommend_parameters(task_type, context, options)?;
        Ok(self.hand(recommendation))
    }

    /// The handle of a recommendation just made.
    pub(crate) fn hand(&self, recommendation: Recommendation) -> Decision {
        Decision {
            optimizer: self.clone(),
            recommendation,
            open: true,
        }
    }
}
