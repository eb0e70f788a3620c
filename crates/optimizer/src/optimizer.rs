//! The [`Optimizer`]: `recommend_parameters` before a call, `record_outcome`
//! after it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_bandit::{Fixed, PolicyConfig};
use tuneloop_core::{
    ArmId, ArmSet, Clock, DecisionId, DefaultFeaturizer, Features, Featurizer, ParameterSet,
    Policy, PolicySnapshot, RewardFunction, RiskTier, SelectionKey, SystemClock, TaskFeatures,
    TaskOutcome,
};
use tuneloop_counterfactual::{DecisionLog, LoggedDecision};
use tuneloop_gates::{
    Budget, BudgetConfig, BudgetGate, Constraints, Exclusion, GateChain, GateContext, QualityFloor,
    QualityFloorConfig, TrustRegion,
};
use tuneloop_rollout::{Cohort, Observation, Phase, RolloutConfig, RolloutEvent, RolloutManager};

use crate::error::{Error, Result};
use crate::writer::LogWriter;

/// Version of [`OptimizerSnapshot`]'s format.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// How one task type is optimized.
#[derive(Debug, Clone)]
pub struct TaskTypeConfig {
    arms: ArmSet,
    incumbent: usize,
    policy: PolicyConfig,
    constraints: Constraints,
    trust_region: Option<TrustRegion>,
    rollout: Option<RolloutConfig>,
}

impl TaskTypeConfig {
    /// A task type choosing among `arms`, with arm 0 as the incumbent, a
    /// shared-parameter LinUCB learner, no constraints, no trust region and
    /// no rollout (the learner serves everything).
    pub fn new(arms: ArmSet) -> Self {
        TaskTypeConfig {
            arms,
            incumbent: 0,
            policy: PolicyConfig::LinucbShared(tuneloop_bandit::LinUcbParams::default()),
            constraints: Constraints::default(),
            trust_region: None,
            rollout: None,
        }
    }
    /// The arm in use today (the baseline of a rollout, the fallback of the gates).
    #[must_use]
    pub fn incumbent(mut self, arm: usize) -> Self {
        self.incumbent = arm;
        self
    }
    /// The learner.
    #[must_use]
    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }
    /// Hard rules.
    #[must_use]
    pub fn constraints(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }
    /// A trust region around the incumbent.
    #[must_use]
    pub fn trust_region(mut self, region: TrustRegion) -> Self {
        self.trust_region = Some(region);
        self
    }
    /// Roll the learner out against the incumbent in stages.
    #[must_use]
    pub fn rollout(mut self, rollout: RolloutConfig) -> Self {
        self.rollout = Some(rollout);
        self
    }
}

/// Per-request options of [`Optimizer::recommend_parameters`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Key of the user or request for sticky rollout cohorts (default: the
    /// decision id, i.e. per request).
    pub key: Option<&'a str>,
    /// Extra hard rules for this request only.
    pub constraints: Option<&'a Constraints>,
}

/// What to call the model with, and what to report back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Pass it to [`Optimizer::record_outcome`].
    pub decision_id: DecisionId,
    /// The parameters to apply.
    pub params: ParameterSet,
    /// Index of the chosen arm.
    pub arm: usize,
    /// Stable id of the chosen arm.
    pub arm_id: ArmId,
    /// Probability with which it was chosen (logged).
    pub propensity: f64,
    /// Whether that probability is an estimate.
    pub propensity_estimated: bool,
    /// Which policy's choice was applied.
    pub cohort: Cohort,
    /// Rollout phase, if a rollout runs.
    pub phase: Option<Phase>,
    /// In shadow: the learner's choice (logged, not applied).
    pub shadow_arm: Option<usize>,
    /// Version of the policy that chose.
    pub policy_version: u64,
    /// Arms the gates excluded, and why.
    pub reasons: Vec<Exclusion>,
    /// True when every arm was gated and the incumbent was used.
    pub fell_back_to_incumbent: bool,
}

/// What recording an outcome did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// The reward computed from the outcome.
    pub reward: f64,
    /// Rollout events it caused (promotion, rollback).
    pub events: Vec<RolloutEvent>,
}

/// Counters a user can read or export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Recommendations made.
    pub recommendations: u64,
    /// Outcomes recorded.
    pub outcomes: u64,
    /// Decisions that expired without an outcome.
    pub expired: u64,
    /// Arms excluded by gates, summed over decisions.
    pub gate_exclusions: u64,
    /// Decisions that fell back to the incumbent.
    pub fallbacks: u64,
    /// Rollout promotions.
    pub promotions: u64,
    /// Rollout rollbacks.
    pub rollbacks: u64,
    /// Log records dropped because the queue was full.
    pub log_dropped: u64,
    /// Log records the sink failed to write.
    pub log_failed: u64,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    recommendations: AtomicU64,
    outcomes: AtomicU64,
    expired: AtomicU64,
    gate_exclusions: AtomicU64,
    fallbacks: AtomicU64,
    promotions: AtomicU64,
    rollbacks: AtomicU64,
}

#[derive(Debug)]
struct TaskState {
    arms: ArmSet,
    incumbent: usize,
    learner: RwLock<Box<dyn Policy>>,
    baseline: Fixed,
    gates: GateChain,
    rollout: Option<Mutex<RolloutManager>>,
}

#[derive(Debug, Clone)]
struct Pending {
    task_type: Arc<str>,
    context: Features,
    arm: usize,
    propensity: f64,
    propensity_estimated: bool,
    cohort: Cohort,
    phase: Option<Phase>,
    policy_kind: &'static str,
    policy_version: u64,
    eligible: Vec<usize>,
    created: DateTime<Utc>,
    reserved: bool,
}

const SHARDS: usize = 16;

/// The facade: thread-safe (`Clone` shares one optimizer), no I/O on the
/// hot path, usable from sync and async code alike (every method returns
/// quickly; none blocks on I/O).
///
/// ```
/// use tuneloop::{Optimizer, Request, TaskTypeConfig};
/// use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
/// let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.5, 1.0]).build()?;
/// let opt = Optimizer::builder().task_type("code", TaskTypeConfig::new(arms)).seed(7).build()?;
/// let rec = opt.recommend_parameters("code", &TaskFeatures::default(), &Request::default())?;
/// // ... call the model with rec.params ...
/// let done = opt.record_outcome(rec.decision_id, &TaskOutcome::success(0.9, 700.0))?;
/// assert!(done.reward > 0.0);
/// # Ok::<(), tuneloop::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Optimizer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tasks: HashMap<Arc<str>, TaskState>,
    featurizer: Box<dyn Featurizer>,
    reward: RewardFunction,
    seed: u64,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    default_reward: f64,
    counter: AtomicU64,
    pending: [Mutex<HashMap<DecisionId, Pending>>; SHARDS],
    budget: Option<Arc<Budget>>,
    floor: Option<Arc<QualityFloor>>,
    log: Option<LogWriter>,
    counters: AtomicCounters,
    runtime: Option<Arc<crate::runtime::RuntimeConfigStore>>,
    scorecard: Option<Arc<tuneloop_providers::Scorecard>>,
}

/// Builds an [`Optimizer`].
#[derive(Debug)]
pub struct OptimizerBuilder {
    tasks: Vec<(String, TaskTypeConfig)>,
    featurizer: Box<dyn Featurizer>,
    reward: RewardFunction,
    seed: Option<u64>,
    clock: Arc<dyn Clock>,
    ttl_seconds: i64,
    default_reward: f64,
    budget: Option<BudgetConfig>,
    floor: Option<QualityFloorConfig>,
    log: Option<Arc<dyn DecisionLog>>,
    log_queue: usize,
    snapshot: Option<OptimizerSnapshot>,
    runtime: Option<Arc<crate::runtime::RuntimeConfigStore>>,
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
            ttl_seconds: 3_600,
            default_reward: 0.0,
            budget: None,
            floor: None,
            log: None,
            log_queue: 65_536,
            snapshot: None,
            runtime: None,
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
    /// Turns [`TaskFeatures`] into contexts.
    #[must_use]
    pub fn featurizer(mut self, f: Box<dyn Featurizer>) -> Self {
        self.featurizer = f;
        self
    }
    /// Turns outcomes into rewards.
    #[must_use]
    pub fn reward(mut self, r: RewardFunction) -> Self {
        self.reward = r;
        self
    }
    /// Seed of every random choice (and of decision ids): same seed, same
    /// decisions.
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
    /// How long a decision waits for its outcome, and the reward logged for
    /// it when none comes.
    #[must_use]
    pub fn decision_ttl(mut self, seconds: i64, default_reward: f64) -> Self {
        self.ttl_seconds = seconds;
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
    /// The runtime configuration the optimizer (and its caller) read: the
    /// incumbent's exploration floor is its `exploration_rate` at build.
    #[must_use]
    pub fn runtime_config(mut self, store: Arc<crate::runtime::RuntimeConfigStore>) -> Self {
        self.runtime = Some(store);
        self
    }

    /// The providers' scorecard (shared with the `Router`), saved and
    /// restored with the optimizer's snapshots.
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
    /// [`Error::Config`] for no task type, a duplicate one, an incumbent out
    /// of range, a featurizer and snapshot that do not fit; the wrapped
    /// errors of invalid policies, budgets, floors or rollouts.
    pub fn build(self) -> Result<Optimizer> {
        if self.tasks.is_empty() {
            return Err(Error::Config("no task type configured".into()));
        }
        if !(self.default_reward.is_finite() && self.ttl_seconds > 0) {
            return Err(Error::Config(
                "decision_ttl needs seconds > 0 and a finite default reward".into(),
            ));
        }
        let now = self.clock.now();
        let dim = self.featurizer.dim();
        let budget = self.budget.map(Budget::new).transpose()?.map(Arc::new);
        let floor = self.floor.map(QualityFloor::new).transpose()?.map(Arc::new);
        let mut tasks = HashMap::new();
        for (name, cfg) in self.tasks {
            if tasks.contains_key(name.as_str()) {
                return Err(Error::Config(format!(
                    "task type `{name}` configured twice"
                )));
            }
            cfg.constraints.check()?;
            if cfg.incumbent >= cfg.arms.len() {
                return Err(Error::Config(format!(
                    "task type `{name}`: incumbent {} is not among its {} arms",
                    cfg.incumbent,
                    cfg.arms.len()
                )));
            }
            let mut gates = GateChain::new().with(cfg.constraints.clone());
            if let Some(b) = &budget {
                gates = gates.with(BudgetGate::new(b.clone()));
            }
            if let Some(t) = cfg.trust_region.clone() {
                t.check()?;
                gates = gates.with(t);
            }
            if let Some(f) = &floor {
                gates = gates.with(f.clone());
            }
            let learner = cfg.policy.build_for_arms(&cfg.arms, dim)?;
            let floor = self
                .runtime
                .as_ref()
                .map_or(0.02, |r| r.get().exploration_rate);
            let baseline = Fixed::new(cfg.incumbent, cfg.arms.len(), dim, floor)?;
            let rollout = cfg
                .rollout
                .map(|r| RolloutManager::new(r, now))
                .transpose()?
                .map(Mutex::new);
            tasks.insert(
                Arc::<str>::from(name.as_str()),
                TaskState {
                    arms: cfg.arms,
                    incumbent: cfg.incumbent,
                    learner: RwLock::new(learner),
                    baseline,
                    gates,
                    rollout,
                },
            );
        }
        let mut counter = 0;
        if let Some(snap) = self.snapshot {
            if snap.schema_version != SNAPSHOT_SCHEMA_VERSION {
                return Err(Error::Config(format!(
                    "snapshot schema version {} is not supported",
                    snap.schema_version
                )));
            }
            counter = snap.decision_counter;
            if let (Some(b), Some(saved)) = (&budget, &snap.budget) {
                b.restore(saved)?;
            }
            if let (Some(sc), Some(saved)) = (&self.scorecard, snap.scorecard.clone()) {
                sc.import(saved);
            }
            for (name, t) in snap.task_types {
                let state = tasks.get_mut(name.as_str()).ok_or_else(|| {
                    Error::Config(format!(
                        "snapshot has task type `{name}` the optimizer lacks"
                    ))
                })?;
                let learner = tuneloop_bandit::restore(&t.learner)?;
                if learner.num_arms() != state.arms.len() || learner.context_dim() != dim {
                    return Err(Error::Config(format!(
                        "snapshot of `{name}` does not fit its arms or featurizer"
                    )));
                }
                state.learner = RwLock::new(learner);
                if let (Some(r), Some(slot)) = (t.rollout, state.rollout.as_mut()) {
                    *slot = Mutex::new(r);
                }
            }
        }
        let log = self
            .log
            .map(|sink| LogWriter::spawn(sink, self.log_queue))
            .transpose()
            .map_err(|e| Error::Config(format!("cannot start the log writer: {e}")))?;
        Ok(Optimizer {
            inner: Arc::new(Inner {
                tasks,
                featurizer: self.featurizer,
                reward: self.reward,
                seed: self
                    .seed
                    .unwrap_or_else(|| DecisionId::random().as_u128() as u64),
                clock: self.clock,
                ttl: Duration::seconds(self.ttl_seconds),
                default_reward: self.default_reward,
                counter: AtomicU64::new(counter),
                pending: Default::default(),
                budget,
                floor,
                log,
                counters: AtomicCounters::default(),
                runtime: self.runtime,
                scorecard: self.scorecard,
            }),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Optimizer {
    fn task(&self, name: &str) -> Result<(&Arc<str>, &TaskState)> {
        self.inner
            .tasks
            .get_key_value(name)
            .ok_or_else(|| Error::UnknownTaskType(name.to_owned()))
    }

    fn shard(&self, id: DecisionId) -> &Mutex<HashMap<DecisionId, Pending>> {
        &self.inner.pending[(id.as_u128() % SHARDS as u128) as usize]
    }

    /// Parameters for the next call of `task_type` on a task described by
    /// `features`.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`]; gate errors (nothing eligible, a budget
    /// reservation refused); featurizer errors.
    pub fn recommend_parameters(
        &self,
        task_type: &str,
        features: &TaskFeatures,
        request: &Request<'_>,
    ) -> Result<Recommendation> {
        let x = self.inner.featurizer.featurize(features)?;
        self.recommend_with_context(
            task_type,
            x,
            features.risk_tier,
            features.prompt_tokens,
            request,
        )
    }

    /// As [`recommend_parameters`](Self::recommend_parameters), for a
    /// context the caller featurized (of the featurizer's dimension).
    ///
    /// # Errors
    /// As [`recommend_parameters`](Self::recommend_parameters), and
    /// [`Error::Core`] for a context of the wrong dimension.
    pub fn recommend_with_context(
        &self,
        task_type: &str,
        x: Features,
        risk_tier: RiskTier,
        prompt_tokens: u64,
        request: &Request<'_>,
    ) -> Result<Recommendation> {
        let _span = tracing::debug_span!("recommend_parameters", task_type).entered();
        let inner = &*self.inner;
        let (name, task) = self.task(task_type)?;
        x.expect_dim(inner.featurizer.dim())?;
        let now = inner.clock.now();
        let n = inner.counter.fetch_add(1, Ordering::Relaxed);
        let decision_id = DecisionId::from_u128((u128::from(inner.seed) << 64) | u128::from(n));
        if n % 4096 == 4095 {
            self.sweep_expired();
        }
        let (phase, cohort, shadow) = match &task.rollout {
            Some(r) => {
                let r = lock(r);
                let a = match request.key {
                    Some(key) => r.assign(key),
                    None => r.assign(&decision_id.to_string()),
                };
                (Some(a.phase), a.cohort, a.shadow)
            }
            None => (None, Cohort::Candidate, false),
        };
        let ctx = GateContext {
            task_type,
            risk_tier,
            incumbent: Some(task.incumbent),
            prompt_tokens,
            now,
        };
        let all = task.arms.all_indices();
        let mut eligibility = task.gates.evaluate(&ctx, &task.arms, &all)?;
        if let Some(extra) = request.constraints {
            let chain = GateChain::new().with(extra.clone());
            let more = chain.evaluate(&ctx, &task.arms, &eligibility.eligible)?;
            eligibility.excluded.extend(more.excluded);
            eligibility.eligible = more.eligible;
        }
        let key = SelectionKey::new(inner.seed, decision_id);
        let learner = task.learner.read().unwrap_or_else(PoisonError::into_inner);
        let learned = learner.select(&x, &eligibility.eligible, &key)?;
        let learner_version = learner.version();
        let learner_kind = learner.kind();
        drop(learner);
        let (selection, applied_cohort, shadow_arm, kind, version) =
            if cohort == Cohort::Candidate && !shadow {
                (
                    learned,
                    Cohort::Candidate,
                    None,
                    learner_kind,
                    learner_version,
                )
            } else {
                let b = task.baseline.select(&x, &eligibility.eligible, &key)?;
                (
                    b,
                    Cohort::Baseline,
                    shadow.then_some(learned.arm),
                    "fixed",
                    0,
                )
            };
        let arm = task.arms.arm(selection.arm)?;
        let mut reserved = false;
        if let Some(b) = &inner.budget {
            let (tokens, cost) = b.estimate(&arm.params, prompt_tokens)?;
            b.reserve(decision_id, tokens, cost, now)?;
            reserved = true;
        }
        let c = &inner.counters;
        c.recommendations.fetch_add(1, Ordering::Relaxed);
        c.gate_exclusions
            .fetch_add(eligibility.excluded.len() as u64, Ordering::Relaxed);
        if eligibility.fell_back_to_incumbent {
            c.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(task_type, "every arm gated: incumbent used");
        }
        tracing::trace!(task_type, %decision_id, arm = selection.arm, propensity = selection.propensity, "recommendation");
        lock(self.shard(decision_id)).insert(
            decision_id,
            Pending {
                task_type: name.clone(),
                context: x,
                arm: selection.arm,
                propensity: selection.propensity,
                propensity_estimated: selection.propensity_estimated,
                cohort: applied_cohort,
                phase,
                policy_kind: kind,
                policy_version: version,
                eligible: eligibility.eligible.clone(),
                created: now,
                reserved,
            },
        );
        Ok(Recommendation {
            decision_id,
            params: arm.params.clone(),
            arm: selection.arm,
            arm_id: arm.id,
            propensity: selection.propensity,
            propensity_estimated: selection.propensity_estimated,
            cohort: applied_cohort,
            phase,
            shadow_arm,
            policy_version: version,
            reasons: eligibility.excluded,
            fell_back_to_incumbent: eligibility.fell_back_to_incumbent,
        })
    }

    /// Records what the call of `decision_id` produced: the reward updates
    /// the learner, commits the budget, feeds the quality floor and the SLO
    /// monitor (which may promote or roll back), and the joined record is
    /// logged.
    ///
    /// # Errors
    /// [`Error::UnknownDecision`] (never made, or already recorded),
    /// [`Error::Expired`], an invalid outcome; on error nothing changes
    /// (an expired decision is left for the expiry sweep, which logs it
    /// with the default reward).
    pub fn record_outcome(
        &self,
        decision_id: DecisionId,
        outcome: &TaskOutcome,
    ) -> Result<Recorded> {
        let _span = tracing::debug_span!("record_outcome", %decision_id).entered();
        let inner = &*self.inner;
        let now = inner.clock.now();
        let reward = inner.reward.reward(outcome)?;
        let pending = {
            let mut shard = lock(self.shard(decision_id));
            let p = shard
                .get(&decision_id)
                .ok_or(Error::UnknownDecision(decision_id))?;
            if now > p.created + inner.ttl {
                return Err(Error::Expired(decision_id));
            }
            shard
                .remove(&decision_id)
                .ok_or(Error::UnknownDecision(decision_id))?
        };
        let (_, task) = self.task(&pending.task_type)?;
        let arm = task.arms.arm(pending.arm)?;
        task.learner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .update(&pending.context, pending.arm, reward)?;
        if let (Some(b), true) = (&inner.budget, pending.reserved) {
            // The reservation may have expired meanwhile; the spend is
            // recorded either way as far as the budget still knows it.
            let _ = b.commit(decision_id, outcome.total_tokens(), outcome.cost_usd, now);
        }
        if let Some(f) = &inner.floor {
            f.observe(&pending.task_type, arm.id, outcome.quality)?;
        }
        let mut events = Vec::new();
        if let Some(r) = &task.rollout {
            let o = Observation {
                latency_ms: outcome.latency_ms,
                quality: outcome.quality,
                error: !outcome.success,
            };
            events = lock(r).observe(pending.cohort, o, now)?;
            for e in &events {
                match e {
                    RolloutEvent::Promoted { from, to, .. } => {
                        inner.counters.promotions.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            task_type = &*pending.task_type,
                            ?from,
                            ?to,
                            "rollout promoted"
                        );
                    }
                    RolloutEvent::RolledBack {
                        from, to, breach, ..
                    } => {
                        inner.counters.rollbacks.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(task_type = &*pending.task_type, ?from, ?to, metric = ?breach.metric, "rollout rolled back");
                    }
                    _ => {}
                }
            }
        }
        inner.counters.outcomes.fetch_add(1, Ordering::Relaxed);
        self.log(
            decision_id,
            &pending,
            task,
            Some(outcome.clone()),
            reward,
            false,
        );
        Ok(Recorded { reward, events })
    }

    fn log(
        &self,
        id: DecisionId,
        p: &Pending,
        task: &TaskState,
        outcome: Option<TaskOutcome>,
        reward: f64,
        defaulted: bool,
    ) {
        let Some(log) = &self.inner.log else { return };
        let Some(arm) = task.arms.get(p.arm) else {
            return;
        };
        log.send(LoggedDecision {
            schema_version: tuneloop_counterfactual::log::LOG_SCHEMA_VERSION,
            decision_id: id,
            request_id: None,
            task_type: p.task_type.to_string(),
            model: arm.params.model().to_owned(),
            context_fingerprint: format!("{:016x}", p.context.fingerprint()),
            context: p.context.as_slice().to_vec(),
            eligible: p.eligible.clone(),
            eligible_ids: p
                .eligible
                .iter()
                .filter_map(|&a| task.arms.get(a).map(|a| a.id))
                .collect(),
            arm: p.arm,
            arm_id: arm.id,
            params: arm.params.clone(),
            propensity: p.propensity,
            propensity_estimated: p.propensity_estimated,
            policy_kind: p.policy_kind.to_owned(),
            policy_version: p.policy_version,
            cohort: Some(match p.cohort {
                Cohort::Baseline => "baseline".to_owned(),
                Cohort::Candidate => "candidate".to_owned(),
            }),
            phase: p.phase.map(|ph| {
                match ph {
                    Phase::Shadow => "shadow",
                    Phase::Canary => "canary",
                    Phase::Guarded => "guarded",
                    Phase::General => "general",
                }
                .to_owned()
            }),
            timestamp: p.created,
            outcome,
            reward: Some(reward),
            reward_defaulted: defaulted,
        });
    }

    /// Logs every decision whose time to live has passed with the default
    /// reward (marked as such), releases its budget reservation, and
    /// forgets it. Called now and then by `recommend_parameters`; call it
    /// yourself on a timer if traffic is sparse. Returns how many expired.
    pub fn sweep_expired(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut expired = Vec::new();
        for shard in &inner.pending {
            let mut s = lock(shard);
            let ids: Vec<DecisionId> = s
                .iter()
                .filter(|(_, p)| now > p.created + inner.ttl)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(p) = s.remove(&id) {
                    expired.push((id, p));
                }
            }
        }
        for (id, p) in &expired {
            if let (Some(b), true) = (&inner.budget, p.reserved) {
                let _ = b.release(*id, now);
            }
            if let Ok((_, task)) = self.task(&p.task_type) {
                self.log(*id, p, task, None, inner.default_reward, true);
            }
        }
        inner
            .counters
            .expired
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// Records a decision made outside the optimizer (by another system,
    /// with its own propensity): the learner learns from it and it is
    /// logged. `features` are featurized as for a recommendation.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::Config`] for an arm id not in
    /// the task type's arms or a propensity outside `(0, 1]`, an invalid
    /// outcome.
    pub fn record_external(
        &self,
        task_type: &str,
        features: &TaskFeatures,
        arm_id: ArmId,
        propensity: f64,
        outcome: &TaskOutcome,
    ) -> Result<Recorded> {
        let inner = &*self.inner;
        let (name, task) = self.task(task_type)?;
        if !(propensity.is_finite() && propensity > 0.0 && propensity <= 1.0) {
            return Err(Error::Config(format!(
                "propensity {propensity} is not in (0, 1]"
            )));
        }
        let arm = task
            .arms
            .index_of(arm_id)
            .ok_or_else(|| Error::Config(format!("arm {arm_id} is not an arm of `{task_type}`")))?;
        let reward = inner.reward.reward(outcome)?;
        let x = inner.featurizer.featurize(features)?;
        task.learner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .update(&x, arm, reward)?;
        let n = inner.counter.fetch_add(1, Ordering::Relaxed);
        let id = DecisionId::from_u128((u128::from(inner.seed) << 64) | u128::from(n));
        let p = Pending {
            task_type: name.clone(),
            context: x,
            arm,
            propensity,
            propensity_estimated: false,
            cohort: Cohort::Baseline,
            phase: None,
            policy_kind: "external",
            policy_version: 0,
            eligible: task.arms.all_indices(),
            created: inner.clock.now(),
            reserved: false,
        };
        inner.counters.outcomes.fetch_add(1, Ordering::Relaxed);
        self.log(id, &p, task, Some(outcome.clone()), reward, false);
        Ok(Recorded {
            reward,
            events: Vec::new(),
        })
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        let c = &self.inner.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            recommendations: r(&c.recommendations),
            outcomes: r(&c.outcomes),
            expired: r(&c.expired),
            gate_exclusions: r(&c.gate_exclusions),
            fallbacks: r(&c.fallbacks),
            promotions: r(&c.promotions),
            rollbacks: r(&c.rollbacks),
            log_dropped: self
                .inner
                .log
                .as_ref()
                .map_or(0, |l| l.dropped.load(Ordering::Relaxed)),
            log_failed: self
                .inner
                .log
                .as_ref()
                .map_or(0, |l| l.failed.load(Ordering::Relaxed)),
        }
    }

    /// The runtime configuration store, if one was given.
    pub fn runtime_config(&self) -> Option<&Arc<crate::runtime::RuntimeConfigStore>> {
        self.inner.runtime.as_ref()
    }

    /// Decisions waiting for their outcome.
    pub fn pending(&self) -> usize {
        self.inner.pending.iter().map(|s| lock(s).len()).sum()
    }

    /// The rollout phase of a task type, if it has a rollout.
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`].
    pub fn phase(&self, task_type: &str) -> Result<Option<Phase>> {
        Ok(self
            .task(task_type)?
            .1
            .rollout
            .as_ref()
            .map(|r| lock(r).phase()))
    }

    /// Resumes a held rollout (after a rollback, with a fixed candidate).
    ///
    /// # Errors
    /// [`Error::UnknownTaskType`], [`Error::Config`] without a rollout.
    pub fn resume_rollout(&self, task_type: &str) -> Result<RolloutEvent> {
        let r = self
            .task(task_type)?
            .1
            .rollout
            .as_ref()
            .ok_or_else(|| Error::Config(format!("`{task_type}` has no rollout")))?;
        Ok(lock(r).resume(self.inner.clock.now()))
    }

    /// Every learned state: learners, rollouts, budget spend, the
    /// providers' scorecard, the decision counter.
    /// Pending decisions are not included (their outcomes after a restart
    /// are refused as unknown).
    ///
    /// # Errors
    /// [`Error::Core`] if a policy cannot be serialized.
    pub fn snapshot(&self) -> Result<OptimizerSnapshot> {
        let mut task_types = BTreeMap::new();
        for (name, t) in &self.inner.tasks {
            let learner = t
                .learner
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .snapshot()?;
            let rollout = match &t.rollout {
                Some(r) => {
                    let json = serde_json::to_value(&*lock(r))
                        .map_err(|e| Error::Config(e.to_string()))?;
                    Some(serde_json::from_value(json).map_err(|e| Error::Config(e.to_string()))?)
                }
                None => None,
            };
            task_types.insert(name.to_string(), TaskSnapshot { learner, rollout });
        }
        Ok(OptimizerSnapshot {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            decision_counter: self.inner.counter.load(Ordering::Relaxed),
            task_types,
            budget: self.inner.budget.as_ref().map(|b| b.snapshot()),
            scorecard: self.inner.scorecard.as_ref().map(|s| s.export()),
        })
    }

    /// Writes a snapshot atomically: to a temporary file beside `path`,
    /// fsynced, then renamed over it, so a crash leaves the old snapshot or
    /// the new one, never half of one.
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn save_snapshot(&self, path: &Path) -> Result<()> {
        let snap = self.snapshot()?;
        let bad = |reason: String| Error::Snapshot {
            path: path.display().to_string(),
            reason,
        };
        let json = serde_json::to_vec(&snap).map_err(|e| bad(e.to_string()))?;
        tuneloop_core::fs::write_atomic(path, &json).map_err(|e| bad(e.to_string()))?;
        Ok(())
    }
}

/// Everything an optimizer learned, as versioned JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct OptimizerSnapshot {
    /// Format version ([`SNAPSHOT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Decisions made so far (decision ids continue from it).
    pub decision_counter: u64,
    /// Per task type.
    pub task_types: BTreeMap<String, TaskSnapshot>,
    /// The budget's spend, if a budget is configured.
    #[serde(default)]
    pub budget: Option<tuneloop_gates::BudgetSnapshot>,
    /// The providers' scorecard, if one is attached.
    #[serde(default)]
    pub scorecard: Option<BTreeMap<String, tuneloop_providers::Entry>>,
}

impl OptimizerSnapshot {
    /// Reads a snapshot file.
    ///
    /// # Errors
    /// [`Error::Snapshot`].
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Snapshot {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))
    }
}

/// One task type's learned state.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The learner.
    pub learner: PolicySnapshot,
    /// The rollout, if any.
    pub rollout: Option<RolloutManager>,
}
