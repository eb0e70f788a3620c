//! What a decision is made for: a [`Context`] — the built-in
//! [`TaskFeatures`], a vector the caller computed ([`Features`],
//! [`Featurized`]), or a type of the caller's own.

use tuneloop_core::{Features, Featurizer, RiskTier, TaskFeatures};

/// What a decision is made for: anything [`Optimizer::recommend`](crate::Optimizer::recommend)
/// takes. [`TaskFeatures`] is featurized by the optimizer's featurizer;
/// a type of the caller's own gives its vector itself.
///
/// For a type of your own, build the optimizer with
/// [`context_dim`](crate::OptimizerBuilder::context_dim) set to the length
/// of its [`features`](Self::features).
///
/// ```
/// use tuneloop::{Context, Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, Featurizer, Features, TaskOutcome};
///
/// struct Ticket { words: usize, urgent: bool }
///
/// impl Context for Ticket {
///     fn features(&self, _: &dyn Featurizer) -> Result<Features, tuneloop::core::Error> {
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
/// let decision = opt.recommend("triage", &Ticket { words: 120, urgent: true }, &RecommendOptions::default())?;
/// decision.record(&TaskOutcome::success(0.8, 300.0))?;
/// # Ok::<(), tuneloop::Error>(())
/// ```
pub trait Context {
    /// The context vector, of the optimizer's context dimension, given the
    /// optimizer's featurizer (which a context of the caller's own type
    /// ignores). Keep it small and scaled to about `[-1, 1]`, with a
    /// constant 1 first (a bias): the learners are linear in it.
    ///
    /// # Errors
    /// Whatever makes the context unusable (a non-finite value is refused
    /// by [`Features::new`]).
    fn features(
        &self,
        featurizer: &dyn Featurizer,
    ) -> std::result::Result<Features, tuneloop_core::Error>;

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

/// The built-in description of a task, featurized by the optimizer's
/// featurizer.
impl Context for TaskFeatures {
    fn features(
        &self,
        featurizer: &dyn Featurizer,
    ) -> std::result::Result<Features, tuneloop_core::Error> {
        featurizer.featurize(self)
    }

    fn risk_tier(&self) -> RiskTier {
        self.risk_tier
    }

    fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens
    }
}

/// A context vector the caller computed, at the default risk tier and no
/// expected prompt tokens ([`Featurized`] sets both).
impl Context for Features {
    fn features(&self, _: &dyn Featurizer) -> std::result::Result<Features, tuneloop_core::Error> {
        Ok(self.clone())
    }
}

/// A context vector the caller computed, with the request's risk tier and
/// expected prompt tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Featurized {
    /// The context vector (of the optimizer's context dimension).
    pub features: Features,
    /// How costly a mistake is.
    pub risk_tier: RiskTier,
    /// Expected prompt tokens, for budget reservations.
    pub prompt_tokens: u64,
}

impl Context for Featurized {
    fn features(&self, _: &dyn Featurizer) -> std::result::Result<Features, tuneloop_core::Error> {
        Ok(self.features.clone())
    }

    fn risk_tier(&self) -> RiskTier {
        self.risk_tier
    }

    fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens
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
            reason: "this optimizer learns from a context type of its own (OptimizerBuilder::context_dim): pass that Context, not TaskFeatures".into(),
        })
    }
}
