//! The runtime configuration's values and their rules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop::TaskSettings;
use tuneloop::core::ParameterSet;

use crate::{Error, Result};

/// Version of the runtime configuration format.
pub const RUNTIME_CONFIG_SCHEMA_VERSION: u32 = 1;

/// How providers are weighed against each other when choosing among them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderWeights {
    /// Weight of latency (default 0.3).
    pub latency: f64,
    /// Weight of cost (default 0.3).
    pub cost: f64,
    /// Weight of reliability (default 0.4).
    pub reliability: f64,
}

impl Default for ProviderWeights {
    fn default() -> Self {
        ProviderWeights {
            latency: 0.3,
            cost: 0.3,
            reliability: 0.4,
        }
    }
}

/// Settings of one provider that override the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderOverride {
    /// Whether the provider may be used (default true).
    pub enabled: Option<bool>,
    /// A weight multiplier for this provider, `>= 0`.
    pub weight: Option<f64>,
    /// The model to use with it.
    pub model: Option<String>,
}

/// Who last optimized the configuration, when, and how well.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metadata {
    /// Who (a person or a job).
    pub optimized_by: Option<String>,
    /// When.
    pub optimized_at: Option<DateTime<Utc>>,
    /// The score the optimization reached.
    pub score: Option<f64>,
    /// How many optimization iterations produced it.
    pub iterations: u64,
}

/// One task type's overrides of the runtime configuration's own settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskOverride {
    /// Its exploration rate, instead of the configuration's.
    pub exploration_rate: Option<f64>,
    /// Whether its learner learns, instead of the configuration's.
    pub learning: Option<bool>,
    /// Whether its rollout is held, instead of the configuration's.
    pub rollout_hold: Option<bool>,
}

/// Settings that change while the system runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Format version.
    pub schema_version: u32,
    /// Provider weights.
    pub provider_weights: ProviderWeights,
    /// The parameters to use when nothing better is known.
    pub default_parameters: Option<ParameterSet>,
    /// Share of the incumbent's decisions spent exploring the other
    /// eligible arms, in `[0, 1]` (default 0.02): the baseline cohort's
    /// exploration floor, read by an optimizer on every decision.
    pub exploration_rate: f64,
    /// Whether the learners learn from outcomes (default true; off, the
    /// outcomes are still logged, budgeted and monitored).
    pub learning: bool,
    /// Hold every rollout where it is: no promotion while set (default
    /// false). Clearing it resumes a rollout this flag held, not one a
    /// breach or a person held.
    pub rollout_hold: bool,
    /// Per task type, overrides of the three settings above.
    pub task_types: BTreeMap<String, TaskOverride>,
    /// Named on/off switches of the caller's own.
    pub feature_flags: BTreeMap<String, bool>,
    /// Per provider id.
    pub provider_overrides: BTreeMap<String, ProviderOverride>,
    /// Provenance of the current values.
    pub metadata: Metadata,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            schema_version: RUNTIME_CONFIG_SCHEMA_VERSION,
            provider_weights: ProviderWeights::default(),
            default_parameters: None,
            exploration_rate: 0.02,
            learning: true,
            rollout_hold: false,
            task_types: BTreeMap::new(),
            feature_flags: BTreeMap::new(),
            provider_overrides: BTreeMap::new(),
            metadata: Metadata::default(),
        }
    }
}

impl RuntimeConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        if self.schema_version != RUNTIME_CONFIG_SCHEMA_VERSION {
            return Err(Error::invalid(
                "schema_version",
                self.schema_version,
                "the version this release writes (RUNTIME_CONFIG_SCHEMA_VERSION)",
            ));
        }
        let w = &self.provider_weights;
        for (name, v) in [
            ("latency", w.latency),
            ("cost", w.cost),
            ("reliability", w.reliability),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("provider_weights.{name}"),
                    v,
                    "a finite weight >= 0",
                ));
            }
        }
        if w.latency + w.cost + w.reliability <= 0.0 {
            return Err(Error::invalid(
                "provider_weights",
                "all zero",
                "at least one positive weight",
            ));
        }
        if !(self.exploration_rate.is_finite() && (0.0..=1.0).contains(&self.exploration_rate)) {
            return Err(Error::invalid(
                "exploration_rate",
                self.exploration_rate,
                "a value in [0, 1]",
            ));
        }
        for (task, o) in &self.task_types {
            if let Some(r) = o.exploration_rate
                && !(r.is_finite() && (0.0..=1.0).contains(&r))
            {
                return Err(Error::invalid(
                    format!("task_types.{task}.exploration_rate"),
                    r,
                    "a value in [0, 1]",
                ));
            }
        }
        for (id, o) in &self.provider_overrides {
            if let Some(v) = o.weight
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(Error::invalid(
                    format!("provider_overrides.{id}.weight"),
                    v,
                    "a finite weight >= 0",
                ));
            }
        }
        if let Some(s) = self.metadata.score
            && !s.is_finite()
        {
            return Err(Error::invalid("metadata.score", s, "a finite number"));
        }
        Ok(())
    }
}

impl RuntimeConfig {
    /// The settings in effect for `task_type`: its overrides, else the
    /// configuration's own.
    pub fn for_task(&self, task_type: &str) -> TaskSettings {
        let o = self.task_types.get(task_type).copied().unwrap_or_default();
        TaskSettings {
            exploration_rate: o.exploration_rate.unwrap_or(self.exploration_rate),
            learning: o.learning.unwrap_or(self.learning),
            rollout_hold: o.rollout_hold.unwrap_or(self.rollout_hold),
        }
    }
}
