//! [`QualityFloor`]: an arm stays eligible only while the lower confidence
//! bound of its quality is at or above the floor of its task type.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use tuneloop_core::stats::Moments;
use tuneloop_core::{ArmId, ArmIdBuildHasher, ArmSet};

use crate::error::{Error, Result, check};
use crate::gate::{Exclusion, Gate, GateContext, Reason};

/// Configuration of a [`QualityFloor`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityFloorConfig {
    /// Floor of every task type not in `floors` (default 0.5).
    pub default_floor: f64,
    /// Floors per task type.
    pub floors: HashMap<String, f64>,
    /// Below this many observations an arm is still exploring (default 10).
    pub min_samples: u64,
    /// Whether task types outside `floors` use `default_floor` (default
    /// true) or are an error.
    pub allow_unknown_task_types: bool,
    /// Width of the bound in standard errors (default 1.645: one-sided 95%).
    pub z: f64,
}

impl Default for QualityFloorConfig {
    fn default() -> Self {
        QualityFloorConfig {
            default_floor: 0.5,
            floors: HashMap::new(),
            min_samples: 10,
            allow_unknown_task_types: true,
            z: 1.645,
        }
    }
}

/// Per task type and arm quality statistics, and the floor they must clear.
///
/// The lower bound is `mean − z·s/√n`, with the sample standard deviation
/// `s` floored at 0.05 so that a few identical scores do not make it exact.
/// An arm with fewer than `min_samples` observations is inside its
/// exploration allowance and passes.
#[derive(Debug)]
pub struct QualityFloor {
    config: QualityFloorConfig,
    /// Task type → arm → statistics (nested, so lookups need no allocation).
    stats: RwLock<HashMap<String, HashMap<ArmId, Moments, ArmIdBuildHasher>>>,
}

/// Smallest standard deviation the bound assumes.
const SD_FLOOR: f64 = 0.05;

impl QualityFloor {
    /// A floor with no observations yet.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a floor outside `[0, 1]` or a NaN or
    /// negative `z`.
    pub fn new(config: QualityFloorConfig) -> Result<Self> {
        check(
            "default_floor",
            config.default_floor,
            (0.0..=1.0).contains(&config.default_floor),
            "a floor in [0, 1]",
        )?;
        for v in config.floors.values() {
            check("floors", *v, (0.0..=1.0).contains(v), "a floor in [0, 1]")?;
        }
        check("z", config.z, config.z >= 0.0, "a finite z >= 0")?;
        Ok(QualityFloor {
            config,
            stats: RwLock::new(HashMap::new()),
        })
    }

    /// Records a quality observation of `arm` for `task_type`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a quality outside `[0, 1]` (nothing is
    /// recorded).
    pub fn observe(&self, task_type: &str, arm: ArmId, quality: f64) -> Result<()> {
        check(
            "quality",
            quality,
            (0.0..=1.0).contains(&quality),
            "a quality in [0, 1]",
        )?;
        let mut stats = self.stats.write().unwrap_or_else(PoisonError::into_inner);
        if !stats.contains_key(task_type) {
            stats.insert(task_type.to_owned(), HashMap::default());
        }
        let Some(per_arm) = stats.get_mut(task_type) else {
            return Ok(());
        };
        per_arm.entry(arm).or_default().push(quality);
        Ok(())
    }

    /// The floor of a task type.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`] when unknown task types are not allowed.
    pub fn floor(&self, task_type: &str) -> Result<f64> {
        match self.config.floors.get(task_type) {
            Some(f) => Ok(*f),
            None if self.config.allow_unknown_task_types => Ok(self.config.default_floor),
            None => Err(Error::UnknownTaskType(task_type.to_owned())),
        }
    }

    /// `(samples, lower bound)` of an arm's quality, if observed.
    pub fn lower_bound(&self, task_type: &str, arm: ArmId) -> Option<(u64, f64)> {
        let stats = self.stats.read().unwrap_or_else(PoisonError::into_inner);
        stats.get(task_type)?.get(&arm).map(|s| self.bound(s))
    }

    fn bound(&self, s: &Moments) -> (u64, f64) {
        let sd = s.variance().sqrt().max(SD_FLOOR);
        (s.n, s.mean - self.config.z * sd / (s.n as f64).sqrt())
    }

    fn reason(&self, s: Option<&Moments>, floor: f64) -> Option<Reason> {
        let (samples, lower_bound) = self.bound(s?);
        (samples >= self.config.min_samples && lower_bound < floor).then_some(
            Reason::BelowQualityFloor {
                lower_bound,
                floor,
                samples,
            },
        )
    }
}

impl Gate for QualityFloor {
    fn name(&self) -> &'static str {
        "quality_floor"
    }
    fn is_hard(&self) -> bool {
        false
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        let floor = self.floor(ctx.task_type)?;
        let id = arms.arm(arm)?.id;
        let stats = self.stats.read().unwrap_or_else(PoisonError::into_inner);
        Ok(self.reason(stats.get(ctx.task_type).and_then(|m| m.get(&id)), floor))
    }

    fn apply(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &mut Vec<usize>,
        excluded: &mut Vec<Exclusion>,
    ) -> Result<()> {
        // One lock and one task-type lookup for the whole set.
        let floor = self.floor(ctx.task_type)?;
        let stats = self.stats.read().unwrap_or_else(PoisonError::into_inner);
        let Some(per_arm) = stats.get(ctx.task_type) else {
            return Ok(());
        };
        let mut kept = Vec::with_capacity(candidates.len());
        for &arm in candidates.iter() {
            match self.reason(per_arm.get(&arms.arm(arm)?.id), floor) {
                None => kept.push(arm),
                Some(reason) => excluded.push(Exclusion {
                    arm,
                    gate: self.name(),
                    reason,
                }),
            }
        }
        *candidates = kept;
        Ok(())
    }
}
