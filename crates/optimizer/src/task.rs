//! A task type: how it is configured ([`TaskTypeConfig`]) and what the
//! optimizer keeps for it while it runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use tuneloop_bandit::{Fixed, LinUcbParams, PolicyConfig};
use tuneloop_core::{ArmSet, Features, Policy, SufficientStatistics};
use tuneloop_gates::{Constraints, Gate, GateChain, QualityFloor, TrustRegion};
use tuneloop_rollout::{RolloutConfig, RolloutManager};

use crate::error::{Error, Result};
use crate::learned::ArmTally;
use crate::optimizer::lock;
use crate::settings::{LiveTask, TaskSettings};

/// How one task type is optimized.
#[derive(Debug, Clone)]
pub struct TaskTypeConfig {
    arms: ArmSet,
    incumbent: usize,
    policy: PolicyConfig,
    constraints: Constraints,
    trust_region: Option<TrustRegion>,
    rollout: Option<RolloutConfig>,
    gates: Vec<Arc<dyn Gate>>,
    prompts: BTreeMap<String, Arc<str>>,
}

impl TaskTypeConfig {
    /// A task type choosing among `arms`, with arm 0 as the incumbent, a
    /// shared-parameter LinUCB learner, no constraints, no trust region and
    /// no rollout (the learner serves everything).
    pub fn new(arms: ArmSet) -> Self {
        TaskTypeConfig {
            arms,
            incumbent: 0,
            policy: PolicyConfig::LinucbShared(LinUcbParams::default()),
            constraints: Constraints::default(),
            trust_region: None,
            rollout: None,
            gates: Vec::new(),
            prompts: BTreeMap::new(),
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
    /// A gate of one's own for this task type, applied after the built-in
    /// ones and the optimizer's own gates
    /// ([`OptimizerBuilder::gate`](crate::OptimizerBuilder::gate)); see
    /// [`Optimizer::recommend_parameters`](crate::Optimizer::recommend_parameters)
    /// for the whole order. A hard gate (`is_hard`) is never crossed; a
    /// soft one yields to the incumbent when nothing else is eligible.
    #[must_use]
    pub fn gate(mut self, gate: impl Gate + 'static) -> Self {
        self.gates.push(Arc::new(gate));
        self
    }
    /// The prompt that the prompt variant `variant` stands for: a decision
    /// whose arm names the variant carries it
    /// ([`Decision::prompt`](crate::Decision::prompt)). Every variant the
    /// arms name needs one, or [`build`](crate::OptimizerBuilder::build)
    /// refuses the task type ([`Error::PromptMissing`]), so a misspelt
    /// variant is found when the optimizer is built, not by a model that
    /// never gets its prompt. Registering a variant again replaces its
    /// prompt.
    #[must_use]
    pub fn prompt(mut self, variant: impl Into<String>, prompt: impl Into<String>) -> Self {
        self.prompts
            .insert(variant.into(), Arc::from(prompt.into().into_boxed_str()));
        self
    }
    /// Roll the learner out against the incumbent in stages.
    #[must_use]
    pub fn rollout(mut self, rollout: RolloutConfig) -> Self {
        self.rollout = Some(rollout);
        self
    }
}

/// What a task type's learner has exchanged with its fleet so far.
#[derive(Debug, Default)]
pub(crate) struct FleetLearning {
    pub(crate) state: Mutex<Exchanged>,
}

#[derive(Debug, Default)]
pub(crate) struct Exchanged {
    /// The fleet's state last installed (what the learner had then).
    pub(crate) base: Option<SufficientStatistics>,
    /// Every update this process made, summed.
    pub(crate) contribution: Option<SufficientStatistics>,
    /// Counts finished exchanges, so a stale half is refused.
    pub(crate) generation: u64,
}

/// What the optimizer keeps for one task type.
#[derive(Debug)]
pub(crate) struct TaskState {
    pub(crate) arms: ArmSet,
    pub(crate) incumbent: usize,
    pub(crate) learner: RwLock<Box<dyn Policy>>,
    /// The incumbent with an exploration floor: the baseline cohort's policy.
    pub(crate) baseline: Fixed,
    /// Constraints, trust region, quality floor. The budget is not in the
    /// chain: it is held for each decision (see `decide`).
    pub(crate) gates: GateChain,
    pub(crate) rollout: Option<Mutex<RolloutManager>>,
    /// The runtime configuration's settings for this task type.
    pub(crate) live: Arc<LiveTask>,
    /// What the learner exchanged with a fleet.
    pub(crate) fleet: FleetLearning,
    /// Per arm, the rewards the learner learned from.
    pub(crate) tallies: Mutex<Vec<ArmTally>>,
    /// Per arm, the prompt its variant stands for (`None`: no variant).
    pub(crate) prompts: Vec<Option<Arc<str>>>,
    /// Per arm, the tokens and US dollars its recorded outcomes spent
    /// since the optimizer was built.
    pub(crate) spend: Mutex<Vec<(u64, f64)>>,
    /// Per arm, whether a call of it was misapplied (see
    /// [`is_misapplied`](Self::is_misapplied)).
    misapplied: Vec<AtomicBool>,
}

impl TaskState {
    /// Checks `config` and builds the task type's state.
    pub(crate) fn new(
        name: &str,
        config: TaskTypeConfig,
        dim: usize,
        settings: TaskSettings,
        floor: Option<&Arc<QualityFloor>>,
        shared_gates: &[Arc<dyn Gate>],
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let TaskTypeConfig {
            arms,
            incumbent,
            policy,
            constraints,
            trust_region,
            rollout,
            gates: own_gates,
            prompts,
        } = config;
        constraints.check()?;
        let prompts = arm_prompts(name, &arms, &prompts)?;
        if incumbent >= arms.len() {
            return Err(Error::IncumbentOutOfRange {
                task_type: name.to_owned(),
                incumbent,
                arms: arms.len(),
            });
        }
        let mut gates = GateChain::new().with(constraints);
        if let Some(t) = trust_region {
            t.check()?;
            gates = gates.with(t);
        }
        if let Some(f) = floor {
            gates = gates.with(f.clone());
        }
        for g in shared_gates.iter().chain(&own_gates) {
            gates = gates.with(g.clone());
        }
        let learner = policy.build_for_arms(&arms, dim)?;
        let baseline = Fixed::new(incumbent, arms.len(), dim, settings.exploration_rate)?;
        let rollout = rollout
            .map(|r| RolloutManager::new(r, now))
            .transpose()?
            .map(Mutex::new);
        let arms_len = arms.len();
        Ok(TaskState {
            arms,
            incumbent,
            learner: RwLock::new(learner),
            baseline,
            gates,
            rollout,
            live: Arc::new(LiveTask::new(settings)),
            tallies: Mutex::new(vec![ArmTally::default(); arms_len]),
            fleet: FleetLearning::default(),
            misapplied: (0..arms_len).map(|_| AtomicBool::new(false)).collect(),
            spend: Mutex::new(vec![(0, 0.0); arms_len]),
            prompts,
        })
    }
}

/// Per arm, the prompt of its variant; every variant named needs one.
fn arm_prompts(
    task_type: &str,
    arms: &ArmSet,
    prompts: &BTreeMap<String, Arc<str>>,
) -> Result<Vec<Option<Arc<str>>>> {
    arms.iter()
        .map(|arm| {
            let Some(variant) = arm.params.prompt_variant() else {
                return Ok(None);
            };
            prompts
                .get(variant)
                .map(|p| Some(p.clone()))
                .ok_or_else(|| Error::PromptMissing {
                    task_type: task_type.to_owned(),
                    variant: variant.to_owned(),
                    registered: prompts.keys().cloned().collect(),
                })
        })
        .collect()
}

impl TaskState {
    /// Marks `arm` misapplied; true the first time.
    pub(crate) fn mark_misapplied(&self, arm: usize) -> bool {
        self.misapplied
            .get(arm)
            .is_some_and(|w| !w.swap(true, Ordering::Relaxed))
    }

    /// Whether a call of `arm` came back not as the arm says (a longer
    /// answer than its `max_tokens`): the client or the server does not
    /// apply it, so the arm is no longer chosen. Its outcomes are not
    /// learned, so its uncertainty would never shrink and an optimistic
    /// learner would choose it for ever.
    pub(crate) fn is_misapplied(&self, arm: usize) -> bool {
        self.misapplied
            .get(arm)
            .is_some_and(|w| w.load(Ordering::Relaxed))
    }

    /// The learner learns `reward` for `arm` on `x`, and the arm's tally
    /// counts it.
    pub(crate) fn learn(&self, x: &Features, arm: usize, reward: f64) -> Result<()> {
        self.learner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .update(x, arm, reward)?;
        if let Some(t) = lock(&self.tallies).get_mut(arm) {
            t.add(reward);
        }
        Ok(())
    }
}
