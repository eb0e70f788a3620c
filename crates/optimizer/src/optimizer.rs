//! The [`Optimizer`] and what it holds. The loop's two halves live in
//! `decide` (`recommend_parameters`) and `record` (`record_outcome`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tuneloop_core::{Clock, Cohort, DecisionId, Featurizer, Phase, RewardFunction, SelectionKey};
use tuneloop_gates::{Budget, Provenance, ProvenanceRecord, QualityFloor};
use tuneloop_rollout::{CohortSummary, RolloutEvent, RolloutManager, Verdict};

use crate::counters::{AtomicCounters, Counters, add};
use crate::error::{Error, Result};
use crate::pending::Pending;
use crate::task::TaskState;
use crate::writer::LogWriter;
use tuneloop_counterfactual::AbandonReason;

/// The facade: thread-safe (`Clone` shares one optimizer), no I/O on the
/// hot path, usable from sync and async code alike (every method returns
/// quickly; none blocks on I/O).
///
/// ```
/// use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.5, 1.0]).build()?;
/// let opt = Optimizer::builder().task_type("code", TaskTypeConfig::new(arms)).seed(7).build()?;
/// let rec = opt.recommend_parameters("code", &TaskFeatures::default(), &RecommendOptions::default())?;
/// // ... call the model with rec.params ...
/// let done = opt.record_outcome(rec.decision_id, &TaskOutcome::success(0.9, 700.0))?;
/// assert!(done.reward > 0.0);
/// # Ok::<(), tuneloop::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Optimizer {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) tasks: HashMap<Arc<str>, Arc<TaskState>>,
    pub(crate) featurizer: Box<dyn Featurizer>,
    pub(crate) reward: RewardFunction,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: DecisionIds,
    pub(crate) pending: Pending,
    /// Shared by every task type: the budget is held for each decision,
    /// the floor is also in each task type's gate chain.
    pub(crate) budget: Option<Budget>,
    pub(crate) floor: Option<Arc<QualityFloor>>,
    pub(crate) log: Option<LogWriter>,
    pub(crate) counters: AtomicCounters,
    pub(crate) provenance: Option<Arc<Mutex<Provenance>>>,
    #[cfg(feature = "router")]
    pub(crate) scorecard: Option<Arc<tuneloop_providers::Scorecard>>,
}

/// Where decision ids and selection keys come from.
///
/// A decision's id is a per-process random prefix (64 bits) and a counter,
/// so two processes never write the same id into logs that are later
/// joined, even with the same seed. Its [`SelectionKey`], which drives the
/// policy's random choice, is derived from the seed and the counter alone:
/// the same seed gives the same choices in every process.
#[derive(Debug)]
pub(crate) struct DecisionIds {
    pub(crate) seed: u64,
    pub(crate) prefix: u64,
    pub(crate) counter: AtomicU64,
}

impl DecisionIds {
    pub(crate) fn new(seed: u64, counter: u64) -> Self {
        DecisionIds {
            seed,
            prefix: DecisionId::random().as_u128() as u64,
            counter: AtomicU64::new(counter),
        }
    }

    /// The next decision's id and selection key, and its number.
    pub(crate) fn next(&self) -> (DecisionId, SelectionKey, u64) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = DecisionId::from_u128((u128::from(self.prefix) << 64) | u128::from(n));
        let replay = DecisionId::from_u128((u128::from(self.seed) << 64) | u128::from(n));
        (id, SelectionKey::new(self.seed, replay), n)
    }
}

/// The reason logged for decisions still pending at
/// [`Optimizer::shutdown`].
pub const SHUTDOWN: &str = "shutdown";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Optimizer {
    /// Whether `other` is a handle of this same optimizer.
    pub(crate) fn same_as(&self, other: &Optimizer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn task_state(&self, name: &str) -> Result<(&Arc<str>, &Arc<TaskState>)> {
        self.inner
            .tasks
            .get_key_value(name)
            .ok_or_else(|| Error::UnknownTaskType(name.to_owned()))
    }

    fn rollout(&self, task_type: &str) -> Result<&Mutex<RolloutManager>> {
        self.task_state(task_type)?
            .1
            .rollout
            .as_ref()
            .ok_or_else(|| Error::NoRollout {
                task_type: task_type.to_owned(),
            })
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        let log = self.inner.log.as_ref().map_or((0, 0), LogWriter::counts);
        self.inner.counters.read(log)
    }

    /// The records of the provenance chain the optimizer writes its
    /// rollout changes to ([`OptimizerBuilder::provenance`](crate::OptimizerBuilder::provenance)),
    /// oldest first; empty without one.
    pub fn provenance_records(&self) -> Vec<ProvenanceRecord> {
        self.inner
            .provenance
            .as_ref()
            .map(|p| lock(p).records().to_vec())
            .unwrap_or_default()
    }

    /// Waits until every decision recorded (or expired) before the call is
    /// in the decision log: appended to its sink, or counted in
    /// [`Counters::log_failed`] if the write failed. Returns at once
    /// without a log.
    ///
    /// `record_outcome` hands the record to a background writer and
    /// returns; a process killed after that but before the writer's turn
    /// loses the record. What `flush_log` promises with the built-in
    /// [`JsonlLog`](crate::counterfactual::JsonlLog): every record before it is
    /// in the file as a whole line (in the operating system's cache, so it
    /// survives the process being killed, not a power cut). Call it where a
    /// record must not be lost (at the end of a batch, before
    /// acknowledging a job). It blocks on the disk: in async code, call it
    /// from `spawn_blocking`.
    pub fn flush_log(&self) {
        if let Some(log) = &self.inner.log {
            log.flush();
        }
    }

    /// Ends the optimizer's logging, blocking: every decision still
    /// pending is abandoned (logged with the default reward, reason
    /// [`SHUTDOWN`]), the log writer is drained as by
    /// [`flush_log`](Self::flush_log), and later records are dropped (and
    /// counted in [`Counters::log_dropped`]). Recommendations and learning
    /// go on working. Returns how many decisions were abandoned.
    ///
    /// In async code, use [`shutdown`](Self::shutdown).
    pub fn shutdown_blocking(&self) -> usize {
        let abandoned = self.abandon_all(&AbandonReason::Shutdown);
        if let Some(log) = &self.inner.log {
            log.close();
            log.flush();
        }
        abandoned
    }

    /// As [`shutdown_blocking`](Self::shutdown_blocking), awaiting the log
    /// writer instead of blocking a thread (on any executor). Call it
    /// before an async program exits: dropping the last handle inside a
    /// runtime does not wait for the writer.
    pub async fn shutdown(&self) -> usize {
        let abandoned = self.abandon_all(&AbandonReason::Shutdown);
        if let Some(log) = &self.inner.log {
            log.close();
            log.flush_async().await;
        }
        abandoned
    }

    /// Sweeps expired decisions ([`sweep_expired`](Self::sweep_expired))
    /// every `period` on the tokio runtime's clock, for traffic too sparse
    /// for the sweeps `recommend_parameters` makes. Holds the optimizer
    /// weakly: the loop ends when its last handle is dropped. Spawn it:
    /// `tokio::spawn(optimizer.expiry_sweeps(Duration::from_secs(60)))`.
    /// Needs a tokio runtime with its time driver.
    pub fn expiry_sweeps(&self, period: Duration) -> impl Future<Output = ()> + Send + 'static {
        let weak = Arc::downgrade(&self.inner);
        let period = period.max(Duration::from_millis(1));
        async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Optimizer { inner }.sweep_expired();
            }
        }
    }

    /// Decisions waiting for their outcome.
    pub fn pending(&self) -> usize {
        self.inner.pending.len()
    }

    /// The rollout phase of a task type, if it has a rollout.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn phase(&self, task_type: &str) -> Result<Option<Phase>> {
        Ok(self
            .task_state(task_type)?
            .1
            .rollout
            .as_ref()
            .map(|r| lock(r).phase()))
    }

    /// The task types, sorted.
    pub fn task_types(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.inner.tasks.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }

    /// The state of a task type's rollout, if it has one: phase, whether it
    /// is held, the candidate's share of traffic, both cohorts' SLO
    /// statistics, the proof's latest verdict and the last events (at most
    /// 50).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn rollout_status(&self, task_type: &str) -> Result<Option<RolloutStatus>> {
        let Some(r) = &self.task_state(task_type)?.1.rollout else {
            return Ok(None);
        };
        let r = lock(r);
        let history = r.history();
        Ok(Some(RolloutStatus {
            phase: r.phase(),
            held: r.is_held(),
            candidate_fraction: r.candidate_fraction(),
            baseline: r.monitor().summary(Cohort::Baseline),
            candidate: r.monitor().summary(Cohort::Candidate),
            last_verdict: r.last_verdict().cloned(),
            recent_events: history[history.len().saturating_sub(50)..].to_vec(),
        }))
    }

    /// Approves leaving the phase a rollout is waiting in; returns the
    /// events (the approval, and the promotion it allows).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::NoRollout`], and
    /// [`Error::Rollout`] when no approval is awaited.
    pub fn approve_rollout(&self, task_type: &str, approver: &str) -> Result<Vec<RolloutEvent>> {
        let events = lock(self.rollout(task_type)?).approve(approver, self.inner.clock.now())?;
        let promoted = events
            .iter()
            .filter(|e| matches!(e, RolloutEvent::Promoted { .. }))
            .count();
        add(&self.inner.counters.promotions, promoted as u64);
        Ok(events)
    }

    /// Holds a rollout where it is: no promotion until resumed.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::NoRollout`].
    pub fn hold_rollout(&self, task_type: &str, reason: &str) -> Result<RolloutEvent> {
        Ok(lock(self.rollout(task_type)?).hold(reason, self.inner.clock.now()))
    }

    /// Rolls a rollout's candidate back by hand (as a breach would) and
    /// holds it until resumed.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::NoRollout`], and
    /// [`Error::Rollout`] in shadow.
    pub fn rollback_rollout(&self, task_type: &str, reason: &str) -> Result<RolloutEvent> {
        let e = lock(self.rollout(task_type)?).rollback(reason, self.inner.clock.now())?;
        add(&self.inner.counters.rollbacks, 1);
        Ok(e)
    }

    /// The budget's spend and what is left of it now, if a budget is
    /// configured.
    pub fn budget_usage(&self) -> Option<tuneloop_gates::Usage> {
        self.inner
            .budget
            .as_ref()
            .map(|b| b.usage(self.inner.clock.now()))
    }

    /// Resumes a held rollout (after a rollback, with a fixed candidate).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::NoRollout`].
    pub fn resume_rollout(&self, task_type: &str) -> Result<RolloutEvent> {
        Ok(lock(self.rollout(task_type)?).resume(self.inner.clock.now()))
    }
}

/// A rollout's state, from [`Optimizer::rollout_status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutStatus {
    /// The phase.
    pub phase: Phase,
    /// Whether promotion is held (by request, or after a rollback).
    pub held: bool,
    /// The candidate's share of traffic now.
    pub candidate_fraction: f64,
    /// The incumbent cohort's SLO statistics.
    pub baseline: CohortSummary,
    /// The candidate cohort's SLO statistics.
    pub candidate: CohortSummary,
    /// The latest verdict of the candidate's proof, if any.
    pub last_verdict: Option<Verdict>,
    /// The last events, oldest first (at most 50).
    pub recent_events: Vec<RolloutEvent>,
}
