//! `tuneloop eval run | refine | aa`: benchmark suites, prompt refinement
//! and the regression test's A/A false-positive rate.
//!
//! Without `--providers`, two simulated providers stand in for real ones
//! (a cloud model and a local one that know the suite's reference
//! answers), on a paused clock: simulated latencies are recorded, not
//! waited for, and nothing touches the network.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::json;
use tuneloop::providers::{Provider, SimulatedConfig, SimulatedProvider, SimulatedRole, Tier};
use tuneloop_core::ParameterSet;
use tuneloop_eval::{
    Baseline, BenchmarkConfig, Candidate, History, RefineConfig, Refiner, SessionRecorder, Suite,
    Supervisor, SupervisorConfig,
};

use crate::error::{CliError, CliResult};

mod endpoint;
mod rewards_out;
mod serve;

use endpoint::{ENDPOINT_ID, Endpoint, endpoint_parameters};
use rewards_out::write_rewards;
#[cfg(feature = "admin")]
pub(crate) use serve::simulated_service;
pub(crate) use serve::{ServeOptions, serve};

/// The instruction the default simulated models need for full quality in
/// `eval refine`, and the interviewer's hints (the second is the one).
const SIM_INSTRUCTION: &str = "Answer with only the final answer, nothing else.";
const SIM_HINTS: [&str; 2] = ["Think step by step before answering.", SIM_INSTRUCTION];

impl From<tuneloop_eval::Error> for CliError {
    fn from(e: tuneloop_eval::Error) -> Self {
        CliError::of_kind(e.kind(), e)
    }
}

/// A progress bar on stderr: redrawn in place on a terminal, a line every
/// quarter otherwise (logs).
pub(crate) struct Bar {
    label: &'static str,
    tty: bool,
    last: AtomicUsize,
}

impl Bar {
    pub(crate) fn new(label: &'static str) -> Self {
        Bar {
            label,
            tty: std::io::stderr().is_terminal(),
            last: AtomicUsize::new(usize::MAX),
        }
    }

    pub(crate) fn update(&self, done: usize, total: usize) {
        let total = total.max(1);
        let pct = done * 100 / total;
        let step = if self.tty { pct } else { pct / 25 * 25 };
        if self.last.swap(step, Ordering::Relaxed) == step {
            return;
        }
        let width = 30;
        let filled = done * width / total;
        let bar = format!(
            "{} [{}{}] {pct:3}% ({done}/{total})",
            self.label,
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if self.tty {
            eprint!("\r{bar}");
            if done >= total {
                eprintln!();
            }
        } else {
            eprintln!("{bar}");
        }
    }
}

/// A provider in a `--providers` file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ProviderSpec {
    Simulated(SimulatedConfig),
    #[cfg(feature = "http")]
    Openai(tuneloop::providers::OpenAiConfig),
}

/// Providers and whether all of them are simulated.
struct Providers {
    list: Vec<Arc<dyn Provider>>,
    simulated: bool,
}

fn load_suite(spec: &str) -> CliResult<Suite> {
    if spec == "standard" {
        return Ok(Suite::standard());
    }
    Ok(Suite::load(Path::new(spec))?)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> CliResult<T> {
    let text = std::fs::read(path)
        .map_err(|e| CliError::bad(format!("{what} {}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        CliError::bad(format!(
            "{what} {}: line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

fn load_providers(path: &Path) -> CliResult<Providers> {
    let specs: Vec<serde_json::Value> = read_json(path, "providers")?;
    if specs.is_empty() {
        return Err(CliError::bad(format!(
            "providers {}: no provider",
            path.display()
        )));
    }
    let mut list: Vec<Arc<dyn Provider>> = Vec::new();
    #[cfg_attr(not(feature = "http"), allow(unused_mut))]
    let mut simulated = true;
    for (i, v) in specs.into_iter().enumerate() {
        let spec: ProviderSpec = serde_json::from_value(v).map_err(|e| {
            CliError::bad(format!(
                "providers {}: entry {i}: {e} (expected {{\"simulated\": {{...}}}}{})",
                path.display(),
                if cfg!(feature = "http") {
                    " or {\"openai\": {...}}"
                } else {
                    "; this build has no HTTP providers: build with --features http"
                }
            ))
        })?;
        match spec {
            ProviderSpec::Simulated(c) => list.push(Arc::new(SimulatedProvider::new(c))),
            #[cfg(feature = "http")]
            ProviderSpec::Openai(c) => {
                simulated = false;
                let p = tuneloop::providers::OpenAiCompatible::new(c).map_err(|e| {
                    CliError::bad(format!("providers {}: entry {i}: {e}", path.display()))
                })?;
                list.push(Arc::new(p));
            }
        }
    }
    let mut ids: Vec<&str> = list.iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(CliError::bad(format!(
            "providers {}: id `{}` appears twice",
            path.display(),
            w[0]
        )));
    }
    Ok(Providers { list, simulated })
}

/// The default simulated pair: a cloud model and a faster, weaker local one,
/// each with its peak quality lowered by `shift` (0 but for `eval aa --shift`).
fn default_providers(suite: &Suite, requires: &[String], seed: u64, shift: f64) -> Providers {
    let answers = suite.simulated_answers(|_| requires.to_vec());
    let cloud = SimulatedConfig {
        id: "sim-cloud".into(),
        tier: Tier::Online,
        models: vec!["large".into()],
        base_latency_ms: 600.0,
        ms_per_token: 0.5,
        peak_quality: (0.97 - shift).max(0.0),
        best_temperature: 0.2,
        answers: answers.clone(),
        seed,
        ..SimulatedConfig::default()
    };
    let local = SimulatedConfig {
        id: "sim-local".into(),
        tier: Tier::Local,
        models: vec!["small".into()],
        base_latency_ms: 150.0,
        ms_per_token: 0.2,
        peak_quality: (0.88 - shift).max(0.0),
        best_temperature: 0.4,
        answers,
        seed: seed.wrapping_add(1),
        ..SimulatedConfig::default()
    };
    Providers {
        list: vec![
            Arc::new(SimulatedProvider::new(cloud)),
            Arc::new(SimulatedProvider::new(local)),
        ],
        simulated: true,
    }
}

fn default_parameters() -> CliResult<Vec<ParameterSet>> {
    let mut out = Vec::new();
    for model in ["large", "small"] {
        for t in [0.2, 0.7] {
            out.push(
                ParameterSet::builder(model)
                    .temperature(t)
                    .max_tokens(1024)
                    .build()?,
            );
        }
    }
    Ok(out)
}

/// A runtime: paused clock (virtual time) when every provider is simulated.
fn runtime(simulated: bool) -> CliResult<tokio::runtime::Runtime> {
    let rt = if simulated {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    rt.map_err(|e| CliError::Other(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

/// The grader of judge-scored cases: `--judge PROVIDER/MODEL`, or a
/// simulated judge with the default simulated providers; `None` when the
/// suite has no judge-scored case.
fn judge_for(
    suite: &Suite,
    providers: &Providers,
    spec: Option<&str>,
    default_providers: bool,
) -> CliResult<Option<tuneloop_eval::Judge>> {
    let needed = suite.cases.iter().any(|c| c.scorer.needs_judge());
    match spec {
        Some(spec) => {
            let c = candidate(&providers.list, spec, "--judge")?;
            Ok(Some(tuneloop_eval::Judge {
                provider: c.provider,
                parameters: c.parameters,
            }))
        }
        None if !needed => Ok(None),
        None if default_providers => Ok(Some(tuneloop_eval::Judge {
            provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
                id: "sim-judge".into(),
                role: SimulatedRole::Judge,
                ..SimulatedConfig::default()
            })),
            parameters: parameters_for("judge")?,
        })),
        None => Err(CliError::bad(
            "the suite has judge-scored cases: name the grader with --judge PROVIDER/MODEL",
        )),
    }
}

/// Options of `eval run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunOptions {
    /// A JSON array of providers: `{"simulated": {...}}` (and, built
    /// with `--features http`, `{"openai": {...}}`). Default: two
    /// simulated providers on a virtual clock.
    #[arg(long)]
    pub(crate) providers: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    /// A JSON array of parameter sets (default: models large and small
    /// at temperatures 0.2 and 0.7).
    #[arg(long)]
    pub(crate) parameters: Option<PathBuf>,
    /// Benchmark runs.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: u32,
    /// Calls per case, provider and parameter set in each run.
    #[arg(long, default_value_t = 10)]
    pub(crate) repetitions: u32,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// A baseline to check for regressions.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// Writes this run's baseline here.
    #[arg(long)]
    pub(crate) save_baseline: Option<PathBuf>,
    /// Writes routing.json, scorecard.json and runtime-config.json here.
    #[arg(long)]
    pub(crate) routing_out: Option<PathBuf>,
    /// Writes the per-case results as a replay file for `simulate
    /// --rewards`: a row per case and repetition, `task_<type>` indicator
    /// columns, a `reward_<provider>:<model>:<arm>` column each (the
    /// call's quality, 0 for a failure).
    #[arg(long)]
    pub(crate) rewards_out: Option<PathBuf>,
    /// Appends each round's summary to this JSON Lines history.
    #[arg(long)]
    pub(crate) history: Option<PathBuf>,
    /// The policy gates, as JSON (default: tuneloop_eval::Gates::default()).
    #[arg(long)]
    pub(crate) gates: Option<PathBuf>,
    /// Writes the full supervisor report (JSON) here.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// The grader of judge-scored cases, PROVIDER/MODEL (default with
    /// simulated providers: a simulated judge).
    #[arg(long)]
    pub(crate) judge: Option<String>,
    /// Seed of the simulated providers.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Parts of a round shared by `eval run` and `eval serve`.
struct RoundSetup {
    suite: Suite,
    bench: BenchmarkConfig,
    supervisor: Supervisor,
    baseline: Option<Baseline>,
    simulated: bool,
}

fn round_setup(suite: &str, o: &RunOptions) -> CliResult<RoundSetup> {
    let suite = load_suite(suite)?;
    let endpoint = o.endpoint.providers()?;
    let parameter_sets: Vec<ParameterSet> = match (&o.parameters, &endpoint) {
        (Some(p), _) => read_json(p, "parameters")?,
        (None, Some((_, model))) => endpoint_parameters(model)?,
        (None, None) => default_parameters()?,
    };
    let named = o.providers.is_some() || endpoint.is_some();
    let providers = match (&o.providers, endpoint) {
        (Some(p), _) => load_providers(p)?,
        (None, Some((providers, _))) => providers,
        (None, None) => default_providers(&suite, &[], o.seed, 0.0),
    };
    let gates = match &o.gates {
        Some(p) => read_json(p, "gates")?,
        None => tuneloop_eval::Gates::default(),
    };
    let baseline = o.baseline.as_deref().map(Baseline::load).transpose()?;
    let judge = judge_for(&suite, &providers, o.judge.as_deref(), !named)?;
    let simulated = providers.simulated;
    let mut bench = BenchmarkConfig::new(providers.list, parameter_sets);
    bench.repetitions = o.repetitions;
    bench.concurrency = o.concurrency;
    bench.judge = judge;
    let supervisor = Supervisor::new(SupervisorConfig {
        runs: o.runs,
        gates,
        ..SupervisorConfig::default()
    })?;
    Ok(RoundSetup {
        suite,
        bench,
        supervisor,
        baseline,
        simulated,
    })
}

pub(crate) fn run(suite: &str, o: RunOptions) -> CliResult<serde_json::Value> {
    let RoundSetup {
        suite,
        bench,
        supervisor,
        baseline,
        simulated,
    } = round_setup(suite, &o)?;
    let first_round = match &o.history {
        Some(h) => History::next_round(h)?,
        None => 0,
    };
    let bar = Bar::new("eval run");
    let update = |d: usize, t: usize| bar.update(d, t);
    let rt = runtime(simulated)?;
    let (runs, report) = rt.block_on(supervisor.run(
        &suite,
        &bench,
        first_round,
        baseline.as_ref(),
        Some(&update),
    ))?;
    if let Some(h) = &o.history {
        History::append(h, &runs)?;
    }
    if let Some(p) = &o.save_baseline {
        let summaries = tuneloop_eval::summarize(&runs, supervisor.config().alpha);
        Baseline::from_summaries(&suite.name, &summaries).save(p)?;
    }
    if let Some(p) = &o.rewards_out {
        write_rewards(&runs, p)?;
    }
    if let Some(dir) = &o.routing_out {
        report.plan.write(dir)?;
        write_runtime_config(&report.plan, o.runs, &dir.join("runtime-config.json"))?;
    }
    if let Some(p) = &o.report {
        let json = serde_json::to_vec_pretty(&report)?;
        tuneloop_core::fs::write_atomic(p, &json)
            .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", p.display())))?;
    }
    let configs: Vec<serde_json::Value> = report
        .configs
        .iter()
        .map(|c| {
            let s = &c.summary;
            json!({
                "config": s.key.to_string(),
                "calls": s.calls,
                "success_rate": s.successes as f64 / s.calls.max(1) as f64,
                "quality": s.quality.mean,
                "ci": [s.ci.0, s.ci.1],
                "within_case_sd": s.within_case_sd,
                "between_run_sd": s.between_run_sd,
                "latency_p50_ms": s.latency_p50_ms,
                "latency_p95_ms": s.latency_p95_ms,
                "regression": c.regression.as_ref().map(|r| json!({"drop": r.drop, "p_value": r.p_value, "regressed": r.regressed})),
                "gates_passed": c.gates.passed,
                "max_phase": c.gates.max_phase,
            })
        })
        .collect();
    let recommendations: BTreeMap<&String, serde_json::Value> = report
        .plan
        .recommendations
        .iter()
        .map(|(t, r)| {
            let pick = |c: &Option<tuneloop_eval::Choice>| {
                c.as_ref().map(|c| {
                    json!({
                        "provider": c.provider,
                        "model": c.parameters.model(),
                        "parameters": c.parameters,
                        "quality": c.quality,
                        "ci": [c.ci.0, c.ci.1],
                        "max_phase": c.max_phase,
                    })
                })
            };
            (
                t,
                json!({
                    "choice": pick(&r.choice),
                    "fallback": pick(&r.fallback),
                    "warm_up": r.warm_up,
                    "reasons": r.reasons,
                }),
            )
        })
        .collect();
    let failures = failures(&runs);
    Ok(json!({
        "suite": report.suite,
        "runs": report.runs,
        "failures": failures,
        "rounds": runs.iter().map(|r| r.round).collect::<Vec<_>>(),
        "calls": report.calls,
        "regressions": report.regressions,
        "unstable": report.unstable,
        "restraint": report.restraint,
        "recommendations": recommendations,
        "provider_order": report.plan.provider_order,
        "disabled_providers": report.plan.disabled_providers,
        "configs": configs,
    }))
}

/// Distinct error messages kept per provider in the output.
const SHOWN_ERRORS: usize = 5;

/// Failed calls per provider, with their most frequent messages (each also
/// told on stderr), so that a run against a failing server says so.
fn failures(runs: &[tuneloop_eval::BenchmarkRun]) -> serde_json::Value {
    let mut by_provider: BTreeMap<&str, (u64, u64, BTreeMap<&str, u64>)> = BTreeMap::new();
    for call in runs.iter().flat_map(|r| &r.calls) {
        let (calls, failed, errors) = by_provider.entry(&call.provider).or_default();
        *calls += 1;
        if !call.success {
            *failed += 1;
            *errors
                .entry(call.error.as_deref().unwrap_or("no answer"))
                .or_default() += 1;
        }
    }
    let mut total = 0;
    let providers: BTreeMap<&str, serde_json::Value> = by_provider
        .into_iter()
        .map(|(provider, (calls, failed, errors))| {
            total += failed;
            let mut errors: Vec<(&str, u64)> = errors.into_iter().collect();
            errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            if failed > 0 {
                eprintln!("eval run: {provider}: {failed} of {calls} calls failed");
                for (message, n) in errors.iter().take(SHOWN_ERRORS) {
                    eprintln!("  {n} x {message}");
                }
            }
            let shown: Vec<serde_json::Value> = errors
                .iter()
                .take(SHOWN_ERRORS)
                .map(|(message, n)| json!({"message": message, "calls": n}))
                .collect();
            (
                provider,
                json!({"calls": calls, "failed": failed, "errors": shown,
                       "other_messages": errors.len().saturating_sub(SHOWN_ERRORS)}),
            )
        })
        .collect();
    json!({"failed": total, "providers": providers})
}

/// The optimizer's runtime configuration from a routing plan: the default
/// parameters, each provider's model, disabled providers, provenance.
fn write_runtime_config(
    plan: &tuneloop_eval::RoutingPlan,
    runs: u32,
    path: &Path,
) -> CliResult<()> {
    let mut rc = tuneloop_config::RuntimeConfig::default();
    apply_plan(&mut rc, plan, runs, "tuneloop eval run");
    rc.validate()
        .map_err(|e| CliError::Other(anyhow::anyhow!("runtime config: {e}")))?;
    let json = serde_json::to_vec_pretty(&rc)?;
    tuneloop_core::fs::write_atomic(path, &json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("{}: {e}", path.display())))
}

/// Sets `rc` from a routing plan: its default parameters, each provider's
/// model, its disabled providers, and where the values came from.
fn apply_plan(
    rc: &mut tuneloop_config::RuntimeConfig,
    plan: &tuneloop_eval::RoutingPlan,
    runs: u32,
    by: &str,
) {
    use tuneloop_config::{Metadata, ProviderOverride};
    rc.default_parameters = plan.default_parameters.clone();
    rc.metadata = Metadata {
        optimized_by: Some(by.to_owned()),
        optimized_at: Some(plan.created_at),
        score: plan.score,
        iterations: u64::from(runs),
    };
    rc.provider_overrides.clear();
    for p in &plan.disabled_providers {
        rc.provider_overrides.insert(
            p.clone(),
            ProviderOverride {
                enabled: Some(false),
                ..ProviderOverride::default()
            },
        );
    }
    for (p, m) in &plan.provider_models {
        rc.provider_overrides.insert(
            p.clone(),
            ProviderOverride {
                enabled: Some(true),
                model: Some(m.clone()),
                ..ProviderOverride::default()
            },
        );
    }
}

/// Options of `eval refine`.
#[derive(Debug, clap::Args)]
pub(crate) struct RefineOptions {
    /// The case to refine.
    #[arg(long)]
    pub(crate) case: String,
    /// Providers, as for `eval run` (default: simulated).
    #[arg(long)]
    pub(crate) providers: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) endpoint: Endpoint,
    /// Models to refine on, PROVIDER/MODEL,... (default: the simulated
    /// pair, or the named server's model).
    #[arg(long)]
    pub(crate) models: Option<String>,
    /// The interviewer, PROVIDER/MODEL (needed with --providers; default
    /// the named server's model).
    #[arg(long)]
    pub(crate) interviewer: Option<String>,
    /// Stop when the score reaches this.
    #[arg(long, default_value_t = 0.95)]
    pub(crate) threshold: f64,
    /// Most prompts tested per model.
    #[arg(long, default_value_t = 5)]
    pub(crate) max_iterations: u32,
    /// Calls per tested prompt.
    #[arg(long, default_value_t = 10)]
    pub(crate) repetitions: u32,
    /// Records sessions (and the comparison) under this folder.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// The grader of a judge-scored case, PROVIDER/MODEL.
    #[arg(long)]
    pub(crate) judge: Option<String>,
    /// Seed of the simulated providers.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

fn parameters_for(model: &str) -> CliResult<ParameterSet> {
    Ok(ParameterSet::builder(model)
        .temperature(0.2)
        .max_tokens(1024)
        .build()?)
}

pub(crate) fn refine(suite: &str, o: RefineOptions) -> CliResult<serde_json::Value> {
    let suite = load_suite(suite)?;
    let case = suite.case(&o.case).cloned().ok_or_else(|| {
        CliError::bad(format!(
            "--case: no case `{}` in suite {}; cases: {}",
            o.case,
            suite.name,
            suite
                .cases
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let endpoint = o.endpoint.providers()?;
    let named = o.providers.is_some() || endpoint.is_some();
    let endpoint_model = endpoint
        .as_ref()
        .map(|(_, model)| format!("{ENDPOINT_ID}/{model}"));
    let (providers, interviewer) = match (&o.providers, endpoint) {
        (None, Some((providers, _))) => {
            let spec = o
                .interviewer
                .clone()
                .or_else(|| endpoint_model.clone())
                .unwrap_or_default();
            let interviewer = candidate(&providers.list, &spec, "--interviewer")?;
            (providers, interviewer)
        }
        (Some(p), _) => {
            let providers = load_providers(p)?;
            let spec = o.interviewer.as_deref().ok_or_else(|| {
                CliError::bad("--interviewer PROVIDER/MODEL is needed with --providers")
            })?;
            let interviewer = candidate(&providers.list, spec, "--interviewer")?;
            (providers, interviewer)
        }
        (None, None) => {
            let providers = default_providers(&suite, &[SIM_INSTRUCTION.to_owned()], o.seed, 0.0);
            let interviewer = Candidate {
                provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
                    id: "sim-interviewer".into(),
                    role: SimulatedRole::Interviewer {
                        hints: SIM_HINTS.iter().map(|s| (*s).to_owned()).collect(),
                    },
                    seed: o.seed,
                    ..SimulatedConfig::default()
                })),
                parameters: parameters_for("interviewer")?,
            };
            (providers, interviewer)
        }
    };
    let models = match (&o.models, &o.providers, &endpoint_model) {
        (Some(m), _, _) => m.clone(),
        (None, None, Some(m)) => m.clone(),
        (None, None, None) => "sim-cloud/large,sim-local/small".into(),
        (None, Some(_), _) => {
            return Err(CliError::bad(
                "--models PROVIDER/MODEL,... is needed with --providers",
            ));
        }
    };
    let candidates = models
        .split(',')
        .map(|spec| candidate(&providers.list, spec.trim(), "--models"))
        .collect::<CliResult<Vec<_>>>()?;
    let mut refiner = Refiner::new(
        interviewer,
        RefineConfig {
            success_threshold: o.threshold,
            max_iterations: o.max_iterations,
            repetitions: o.repetitions,
            ..RefineConfig::default()
        },
    )?;
    if let Some(out) = &o.out {
        refiner = refiner.record(SessionRecorder::new(out));
    }
    let single = Suite {
        cases: vec![case.clone()],
        ..suite.clone()
    };
    if let Some(j) = judge_for(&single, &providers, o.judge.as_deref(), !named)? {
        refiner = refiner.judge(j);
    }
    let bar = Bar::new("eval refine");
    bar.update(0, candidates.len());
    let rt = runtime(providers.simulated)?;
    let (sessions, comparison) = rt.block_on(refiner.compare(&case, &candidates))?;
    bar.update(candidates.len(), candidates.len());
    let comparison_file = o
        .out
        .as_ref()
        .map(|out| out.join(format!("comparison_{}.json", comparison.id)));
    Ok(json!({
        "case": case.id,
        "sessions": sessions.iter().map(|s| json!({
            "id": s.id,
            "model": s.model,
            "stop_reason": s.stop_reason,
            "iterations": s.iterations.len(),
            "initial_score": s.initial_score,
            "best_score": s.best_score,
            "best_prompt": s.best_prompt,
            "folder": o.out.as_ref().map(|out| SessionRecorder::new(out).session_dir(&s.id, &s.model)),
        })).collect::<Vec<_>>(),
        "comparison": comparison,
        "comparison_file": comparison_file,
    }))
}

fn candidate(providers: &[Arc<dyn Provider>], spec: &str, flag: &str) -> CliResult<Candidate> {
    let (id, model) = spec
        .split_once('/')
        .ok_or_else(|| CliError::bad(format!("{flag}: `{spec}` is not PROVIDER/MODEL")))?;
    let provider = providers
        .iter()
        .find(|p| p.id() == id)
        .ok_or_else(|| {
            CliError::bad(format!(
                "{flag}: no provider `{id}`; providers: {}",
                providers
                    .iter()
                    .map(|p| p.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
        .clone();
    if !provider.capabilities().serves(model) {
        return Err(CliError::bad(format!(
            "{flag}: provider `{id}` does not serve model `{model}`"
        )));
    }
    Ok(Candidate {
        provider,
        parameters: parameters_for(model)?,
    })
}

/// `eval aa`: the regression test's false-positive rate on A/A runs or,
/// with `shift > 0` (default simulated providers only), its power against
/// a drop of `shift` in every configuration's peak quality.
pub(crate) fn aa(
    suite: &str,
    providers: Option<&Path>,
    trials: u32,
    repetitions: u32,
    shift: f64,
    seed: u64,
) -> CliResult<serde_json::Value> {
    let suite = load_suite(suite)?;
    if !(shift.is_finite() && (0.0..=1.0).contains(&shift)) {
        return Err(CliError::bad(format!("--shift: {shift} is not in [0, 1]")));
    }
    if shift > 0.0 && providers.is_some() {
        return Err(CliError::bad(
            "--shift applies to the default simulated providers only",
        ));
    }
    let before = match providers {
        Some(p) => load_providers(p)?,
        None => default_providers(&suite, &[], seed, 0.0),
    };
    let simulated = before.simulated;
    let mut bench = BenchmarkConfig::new(before.list, default_parameters()?);
    bench.repetitions = repetitions;
    let mut after = bench.clone();
    if shift > 0.0 {
        after.providers = default_providers(&suite, &[], seed, shift).list;
    }
    let gates = tuneloop_eval::Gates::default();
    let bar = Bar::new("eval aa");
    let update = |d: usize, t: usize| bar.update(d, t);
    let rt = runtime(simulated)?;
    let r = rt.block_on(tuneloop_eval::regression_trials(
        &suite,
        &bench,
        &after,
        &gates,
        trials,
        Some(&update),
    ))?;
    let mut v = serde_json::to_value(r)?;
    v["shift"] = json!(shift);
    Ok(v)
}
