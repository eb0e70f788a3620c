//! [`BenchmarkService`]: the loop that keeps routing honest. It runs a
//! suite against the configured providers on a schedule (or on demand),
//! appends each round to the history, passes it through the supervisor's
//! gates against the last round that passed, and only on a pass feeds the
//! live scorecard, tells its listeners (the runtime configuration, say) and
//! records the change in the provenance chain. A round that regresses
//! changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tuneloop_gates::{Change, ChangeKind, Provenance};
use tuneloop_providers::Scorecard;

use crate::error::{Error, Result};
use crate::history::History;
use crate::regression::Baseline;
use crate::runner::BenchmarkConfig;
use crate::suite::Suite;
use crate::summary::summarize;
use crate::supervisor::{Supervisor, SupervisorReport};

/// Called with the report of every round that passed.
pub type PassListener = Box<dyn Fn(&SupervisorReport) + Send + Sync>;

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// Its number (the first round after the history's last).
    pub round: u32,
    /// Whether it passed: no regression against the last passing round,
    /// and at least one configuration through every gate.
    pub passed: bool,
    /// Why it did not pass, if it did not.
    pub reasons: Vec<String>,
    /// The supervisor's report.
    pub report: SupervisorReport,
}

/// Runs a suite on a schedule and applies what passes (see the module).
pub struct BenchmarkService {
    suite: Suite,
    bench: BenchmarkConfig,
    supervisor: Supervisor,
    history: Option<PathBuf>,
    scorecard: Option<Arc<Scorecard>>,
    provenance: Option<Arc<Mutex<Provenance>>>,
    listeners: Vec<PassListener>,
    /// The last passing round's summaries: what regressions are measured
    /// against.
    baseline: Mutex<Option<Baseline>>,
    next_round: Mutex<u32>,
}

impl std::fmt::Debug for BenchmarkService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchmarkService")
            .field("suite", &self.suite.name)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BenchmarkService {
    /// A service running `suite` with `bench` and judging with `supervisor`
    /// (each round is `supervisor.config().runs` runs).
    pub fn new(suite: Suite, bench: BenchmarkConfig, supervisor: Supervisor) -> Self {
        BenchmarkService {
            suite,
            bench,
            supervisor,
            history: None,
            scorecard: None,
            provenance: None,
            listeners: Vec::new(),
            baseline: Mutex::new(None),
            next_round: Mutex::new(0),
        }
    }

    /// Appends every round to the history file at `path`, and numbers
    /// rounds after the last one there.
    ///
    /// # Errors
    /// As [`History::next_round`].
    pub fn with_history(mut self, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        *lock(&self.next_round) = History::next_round(&path)?;
        self.history = Some(path);
        Ok(self)
    }

    /// Measures regressions against `baseline` until a round passes.
    #[must_use]
    pub fn with_baseline(self, baseline: Baseline) -> Self {
        *lock(&self.baseline) = Some(baseline);
        self
    }

    /// Feeds every call of a passing round into `scorecard` (the domain is
    /// the case's task type), which a `Router` may be ordering by.
    #[must_use]
    pub fn with_scorecard(mut self, scorecard: Arc<Scorecard>) -> Self {
        self.scorecard = Some(scorecard);
        self
    }

    /// Records every applied round in `provenance`.
    #[must_use]
    pub fn with_provenance(mut self, provenance: Arc<Mutex<Provenance>>) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// Calls `listener` with the report of every passing round (to update a
    /// runtime configuration from its routing plan, say).
    #[must_use]
    pub fn on_pass(mut self, listener: PassListener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Runs one round now. Rounds are meant to run one after another (as
    /// [`run_every`](Self::run_every) runs them): two at once would share a
    /// round number.
    ///
    /// # Errors
    /// The benchmark's own errors, the history's I/O errors, a provenance
    /// record that cannot be written.
    pub async fn run_round(&self) -> Result<RoundOutcome> {
        let round = *lock(&self.next_round);
        let baseline = lock(&self.baseline).clone();
        let (runs, report) = self
            .supervisor
            .run(&self.suite, &self.bench, round, baseline.as_ref(), None)
            .await?;
        *lock(&self.next_round) = round + self.supervisor.config().runs;
        if let Some(h) = &self.history {
            History::append(h, &runs)?;
        }
        let mut reasons: Vec<String> = report
            .regressions
            .iter()
            .map(|r| format!("regressed: {r}"))
            .collect();
        if !report.configs.iter().any(|c| c.gates.passed) {
            reasons.push("no configuration passed every gate".into());
        }
        let passed = reasons.is_empty();
        if passed {
            if let Some(sc) = &self.scorecard {
                for c in runs.iter().flat_map(|r| &r.calls) {
                    sc.record(
                        &c.provider,
                        &c.model,
                        &c.task_type,
                        c.success,
                        Duration::from_secs_f64(c.latency_ms.max(0.0) / 1000.0),
                        0.0,
                    );
                }
            }
            for l in &self.listeners {
                l(&report);
            }
            if let Some(p) = &self.provenance {
                let change = Change {
                    actor: "benchmark service".into(),
                    kind: ChangeKind::Configuration,
                    reason: format!(
                        "round {round} of suite {} passed every gate",
                        self.suite.name
                    ),
                    version: format!("{}-round-{round}", self.suite.name),
                    approval: None,
                    details: serde_json::json!({
                        "default_parameters": report.plan.default_parameters,
                        "provider_order": report.plan.provider_order,
                        "disabled_providers": report.plan.disabled_providers,
                        "score": report.plan.score,
                        "calls": report.calls,
                    }),
                };
                lock(p)
                    .record(change, report.plan.created_at)
                    .map_err(|e| Error::File {
                        path: "provenance".into(),
                        message: e.to_string(),
                    })?;
            }
            let summaries = summarize(&runs, self.supervisor.config().alpha);
            *lock(&self.baseline) = Some(Baseline::from_summaries(&self.suite.name, &summaries));
        }
        Ok(RoundOutcome {
            round,
            passed,
            reasons,
            report,
        })
    }

    /// Runs a round every `period` on the tokio clock, the first at once,
    /// `rounds` times (forever with `None`), handing each outcome (or
    /// error: a round that fails to run does not stop the service) to
    /// `each`.
    pub async fn run_every(
        &self,
        period: Duration,
        rounds: Option<usize>,
        mut each: impl FnMut(Result<RoundOutcome>),
    ) {
        let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut done = 0;
        while rounds.is_none_or(|r| done < r) {
            ticks.tick().await;
            each(self.run_round().await);
            done += 1;
        }
    }
}
