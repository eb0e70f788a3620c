//! Contexts of the caller's own type: [`Context`] and
//! [`Optimizer::recommend_for`].

use tuneloop_core::{Features, RiskTier, TaskFeatures};

use crate::decide::RecommendOptions;
use crate::error::Result;
use crate::handle::Decision;
use crate::optimizer::Optimizer;

/// A task described by a type of the caller's own, which the optimizer
/// learns from instead of [`TaskFeatures`].
///
/// Build the optimizer with
/// [`context_dim`](crate::OptimizerBuilder::context_dim) set to the length
/// of [`features`](Self::features), then call
/// [`Optimizer::recommend_for`].
///
/// ```
/// use tuneloop::{Context, Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, Features, TaskOutcome};
///
/// struct Ticket { words: usize, urgent: bool }
///
/// impl Context for Ticket {
///     fn features(&self) -> Result<Features, tuneloop::core::Error> {
///         // A bias, the length on a log scale, the flag.
///         Features::new(vec![1.0, (self.words as f64).ln_1p() / 10.0, f64::from(u8::from(self.urgent))])
///     }
/// }
///
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.7]).build()?;
/// let opt = Optimizer::builder()
///     .task_type("triage", TaskTypeConfig::new(arms))
///     .context_dim(3)
///     .build()?;
/// let decision = opt.recommend_for("triage", &Ticket { words: 120, urgent: true }, &RecommendOptions::default())?;
/// decision.record(&TaskOutcome::success(0.8, 300.0))?;
/// # Ok::<(), tuneloop::Error>(())
/// ```
pub trait Context {
    /// The context vector, of the optimizer's context dimension. Keep it
    /// small and scaled to about `[-1, 1]`, with a constant 1 first (a
    /// bias): the learners are linear in it.
    ///
    /// # Errors
    /// Whatever makes the context unusable (a non-finite value is refused
    /// by [`Features::new`]).
    fn features(&self) -> std::result::Result<Features, tuneloop_core::Error>;

    /// How costly a mistake is (the constraints' risk tiers; default
    /// [`RiskTier::Low`], as [`TaskFeatures`]'s).
    fn risk_tier(&self) -> RiskTier {
        RiskTier::default()
    }

    /// Expected prompt tokens, for budget reservations (default 0).
    fn prompt_tokens(&self) -> u64 {
        0
    }
}

/// The featurizer of an optimizer built with
/// [`context_dim`](crate::OptimizerBuilder::context_dim): it only knows the
/// dimension, and refuses [`TaskFeatures`].
#[derive(Debug)]
pub(crate) struct OwnContext(pub(crate) usize);

impl tuneloop_core::Featurizer for OwnContext {
    fn dim(&self) -> usize {
        self.0
    }

    fn featurize(&self, _: &TaskFeatures) -> std::result::Result<Features, tuneloop_core::Error> {
        Err(tuneloop_core::Error::InvalidConfig {
            field: "featurizer",
            reason: "this optimizer learns from a context type of its own (OptimizerBuilder::context_dim): call recommend_for".into(),
        })
    }
}

impl Optimizer {
    /// As [`recommend`](Self::recommend), for a task described by a
    /// [`Context`] of the caller's own type.
    ///
    /// # Errors
    /// As [`recommend`](Self::recommend); the context's own error; a
    /// context of the wrong dimension.
    pub fn recommend_for(
        &self,
        task_type: &str,
        context: &impl Context,
        options: &RecommendOptions<'_>,
    ) -> Result<Decision> {
        let x = context.features()?;
        let rec = self.recommend_with_context(
            task_type,
            x,
            context.risk_tier(),
            context.prompt_tokens(),
            options,
        )?;
        Ok(self.hand(rec))
    }
}
