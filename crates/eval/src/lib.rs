//! Evaluation for tuneloop: benchmark suites with scorers, a supervisor
//! that aggregates several runs, detects unstable configurations and
//! regressions, applies policy gates and writes a routing plan, and prompt
//! refinement with an interviewer model, recorded session by session.
//!
//! Everything talks to models through [`tuneloop_providers::Provider`], so
//! the same code runs on the simulated provider (tests, demos: run it on a
//! tokio runtime whose clock is paused and simulated latencies cost no
//! time) and on real backends.
//!
//! ```
//! use std::sync::Arc;
//! use tuneloop_core::ParameterSet;
//! use tuneloop_eval::{BenchmarkConfig, Suite, Supervisor, SupervisorConfig};
//! use tuneloop_providers::{Provider, SimulatedConfig, SimulatedProvider};
//!
//! let suite = Suite::standard();
//! let provider: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(SimulatedConfig {
//!     answers: suite.simulated_answers(|_| Vec::new()),
//!     ..SimulatedConfig::default()
//! }));
//! let params = ParameterSet::builder("m").temperature(0.3).max_tokens(1024).build().unwrap();
//! let bench = BenchmarkConfig::new(vec![provider], vec![params]);
//! let supervisor = Supervisor::new(SupervisorConfig::default()).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_time()
//!     .start_paused(true)
//!     .build()
//!     .unwrap();
//! let (_runs, report) = rt
//!     .block_on(supervisor.run(&suite, &bench, 0, None, None))
//!     .unwrap();
//! assert_eq!(report.plan.recommendations.len(), 10);
//! ```

mod error;
pub mod history;
pub mod plan;
pub mod refine;
pub mod regression;
pub mod runner;
pub mod scenario;
pub mod scorer;
pub mod service;
pub mod stats;
pub mod suite;
pub mod summary;
pub mod supervisor;
pub mod verdict;

pub use error::{Error, Result};
pub use history::{History, RoundSummary};
pub use plan::{Choice, Recommendation, RoutingPlan};
pub use refine::{
    Candidate, Comparison, Interview, PromptVariant, RefineConfig, RefineSession, Refiner,
    SessionRecorder, StopReason, TestIteration, parse_interview,
};
pub use regression::{
    Baseline, Regression, Regressions, TrialReport, aa_false_positive_rate, detect_regressions,
    regression_trials,
};
pub use runner::{BenchmarkConfig, BenchmarkRun, CallRecord, run_benchmark};
pub use scorer::{Judge, ScoreError, Scorer};
pub use service::{BenchmarkService, PassListener, RoundOutcome};
pub use suite::{Case, MAX_SUITE_BYTES, MAX_TEXT_BYTES, Suite};
pub use summary::{ConfigKey, ConfigSummary, EVAL_SCHEMA_VERSION, Gates, summarize};
pub use supervisor::{Supervisor, SupervisorConfig, SupervisorReport};
pub use verdict::{ConfigReport, GateCheck, GateResults};
