//! The `tuneloop` command line. Contract (README, `docs/`): JSON on stdout unless
//! `--format text`, progress and logs on stderr; exit 0 on success, 2 on bad
//! input (the message names file, line and field), 1 otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod bench;
mod csv;
mod error;
mod eval;
mod evaluate;
mod export;
mod ope;
mod replay;
mod report;
mod simulate;
mod traffic;

use error::{CliError, CliResult};

/// Most bootstrap resamples a command draws.
const MAX_RESAMPLES: u64 = 1_000_000;

/// Learn LLM generation parameters from outcomes, safely.
#[derive(Debug, Parser)]
#[command(name = "tuneloop", version, about)]
struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json, global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Estimator-level off-policy evaluation of a JSON Lines file.
    Ope {
        /// JSON Lines, one logged round a line (gzip if it ends in .gz).
        #[arg(long)]
        input: PathBuf,
        /// Comma-separated: ipw,snipw,dm,dr,sndr,switch-dr,dros (default: all the input allows).
        #[arg(long)]
        estimators: Option<String>,
        /// Largest importance weight of ipw.
        #[arg(long)]
        clip: Option<f64>,
        /// Switch-DR's threshold.
        #[arg(long, default_value_t = 5.0)]
        switch_tau: f64,
        /// DRos's shrinkage.
        #[arg(long, default_value_t = 100.0)]
        dros_lambda: f64,
        /// Most values read from the input, counted as rounds × (actions + 8) (the rounds' target probabilities and predicted rewards, and the per-round numbers the estimators keep).
        #[arg(long, default_value_t = tuneloop_counterfactual::DEFAULT_MAX_VALUES)]
        max_values: usize,
        /// Bootstrap resamples (0: none; at most 1,000,000).
        #[arg(long, default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_RESAMPLES))]
        bootstrap: usize,
        /// Intervals are at level 1 - alpha.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Policy-level evaluation of a candidate on a decision log.
    Evaluate {
        /// The decision log (JSON Lines written by the library), or a
        /// fleet's database, `postgres://…` (a tuneloop built with
        /// --features postgres).
        #[arg(long)]
        log: PathBuf,
        /// linucb|thompson|epsilon-greedy|uniform|fixed:ARM, a JSON policy configuration, or @SNAPSHOT.json.
        #[arg(long)]
        policy: String,
        /// Fraction of the log that trains a fresh learning policy before evaluation (default 0.5; 0 for fixed, uniform and snapshots).
        #[arg(long)]
        train_fraction: Option<f64>,
        /// Bootstrap resamples (at most 1,000,000).
        #[arg(long, default_value_t = 2_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_RESAMPLES))]
        bootstrap: usize,
        /// Level of the intervals and of the one-sided verdict.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Count abandoned and expired decisions at their default reward
        /// (by default they are left out, as the learner leaves them out,
        /// and counted in `skipped_defaulted`).
        #[arg(long)]
        include_defaulted: bool,
        /// Evaluate one task type (by default each task type of the log,
        /// and all of them weighted by their traffic).
        #[arg(long)]
        task_type: Option<String>,
        /// Most decisions read (each takes memory while the estimates run;
        /// about 1.6 KB each with 12 arms: 500,000 took 0.8 GB).
        #[arg(long, default_value_t = 1_000_000)]
        max_decisions: usize,
    },
    /// Supervised-to-bandit simulation, or a built-in scenario.
    Simulate {
        /// CSV with a header, numeric features, last column an integer label.
        #[arg(long, conflicts_with = "scenario")]
        supervised: Option<PathBuf>,
        /// A built-in scenario: `llm-params`, `rollout-aa`, `rollout-breach`, `rollout-proof`, `traffic` (writes --log).
        #[arg(long, conflicts_with = "rewards")]
        scenario: Option<String>,
        /// Replay of logged evaluations: CSV with a header, `reward_<arm>` columns (each arm's reward on the row, in [0, 1]), other columns numeric features.
        #[arg(long, conflicts_with = "supervised")]
        rewards: Option<PathBuf>,
        /// linucb|thompson|epsilon-greedy|uniform.
        #[arg(long, default_value = "linucb")]
        policy: String,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenario: rounds per task type (`traffic`: decisions in all; at most 10,000,000).
        #[arg(long, default_value_t = 200, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
        rounds: usize,
        /// Scenario: independent runs averaged (at most 100,000).
        #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
        runs: usize,
        /// Scenario `traffic`: the decision log to write.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Scenario `traffic`: also write the rollouts' provenance chain
        /// (every change and verdict of the proof) to this file.
        #[arg(long)]
        provenance: Option<PathBuf>,
    },
    /// Latency of the hot paths (p50/p99/max, nanoseconds).
    Bench {
        /// Context dimension (at most 1,024).
        #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
        dims: usize,
        /// Number of arms (at most 4,096).
        #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
        arms: usize,
        /// Timed calls of each kind (at most 100,000,000).
        #[arg(long, default_value_t = 100_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
        iterations: usize,
        /// Also time the optimizer (LinUCB) with the admin endpoint on and
        /// scraped (`/metrics` and `/rollouts`) every 10 ms, and the
        /// benchmark service running a round every 250 ms into its runtime
        /// configuration (a tuneloop built with --features admin).
        #[arg(long)]
        admin: bool,
        /// Also time the optimizer (LinUCB) in fleet mode on this database
        /// (`postgres://…`): the decision log into PostgreSQL and the fleet
        /// thread exchanging learning and leasing the budget every second,
        /// beside the same optimizer with the embedded JSON Lines log (a
        /// tuneloop built with --features postgres).
        #[arg(long)]
        fleet: Option<String>,
        /// The pace of the `--fleet` rows, decisions a second (default:
        /// as fast as they go). At full speed the log's background work
        /// competes with the timed thread for the cores; paced, the rows
        /// show the hot path at a given load.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Writes the decision log a fleet keeps in PostgreSQL as JSON Lines
    /// (what `ope`, `evaluate` and `report` read), oldest first (a
    /// tuneloop built with --features postgres).
    Export {
        /// The database (`postgres://user@host:port/db`).
        #[arg(long)]
        database_url: String,
        /// The JSON Lines file to write (atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// A self-contained HTML report of a decision log: reward over time,
    /// rollout phases, quality against cost, off-policy estimates, drift,
    /// attribution.
    Report {
        /// The decision log (JSON Lines written by the library; gzip if it
        /// ends in .gz), or a fleet's database, `postgres://…` (a tuneloop
        /// built with --features postgres).
        #[arg(long)]
        log: PathBuf,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A provenance chain (JSON Lines, from `OptimizerBuilder::provenance`):
        /// adds the candidate's proof and every rollout change.
        #[arg(long)]
        provenance: Option<PathBuf>,
    },
    /// Benchmark suites, prompt refinement, the regression test's A/A rate.
    Eval {
        #[command(subcommand)]
        command: Box<EvalCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Runs a suite several times on providers × parameter sets and prints
    /// aggregates, regressions, gates and a recommendation per task type.
    Run {
        /// `standard` (built in) or a suite JSON file.
        suite: String,
        #[command(flatten)]
        options: eval::RunOptions,
    },
    /// Runs the suite every `--every` as a benchmark service: each round
    /// goes to the history and through the gates against the last passing
    /// round; a passing round updates the runtime configuration, the
    /// scorecard and the provenance chain, a regressing one changes nothing.
    Serve {
        /// `standard` (built in) or a suite JSON file.
        suite: String,
        #[command(flatten)]
        options: eval::ServeOptions,
    },
    /// Refines a case's prompt with an interviewer model, on one or more models.
    Refine {
        /// `standard` (built in) or a suite JSON file.
        suite: String,
        #[command(flatten)]
        options: eval::RefineOptions,
    },
    /// Measures how often the regression test flags A/A runs (or, with
    /// --shift, detects a real drop).
    Aa {
        /// `standard` (built in) or a suite JSON file.
        suite: String,
        /// Providers, as for `eval run` (default: simulated).
        #[arg(long)]
        providers: Option<PathBuf>,
        /// Trials (a baseline run, then a second run).
        #[arg(long, default_value_t = 200)]
        trials: u32,
        /// Lower the second run's quality by this much (default simulated
        /// providers): measures power instead of the false-positive rate.
        #[arg(long, default_value_t = 0.0)]
        shift: f64,
        /// Calls per case, provider and parameter set in each run.
        #[arg(long, default_value_t = 5)]
        repetitions: u32,
        /// Seed of the simulated providers.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn run(cli: Cli) -> CliResult<serde_json::Value> {
    match cli.command {
        Command::Ope {
            input,
            estimators,
            clip,
            switch_tau,
            dros_lambda,
            bootstrap,
            alpha,
            seed,
            max_values,
        } => ope::run(
            &input,
            estimators.as_deref(),
            max_values,
            tuneloop_counterfactual::EstimatorSettings {
                clip,
                switch_tau,
                dros_lambda,
                bootstrap,
                alpha,
                seed,
            },
        ),
        Command::Evaluate {
            log,
            policy,
            train_fraction,
            bootstrap,
            alpha,
            seed,
            include_defaulted,
            task_type,
            max_decisions,
        } => evaluate::run(
            &log,
            &policy,
            evaluate::Options {
                train_fraction,
                defaulted: if include_defaulted {
                    tuneloop_counterfactual::DefaultedRewards::Include
                } else {
                    tuneloop_counterfactual::DefaultedRewards::Exclude
                },
                task_type,
                max_decisions,
                settings: tuneloop_counterfactual::EstimatorSettings {
                    bootstrap,
                    alpha,
                    seed,
                    ..Default::default()
                },
            },
        ),
        Command::Export { database_url, out } => export::run(&database_url, &out),
        Command::Report {
            log,
            out,
            seed,
            provenance,
        } => report::run(&log, &out, seed, provenance.as_deref()),
        Command::Eval { command } => match *command {
            EvalCommand::Run { suite, options } => eval::run(&suite, options),
            EvalCommand::Serve { suite, options } => eval::serve(&suite, options),
            EvalCommand::Refine { suite, options } => eval::refine(&suite, options),
            EvalCommand::Aa {
                suite,
                providers,
                trials,
                shift,
                repetitions,
                seed,
            } => eval::aa(
                &suite,
                providers.as_deref(),
                trials,
                repetitions,
                shift,
                seed,
            ),
        },
        Command::Simulate {
            supervised,
            scenario,
            rewards,
            policy,
            seed,
            rounds,
            runs,
            log,
            provenance,
        } => match (supervised, scenario) {
            _ if rewards.is_some() => replay::run(
                rewards.as_deref().unwrap_or(std::path::Path::new("")),
                &policy,
                seed,
            ),
            (Some(path), None) => simulate::supervised(&path, &policy, seed),
            (None, Some(name)) => match name.as_str() {
                "llm-params" => simulate::scenario_llm_params(&policy, rounds, runs, seed),
                "rollout-aa" => simulate::scenario_rollout(false, runs, seed),
                "rollout-breach" => simulate::scenario_rollout(true, runs, seed),
                "rollout-proof" => simulate::scenario_rollout_proof(runs, seed),
                "traffic" => match log {
                    Some(log) => traffic::run(&log, provenance.as_deref(), rounds, seed),
                    None => Err(CliError::bad(
                        "--scenario traffic needs --log FILE (the decision log to write)",
                    )),
                },
                other => Err(CliError::bad(format!(
                    "--scenario: unknown scenario `{other}`; known: llm-params, rollout-aa, rollout-breach, rollout-proof, traffic"
                ))),
            },
            _ => Err(CliError::bad(
                "simulate needs --supervised FILE.csv, --rewards FILE.csv or --scenario NAME",
            )),
        },
        Command::Bench {
            dims,
            arms,
            iterations,
            admin,
            fleet,
            rate,
        } => bench::run(dims, arms, iterations, admin, fleet.as_deref(), rate),
    }
}

fn print_text(v: &serde_json::Value, prefix: &str, out: &mut impl Write) -> std::io::Result<()> {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                print_text(v, &key, out)?;
            }
            Ok(())
        }
        other => writeln!(out, "{prefix}: {other}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.format;
    match run(cli) {
        Ok(v) => {
            let mut out = std::io::stdout().lock();
            let written = match format {
                Format::Json => serde_json::to_writer_pretty(&mut out, &v)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out)),
                Format::Text => print_text(&v, "", &mut out),
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tuneloop: cannot write output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("tuneloop: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
