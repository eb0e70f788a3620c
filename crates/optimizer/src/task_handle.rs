//! [`Task`]: a task type resolved once, and [`TaskType`], what the
//! optimizer's per-task-type calls accept (a name, or a handle).

use std::sync::Arc;

use crate::context::Context;
use crate::decide::{RecommendOptions, Recommendation};
use crate::error::Result;
use crate::handle::Decision;
use crate::learned::Learned;
use crate::optimizer::Optimizer;
use crate::settings::TaskSettings;
use crate::task::TaskState;

/// A task type of an [`Optimizer`], resolved once by
/// [`Optimizer::task`]: its calls skip the lookup (and the hashing of the
/// name) that a `&str` costs on every call, as a prepared statement skips
/// parsing. Cheap to clone and to keep (two reference counts and the
/// optimizer's handle); it keeps the optimizer alive, as a clone of it
/// does.
///
/// Everywhere a task type is asked for ([`TaskType`]), a `&Task` does.
///
/// ```
/// use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.7]).build()?;
/// let opt = Optimizer::builder().task_type("qa", TaskTypeConfig::new(arms)).build()?;
/// let qa = opt.task("qa")?; // at start-up; an unknown name fails here
/// let decision = qa.recommend(&TaskFeatures::default(), &RecommendOptions::default())?;
/// decision.record(&TaskOutcome::success(0.9, 420.0))?;
/// let mut episode = opt.episode();
/// let step = episode.recommend(&qa, &TaskFeatures::default(), &RecommendOptions::default())?;
/// # let _ = step;
/// episode.finish(&TaskOutcome::success(1.0, 900.0))?;
/// # Ok::<(), tuneloop::Error>(())
/// ```
#[derive(Clone)]
pub struct Task {
    optimizer: Optimizer,
    name: Arc<str>,
    state: Arc<TaskState>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

impl Optimizer {
    /// The task type `name`, resolved once: keep the handle and call
    /// [`Task::recommend`] on it, or pass `&task` wherever a task type is
    /// asked for.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`](crate::Error::UnknownTaskType).
    pub fn task(&self, name: &str) -> Result<Task> {
        let (name, state) = self.task_state(name)?;
        Ok(Task {
            optimizer: self.clone(),
            name: name.clone(),
            state: state.clone(),
        })
    }
}

impl Task {
    /// The task type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The optimizer it belongs to.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// [`Optimizer::recommend`] for this task type.
    ///
    /// # Errors
    /// As [`Optimizer::recommend_parameters`].
    pub fn recommend(
        &self,
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
    ) -> Result<Decision> {
        self.optimizer.recommend(self, context, options)
    }

    /// [`Optimizer::recommend_parameters`] for this task type.
    ///
    /// # Errors
    /// As [`Optimizer::recommend_parameters`].
    pub fn recommend_parameters(
        &self,
        context: &(impl Context + ?Sized),
        options: &RecommendOptions<'_>,
    ) -> Result<Recommendation> {
        self.optimizer.recommend_parameters(self, context, options)
    }

    /// [`Optimizer::learned`] for this task type.
    ///
    /// # Errors
    /// As [`Optimizer::learned`].
    pub fn learned(&self, context: &(impl Context + ?Sized)) -> Result<Learned> {
        self.optimizer.learned(self, context)
    }

    /// [`Optimizer::task_settings`] for this task type.
    pub fn settings(&self) -> TaskSettings {
        self.state.live.get()
    }
}

/// A task type as the optimizer's calls take it: a name (`&str`,
/// `String`), looked up on each call, or a [`Task`] resolved once. Sealed:
/// implemented here only.
pub trait TaskType: sealed::Named {}

impl TaskType for str {}
impl TaskType for String {}
impl TaskType for Task {}
impl<T: TaskType + ?Sized> TaskType for &T {}

/// Runs `f` on the state of `task_type` in `optimizer`: a handle of that
/// optimizer as it is, a name (or another optimizer's handle) looked up.
pub(crate) fn with_state<R>(
    task_type: &(impl TaskType + ?Sized),
    optimizer: &Optimizer,
    f: impl FnOnce(&Arc<str>, &TaskState) -> Result<R>,
) -> Result<R> {
    match task_type.handle() {
        Some(task) if task.optimizer.same_as(optimizer) => f(&task.name, &task.state),
        _ => {
            let (name, state) = optimizer.task_state(task_type.name())?;
            f(name, state)
        }
    }
}

mod sealed {
    use super::Task;

    /// What a [`TaskType`](super::TaskType) is made of.
    pub trait Named {
        /// The task type's name.
        fn name(&self) -> &str;
        /// The resolved handle, when it is one.
        fn handle(&self) -> Option<&Task> {
            None
        }
    }

    impl Named for str {
        fn name(&self) -> &str {
            self
        }
    }

    impl Named for String {
        fn name(&self) -> &str {
            self
        }
    }

    impl Named for Task {
        fn name(&self) -> &str {
            &self.name
        }
        fn handle(&self) -> Option<&Task> {
            Some(self)
        }
    }

    impl<T: Named + ?Sized> Named for &T {
        fn name(&self) -> &str {
            (**self).name()
        }
        fn handle(&self) -> Option<&Task> {
            (**self).handle()
        }
    }
}
