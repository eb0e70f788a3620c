//! [`RolloutManager`]: phases, cohort assignment, promotion and rollback.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::hash::StableHasher;

use crate::error::{Error, Result, check};
use tuneloop_core::{Cohort, Phase};

use crate::monitor::{Breach, Observation, SloConfig, SloMonitor};
use crate::proof::{CohortRewards, ProofConfig, ShadowProof, ShadowRound, Verdict};

/// Where a rollback goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// The phase before the current one (default).
    PreviousPhase,
    /// Shadow.
    Shadow,
}

/// Configuration of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Share of requests given the candidate in canary (default 0.05).
    pub canary_fraction: f64,
    /// Share in guarded (default 0.25).
    pub guarded_fraction: f64,
    /// Candidate observations needed in canary before promotion (default 500).
    pub canary_min_samples: u64,
    /// Candidate observations needed in guarded before promotion (default 2,000).
    pub guarded_min_samples: u64,
    /// Baseline observations needed in shadow before promotion (default 1,000).
    pub shadow_min_baseline_samples: u64,
    /// Least time in shadow, canary and guarded (default 5, 10 and 30
    /// minutes; at most [`duration::MAX`](tuneloop_core::duration::MAX)).
    /// In JSON: `min_dwell_seconds`, numbers of seconds.
    #[serde(
        rename = "min_dwell_seconds",
        with = "tuneloop_core::duration::seconds::array"
    )]
    pub min_dwell: [Duration; 3],
    /// Phases whose exit needs a manual approval.
    pub approval_required: Vec<Phase>,
    /// Where a breach sends the rollout (default: the previous phase).
    pub rollback_to: RollbackTarget,
    /// Breach rules.
    pub slo: SloConfig,
    /// What the candidate must prove to leave each phase (see
    /// [`proof`](crate::proof)).
    pub proof: ProofConfig,
    /// Salt of the cohort hash (change it to reshuffle users).
    pub salt: String,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            canary_fraction: 0.05,
            guarded_fraction: 0.25,
            canary_min_samples: 500,
            guarded_min_samples: 2_000,
            shadow_min_baseline_samples: 1_000,
            min_dwell: [300, 600, 1_800].map(Duration::from_secs),
            approval_required: Vec::new(),
            rollback_to: RollbackTarget::PreviousPhase,
            slo: SloConfig::default(),
            proof: ProofConfig::default(),
            salt: "tuneloop".into(),
        }
    }
}

impl RolloutConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn check(&self) -> Result<()> {
        check(
            "canary_fraction",
            self.canary_fraction,
            self.canary_fraction > 0.0 && self.canary_fraction < 1.0,
            "in (0, 1)",
        )?;
        check(
            "guarded_fraction",
            self.guarded_fraction,
            self.guarded_fraction >= self.canary_fraction && self.guarded_fraction < 1.0,
            "in [canary_fraction, 1)",
        )?;
        for d in self.min_dwell {
            check(
                "min_dwell",
                d.as_secs_f64(),
                d <= tuneloop_core::duration::MAX,
                "at most 100 years",
            )?;
        }
        self.proof.check()?;
        self.slo.check()
    }

    fn fraction(&self, phase: Phase) -> f64 {
        match phase {
            Phase::Shadow => 0.0,
            Phase::Canary => self.canary_fraction,
            Phase::Guarded => self.guarded_fraction,
            Phase::General => 1.0,
        }
    }
}

/// Which choice a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The phase.
    pub phase: Phase,
    /// Whose choice is applied.
    pub cohort: Cohort,
    /// In shadow: compute and log the candidate's choice without applying it.
    pub shadow: bool,
}

/// Something that happened to a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RolloutEvent {
    /// Moved forward.
    Promoted {
        /// From.
        from: Phase,
        /// To.
        to: Phase,
        /// When.
        at: DateTime<Utc>,
    },
    /// Moved back on a breach; the rollout is held until resumed.
    RolledBack {
        /// From.
        from: Phase,
        /// To.
        to: Phase,
        /// When.
        at: DateTime<Utc>,
        /// The evidence.
        breach: Box<Breach>,
    },
    /// Ready to move on, waiting for an approval.
    AwaitingApproval {
        /// The phase to leave.
        phase: Phase,
        /// When.
        at: DateTime<Utc>,
    },
    /// Approved by someone.
    Approved {
        /// The phase approved to leave.
        phase: Phase,
        /// Who.
        approver: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Held (no promotion) by request.
    Held {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Resumed.
    Resumed {
        /// When.
        at: DateTime<Utc>,
    },
    /// The candidate was evaluated against the incumbent (a shadow window
    /// closed, or the cohorts of canary or guarded were compared).
    Verdict(Box<Verdict>),
    /// Moved to the phase a fleet's leader decided (this process follows:
    /// see [`RolloutManager::set_follower`]).
    Followed {
        /// From.
        from: Phase,
        /// To.
        to: Phase,
        /// Whether the leader holds the rollout.
        held: bool,
        /// The leader's decision number for this task type.
        generation: u64,
        /// The leader.
        leader: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Moved back by an operator; held until resumed.
    RolledBackByOperator {
        /// From.
        from: Phase,
        /// To.
        to: Phase,
        /// Why, in the operator's words.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// A callback receiving every event. Shared: a clone of the manager
/// notifies the same listeners.
pub type Listener = Arc<dyn Fn(&RolloutEvent) + Send + Sync>;

#[derive(Default, Clone)]
struct Listeners(Vec<Listener>);

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} listeners", self.0.len())
    }
}

/// A staged rollout of a candidate against the baseline.
///
/// Requests are assigned to cohorts by a stable hash of their key, so a
/// user stays in one cohort, and a key in the candidate cohort stays there
/// as the share grows. Promotion needs the phase's minimum candidate
/// observations, its minimum dwell time, no breach, the candidate's
/// [proof](crate::proof) (unless [`ProofConfig::required`] is off: shadow
/// rounds through [`observe_shadow`](Self::observe_shadow), rewards through
/// [`observe_reward`](Self::observe_reward)), and (if configured) an
/// approval. A [`Breach`] from the [`SloMonitor`] rolls back at once and
/// holds. Time comes from the caller (`now`); a clock that goes backwards
/// is treated as standing still.
///
/// ```
/// use chrono::Utc;
/// use tuneloop_rollout::{Phase, RolloutConfig, RolloutManager};
/// let mut r = RolloutManager::new(RolloutConfig::default(), Utc::now())?;
/// assert_eq!(r.phase(), Phase::Shadow);
/// let a = r.assign("user-42");
/// assert!(a.shadow);
/// # Ok::<(), tuneloop_rollout::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutManager {
    config: RolloutConfig,
    phase: Phase,
    entered_at: DateTime<Utc>,
    candidate_at_entry: u64,
    baseline_at_entry: u64,
    held: bool,
    /// Rolled back and not yet resumed: the evidence that caused the
    /// rollback must not cause another one.
    #[serde(default)]
    rolled_back: bool,
    awaiting_approval: bool,
    approved: bool,
    last_now: DateTime<Utc>,
    monitor: SloMonitor,
    /// The off-policy proof of shadow.
    #[serde(default)]
    shadow_proof: ShadowProof,
    /// The on-policy comparison of the current phase.
    #[serde(default)]
    cohort_rewards: CohortRewards,
    /// The current phase's on-policy comparison has passed.
    #[serde(default)]
    on_policy_passed: bool,
    history: Vec<RolloutEvent>,
    #[serde(skip)]
    listeners: Listeners,
    /// A fleet's follower: observations are kept for the status, phases
    /// come from the leader ([`follow`](Self::follow)).
    #[serde(skip)]
    follower: bool,
}

impl RolloutManager {
    /// A rollout starting in shadow at `now`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`].
    pub fn new(config: RolloutConfig, now: DateTime<Utc>) -> Result<Self> {
        config.check()?;
        let monitor = SloMonitor::new(config.slo.clone())?;
        Ok(RolloutManager {
            config,
            phase: Phase::Shadow,
            entered_at: now,
            candidate_at_entry: 0,
            baseline_at_entry: 0,
            held: false,
            rolled_back: false,
            awaiting_approval: false,
            approved: false,
            last_now: now,
            monitor,
            shadow_proof: ShadowProof::default(),
            cohort_rewards: CohortRewards::default(),
            on_policy_passed: false,
            history: Vec::new(),
            listeners: Listeners::default(),
            follower: false,
        })
    }

    /// Makes this manager a fleet's follower (`true`) or its decider
    /// (`false`, the default). A follower keeps the SLO observations (for
    /// its status) but never changes phase by itself: no promotion, no
    /// rollback, no proof; the phase comes from the leader through
    /// [`follow`](Self::follow). A manager that becomes the decider starts
    /// the current phase's proof and comparisons over.
    pub fn set_follower(&mut self, follower: bool) {
        if self.follower && !follower {
            self.shadow_proof.reset_candidate();
            self.cohort_rewards = CohortRewards::default();
            self.on_policy_passed = false;
        }
        self.follower = follower;
    }

    /// Whether it follows a fleet's leader.
    pub fn is_follower(&self) -> bool {
        self.follower
    }

    /// Moves to the phase (and hold) a fleet's leader decided: the event,
    /// or `None` when nothing changes.
    pub fn follow(
        &mut self,
        phase: Phase,
        held: bool,
        generation: u64,
        leader: &str,
        now: DateTime<Utc>,
    ) -> Option<RolloutEvent> {
        if phase == self.phase && held == self.held {
            return None;
        }
        let now = self.clock(now);
        let from = self.phase;
        if phase != from {
            self.enter(phase, now);
        }
        self.held = held;
        Some(self.emit(RolloutEvent::Followed {
            from,
            to: phase,
            held,
            generation,
            leader: leader.to_owned(),
            at: now,
        }))
    }

    /// Its configuration.
    pub fn config(&self) -> &RolloutConfig {
        &self.config
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether promotion is held.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Every event so far.
    pub fn history(&self) -> &[RolloutEvent] {
        &self.history
    }

    /// The SLO monitor.
    pub fn monitor(&self) -> &SloMonitor {
        &self.monitor
    }

    /// Calls `listener` on every future event.
    pub fn subscribe(&mut self, listener: Listener) {
        self.listeners.0.push(listener);
    }

    /// The share of requests in the candidate cohort now.
    pub fn candidate_fraction(&self) -> f64 {
        self.config.fraction(self.phase)
    }

    /// The cohort of the request or user `key` in the current phase.
    pub fn assign(&self, key: &str) -> Assignment {
        let mut h = StableHasher::new();
        h.write_str("tuneloop.cohort.v1");
        h.write_str(&self.config.salt);
        h.write_str(key);
        let u = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        let cohort = if u < self.candidate_fraction() {
            Cohort::Candidate
        } else {
            Cohort::Baseline
        };
        Assignment {
            phase: self.phase,
            cohort,
            shadow: self.phase == Phase::Shadow,
        }
    }

    fn clock(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn emit(&mut self, e: RolloutEvent) -> RolloutEvent {
        for l in &self.listeners.0 {
            l(&e);
        }
        self.history.push(e.clone());
        e
    }

    fn enter(&mut self, phase: Phase, now: DateTime<Utc>) {
        self.phase = phase;
        self.entered_at = now;
        self.candidate_at_entry = self.monitor.observations(Cohort::Candidate);
        self.baseline_at_entry = self.monitor.observations(Cohort::Baseline);
        self.awaiting_approval = false;
        self.approved = false;
        self.cohort_rewards = CohortRewards::default();
        self.on_policy_passed = false;
        if phase == Phase::Shadow {
            // Back in shadow, the candidate proves itself again.
            self.shadow_proof.reset_candidate();
        }
    }

    /// The latest verdict, if any.
    pub fn last_verdict(&self) -> Option<&Verdict> {
        self.history.iter().rev().find_map(|e| match e {
            RolloutEvent::Verdict(v) => Some(&**v),
            _ => None,
        })
    }

    /// Records a shadow round for the off-policy proof; when it closes a
    /// window, returns the verdict (and the promotion it allows). Ignored
    /// outside shadow (a decision made in shadow whose outcome arrives
    /// after the promotion).
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] (nothing is recorded).
    pub fn observe_shadow(
        &mut self,
        round: ShadowRound,
        now: DateTime<Utc>,
    ) -> Result<Vec<RolloutEvent>> {
        round.validate()?;
        if self.phase != Phase::Shadow || self.follower {
            return Ok(Vec::new());
        }
        let now = self.clock(now);
        let mut events = Vec::new();
        // Only a verdict changes what promotion waits for here; samples and
        // dwell time are [`observe`](Self::observe)'s and `tick`'s.
        if let Some(v) = self.shadow_proof.add(&round, &self.config.proof, now) {
            events.push(self.emit(RolloutEvent::Verdict(Box::new(v))));
            events.extend(self.tick(now));
        }
        Ok(events)
    }

    /// Records a request's reward for the on-policy comparison of canary
    /// and guarded (call it before [`observe`](Self::observe) of the same
    /// request). Ignored in shadow and general.
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] for a reward that is not finite.
    pub fn observe_reward(&mut self, cohort: Cohort, reward: f64) -> Result<()> {
        if !reward.is_finite() {
            return Err(Error::InvalidObservation {
                field: "reward",
                value: reward,
                expected: "a finite reward",
            });
        }
        if matches!(self.phase, Phase::Canary | Phase::Guarded) && !self.follower {
            match cohort {
                Cohort::Baseline => self.cohort_rewards.baseline.push(reward),
                Cohort::Candidate => self.cohort_rewards.candidate.push(reward),
            }
        }
        Ok(())
    }

    /// Records a request's observation; may roll back (on a breach) or
    /// promote. Returns the events it caused.
    ///
    /// # Errors
    /// [`Error::InvalidObservation`] (nothing is recorded).
    pub fn observe(
        &mut self,
        cohort: Cohort,
        o: Observation,
        now: DateTime<Utc>,
    ) -> Result<Vec<RolloutEvent>> {
        let now = self.clock(now);
        let monitored = matches!(self.phase, Phase::Canary | Phase::Guarded);
        let breach = self.monitor.observe(cohort, o)?;
        if self.follower {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        if let (Some(breach), true, false) = (breach, monitored, self.rolled_back) {
            let (from, to) = self.roll_back(now);
            events.push(self.emit(RolloutEvent::RolledBack {
                from,
                to,
                at: now,
                breach: Box::new(breach),
            }));
            return Ok(events);
        }
        events.extend(self.tick(now));
        Ok(events)
    }

    /// Promotes if the phase's conditions are met (samples, dwell time,
    /// the proof when required, an approval when configured); returns the
    /// events, the on-policy verdict it made included.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<RolloutEvent> {
        let now = self.clock(now);
        let Some(next) = self.phase.next() else {
            return Vec::new();
        };
        if self.held || self.follower {
            return Vec::new();
        }
        let idx = match self.phase {
            Phase::Shadow => 0,
            Phase::Canary => 1,
            _ => 2,
        };
        // A dwell past the end of time is never over.
        let dwell_ok = tuneloop_core::duration::after(self.entered_at, self.config.min_dwell[idx])
            .is_some_and(|end| now >= end);
        // Saturating: counts from a snapshot file may not add up.
        let cand = self
            .monitor
            .observations(Cohort::Candidate)
            .saturating_sub(self.candidate_at_entry);
        let base = self
            .monitor
            .observations(Cohort::Baseline)
            .saturating_sub(self.baseline_at_entry);
        let samples_ok = match self.phase {
            Phase::Shadow => base >= self.config.shadow_min_baseline_samples,
            Phase::Canary => cand >= self.config.canary_min_samples,
            _ => cand >= self.config.guarded_min_samples,
        };
        if !(dwell_ok && samples_ok) {
            return Vec::new();
        }
        let mut events = Vec::new();
        if self.config.proof.required && !self.proved(now, &mut events) {
            return events;
        }
        if self.config.approval_required.contains(&self.phase) && !self.approved {
            if self.awaiting_approval {
                return Vec::new();
            }
            self.awaiting_approval = true;
            let phase = self.phase;
            events.push(self.emit(RolloutEvent::AwaitingApproval { phase, at: now }));
            return events;
        }
        let from = self.phase;
        self.enter(next, now);
        events.push(self.emit(RolloutEvent::Promoted {
            from,
            to: next,
            at: now,
        }));
        events
    }

    /// Whether the candidate has proved it may leave the phase: in shadow,
    /// enough passing windows in a row; in canary and guarded, an on-policy
    /// comparison that passed (made when due, its verdict pushed on
    /// `events`).
    fn proved(&mut self, now: DateTime<Utc>, events: &mut Vec<RolloutEvent>) -> bool {
        let proof = &self.config.proof;
        match self.phase {
            Phase::Shadow => self.shadow_proof.proved(proof),
            Phase::Canary | Phase::Guarded => {
                if self.on_policy_passed {
                    return true;
                }
                if !self.cohort_rewards.due(proof) {
                    return false;
                }
                let v = self.cohort_rewards.evaluate(self.phase, proof, now);
                self.on_policy_passed = v.passed;
                events.push(self.emit(RolloutEvent::Verdict(Box::new(v))));
                self.on_policy_passed
            }
            Phase::General => true,
        }
    }

    /// Approves leaving the current phase.
    ///
    /// # Errors
    /// [`Error::NotAllowed`] when no approval is awaited.
    pub fn approve(&mut self, approver: &str, now: DateTime<Utc>) -> Result<Vec<RolloutEvent>> {
        if !self.awaiting_approval {
            return Err(Error::NotAllowed("no phase is awaiting approval"));
        }
        let now = self.clock(now);
        self.approved = true;
        let phase = self.phase;
        let mut events = vec![self.emit(RolloutEvent::Approved {
            phase,
            approver: approver.to_owned(),
            at: now,
        })];
        events.extend(self.tick(now));
        Ok(events)
    }

    /// Holds promotion.
    pub fn hold(&mut self, reason: &str, now: DateTime<Utc>) -> RolloutEvent {
        let now = self.clock(now);
        self.held = true;
        self.emit(RolloutEvent::Held {
            reason: reason.to_owned(),
            at: now,
        })
    }

    /// Rolls the candidate back by hand, as a breach would (to the
    /// previous phase or to shadow, per [`RolloutConfig::rollback_to`]),
    /// and holds the rollout until [`resume`](Self::resume)d.
    ///
    /// # Errors
    /// [`Error::NotAllowed`] in shadow: the candidate serves no traffic.
    pub fn rollback(&mut self, reason: &str, now: DateTime<Utc>) -> Result<RolloutEvent> {
        if self.phase == Phase::Shadow {
            return Err(Error::NotAllowed(
                "the rollout is in shadow: nothing to roll back",
            ));
        }
        let now = self.clock(now);
        let (from, to) = self.roll_back(now);
        Ok(self.emit(RolloutEvent::RolledBackByOperator {
            from,
            to,
            reason: reason.to_owned(),
            at: now,
        }))
    }

    /// Moves back per [`RolloutConfig::rollback_to`] and holds; the
    /// phases left and entered.
    fn roll_back(&mut self, now: DateTime<Utc>) -> (Phase, Phase) {
        let from = self.phase;
        let to = match self.config.rollback_to {
            RollbackTarget::PreviousPhase => from.previous(),
            RollbackTarget::Shadow => Phase::Shadow,
        };
        self.enter(to, now);
        self.held = true;
        self.rolled_back = true;
        (from, to)
    }

    /// Resumes promotion. After a rollback, the candidate's evidence is
    /// cleared: resuming means a new (fixed) candidate is being rolled out.
    pub fn resume(&mut self, now: DateTime<Utc>) -> RolloutEvent {
        let now = self.clock(now);
        if self.rolled_back {
            self.monitor.reset_candidate();
            self.shadow_proof.reset_candidate();
            self.enter(self.phase, now);
        }
        self.held = false;
        self.rolled_back = false;
        self.emit(RolloutEvent::Resumed { at: now })
    }
}
