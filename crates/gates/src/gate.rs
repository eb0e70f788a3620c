//! The [`Gate`] trait, what a gate sees ([`GateContext`]) and why it
//! excludes an arm ([`Reason`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::{ArmSet, RiskTier};

use crate::error::Result;

/// What gates know about the decision being made.
#[derive(Debug, Clone, PartialEq)]
pub struct GateContext<'a> {
    /// The task type.
    pub task_type: &'a str,
    /// How costly a mistake is.
    pub risk_tier: RiskTier,
    /// Index of the incumbent arm (the parameters in use), if any.
    pub incumbent: Option<usize>,
    /// Expected prompt tokens, for budget reservations.
    pub prompt_tokens: u64,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// A numeric generation parameter, as named in rules and reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    /// Sampling temperature.
    Temperature,
    /// Nucleus mass.
    TopP,
    /// Most tokens to generate.
    MaxTokens,
    /// Frequency penalty.
    FrequencyPenalty,
    /// Presence penalty.
    PresencePenalty,
}

impl Parameter {
    /// Every parameter.
    pub const ALL: [Parameter; 5] = [
        Parameter::Temperature,
        Parameter::TopP,
        Parameter::MaxTokens,
        Parameter::FrequencyPenalty,
        Parameter::PresencePenalty,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Parameter::Temperature => "temperature",
            Parameter::TopP => "top_p",
            Parameter::MaxTokens => "max_tokens",
            Parameter::FrequencyPenalty => "frequency_penalty",
            Parameter::PresencePenalty => "presence_penalty",
        }
    }

    /// Its value in `params`.
    pub fn of(self, params: &tuneloop_core::ParameterSet) -> f64 {
        match self {
            Parameter::Temperature => params.temperature(),
            Parameter::TopP => params.top_p(),
            Parameter::MaxTokens => f64::from(params.max_tokens()),
            Parameter::FrequencyPenalty => params.frequency_penalty(),
            Parameter::PresencePenalty => params.presence_penalty(),
        }
    }
}

/// Why a gate excluded an arm. Cheap to build: no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// A parameter moves further from the incumbent than allowed.
    TrustRegion {
        /// The parameter.
        parameter: Parameter,
        /// Absolute change from the incumbent.
        change: f64,
        /// The largest change allowed.
        limit: f64,
    },
    /// The arm switches to a model outside the configured set.
    ModelSwitch,
    /// The lower confidence bound of the arm's quality is below the floor.
    BelowQualityFloor {
        /// Lower confidence bound of the quality.
        lower_bound: f64,
        /// The floor.
        floor: f64,
        /// Quality observations of the arm.
        samples: u64,
    },
    /// The arm's reservation would not fit the remaining budget.
    OverBudget {
        /// Tokens (true) or cost (false).
        tokens: bool,
        /// What the arm would reserve.
        needed: f64,
        /// What is left.
        available: f64,
    },
    /// A hard rule forbids the arm.
    Constraint {
        /// Index of the rule in its [`Constraints`](crate::Constraints).
        rule: usize,
    },
    /// A gate of the user's own excludes the arm.
    Custom {
        /// Why, in a few words (shown in exclusions and logs).
        why: &'static str,
    },
}

impl Reason {
    /// The kinds of reason, by [`kind_index`](Self::kind_index): the
    /// labels of per-reason counts (metrics).
    pub const KINDS: [&'static str; 6] = [
        "trust_region",
        "model_switch",
        "below_quality_floor",
        "over_budget",
        "constraint",
        "custom",
    ];

    /// This reason's kind, an index into [`KINDS`](Self::KINDS).
    pub fn kind_index(&self) -> usize {
        match self {
            Reason::TrustRegion { .. } => 0,
            Reason::ModelSwitch => 1,
            Reason::BelowQualityFloor { .. } => 2,
            Reason::OverBudget { .. } => 3,
            Reason::Constraint { .. } => 4,
            Reason::Custom { .. } => 5,
        }
    }

    /// This reason's kind, as its serialized tag names it.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TrustRegion {
                parameter,
                change,
                limit,
            } => {
                write!(
                    f,
                    "{} changes by {change} from the incumbent (limit {limit})",
                    parameter.name()
                )
            }
            Reason::ModelSwitch => write!(f, "switches to a model outside the allowed set"),
            Reason::BelowQualityFloor {
                lower_bound,
                floor,
                samples,
            } => {
                write!(
                    f,
                    "quality lower bound {lower_bound:.3} < floor {floor} after {samples} samples"
                )
            }
            Reason::OverBudget {
                tokens,
                needed,
                available,
            } => write!(
                f,
                "needs {needed} {} but {available} remain",
                if *tokens { "tokens" } else { "USD" }
            ),
            Reason::Constraint { rule } => write!(f, "forbidden by rule {rule}"),
            Reason::Custom { why } => f.write_str(why),
        }
    }
}

/// One excluded arm: which gate excluded it and why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Index of the arm.
    pub arm: usize,
    /// Name of the gate.
    pub gate: &'static str,
    /// Why.
    pub reason: Reason,
}

/// A gate: decides, arm by arm, what a policy may choose.
pub trait Gate: Send + Sync + fmt::Debug {
    /// Short name, as in exclusions.
    fn name(&self) -> &'static str;

    /// Hard gates are never crossed, not even by a fallback to the
    /// incumbent; soft ones (trust region, quality floor) yield to it when
    /// nothing else is eligible.
    fn is_hard(&self) -> bool;

    /// Why `arm` is excluded, or `None` if it passes.
    ///
    /// # Errors
    /// Configuration problems the gate finds only now (an unknown model's
    /// price, say).
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>>;

    /// Keeps in `candidates` the arms that pass and appends an
    /// [`Exclusion`] for each that does not. The default asks
    /// [`exclude`](Gate::exclude) arm by arm; gates with shared state
    /// override it to take their lock once.
    ///
    /// # Errors
    /// As [`exclude`](Gate::exclude).
    fn apply(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &mut Vec<usize>,
        excluded: &mut Vec<Exclusion>,
    ) -> Result<()> {
        let mut err = None;
        candidates.retain(|&arm| {
            if err.is_some() {
                return true;
            }
            match self.exclude(ctx, arms, arm) {
                Ok(None) => true,
                Ok(Some(reason)) => {
                    excluded.push(Exclusion {
                        arm,
                        gate: self.name(),
                        reason,
                    });
                    false
                }
                Err(e) => {
                    err = Some(e);
                    true
                }
            }
        });
        err.map_or(Ok(()), Err)
    }
}

/// A shared gate is a gate: the optimizer keeps the quality floor and the
/// budget it feeds in an `Arc` and gives the chain a clone.
impl<G: Gate + ?Sized> Gate for std::sync::Arc<G> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn is_hard(&self) -> bool {
        (**self).is_hard()
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        (**self).exclude(ctx, arms, arm)
    }
    fn apply(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &mut Vec<usize>,
        excluded: &mut Vec<Exclusion>,
    ) -> Result<()> {
        (**self).apply(ctx, arms, candidates, excluded)
    }
}
