//! `tuneloop bench`: latency of the policy hot paths, in nanoseconds.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tuneloop_bandit::{LinUcbParams, ThompsonParams};
use tuneloop_core::{DecisionId, Features, Policy, SelectionKey};

use crate::error::{CliError, CliResult};

fn summary(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
    json!({ "p50_ns": q(0.5), "p99_ns": q(0.99), "max_ns": ns[ns.len() - 1], "samples": ns.len() })
}

fn contexts(rng: &mut ChaCha8Rng, d: usize, n: usize) -> CliResult<Vec<Features>> {
    (0..n)
        .map(|_| {
            let mut x: Vec<f64> = (0..d)
                .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                .collect();
            x[0] = 1.0;
            Features::new(x).map_err(CliError::from)
        })
        .collect()
}

/// Times `select` and `update` of a policy after a warm-up of 20 updates
/// per arm, each call timed on its own.
fn time_policy(
    p: &mut dyn Policy,
    d: usize,
    k: usize,
    iterations: usize,
    rng: &mut ChaCha8Rng,
) -> CliResult<(Value, Value)> {
    let xs = contexts(rng, d, 256)?;
    let all: Vec<usize> = (0..k).collect();
    for i in 0..20 * k {
        p.update(&xs[i % xs.len()], i % k, (i % 7) as f64 / 7.0)?;
    }
    let mut sel = Vec::with_capacity(iterations);
    let mut upd = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let x = &xs[i % xs.len()];
        let key = SelectionKey::new(1, DecisionId::from_u128(i as u128));
        let t = Instant::now();
        let s = p.select(x, &all, &key)?;
        sel.push(t.elapsed().as_nanos() as u64);
        let r = (rng.next_u32() % 2) as f64;
        let t = Instant::now();
        p.update(x, s.arm, r)?;
        upd.push(t.elapsed().as_nanos() as u64);
    }
    Ok((summary(sel), summary(upd)))
}

/// Runs the benchmark: LinUCB, Thompson sampling (disjoint) and shared
/// LinUCB over an arm grid of `arms` arms.
pub(crate) fn run(
    dims: usize,
    arms: usize,
    iterations: usize,
    admin: bool,
    fleet: Option<&str>,
    rate: Option<f64>,
) -> CliResult<Value> {
    // The fleet rows' pace: one decision every 1/rate seconds.
    let pace = rate
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(|r| std::time::Duration::from_secs_f64(1.0 / r));
    if dims == 0 || arms < 2 || iterations == 0 {
        return Err(CliError::bad(
            "--dims must be >= 1, --arms >= 2 and --iterations >= 1",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = serde_json::Map::new();
    let mut lin = LinUcbParams::default().build(arms, dims)?;
    let (s, u) = time_policy(&mut lin, dims, arms, iterations, &mut rng)?;
    out.insert("linucb_select".into(), s);
    out.insert("linucb_update".into(), u);
    let mut ts = ThompsonParams::default().build(arms, dims)?;
    let (s, u) = time_policy(&mut ts, dims, arms, iterations, &mut rng)?;
    out.insert("thompson_select".into(), s);
    out.insert("thompson_update".into(), u);
    // A grid of `arms` arms over temperature × max_tokens for the shared model.
    let temps = arms.div_ceil(4).max(2);
    let grid = tuneloop_core::ArmSet::grid()
        .models(["m"])
        .temperatures((0..temps).map(|i| 2.0 * i as f64 / (temps - 1) as f64))
        .max_tokens([256, 512, 1024, 2048])
        .build()?;
    let mut shared = LinUcbParams::default().build_shared(&grid, dims)?;
    let (s, u) = time_policy(
        &mut shared,
        dims,
        grid.len(),
        iterations.min(20_000),
        &mut rng,
    )?;
    out.insert(
        "linucb_shared".into(),
        json!({ "arms": grid.len(), "joint_dim": dims * grid.arm_feature_dim(), "select": s, "update": u }),
    );
    for (name, policy) in [
        (
            "linucb",
            tuneloop_bandit::PolicyConfig::LinUcb(LinUcbParams::default()),
        ),
        (
            "linucb_shared",
            tuneloop_bandit::PolicyConfig::LinucbShared(LinUcbParams::default()),
        ),
    ] {
        let (rec, record, state_bytes, rss) = optimizer_paths(
            dims,
            arms,
            iterations,
            policy.clone(),
            false,
            Load::None,
            None,
        )?;
        out.insert(
            format!("optimizer_{name}"),
            json!({
                "recommend_parameters": rec,
                "record_outcome": record,
                "learned_state_bytes": state_bytes,
                "resident_kib_after_10pct_and_100pct": rss,
            }),
        );
        // The same through a decision handle: `recommend` and
        // `Decision::record`.
        let (rec, record, _, _) = optimizer_paths(
            dims,
            arms,
            iterations,
            policy.clone(),
            true,
            Load::None,
            None,
        )?;
        out.insert(
            format!("optimizer_{name}_handle"),
            json!({ "recommend_for": rec, "decision_record": record }),
        );
        if admin && name == "linucb" {
            let (rec, record, _, scrapes) = optimizer_paths(
                dims,
                arms,
                iterations,
                policy.clone(),
                false,
                Load::Admin,
                None,
            )?;
            out.insert(
                format!("optimizer_{name}_admin"),
                json!({ "recommend_parameters": rec, "record_outcome": record, "scrapes": scrapes }),
            );
        }
        if let (Some(url), "linucb") = (fleet, name) {
            // The embedded default (a JSON Lines log), then fleet mode,
            // at `rate` decisions a second when given.
            let (rec, record, _, _) = optimizer_paths(
                dims,
                arms,
                iterations,
                policy.clone(),
                false,
                Load::Jsonl,
                pace,
            )?;
            out.insert(
                format!("optimizer_{name}_jsonl_log"),
                json!({ "recommend_parameters": rec, "record_outcome": record }),
            );
            let (rec, record, _, fleet) = optimizer_paths(
                dims,
                arms,
                iterations,
                policy,
                false,
                Load::Fleet(url),
                pace,
            )?;
            out.insert(
                format!("optimizer_{name}_fleet"),
                json!({ "recommend_parameters": rec, "record_outcome": record, "fleet": fleet }),
            );
        }
    }
    Ok(json!({
        "dims": dims,
        "arms": arms,
        "iterations": iterations,
        "results": out,
    }))
}

/// Resident memory of this process in KiB (Linux), if readable.
fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// What runs beside the timed optimizer.
#[derive(Debug, Clone, Copy)]
enum Load<'a> {
    /// Nothing: no decision log either.
    None,
    /// The admin endpoint scraped and the benchmark service.
    Admin,
    /// The embedded default's decision log, JSON Lines in a temporary file.
    Jsonl,
    /// Fleet mode on this database: the log into PostgreSQL and the fleet
    /// thread (learning every second, the budget's lease).
    Fleet(&'a str),
}

/// `recommend_parameters` and `record_outcome` of an [`Optimizer`] with
/// every gate (constraints, budget, trust region, quality floor) and a
/// rollout in shadow (both policies computed), over a grid of about `arms`
/// arms and contexts of dimension `dims`.
fn optimizer_paths(
    dims: usize,
    arms: usize,
    iterations: usize,
    policy: tuneloop_bandit::PolicyConfig,
    handle: bool,
    load: Load<'_>,
    pace: Option<std::time::Duration>,
) -> CliResult<(Value, Value, u64, Value)> {
    use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    use tuneloop_core::{RiskTier, TaskOutcome};
    use tuneloop_gates::{
        BudgetConfig, Constraints, Parameter, QualityFloorConfig, Rule, TrustRegion,
    };
    let temps = arms.div_ceil(8).max(1);
    let grid = tuneloop_core::ArmSet::grid()
        .models(["small", "large"])
        .temperatures((0..temps).map(|i| 0.1 * i as f64))
        .max_tokens([256, 512, 768, 1024])
        .build()?;
    let constraints = Constraints::new(vec![
        Rule::AllowedModels {
            risk_tier: Some(RiskTier::Critical),
            models: vec!["large".into()],
        },
        Rule::ParameterRange {
            task_type: None,
            parameter: Parameter::Temperature,
            min: None,
            max: Some(1.5),
        },
    ]);
    let featurizer = BenchFeaturizer { dim: dims };
    // A runtime configuration the benchmark service writes to (with
    // --admin), read on every decision either way.
    let store = std::sync::Arc::new(
        tuneloop_config::RuntimeConfigStore::in_memory(tuneloop_config::RuntimeConfig::default())
            .map_err(|e| CliError::Other(e.into()))?,
    );
    let jsonl = std::env::temp_dir().join(format!("tuneloop-bench-{}.jsonl", std::process::id()));
    let mut builder = Optimizer::builder();
    match load {
        Load::Jsonl => {
            let log = tuneloop::counterfactual::JsonlLog::open(&jsonl, u64::MAX, 1)
                .map_err(|e| CliError::Other(e.into()))?;
            builder = builder.decision_log(std::sync::Arc::new(log));
        }
        Load::Fleet(url) => builder = builder.decision_log(fleet_log(url)?),
        Load::None | Load::Admin => {}
    }
    let opt = builder
        .task_type(
            "bench",
            TaskTypeConfig::new(grid.clone())
                .policy(policy)
                .constraints(constraints)
                .trust_region(TrustRegion {
                    temperature: 2.0,
                    max_tokens: 4096.0,
                    models: vec!["small".into(), "large".into()],
                    ..TrustRegion::default()
                })
                .rollout(tuneloop_rollout::RolloutConfig::default()),
        )
        .featurizer(Box::new(featurizer))
        .budget(BudgetConfig {
            token_limit: Some(u64::MAX / 4),
            ..BudgetConfig::default()
        })
        .quality_floor(QualityFloorConfig {
            default_floor: 0.1,
            ..QualityFloorConfig::default()
        })
        .seed(1)
        .build()
        .map_err(|e| CliError::Other(e.into()))?;
    store.attach(&opt).map_err(|e| CliError::Other(e.into()))?;
    let fleet = match load {
        Load::Fleet(url) => Some(FleetLoad::start(&opt, url)?),
        _ => None,
    };
    let admin = if let Load::Admin = load {
        Some(AdminLoad::start(&opt, store)?)
    } else {
        None
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let xs = contexts(&mut rng, dims, 256)?;
    let mut rec_ns = Vec::with_capacity(iterations.min(200_000));
    let mut out_ns = Vec::with_capacity(iterations.min(200_000));
    let mut rss = Vec::new();
    let started = Instant::now();
    for i in 0..iterations {
        if let Some(p) = pace {
            let due = started + p.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        // 200 completion tokens: within every arm's max_tokens (an answer
        // over it would be misapplied, not learned).
        let outcome =
            TaskOutcome::success(0.5 + 0.4 * ((i % 10) as f64 / 10.0), 800.0).with_tokens(500, 200);
        let (a, b) = if handle {
            let context = BenchContext(&xs[i % xs.len()]);
            let t = Instant::now();
            let decision = opt
                .recommend("bench", &context, &RecommendOptions::default())
                .map_err(|e| CliError::Other(e.into()))?;
            let a = t.elapsed().as_nanos() as u64;
            let t = Instant::now();
            decision
                .record(&outcome)
                .map_err(|e| CliError::Other(e.into()))?;
            (a, t.elapsed().as_nanos() as u64)
        } else {
            let context = BenchContext(&xs[i % xs.len()]);
            let t = Instant::now();
            let rec = opt
                .recommend_parameters("bench", &context, &RecommendOptions::default())
                .map_err(|e| CliError::Other(e.into()))?;
            let a = t.elapsed().as_nanos() as u64;
            let t = Instant::now();
            opt.record_outcome(rec.decision_id, &outcome)
                .map_err(|e| CliError::Other(e.into()))?;
            (a, t.elapsed().as_nanos() as u64)
        };
        if rec_ns.len() < 200_000 {
            rec_ns.push(a);
            out_ns.push(b);
        }
        if i + 1 == iterations / 10 || i + 1 == iterations {
            rss.push(resident_kib());
        }
    }
    if let Load::Jsonl = load {
        opt.flush_log();
        let _ = std::fs::remove_file(&jsonl);
    }
    if let Some(fleet) = fleet {
        let stats = fleet.stop(&opt);
        return Ok((summary(rec_ns), summary(out_ns), 0, stats));
    }
    if let Some(admin) = admin {
        // With the admin endpoint, the last value is the load's counts.
        let (scrapes, rounds) = admin.stop();
        return Ok((
            summary(rec_ns),
            summary(out_ns),
            0,
            json!({ "scrapes": scrapes, "service_rounds": rounds }),
        ));
    }
    let state = serde_json::to_vec(&opt.snapshot().map_err(|e| CliError::Other(e.into()))?)?;
    Ok((
        summary(rec_ns),
        summary(out_ns),
        state.len() as u64,
        json!(rss),
    ))
}

/// The fleet's decision log on `url`.
#[cfg(feature = "postgres")]
fn fleet_log(url: &str) -> CliResult<std::sync::Arc<dyn tuneloop::counterfactual::DecisionLog>> {
    let log = tuneloop_fleet::PgDecisionLog::open(url, tuneloop_fleet::PgLogConfig::default())
        .map_err(|e| CliError::Other(e.into()))?;
    Ok(std::sync::Arc::new(log))
}

#[cfg(not(feature = "postgres"))]
fn fleet_log(_: &str) -> CliResult<std::sync::Arc<dyn tuneloop::counterfactual::DecisionLog>> {
    Err(CliError::bad(
        "--fleet needs a tuneloop built with --features postgres",
    ))
}

/// Fleet mode beside the timed optimizer.
#[cfg(feature = "postgres")]
struct FleetLoad(tuneloop_fleet::Fleet);

#[cfg(feature = "postgres")]
impl FleetLoad {
    fn start(opt: &tuneloop::Optimizer, url: &str) -> CliResult<Self> {
        let fleet = tuneloop_fleet::Fleet::start(opt, tuneloop_fleet::FleetConfig::new(url))
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(FleetLoad(fleet))
    }

    /// Stops the fleet thread and the log (every record written): what
    /// they did.
    fn stop(self, opt: &tuneloop::Optimizer) -> Value {
        let s = self.0.shutdown();
        opt.flush_log();
        json!({ "exchanges": s.exchanges, "renewals": s.renewals, "failures": s.failures })
    }
}

#[cfg(not(feature = "postgres"))]
struct FleetLoad;

#[cfg(not(feature = "postgres"))]
impl FleetLoad {
    fn start(_: &tuneloop::Optimizer, _: &str) -> CliResult<Self> {
        Err(CliError::bad(
            "--fleet needs a tuneloop built with --features postgres",
        ))
    }
    fn stop(self, _: &tuneloop::Optimizer) -> Value {
        Value::Null
    }
}

/// The admin endpoint of an optimizer, on a runtime of one worker thread,
/// with a client scraping `/metrics` and `/rollouts` every 10 ms; and the
/// benchmark service on its own thread, a round of the standard suite on
/// simulated providers every 250 ms, each passing round written into the
/// optimizer's runtime configuration.
#[cfg(feature = "admin")]
struct AdminLoad {
    runtime: tokio::runtime::Runtime,
    scrapes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    service: std::thread::JoinHandle<u64>,
}

#[cfg(feature = "admin")]
impl AdminLoad {
    fn start(
        opt: &tuneloop::Optimizer,
        store: std::sync::Arc<tuneloop_config::RuntimeConfigStore>,
    ) -> CliResult<Self> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let (service, service_rt) = crate::eval::simulated_service(store.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let service = std::thread::Builder::new()
            .name("benchmark service".into())
            .spawn(move || {
                let mut rounds = 0;
                while !stopped.load(Ordering::Relaxed) {
                    if service_rt.block_on(service.run_round()).is_ok() {
                        rounds += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                rounds
            })
            .map_err(|e| CliError::Other(e.into()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| CliError::Other(e.into()))?;
        let server = runtime
            .block_on(tuneloop_admin::serve(
                opt.clone(),
                tuneloop_admin::AdminConfig {
                    runtime_config: Some(store),
                    ..tuneloop_admin::AdminConfig::default()
                },
            ))
            .map_err(|e| CliError::Other(e.into()))?;
        let base = server.url();
        let scrapes = Arc::new(AtomicU64::new(0));
        let count = scrapes.clone();
        runtime.spawn(async move {
            let _server = server;
            let client = reqwest::Client::new();
            loop {
                for path in ["metrics", "rollouts"] {
                    if let Ok(r) = client.get(format!("{base}/{path}")).send().await
                        && r.bytes().await.is_ok()
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
        Ok(AdminLoad {
            runtime,
            scrapes,
            stop,
            service,
        })
    }

    /// Stops the load; the numbers of successful scrapes and service rounds.
    fn stop(self) -> (u64, u64) {
        let n = self.scrapes.load(std::sync::atomic::Ordering::Relaxed);
        self.runtime.shutdown_background();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (n, self.service.join().unwrap_or(0))
    }
}

/// Without the `admin` feature, `--admin` is an error.
#[cfg(not(feature = "admin"))]
struct AdminLoad;

#[cfg(not(feature = "admin"))]
impl AdminLoad {
    fn start(
        _: &tuneloop::Optimizer,
        _: std::sync::Arc<tuneloop_config::RuntimeConfigStore>,
    ) -> CliResult<Self> {
        Err(CliError::bad(
            "--admin needs a tuneloop built with --features admin",
        ))
    }

    fn stop(self) -> (u64, u64) {
        (0, 0)
    }
}

/// A benchmark context: a vector already featurized, at the same risk
/// tier and prompt size as the id-based path.
struct BenchContext<'a>(&'a Features);

impl tuneloop::Context for BenchContext<'_> {
    fn features(&self, _: &dyn tuneloop_core::Featurizer) -> tuneloop_core::Result<Features> {
        Ok(self.0.clone())
    }
    fn risk_tier(&self) -> tuneloop_core::RiskTier {
        tuneloop_core::RiskTier::Medium
    }
    fn prompt_tokens(&self) -> u64 {
        500
    }
}

/// A featurizer of a fixed dimension for the benchmark (the contexts are
/// passed in already featurized).
#[derive(Debug)]
struct BenchFeaturizer {
    dim: usize,
}

impl tuneloop_core::Featurizer for BenchFeaturizer {
    fn dim(&self) -> usize {
        self.dim
    }
    fn featurize(&self, _: &tuneloop_core::TaskFeatures) -> tuneloop_core::Result<Features> {
        let mut x = vec![0.0; self.dim];
        x[0] = 1.0;
        Features::new(x)
    }
}
