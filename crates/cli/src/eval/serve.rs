//! `tuneloop eval serve`: the benchmark service from the command line.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::{RunOptions, apply_plan, round_setup, runtime};
use crate::error::{CliError, CliResult};

/// Options of `eval serve`: those of `eval run` that make a round, and
/// what the service keeps current.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeOptions {
    #[command(flatten)]
    pub(crate) run: RunOptions,
    /// Time between rounds: `1h`, `30m`, `90s` (on the simulated
    /// providers' virtual clock, rounds follow each other at once).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) every: std::time::Duration,
    /// Rounds before exiting (default: until stopped).
    #[arg(long)]
    pub(crate) rounds: Option<usize>,
    /// The runtime configuration to keep current: default parameters and
    /// provider overrides from each passing round's routing plan (the file
    /// an optimizer's RuntimeConfigStore reads).
    #[arg(long)]
    pub(crate) runtime_config: Option<PathBuf>,
    /// The scorecard file each passing round's calls feed.
    #[arg(long)]
    pub(crate) scorecard: Option<PathBuf>,
    /// The provenance chain (JSON Lines) of the rounds applied.
    #[arg(long)]
    pub(crate) provenance: Option<PathBuf>,
}

/// `eval serve`: a [`tuneloop_eval::BenchmarkService`] on a schedule; one
/// line per round on stderr, every round's outcome in the output.
pub(crate) fn serve(suite: &str, o: ServeOptions) -> CliResult<serde_json::Value> {
    let r = &o.run;
    for (set, flag) in [
        (r.save_baseline.is_some(), "--save-baseline"),
        (r.routing_out.is_some(), "--routing-out"),
        (r.report.is_some(), "--report"),
    ] {
        if set {
            return Err(CliError::bad(format!(
                "{flag} is for eval run; eval serve keeps --runtime-config, --scorecard and --provenance current"
            )));
        }
    }
    let setup = round_setup(suite, r)?;
    let runs = r.runs;
    let mut service =
        tuneloop_eval::BenchmarkService::new(setup.suite, setup.bench, setup.supervisor);
    if let Some(b) = setup.baseline {
        service = service.with_baseline(b);
    }
    if let Some(h) = &r.history {
        service = service.with_history(h)?;
    }
    if let Some(p) = &o.scorecard {
        let sc = tuneloop::providers::Scorecard::open(
            Some(p),
            tuneloop::providers::ScorecardConfig::default(),
        )
        .map_err(|e| CliError::bad(format!("--scorecard {}: {e}", p.display())))?;
        let sc = Arc::new(sc);
        let saved = sc.clone();
        service = service.with_scorecard(sc).on_pass(Box::new(move |_| {
            if let Err(e) = saved.save() {
                eprintln!("eval serve: scorecard not saved: {e}");
            }
        }));
    }
    if let Some(p) = &o.provenance {
        let chain = tuneloop_gates::Provenance::open(p)
            .map_err(|e| CliError::bad(format!("--provenance {}: {e}", p.display())))?;
        service = service.with_provenance(Arc::new(std::sync::Mutex::new(chain)));
    }
    let store = o
        .runtime_config
        .as_ref()
        .map(|p| tuneloop_config::RuntimeConfigStore::open(p).map(Arc::new))
        .transpose()
        .map_err(|e| CliError::bad(format!("--runtime-config: {e}")))?;
    if let Some(store) = &store {
        let store = store.clone();
        service = service.on_pass(Box::new(move |report| {
            let applied =
                store.update(|c| apply_plan(c, &report.plan, runs, "tuneloop eval serve"));
            if let Err(e) = applied.and_then(|_| store.flush()) {
                eprintln!("eval serve: runtime config not updated: {e}");
            }
        }));
    }
    let rt = runtime(setup.simulated)?;
    let mut rounds = Vec::new();
    let mut failed = None;
    rt.block_on(
        service.run_every(o.every, o.rounds, |outcome| match outcome {
            Ok(out) => {
                eprintln!(
                    "eval serve: round {} {}{}",
                    out.round,
                    if out.passed {
                        "passed, applied"
                    } else {
                        "did not pass, nothing changed"
                    },
                    if out.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", out.reasons.join("; "))
                    }
                );
                rounds.push(json!({
                    "round": out.round,
                    "passed": out.passed,
                    "reasons": out.reasons,
                    "calls": out.report.calls,
                    "default_parameters": out.report.plan.default_parameters,
                    "score": out.report.plan.score,
                }));
            }
            Err(e) => {
                eprintln!("eval serve: round failed: {e}");
                failed.get_or_insert(e.to_string());
            }
        }),
    );
    Ok(json!({ "rounds": rounds, "first_error": failed }))
}

/// The command line's defaults of a round, as `eval run` parses them.
#[cfg(feature = "admin")]
#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    run: RunOptions,
}

/// A benchmark service on the standard suite and the default simulated
/// providers, writing each passing round's plan into `store`, and the
/// (paused-clock) runtime its rounds run on: the load `bench --admin`
/// puts next to the optimizer.
#[cfg(feature = "admin")]
pub(crate) fn simulated_service(
    store: Arc<tuneloop_config::RuntimeConfigStore>,
) -> CliResult<(tuneloop_eval::BenchmarkService, tokio::runtime::Runtime)> {
    use clap::Parser as _;
    let o = Defaults::try_parse_from(["tuneloop"])
        .map_err(|e| CliError::Other(e.into()))?
        .run;
    let setup = round_setup("standard", &o)?;
    let runs = o.runs;
    let service = tuneloop_eval::BenchmarkService::new(setup.suite, setup.bench, setup.supervisor)
        .on_pass(Box::new(move |report| {
            let _ = store.update(|c| apply_plan(c, &report.plan, runs, "bench"));
        }));
    Ok((service, runtime(setup.simulated)?))
}
