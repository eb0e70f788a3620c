//! Baselines that learn nothing: [`Uniform`] and [`Fixed`] (the incumbent).

use serde::{Deserialize, Serialize};
use tuneloop_core::{
    ActionDistribution, Features, Policy, PolicySnapshot, Result as CoreResult, check_eligible,
};

use crate::error::{Error, Result, check_param};
use crate::linucb::check_shape;
use crate::ridge::check_update;
use crate::snapshot::{from_snapshot, to_snapshot};

/// Chooses uniformly among the eligible arms. Updates are checked and
/// otherwise ignored; the version never changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uniform {
    num_arms: usize,
    dim: usize,
}

impl Uniform {
    /// Snapshot kind of this policy.
    pub const KIND: &'static str = "uniform";

    /// A uniform policy over `num_arms` arms and contexts of dimension `dim`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for zero arms or dimensions.
    pub fn new(num_arms: usize, dim: usize) -> Result<Self> {
        check_shape(num_arms, dim)?;
        Ok(Uniform { num_arms, dim })
    }

    /// Restores a policy from [`Policy::snapshot`].
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn restore(snapshot: &PolicySnapshot) -> Result<Self> {
        let p: Uniform = from_snapshot(snapshot, Self::KIND)?;
        check_shape(p.num_arms, p.dim)?;
        Ok(p)
    }
}

impl Policy for Uniform {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn version(&self) -> u64 {
        0
    }
    fn context_dim(&self) -> usize {
        self.dim
    }
    fn num_arms(&self) -> usize {
        self.num_arms
    }
    fn distribution(&self, x: &Features, eligible: &[usize]) -> CoreResult<ActionDistribution> {
        x.expect_dim(self.dim)?;
        check_eligible(eligible, self.num_arms)?;
        ActionDistribution::uniform(eligible)
    }
    fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        check_update(x, arm, reward, self.dim, self.num_arms)
    }
    fn snapshot(&self) -> CoreResult<PolicySnapshot> {
        to_snapshot(self, Self::KIND, 0)
    }
}

/// The incumbent: always the same arm, mixed with an exploration floor so
/// that off-policy evaluation has support. If the arm is not eligible, the
/// choice is uniform among the eligible arms (a gate excluded the
/// incumbent; the distribution says so exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fixed {
    arm: usize,
    num_arms: usize,
    dim: usize,
    exploration_floor: f64,
}

impl Fixed {
    /// Snapshot kind of this policy.
    pub const KIND: &'static str = "fixed";

    /// Its uniform exploration mass.
    pub fn exploration_floor(&self) -> f64 {
        self.exploration_floor
    }

    /// A policy that plays `arm` (of `num_arms`), with uniform exploration
    /// mass `exploration_floor`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an arm out of range or a floor
    /// outside `[0, 1]`.
    pub fn new(arm: usize, num_arms: usize, dim: usize, exploration_floor: f64) -> Result<Self> {
        check_shape(num_arms, dim)?;
        check_param("arm", arm as f64, arm < num_arms, "an arm index < num_arms")?;
        check_param(
            "exploration_floor",
            exploration_floor,
            (0.0..=1.0).contains(&exploration_floor),
            "0 <= exploration_floor <= 1",
        )?;
        Ok(Fixed {
            arm,
            num_arms,
            dim,
            exploration_floor,
        })
    }

    /// The incumbent arm.
    pub fn arm(&self) -> usize {
        self.arm
    }

    /// Restores a policy from [`Policy::snapshot`].
    ///
    /// # Errors
    /// [`Error::Snapshot`] or [`Error::InvalidParameter`].
    pub fn restore(snapshot: &PolicySnapshot) -> Result<Self> {
        let p: Fixed = from_snapshot(snapshot, Self::KIND)?;
        Fixed::new(p.arm, p.num_arms, p.dim, p.exploration_floor).map_err(|e| Error::Snapshot {
            reason: e.to_string(),
        })
    }
}

impl Policy for Fixed {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn version(&self) -> u64 {
        0
    }
    fn context_dim(&self) -> usize {
        self.dim
    }
    fn num_arms(&self) -> usize {
        self.num_arms
    }
    fn distribution(&self, x: &Features, eligible: &[usize]) -> CoreResult<ActionDistribution> {
        x.expect_dim(self.dim)?;
        check_eligible(eligible, self.num_arms)?;
        if eligible.contains(&self.arm) {
            ActionDistribution::point(self.arm, eligible)?.with_floor(self.exploration_floor)
        } else {
            ActionDistribution::uniform(eligible)
        }
    }
    fn update(&mut self, x: &Features, arm: usize, reward: f64) -> CoreResult<()> {
        check_update(x, arm, reward, self.dim, self.num_arms)
    }
    fn snapshot(&self) -> CoreResult<PolicySnapshot> {
        to_snapshot(self, Self::KIND, 0)
    }
}
