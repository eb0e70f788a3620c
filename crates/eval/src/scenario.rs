//! The built-in LLM-parameter scenario (`tuneloop simulate --scenario
//! llm-params`, the fleet example): a synthetic world where quality peaks
//! at each task type's best temperature and length, for runs that need a
//! model's behaviour without a model.
//!
//! Four task types ([`TASKS`]) over a 35-arm grid (7 temperatures × 5
//! max_tokens). The context is a bias and `s` in `[-1, 1]`, the centred
//! log prompt size: a task's best length doubles from the smallest prompt
//! to the largest. Quality is `peak − 0.6·Δt² − 0.04·Δlog₂k²` plus Gaussian
//! noise of sd 0.1; latency and cost grow with the tokens generated.
//!
//! ```
//! use rand::SeedableRng;
//! use tuneloop_eval::scenario::{TASKS, World};
//! let world = World::new()?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let outcome = world.outcome(&TASKS[0], 0, 0.0, &mut rng);
//! assert!((0.0..=1.0).contains(&outcome.quality));
//! # Ok::<(), tuneloop_core::Error>(())
//! ```

use rand::{Rng, RngExt};
use tuneloop_core::{ArmSet, RewardFunction, TaskOutcome};

/// A task type of the scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskType {
    /// Its name.
    pub name: &'static str,
    /// The temperature of peak quality.
    pub best_temperature: f64,
    /// Best max_tokens for a median prompt; it doubles from the smallest to
    /// the largest prompt.
    pub best_max_tokens: f64,
    /// Quality at the best parameters.
    pub peak_quality: f64,
}

/// The scenario's task types.
pub const TASKS: [TaskType; 4] = [
    TaskType {
        name: "code",
        best_temperature: 0.2,
        best_max_tokens: 2048.0,
        peak_quality: 0.9,
    },
    TaskType {
        name: "summarize",
        best_temperature: 0.4,
        best_max_tokens: 512.0,
        peak_quality: 0.85,
    },
    TaskType {
        name: "creative",
        best_temperature: 1.0,
        best_max_tokens: 1024.0,
        peak_quality: 0.8,
    },
    TaskType {
        name: "extract",
        best_temperature: 0.0,
        best_max_tokens: 256.0,
        peak_quality: 0.95,
    },
];

/// The synthetic world: its arms and the reward function outcomes are
/// scored with.
#[derive(Debug, Clone)]
pub struct World {
    /// 7 temperatures × 5 max_tokens of one model, `sim-model`.
    pub arms: ArmSet,
    /// The default reward function.
    pub reward: RewardFunction,
}

impl World {
    /// The world.
    ///
    /// # Errors
    /// None in practice (the grid is fixed); the arm set's errors.
    pub fn new() -> tuneloop_core::Result<Self> {
        Ok(World {
            arms: ArmSet::grid()
                .models(["sim-model"])
                .temperatures([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
                .max_tokens([256, 512, 1024, 2048, 4096])
                .build()?,
            reward: RewardFunction::default(),
        })
    }

    /// Expected quality of `arm` on `task` for a prompt of size `s` in
    /// `[-1, 1]` (0 for an arm out of range).
    pub fn mean_quality(&self, task: &TaskType, arm: usize, s: f64) -> f64 {
        let Some(a) = self.arms.get(arm) else {
            return 0.0;
        };
        let p = &a.params;
        let best_k = task.best_max_tokens * 2f64.powf(0.5 * s);
        let dk = (f64::from(p.max_tokens()) / best_k).log2();
        let dt = p.temperature() - task.best_temperature;
        (task.peak_quality - 0.6 * dt * dt - 0.04 * dk * dk).clamp(0.0, 1.0)
    }

    /// One call's outcome: quality with noise, latency, tokens and cost.
    pub fn outcome<R: Rng + ?Sized>(
        &self,
        task: &TaskType,
        arm: usize,
        s: f64,
        rng: &mut R,
    ) -> TaskOutcome {
        let q = self.mean_quality(task, arm, s);
        let noise = rng.sample::<f64, _>(rand_distr::StandardNormal) * 0.1;
        let max_tokens = self.arms.get(arm).map_or(256, |a| a.params.max_tokens());
        let used = f64::from(max_tokens) * (0.5 + 0.5 * rng.random::<f64>());
        let prompt = 200.0 * 20f64.powf((s + 1.0) / 2.0);
        TaskOutcome::success((q + noise).clamp(0.0, 1.0), 250.0 + 0.9 * used)
            .with_tokens(prompt as u64, used as u64)
            .with_cost((prompt + 3.0 * used) * 1e-6)
    }
}
