//! Fleet mode: many processes of one agent system share learning, a
//! budget, outcomes and rollouts through PostgreSQL, each serving from
//! memory. Built on the facade's public seams (the learning exchange, the
//! budget's allowance, rollouts driven from elsewhere) and the store
//! ([`tuneloop_store`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use tuneloop_fleet::{Fleet, FleetConfig, PgDecisionLog, PgLogConfig};
//! use tuneloop::{Optimizer, TaskTypeConfig};
//! use tuneloop::core::ArmSet;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgres://tuneloop@127.0.0.1:5432/tuneloop";
//! let arms = ArmSet::grid().models(["m"]).temperatures([0.0, 0.5, 1.0]).build()?;
//! let optimizer = Optimizer::builder()
//!     .task_type("code", TaskTypeConfig::new(arms))
//!     .decision_log(Arc::new(PgDecisionLog::open(url, PgLogConfig::default())?))
//!     .build()?;
//! let fleet = Fleet::start(&optimizer, FleetConfig::new(url))?;
//! // ... recommend_parameters / record_outcome as usual; an outcome that
//! // may belong to another process goes through the fleet:
//! // fleet.record_outcome(decision_id, &outcome)?;
//! fleet.shutdown();
//! # Ok(()) }
//! ```
//!
//! What [`Fleet::start`] runs on a thread of its own, every
//! [`sync_period`](FleetConfig::sync_period) (1 s):
//!
//! - **Learning**: for each task type, this process's contribution to the
//!   learner (every update it made, as sufficient statistics) goes to the
//!   store, which answers with the fleet's sum; the learner installs it
//!   plus what it learned in the meantime ([`LearningSync`](tuneloop::LearningSync)).
//!   Members decide as one learner fed every member's updates. Members
//!   whose arms or learner differ (another deployment) learn apart.
//! - **Budget**: the optimizer's budget becomes a lease
//!   ([`Budget::set_allowance`](tuneloop::gates::Budget::set_allowance)):
//!   reservations stay in memory against what the fleet granted this
//!   process; the thread reports what it used, renews the lease and asks
//!   for another slice ([`lease_slice`](FleetConfig::lease_slice) of the
//!   limit) when less than half a slice is left. The grants never pass
//!   the limit. A process that dies strands its lease until the lease
//!   expires ([`lease_ttl`](FleetConfig::lease_ttl), 30 s): then what it
//!   had not reported as used returns to the fleet. A process cut off from
//!   the store stops reserving three quarters of a TTL after its last
//!   renewal, so a lease reclaimed by the others is never spent twice.
//!   A process may use at most a margin ([`lease_margin`](FleetConfig::lease_margin)
//!   of the limit, 2%) beyond what it last reported; it reports at every
//!   sync and as soon as half the margin is used, and a reclaimed lease
//!   keeps its last report plus the margin counted: so even the spend of a
//!   process killed between two reports is within what the fleet counts,
//!   and the grants, which never pass the limit, bound what was spent. A
//!   dead process strands at most its margin for the rest of the window,
//!   and the rest of its lease until the lease expires. While the store is
//!   unreachable a process goes on reserving up to its margin.
//! - **Outcomes** recorded by another process: [`Fleet::record_outcome`]
//!   records locally when the decision is this process's, and otherwise
//!   leaves the outcome in the store, where the deciding process picks it
//!   up at its next sync and records it as its own.
//!
//! - **Rollouts**: the process holding a PostgreSQL advisory lock leads:
//!   it reads the other processes' logged decisions (two seconds old and
//!   more), feeds those of the current phase to its rollout managers and
//!   publishes each task type's phase when it changes, with the events as
//!   the fleet's provenance; the others follow
//!   ([`RolloutManager::set_follower`](tuneloop::rollout::RolloutManager::set_follower),
//!   [`RolloutManager::follow`](tuneloop::rollout::RolloutManager::follow)),
//!   looking four times a sync period. When the leader dies, another
//!   takes over from the phase last published.
//!
//! Nothing here is on the hot path: `recommend_parameters` and
//! `record_outcome` never wait for the network. When the store is
//! unreachable the process goes on serving from its own state (and its
//! lease), the thread reconnects every sync period, and the exchanges
//! resume where they stopped: contributions are cumulative, so nothing
//! learned is lost or counted twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tuneloop::{Optimizer, Recorded, WeakOptimizer};
use tuneloop_core::{DecisionId, TaskOutcome};
pub use tuneloop_store::{
    FleetBudget, FleetRollout, Lease, LeaseRequest, LoggedRollout, PgDecisionLog, PgLogConfig,
    PgLogStats, Store,
};

use tuneloop::core::ErrorKind;

mod lease;
mod rollout;

/// What can go wrong joining a fleet or passing an outcome on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of [`FleetConfig`] (or the optimizer's budget) is refused.
    #[error("{field} = {value}: expected {expected}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// The optimizer refused (an unknown decision, an invalid outcome).
    #[error(transparent)]
    Optimizer(#[from] tuneloop::Error),
    /// The store cannot be used (bad URL, unreachable, another schema
    /// version, an edited table).
    #[error(transparent)]
    Store(#[from] tuneloop_store::Error),
    /// Outcomes for other members wait in a bounded queue while the store
    /// is unreachable; this one did not fit.
    #[error(
        "the fleet's queue of {capacity} outcomes for other members is full (is the store reachable?)"
    )]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The fleet's thread could not be started.
    #[error("cannot start the fleet thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl Error {
    /// What kind of failure it is: a full queue is
    /// [`Refused`](ErrorKind::Refused) (the outcome may be passed on again
    /// when the store is back); a thread that cannot start is
    /// [`Io`](ErrorKind::Io); a setting is [`BadInput`](ErrorKind::BadInput);
    /// the optimizer's and the store's errors say their own.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. } => ErrorKind::BadInput,
            Error::Optimizer(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::QueueFull { .. } => ErrorKind::Refused,
            Error::Spawn(_) => ErrorKind::Io,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(field: &'static str, value: impl std::fmt::Display, expected: &'static str) -> Error {
    Error::InvalidConfig {
        field,
        value: value.to_string(),
        expected,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a process joins a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The database (`postgres://user@host:port/db`).
    pub database_url: String,
    /// This process's name in the store (default: `pid<pid>-<random>`):
    /// unique per process, a restarted process is a new member.
    pub member: String,
    /// How often learning is exchanged, the lease renewed and outcomes
    /// picked up (default 1 s).
    pub sync_period: Duration,
    /// The budget's name in the store (default `default`): processes with
    /// the same name share one budget.
    pub budget: String,
    /// The share of a limit one lease request asks for (default 0.02:
    /// fifty slices make the limit).
    pub lease_slice: f64,
    /// The share of a limit a process may use beyond what it last
    /// reported to the store (default 0.02). It reports as soon as half of
    /// it is used; a lease reclaimed after its process died keeps the last
    /// report plus this margin counted as spent, so the fleet never
    /// overspends. It is also how long a process serves while the store is
    /// unreachable: the margin divided by its rate of spending.
    pub lease_margin: f64,
    /// How long a lease lasts without a renewal (default 30 s).
    pub lease_ttl: Duration,
    /// How often, between syncs, the thread looks whether the lease runs
    /// low (a look at the budget in memory; the store is asked only then).
    /// Default 10 ms.
    pub budget_check: Duration,
    /// Outcomes for other members kept while the store is unreachable
    /// (default 10,000).
    pub outcome_queue: usize,
    /// How long [`Fleet::shutdown`] retries its last round while the store
    /// is unreachable (default 30 s).
    pub shutdown_timeout: Duration,
}

impl FleetConfig {
    /// The defaults, on `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        FleetConfig {
            database_url: database_url.into(),
            member: format!(
                "pid{}-{:08x}",
                std::process::id(),
                DecisionId::random().as_u128() as u32
            ),
            sync_period: Duration::from_secs(1),
            budget: "default".into(),
            lease_slice: 0.02,
            lease_margin: 0.02,
            lease_ttl: Duration::from_secs(30),
            budget_check: Duration::from_millis(10),
            outcome_queue: 10_000,
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    fn check(&self) -> Result<()> {
        if self.sync_period < Duration::from_millis(10) {
            return Err(invalid(
                "sync_period",
                format!("{:?}", self.sync_period),
                "at least 10 ms",
            ));
        }
        if self.budget_check < Duration::from_millis(1) {
            return Err(invalid(
                "budget_check",
                format!("{:?}", self.budget_check),
                "at least 1 ms",
            ));
        }
        if !(self.lease_slice > 0.0 && self.lease_slice <= 1.0) {
            return Err(invalid("lease_slice", self.lease_slice, "in (0, 1]"));
        }
        if !(self.lease_margin > 0.0 && self.lease_margin <= 1.0) {
            return Err(invalid("lease_margin", self.lease_margin, "in (0, 1]"));
        }
        if self.lease_ttl < 2 * self.sync_period {
            return Err(invalid(
                "lease_ttl",
                format!("{:?}", self.lease_ttl),
                "at least two sync periods",
            ));
        }
        if self.member.is_empty() || self.budget.is_empty() {
            return Err(invalid("member", "an empty name", "a non-empty name"));
        }
        Ok(())
    }
}

/// What the fleet thread did, from [`Fleet::stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetStats {
    /// Learning exchanges that finished (one per task type and sync).
    pub exchanges: u64,
    /// Sync rounds that failed (store unreachable, a query refused).
    pub failures: u64,
    /// Connections made to the store (the first included).
    pub connections: u64,
    /// Lease renewals.
    pub renewals: u64,
    /// Times the lease ran out of time without a renewal, and reservations
    /// were stopped until the next one.
    pub lease_lapses: u64,
    /// Outcomes left in the store for another member.
    pub outcomes_forwarded: u64,
    /// Outcomes other members left for this one, recorded here.
    pub outcomes_received: u64,
    /// The time between consecutive installs of the fleet's learning, in
    /// milliseconds: how stale the fleet's state in this process gets
    /// (about the sync period, more while the store is away).
    pub lag_ms: Vec<f64>,
    /// How long one exchange took (both halves and the store), ms.
    pub exchange_ms: Vec<f64>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The last lease, if the optimizer has a budget.
    pub lease: Option<Lease>,
    /// Whether this process decides the fleet's rollouts now.
    pub leader: bool,
    /// Rollout decisions this process published as the leader.
    pub published: u64,
    /// Rollout decisions of the leader this process moved to.
    pub followed: u64,
    /// How long after the leader's decision this process moved to it, ms
    /// (wall clocks of both).
    pub follow_ms: Vec<f64>,
}

/// Samples kept per series (a day at one sync a second).
const MAX_SAMPLES: usize = 100_000;

fn push_sample(v: &mut Vec<f64>, x: f64) {
    if v.len() < MAX_SAMPLES {
        v.push(x);
    }
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    wake: std::sync::Condvar,
    stats: Mutex<FleetStats>,
    /// Outcomes for decisions of other members, not yet in the store.
    outbox: Mutex<VecDeque<(DecisionId, TaskOutcome)>>,
}

/// A process's membership in a fleet: the thread that exchanges learning,
/// leases the budget and passes outcomes on. Stops on
/// [`shutdown`](Self::shutdown) or when dropped.
#[derive(Debug)]
pub struct Fleet {
    optimizer: WeakOptimizer,
    shared: Arc<Shared>,
    config: FleetConfig,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fleet {
    /// Joins the fleet on `config.database_url`: connects (applying the
    /// schema's migrations), installs the fleet's learning and takes a
    /// first lease, then starts the thread.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad setting or a budget over rolling
    /// windows; [`Error::Store`] when the database cannot be used (bad
    /// URL, unreachable, another schema version, an edited table);
    /// [`Error::Spawn`].
    pub fn start(optimizer: &Optimizer, config: FleetConfig) -> Result<Fleet> {
        config.check()?;
        if let Some(b) = optimizer.budget()
            && let tuneloop_gates::Window::Rolling { .. } = b.config().window
        {
            return Err(invalid(
                "budget.window",
                "rolling",
                "calendar windows (a fleet shares calendar windows only)",
            ));
        }
        let store = Store::connect(&config.database_url)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake: std::sync::Condvar::new(),
            stats: Mutex::new(FleetStats {
                connections: 1,
                ..FleetStats::default()
            }),
            outbox: Mutex::new(VecDeque::new()),
        });
        let mut worker = Worker {
            optimizer: optimizer.downgrade(),
            shared: shared.clone(),
            config: config.clone(),
            store: Some(store),
            last_install: vec![None; optimizer.task_types().len()],
            lease_deadline: None,
            next_try: Instant::now(),
            granted: None,
            dry: false,
            used_at_grant: (0, 0.0),
            reported: (0, 0.0),
            leading: false,
            cursor: None,
            reported_events: HashMap::new(),
            generations: HashMap::new(),
            next_follow: Instant::now(),
        };
        // Every rollout follows until this process holds the leader's lock.
        for name in optimizer.rollout_task_types() {
            optimizer.with_rollout(name, |r| r.set_follower(true))?;
        }
        // The first round before serving on: the fleet's learning and a lease.
        worker.round(optimizer);
        let thread = std::thread::Builder::new()
            .name("tuneloop-fleet".into())
            .spawn(move || worker.run())
            .map_err(Error::Spawn)?;
        Ok(Fleet {
            optimizer: optimizer.downgrade(),
            shared,
            config,
            thread: Some(thread),
        })
    }

    /// This process's name in the store.
    pub fn member(&self) -> &str {
        &self.config.member
    }

    /// What the fleet thread did so far.
    pub fn stats(&self) -> FleetStats {
        lock(&self.shared.stats).clone()
    }

    /// Records `outcome` for `decision_id` here when the decision is this
    /// process's and still pending ([`Optimizer::record_outcome`]);
    /// otherwise queues it for the store, where the process that decided
    /// picks it up at its next sync (returns `None`).
    ///
    /// # Errors
    /// [`Error::Optimizer`] as [`Optimizer::record_outcome`] for this
    /// process's decisions (an unknown one of ours is
    /// [`tuneloop::Error::UnknownDecision`]) and for an invalid outcome;
    /// [`Error::QueueFull`] when the queue for the store is full.
    pub fn record_outcome(
        &self,
        decision_id: DecisionId,
        outcome: &TaskOutcome,
    ) -> Result<Option<Recorded>> {
        let Some(optimizer) = self.optimizer.upgrade() else {
            return Err(tuneloop::Error::UnknownDecision(decision_id).into());
        };
        if optimizer.decided_here(decision_id) {
            return Ok(Some(optimizer.record_outcome(decision_id, outcome)?));
        }
        optimizer.check_outcome(outcome)?;
        let mut outbox = lock(&self.shared.outbox);
        if outbox.len() >= self.config.outcome_queue {
            return Err(Error::QueueFull {
                capacity: self.config.outcome_queue,
            });
        }
        outbox.push_back((decision_id, outcome.clone()));
        drop(outbox);
        self.shared.wake.notify_all();
        Ok(None)
    }

    /// Stops the thread after a last round: this process's learning is in
    /// the store, queued outcomes are passed on and the unused part of its
    /// lease is handed back. Blocks for that round: a few milliseconds, or
    /// while the store is unreachable, retries every sync period for up to
    /// [`shutdown_timeout`](FleetConfig::shutdown_timeout).
    pub fn shutdown(mut self) -> FleetStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    optimizer: WeakOptimizer,
    shared: Arc<Shared>,
    config: FleetConfig,
    store: Option<Store>,
    /// When each task type's learning was last installed.
    last_install: Vec<Option<Instant>>,
    /// Past this instant the lease is taken as lapsed (no renewal for
    /// three quarters of its time to live).
    lease_deadline: Option<Instant>,
    /// When to try reconnecting.
    next_try: Instant,
    /// The last lease and its window.
    granted: Option<(chrono::DateTime<chrono::Utc>, Lease)>,
    /// The last request for more got nothing: wait for the next sync.
    dry: bool,
    /// Tokens and cost used when the last lease came.
    used_at_grant: (u64, f64),
    /// Tokens and cost used at the last report to the store.
    reported: (u64, f64),
    /// Whether this process holds the leader's lock.
    leading: bool,
    /// As the leader: where its reading of the others' decisions is.
    cursor: Option<tuneloop_store::LogCursor>,
    /// As the leader: per task type, the rollout events already stored.
    reported_events: HashMap<String, usize>,
    /// As a follower: per task type, the leader's last decision applied.
    generations: HashMap<String, u64>,
    /// As a follower: when to look for the leader's decisions next.
    next_follow: Instant,
}

impl Worker {
    fn run(mut self) {
        let period = self.config.sync_period;
        let mut next = Instant::now() + period;
        loop {
            {
                let outbox = lock(&self.shared.outbox);
                let wait = next
                    .saturating_duration_since(Instant::now())
                    .min(self.config.budget_check);
                if !self.shared.stop.load(Ordering::SeqCst) && !wait.is_zero() {
                    let _ = self
                        .shared
                        .wake
                        .wait_timeout(outbox, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            let stopping = self.shared.stop.load(Ordering::SeqCst);
            let Some(optimizer) = self.optimizer.upgrade() else {
                return;
            };
            if stopping {
                self.last_round(&optimizer);
                return;
            }
            if Instant::now() >= next {
                self.round(&optimizer);
                next = Instant::now() + period;
            } else {
                // Between syncs: a lease running low is topped up at once,
                // a follower looks for the leader's decisions four times a
                // sync period, and outcomes for other members go out.
                self.renew_lease(&optimizer, false, true);
                if !self.leading && Instant::now() >= self.next_follow {
                    self.next_follow = Instant::now() + period / 4;
                    let tasks = optimizer.rollout_task_types();
                    if !tasks.is_empty() {
                        self.follow(&optimizer, &tasks);
                    }
                }
                if !lock(&self.shared.outbox).is_empty() {
                    self.with_store(forward_outcomes);
                }
            }
        }
    }

    /// Runs `f` on the store, connecting first if needed; a failure is
    /// counted and the connection dropped when it is gone.
    fn with_store<T>(
        &mut self,
        f: impl FnOnce(&mut Store, &Shared) -> std::result::Result<T, tuneloop_store::Error>,
    ) -> Option<T> {
        if self.store.is_none() {
            if Instant::now() < self.next_try {
                return None;
            }
            match Store::connect(&self.config.database_url) {
                Ok(s) => {
                    self.store = Some(s);
                    lock(&self.shared.stats).connections += 1;
                }
                Err(e) => {
                    self.next_try = Instant::now() + self.config.sync_period;
                    self.fail(&e.to_string());
                    return None;
                }
            }
        }
        let store = self.store.as_mut()?;
        match f(store, &self.shared) {
            Ok(v) => Some(v),
            Err(e) => {
                if store.is_closed() {
                    self.store = None;
                }
                self.fail(&e.to_string());
                None
            }
        }
    }

    fn fail(&self, message: &str) {
        tracing::debug!(error = message, "fleet sync failed");
        let mut s = lock(&self.shared.stats);
        s.failures += 1;
        s.last_error = Some(message.to_owned());
    }

    /// One sync: learning, lease, outcomes both ways.
    fn round(&mut self, optimizer: &Optimizer) {
        self.dry = false;
        self.exchange_learning(optimizer);
        self.rollouts(optimizer);
        self.renew_lease(optimizer, false, false);
        self.with_store(forward_outcomes);
        self.receive_outcomes(optimizer);
    }

    fn exchange_learning(&mut self, optimizer: &Optimizer) {
        let member = self.config.member.clone();
        for (i, name) in optimizer.task_types().into_iter().enumerate() {
            let started = Instant::now();
            let sync = match optimizer.begin_learning_sync(name) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    self.fail(&e.to_string());
                    continue;
                }
            };
            let fleet = self.with_store(|store, _| {
                store.exchange_learning(name, sync.model(), &member, sync.contribution())
            });
            let Some(fleet) = fleet else {
                // The store is away: the next round carries these updates.
                return;
            };
            if let Err(e) = optimizer.finish_learning_sync(sync, &fleet) {
                self.fail(&e.to_string());
                continue;
            }
            let now = Instant::now();
            let mut s = lock(&self.shared.stats);
            s.exchanges += 1;
            push_sample(
                &mut s.exchange_ms,
                now.duration_since(started).as_secs_f64() * 1e3,
            );
            if let Some(prev) = self.last_install.get(i).copied().flatten() {
                push_sample(&mut s.lag_ms, now.duration_since(prev).as_secs_f64() * 1e3);
            }
            if let Some(slot) = self.last_install.get_mut(i) {
                *slot = Some(now);
            }
        }
    }

    /// The round of a shutdown: learning, outcomes and the lease's unused
    /// part handed to the store, retried every sync period for up to
    /// `shutdown_timeout` while the store is unreachable.
    fn last_round(&mut self, optimizer: &Optimizer) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        loop {
            let failures = lock(&self.shared.stats).failures;
            self.next_try = Instant::now();
            self.round(optimizer);
            self.renew_lease(optimizer, true, false);
            let failed = lock(&self.shared.stats).failures > failures;
            if !failed || Instant::now() + self.config.sync_period > deadline {
                return;
            }
            std::thread::sleep(self.config.sync_period);
        }
    }

    /// Records the outcomes other members left for this process's
    /// decisions.
    fn receive_outcomes(&mut self, optimizer: &Optimizer) {
        let prefix = optimizer.decision_id_prefix();
        let Some(got) = self.with_store(|store, _| store.outcomes_for(prefix, 10_000)) else {
            return;
        };
        if got.is_empty() {
            return;
        }
        let mut done = Vec::with_capacity(got.len());
        for (id, outcome) in &got {
            // An outcome for a decision that expired or was recorded here
            // meanwhile is dropped like a second record_outcome would be.
            if optimizer.record_outcome(*id, outcome).is_ok() {
                lock(&self.shared.stats).outcomes_received += 1;
            }
            done.push(*id);
        }
        self.with_store(|store, _| store.forget_outcomes(&done));
    }
}

/// Moves queued outcomes for other members into the store, oldest first;
/// what fails stays queued.
fn forward_outcomes(store: &mut Store, shared: &Shared) -> tuneloop_store::Result<()> {
    loop {
        let Some((id, outcome)) = lock(&shared.outbox).front().cloned() else {
            return Ok(());
        };
        store.post_outcome(id, &outcome)?;
        lock(&shared.outbox).pop_front();
        lock(&shared.stats).outcomes_forwarded += 1;
    }
}
