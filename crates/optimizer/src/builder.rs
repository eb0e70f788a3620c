//! [`OptimizerBuilder`]: the optimizer's settings, checked once by
//! [`build`](OptimizerBuilder::build).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tuneloop_core::{
    Clock, DecisionId, DefaultFeaturizer, Featurizer, RewardFunction, SystemClock,
};
use tuneloop_counterfactual::DecisionLog;
use tuneloop_gates::{
    Approval, Budget, BudgetConfig, Change, ChangeKind, Gate, Provenance, QualityFloor,
    QualityFloorConfig,
};
use tuneloop_rollout::{Listener, RolloutEvent};

use crate::counters::AtomicCounters;
use crate::error::{Error, Result};
use crate::optimizer::{DecisionIds, Inner, Optimizer, lock};
use crate::pending::Pending;
use crate::settings::TaskSettings;
use crate::snapshot::OptimizerSnapshot;
use crate::task::{TaskState, TaskTypeConfig};
use crate::writer::LogWriter;

/// Builds an [`Optimizer`].
#[derive(Debug)]
pub struct OptimizerBuilder {
    tasks: Vec<(String, TaskTypeConfig)>,
    featurizer: Box<dyn Featurizer>,
    reward: RewardFunction,
    seed: Option<u64>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    default_reward: f64,
    budget: Option<BudgetConfig>,
    floor: Option<QualityFloorConfig>,
    log: Option<Arc<dyn DecisionLog>>,
    log_queue: usize,
    snapshot: Option<OptimizerSnapshot>,
    gates: Vec<Arc<dyn Gate>>,
    provenance: Option<Arc<Mutex<Provenance>>>,
    #[cfg(feature = "router")]
    scorecard: Option<Arc<tuneloop_providers::Scorecard>>,
}

impl Optimizer {
    /// A builder with the defaults: [`DefaultFeaturizer`], the default
    /// [`RewardFunction`], a random seed, the system clock, decisions that
    /// expire after an hour with a default reward of 0.
    pub fn builder() -> OptimizerBuilder {
        OptimizerBuilder {
            tasks: Vec::new(),
            featurizer: Box::new(DefaultFeaturizer::default()),
            reward: RewardFunction::default(),
            seed: None,
            clock: Arc::new(SystemClock),
            ttl: Duration::from_secs(3_600),
            default_reward: 0.0,
            budget: None,
            floor: None,
            log: None,
            log_queue: 65_536,
            snapshot: None,
            gates: Vec::new(),
            provenance: None,
            #[cfg(feature = "router")]
            scorecard: None,
        }
    }
}

impl OptimizerBuilder {
    /// Adds a task type.
    #[must_use]
    pub fn task_type(mut self, name: impl Into<String>, config: TaskTypeConfig) -> Self {
        self.tasks.push((name.into(), config));
        self
    }
    /// A gate of one's own for every task type, applied after the built-in
    /// ones and before each task type's own
    /// ([`TaskTypeConfig::gate`]); see
    /// [`Optimizer::recommend_parameters`] for the whole order.
    #[must_use]
    pub fn gate(mut self, gate: impl Gate + 'static) -> Self {
        self.gates.push(Arc::new(gate));
        self
    }
    /// Turns [`TaskFeatures`](tuneloop_core::TaskFeatures) into contexts.
    #[must_use]
    pub fn featurizer(mut self, f: Box<dyn Featurizer>) -> Self {
        self.featurizer = f;
        self
    }
    /// Learn from a [`Context`](crate::Context) type of the caller's own,
    /// of `dim` values, with [`Optimizer::recommend`], instead of
    /// [`TaskFeatures`](tuneloop_core::TaskFeatures) (which this optimizer
    /// then refuses).
    #[must_use]
    pub fn context_dim(mut self, dim: usize) -> Self {
        self.featurizer = Box::new(crate::context::OwnContext(dim));
        self
    }
    /// Turns outcomes into rewards.
    #[must_use]
    pub fn reward(mut self, r: RewardFunction) -> Self {
        self.reward = r;
        self
    }
    /// Seed of every random choice: same seed, same decisions. Decision ids
    /// stay unique across processes whatever the seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// The clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// How long a decision waits for its outcome (more than zero, at most
    /// [`PendingDecisions::MAX_WAIT`](tuneloop_counterfactual::PendingDecisions::MAX_WAIT)),
    /// and the reward logged for it when none comes (in `[0, 1]`, as every
    /// reward is).
    #[must_use]
    pub fn decision_ttl(mut self, ttl: Duration, default_reward: f64) -> Self {
        self.ttl = ttl;
        self.default_reward = default_reward;
        self
    }
    /// A token and cost budget shared by every task type.
    #[must_use]
    pub fn budget(mut self, config: BudgetConfig) -> Self {
        self.budget = Some(config);
        self
    }
    /// A quality floor for every task type.
    #[must_use]
    pub fn quality_floor(mut self, config: QualityFloorConfig) -> Self {
        self.floor = Some(config);
        self
    }
    /// Where decision records go (written by a background thread).
    #[must_use]
    pub fn decision_log(mut self, sink: Arc<dyn DecisionLog>) -> Self {
        self.log = Some(sink);
        self
    }
    /// Capacity of the log queue (default 65,536 records).
    #[must_use]
    pub fn log_queue(mut self, capacity: usize) -> Self {
        self.log_queue = capacity;
        self
    }
    /// Where every rollout change is recorded: promotions, rollbacks
    /// (breaches and operators'), approvals, holds, resumes, and each
    /// verdict of the candidate's proof with its estimate, bound and
    /// sample size ([`ChangeKind::Rollout`], the event as `details`). The
    /// record is written when the event happens, under the rollout's lock;
    /// a failure to write it is logged (`tracing`), not returned.
    #[must_use]
    pub fn provenance(mut self, chain: Arc<Mutex<Provenance>>) -> Self {
        self.provenance = Some(chain);
        self
    }

    /// The providers' scorecard (shared with the `Router`), saved and
    /// restored with the optimizer's snapshots.
    #[cfg(feature = "router")]
    #[must_use]
    pub fn scorecard(mut self, scorecard: Arc<tuneloop_providers::Scorecard>) -> Self {
        self.scorecard = Some(scorecard);
        self
    }

    /// Continue from a snapshot (learned policies, rollouts, decision counter).
    #[must_use]
    pub fn restore(mut self, snapshot: OptimizerSnapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Checks the configuration and builds the optimizer.
    ///
    /// # Errors
    /// [`Error::NoTaskTypes`], [`Error::DuplicateTaskType`],
    /// [`Error::IncumbentOutOfRange`], [`Error::InvalidSetting`] for a time
    /// to live out of range; a snapshot that does not fit
    /// ([`Error::SnapshotVersion`], [`Error::SnapshotTaskType`],
    /// [`Error::SnapshotMismatch`]); the wrapped errors of invalid
    /// policies, budgets, floors or rollouts.
    pub fn build(self) -> Result<Optimizer> {
        if self.tasks.is_empty() {
            return Err(Error::NoTaskTypes);
        }
        let pending = Pending::new(self.ttl, self.default_reward)?;
        let now = self.clock.now();
        let dim = self.featurizer.dim();
        let budget = self.budget.map(Budget::new).transpose()?;
        let floor = self.floor.map(QualityFloor::new).transpose()?.map(Arc::new);
        let mut tasks = HashMap::new();
        for (name, config) in self.tasks {
            if tasks.contains_key(name.as_str()) {
                return Err(Error::DuplicateTaskType { task_type: name });
            }
            let s = TaskSettings::default();
            let state = TaskState::new(&name, config, dim, s, floor.as_ref(), &self.gates, now)?;
            tasks.insert(Arc::<str>::from(name), state);
        }
        let mut counter = 0;
        if let Some(snapshot) = self.snapshot {
            counter = snapshot.apply(&mut tasks, dim, budget.as_ref())?;
            #[cfg(feature = "router")]
            if let (Some(sc), Some(saved)) = (&self.scorecard, snapshot.scorecard) {
                let entries = serde_json::from_value(saved).map_err(|e| Error::Snapshot {
                    path: "the snapshot".into(),
                    reason: format!("scorecard: {e}"),
                })?;
                sc.import(entries).map_err(|reason| Error::Snapshot {
                    path: "the snapshot".into(),
                    reason: format!("scorecard: {reason}"),
                })?;
            }
        }
        let tasks: HashMap<Arc<str>, Arc<TaskState>> = tasks
            .into_iter()
            .map(|(name, state)| (name, Arc::new(state)))
            .collect();
        if let Some(chain) = &self.provenance {
            for (name, task) in &tasks {
                if let Some(r) = &task.rollout {
                    lock(r).subscribe(provenance_listener(name.clone(), chain.clone()));
                }
            }
        }
        let log = self
            .log
            .map(|sink| LogWriter::spawn(sink, self.log_queue))
            .transpose()
            .map_err(|source| Error::Spawn {
                thread: "decision log writer",
                source,
            })?;
        let seed = self
            .seed
            .unwrap_or_else(|| DecisionId::random().as_u128() as u64);
        Ok(Optimizer {
            inner: Arc::new(Inner {
                tasks,
                featurizer: self.featurizer,
                reward: self.reward,
                clock: self.clock,
                ids: DecisionIds::new(seed, counter),
                pending,
                budget,
                floor,
                log,
                counters: AtomicCounters::default(),
                provenance: self.provenance,
                #[cfg(feature = "router")]
                scorecard: self.scorecard,
            }),
        })
    }
}

/// A rollout listener recording `task_type`'s events in `chain`.
fn provenance_listener(task_type: Arc<str>, chain: Arc<Mutex<Provenance>>) -> Listener {
    Arc::new(move |event: &RolloutEvent| {
        let (actor, reason, at, approval) = match event {
            RolloutEvent::Promoted { from, to, at } => (
                "rollout",
                format!("promoted from {from} to {to}"),
                *at,
                None,
            ),
            RolloutEvent::RolledBack {
                from,
                to,
                at,
                breach,
            } => (
                "slo monitor",
                format!(
                    "rolled back from {from} to {to} on a {:?} breach",
                    breach.metric
                ),
                *at,
                None,
            ),
            RolloutEvent::RolledBackByOperator {
                from,
                to,
                reason,
                at,
            } => (
                "operator",
                format!("rolled back from {from} to {to}: {reason}"),
                *at,
                None,
            ),
            RolloutEvent::AwaitingApproval { phase, at } => {
                ("rollout", format!("{phase} awaits approval"), *at, None)
            }
            RolloutEvent::Approved {
                phase,
                approver,
                at,
            } => (
                "operator",
                format!("approved leaving {phase}"),
                *at,
                Some(Approval {
                    approver: approver.clone(),
                    at: *at,
                }),
            ),
            RolloutEvent::Held { reason, at } => ("operator", format!("held: {reason}"), *at, None),
            RolloutEvent::Resumed { at } => ("operator", "resumed".to_owned(), *at, None),
            RolloutEvent::Verdict(v) => ("rollout proof", v.to_string(), v.at, None),
            RolloutEvent::Followed {
                from,
                to,
                held,
                generation,
                leader,
                at,
            } => (
                "fleet leader",
                format!(
                    "{from} → {to}{} as decided by {leader} (decision {generation})",
                    if *held { ", held" } else { "" }
                ),
                *at,
                None,
            ),
        };
        let change = Change {
            actor: actor.to_owned(),
            kind: ChangeKind::Rollout,
            reason,
            version: task_type.to_string(),
            approval,
            details: serde_json::json!({ "task_type": &*task_type, "event": event }),
        };
        if let Err(e) = lock(&chain).record(change, at) {
            tracing::error!(task_type = &*task_type, error = %e, "rollout change not recorded in the provenance chain");
        }
    })
}
