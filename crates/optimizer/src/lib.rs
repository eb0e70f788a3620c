//! tuneloop learns an agent's LLM generation parameters (model, temperature,
//! top_p, max_tokens, penalties, prompt variant) from the outcomes of its
//! calls, safely, in-process.
//!
//! Call [`Optimizer::recommend`] before an LLM call and record the outcome
//! on the [`Decision`] it returns after it (or
//! [`Optimizer::recommend_parameters`] and [`Optimizer::record_outcome`]
//! by decision id, for an outcome that arrives later or elsewhere). In
//! between, the optimizer featurizes the task, asks the rollout which
//! cohort the request is in, lets the gates (hard constraints, trust
//! region, quality floor, budget) decide which arms are eligible, has the
//! policy choose among them and logs the propensity; the outcome's reward
//! then updates the learner, commits the budget, feeds the SLO monitor
//! (which may promote or roll back) and writes the joined record — see
//! `docs/architecture.md`.
//!
//! ```
//! use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
//! use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
//!
//! let arms = ArmSet::grid().models(["gpt-4o-mini"]).temperatures([0.0, 0.3, 0.7]).max_tokens([512, 2048]).build()?;
//! let optimizer = Optimizer::builder().task_type("code", TaskTypeConfig::new(arms)).seed(1).build()?;
//! let task = TaskFeatures { title_length: 40, ..TaskFeatures::default() };
//! let decision = optimizer.recommend("code", &task, &RecommendOptions::default())?;
//! let p = decision.params();
//! println!("call with temperature {} and max_tokens {}", p.temperature(), p.max_tokens());
//! decision.record(&TaskOutcome::success(0.85, 1200.0).with_tokens(900, 400))?;
//! # Ok::<(), tuneloop::Error>(())
//! ```
//!
//! Before an async program exits, `optimizer.shutdown().await` drains the
//! decision log (dropping the last handle inside a runtime does not wait).
//!
//! The crates underneath are re-exported: [`core`], [`bandit`],
//! [`counterfactual`], [`gates`], [`rollout`], and `providers` with the
//! `router` feature.
//!
//! # Features
//!
//! The default build is the learner, the gates, the rollout and the
//! decision log: no compression, no providers, and no async runtime
//! (tokio's synchronisation primitives only).
//!
//! | feature | brings |
//! |---|---|
//! | `router` | `tuneloop::providers` (async `Provider`, `Router`, `Scorecard`, on tokio) and the scorecard in snapshots |
//! | `gzip` | reading `.gz` decision logs |
//! | `parallel` | offline evaluation (reading rounds, bootstrap resamples) on every core |
//! | `http` | `router` and the OpenAI-compatible HTTP provider |

mod builder;
mod context;
mod counters;
mod decide;
mod episode;
mod error;
mod handle;
mod learned;
mod learning;
mod optimizer;
mod pending;
mod record;
mod seams;
mod settings;
mod snapshot;
mod task;
mod task_handle;
mod writer;

pub use builder::OptimizerBuilder;
pub use context::{Context, Featurized};
pub use counters::Counters;
pub use decide::{RecommendOptions, Recommendation};
pub use episode::{EPISODE_DROPPED, Episode, EpisodeRecorded};
pub use error::{Error, Result};
pub use handle::{DROPPED, Decision};
pub use learned::{ArmLearned, ArmTally, Learned, Spend};
pub use learning::LearningSync;
pub use optimizer::{Optimizer, RolloutStatus, SHUTDOWN};
pub use record::Recorded;
pub use seams::WeakOptimizer;
pub use settings::TaskSettings;
pub use snapshot::{OptimizerSnapshot, SNAPSHOT_SCHEMA_VERSION, TaskSnapshot};
pub use task::TaskTypeConfig;
pub use task_handle::{Task, TaskType};

pub use tuneloop_bandit as bandit;
pub use tuneloop_core as core;
pub use tuneloop_counterfactual as counterfactual;
pub use tuneloop_gates as gates;
#[cfg(feature = "router")]
pub use tuneloop_providers as providers;
pub use tuneloop_rollout as rollout;

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Optimizer: Send, Sync);
    static_assertions::assert_impl_all!(OptimizerBuilder: Send, Sync);
    static_assertions::assert_impl_all!(Error: Send, Sync);
    static_assertions::assert_impl_all!(Recommendation: Send, Sync);
    static_assertions::assert_impl_all!(Recorded: Send, Sync);
    static_assertions::assert_impl_all!(Counters: Send, Sync);
    static_assertions::assert_impl_all!(OptimizerSnapshot: Send, Sync);
    static_assertions::assert_impl_all!(TaskTypeConfig: Send, Sync);
    static_assertions::assert_impl_all!(TaskSettings: Send, Sync);
    static_assertions::assert_impl_all!(WeakOptimizer: Send, Sync);
}
