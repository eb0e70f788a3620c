//! Declarative hard rules ([`Constraints`]): allowed models per risk tier,
//! parameter ranges per task type, forbidden combinations. An arm that
//! breaks any rule is never eligible, not even as a fallback.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use tuneloop_core::{ArmId, ArmIdBuildHasher, ArmSet, ParameterSet, RiskTier};

use crate::error::{Error, Result, check};
use crate::gate::{Exclusion, Gate, GateContext, Parameter, Reason};

/// One condition of a forbidden combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "if", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The arm's model is this one.
    ModelIs {
        /// The model.
        model: String,
    },
    /// The arm's prompt variant is this one.
    VariantIs {
        /// The variant.
        variant: String,
    },
    /// The parameter is above the value.
    Above {
        /// The parameter.
        parameter: Parameter,
        /// The value.
        value: f64,
    },
    /// The parameter is below the value.
    Below {
        /// The parameter.
        parameter: Parameter,
        /// The value.
        value: f64,
    },
}

impl Condition {
    fn holds(&self, p: &ParameterSet) -> bool {
        match self {
            Condition::ModelIs { model } => p.model() == model,
            Condition::VariantIs { variant } => p.prompt_variant() == Some(variant.as_str()),
            Condition::Above { parameter, value } => parameter.of(p) > *value,
            Condition::Below { parameter, value } => parameter.of(p) < *value,
        }
    }
}

/// A hard rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// At this risk tier (or every tier, if `None`), only these models.
    AllowedModels {
        /// The tier the rule applies to.
        #[serde(default)]
        risk_tier: Option<RiskTier>,
        /// The models allowed.
        models: Vec<String>,
    },
    /// For this task type (or every type, if `None`), the parameter stays
    /// within `[min, max]` (either bound optional).
    ParameterRange {
        /// The task type the rule applies to.
        #[serde(default)]
        task_type: Option<String>,
        /// The parameter.
        parameter: Parameter,
        /// Smallest value allowed.
        #[serde(default)]
        min: Option<f64>,
        /// Largest value allowed.
        #[serde(default)]
        max: Option<f64>,
    },
    /// For this task type (or every type), no arm may meet every condition.
    Forbidden {
        /// The task type the rule applies to.
        #[serde(default)]
        task_type: Option<String>,
        /// The conditions that together are forbidden.
        when: Vec<Condition>,
    },
}

impl Rule {
    /// Whether the rule allows `params` for this task type and risk tier.
    pub fn allows(&self, task_type: &str, risk_tier: RiskTier, params: &ParameterSet) -> bool {
        let applies = |t: &Option<String>| t.as_deref().is_none_or(|t| t == task_type);
        match self {
            Rule::AllowedModels {
                risk_tier: tier,
                models,
            } => tier.is_some_and(|t| t != risk_tier) || models.iter().any(|m| m == params.model()),
            Rule::ParameterRange {
                task_type: t,
                parameter,
                min,
                max,
            } => {
                let v = parameter.of(params);
                !applies(t) || (min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m))
            }
            Rule::Forbidden { task_type: t, when } => {
                !applies(t) || when.is_empty() || !when.iter().all(|c| c.holds(params))
            }
        }
    }
}

/// A list of hard rules; the [`Gate`] that enforces them.
///
/// ```
/// use tuneloop_core::{ParameterSet, RiskTier};
/// use tuneloop_gates::Constraints;
/// let c: Constraints = serde_json::from_str(r#"{"rules": [
///   {"rule": "allowed_models", "risk_tier": "critical", "models": ["gpt-4o"]},
///   {"rule": "parameter_range", "task_type": "code", "parameter": "temperature", "max": 0.5},
///   {"rule": "forbidden", "when": [{"if": "model_is", "model": "small"}, {"if": "above", "parameter": "max_tokens", "value": 2048}]}
/// ]}"#)?;
/// c.check()?;
/// let hot = ParameterSet::builder("gpt-4o").temperature(0.9).build()?;
/// assert_eq!(c.violation("code", RiskTier::Low, &hot), Some(1));
/// assert_eq!(c.violation("chat", RiskTier::Low, &hot), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// The rules, all of which must hold. Private and immutable, so that
    /// the memo of verdicts can never go stale.
    rules: Vec<Rule>,
    /// Task type → risk tier (by ordinal) → arm → first broken rule.
    #[serde(skip)]
    memo: RwLock<HashMap<String, [Verdicts; 4]>>,
}

type Verdicts = HashMap<ArmId, Option<usize>, ArmIdBuildHasher>;

impl Clone for Constraints {
    fn clone(&self) -> Self {
        Constraints::new(self.rules.clone())
    }
}

impl PartialEq for Constraints {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl Constraints {
    /// Rules from a list.
    pub fn new(rules: Vec<Rule>) -> Self {
        Constraints {
            rules,
            memo: RwLock::default(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks every rule's numbers.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a NaN bound, `min > max`, or an
    /// `allowed_models` rule with no model.
    pub fn check(&self) -> Result<()> {
        for rule in &self.rules {
            match rule {
                Rule::AllowedModels { models, .. } => {
                    if models.is_empty() {
                        return Err(Error::InvalidSetting {
                            field: "models",
                            value: f64::NAN,
                            expected: "at least one allowed model",
                        });
                    }
                }
                Rule::ParameterRange { min, max, .. } => {
                    for (field, v) in [("min", min), ("max", max)] {
                        if let Some(v) = v {
                            check(field, *v, true, "a finite bound")?;
                        }
                    }
                    if let (Some(lo), Some(hi)) = (min, max) {
                        check("min", *lo, lo <= hi, "min <= max")?;
                    }
                }
                Rule::Forbidden { when, .. } => {
                    for c in when {
                        if let Condition::Above { value, .. } | Condition::Below { value, .. } = c {
                            check("value", *value, true, "a finite value")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The index of the first rule `params` breaks, if any.
    pub fn violation(
        &self,
        task_type: &str,
        risk_tier: RiskTier,
        params: &ParameterSet,
    ) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| !r.allows(task_type, risk_tier, params))
    }
}

impl Gate for Constraints {
    fn name(&self) -> &'static str {
        "constraints"
    }
    fn is_hard(&self) -> bool {
        true
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        let params = &arms.arm(arm)?.params;
        Ok(self
            .violation(ctx.task_type, ctx.risk_tier, params)
            .map(|rule| Reason::Constraint { rule }))
    }

    /// Verdicts depend only on (task type, risk tier, arm): they are
    /// computed once and remembered, so the hot path is a lookup per arm.
    fn apply(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &mut Vec<usize>,
        excluded: &mut Vec<Exclusion>,
    ) -> Result<()> {
        let tier = usize::from(ctx.risk_tier.ordinal());
        let mut missing = Vec::new();
        {
            let memo = self.memo.read().unwrap_or_else(PoisonError::into_inner);
            let known = memo.get(ctx.task_type).map(|t| &t[tier]);
            let mut kept = Vec::with_capacity(candidates.len());
            for &arm in candidates.iter() {
                let a = arms.arm(arm)?;
                let verdict = match known.and_then(|k| k.get(&a.id)) {
                    Some(v) => *v,
                    None => {
                        let v = self.violation(ctx.task_type, ctx.risk_tier, &a.params);
                        missing.push((a.id, v));
                        v
                    }
                };
                match verdict {
                    None => kept.push(arm),
                    Some(rule) => excluded.push(Exclusion {
                        arm,
                        gate: self.name(),
                        reason: Reason::Constraint { rule },
                    }),
                }
            }
            *candidates = kept;
        }
        if !missing.is_empty() {
            let mut memo = self.memo.write().unwrap_or_else(PoisonError::into_inner);
            if !memo.contains_key(ctx.task_type) {
                memo.insert(ctx.task_type.to_owned(), Default::default());
            }
            if let Some(t) = memo.get_mut(ctx.task_type) {
                t[tier].extend(missing);
            }
        }
        Ok(())
    }
}
