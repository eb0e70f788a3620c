//! The settings of a task type that change while the system runs (the
//! incumbent's exploration floor, whether the learner learns, whether the
//! rollout is held), read on every decision without a lock. Whoever keeps
//! them (the `tuneloop-config` crate's store, an admin endpoint, a job)
//! sets them with [`Optimizer::apply_settings`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tuneloop_rollout::{RolloutEvent, RolloutManager};

use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// The runtime settings of one task type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskSettings {
    /// The incumbent's exploration floor: the share of the baseline
    /// cohort's decisions spent on the other eligible arms, in `[0, 1]`
    /// (default 0.02).
    pub exploration_rate: f64,
    /// Whether the learner learns from outcomes (default true; off, the
    /// outcomes are still logged, budgeted and monitored).
    pub learning: bool,
    /// Whether the rollout is held: no promotion while set (default
    /// false). Clearing it resumes a rollout this flag held, not one a
    /// breach or a person held.
    pub rollout_hold: bool,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            exploration_rate: 0.02,
            learning: true,
            rollout_hold: false,
        }
    }
}

impl TaskSettings {
    /// Checks the exploration rate.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming it.
    pub fn check(&self) -> Result<()> {
        let r = self.exploration_rate;
        if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
            return Err(Error::invalid("exploration_rate", r, "a value in [0, 1]"));
        }
        Ok(())
    }
}

impl Optimizer {
    /// Sets every task type's runtime settings to `settings(task_type)`,
    /// in effect from the next decision (and, for the rollout's hold, the
    /// next outcome). All are checked before any is set.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`]; nothing changes then.
    pub fn apply_settings(&self, settings: impl Fn(&str) -> TaskSettings) -> Result<()> {
        let all: Vec<_> = self
            .inner
            .tasks
            .iter()
            .map(|(name, task)| (task, settings(name)))
            .collect();
        for (_, s) in &all {
            s.check()?;
        }
        for (task, s) in all {
            task.live.set(s);
        }
        Ok(())
    }

    /// The runtime settings `task_type` decides with now.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn task_settings(&self, task_type: &str) -> Result<TaskSettings> {
        Ok(self.task_state(task_type)?.1.live.get())
    }
}

/// What an optimizer reads of a task type's settings on every decision,
/// in atomics so that the hot path takes no lock.
#[derive(Debug)]
pub(crate) struct LiveTask {
    exploration_bits: AtomicU64,
    learning: AtomicBool,
    hold: AtomicBool,
    /// The rollout is held by the settings (not by a breach or a person).
    held_by_config: AtomicBool,
}

impl LiveTask {
    pub(crate) fn new(s: TaskSettings) -> Self {
        let t = LiveTask {
            exploration_bits: AtomicU64::new(0),
            learning: AtomicBool::new(true),
            hold: AtomicBool::new(false),
            held_by_config: AtomicBool::new(false),
        };
        t.set(s);
        t
    }

    pub(crate) fn set(&self, s: TaskSettings) {
        self.exploration_bits
            .store(s.exploration_rate.to_bits(), Ordering::Relaxed);
        self.learning.store(s.learning, Ordering::Relaxed);
        self.hold.store(s.rollout_hold, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> TaskSettings {
        TaskSettings {
            exploration_rate: self.exploration_rate(),
            learning: self.learning(),
            rollout_hold: self.hold.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn exploration_rate(&self) -> f64 {
        f64::from_bits(self.exploration_bits.load(Ordering::Relaxed))
    }

    pub(crate) fn learning(&self) -> bool {
        self.learning.load(Ordering::Relaxed)
    }

    /// Holds `rollout` if the settings say so, before an observation can
    /// promote it, and resumes it when the settings let go, if it was the
    /// settings that held it (not a breach or a person).
    pub(crate) fn apply_hold(
        &self,
        rollout: &mut RolloutManager,
        now: DateTime<Utc>,
    ) -> Option<RolloutEvent> {
        if self.hold.load(Ordering::Relaxed) {
            if rollout.is_held() {
                return None;
            }
            self.held_by_config.store(true, Ordering::Relaxed);
            Some(rollout.hold("runtime config: rollout_hold", now))
        } else if self.held_by_config.swap(false, Ordering::Relaxed) && rollout.is_held() {
            Some(rollout.resume(now))
        } else {
            None
        }
    }
}
