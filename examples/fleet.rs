//! A fleet of tuneloop processes on one PostgreSQL: N OS processes decide
//! on the built-in LLM-parameter scenario (`tuneloop_eval::scenario`), each
//! serving from memory, sharing one decision log, their learning and one
//! token budget through the database. Prints JSON: decisions, outcomes,
//! sync lag, the budget against its limit, the fleet's learned state
//! against one learner replaying every logged update, and what each
//! process saw.
//!
//! ```text
//! URL=$(scripts/local-postgres start)
//! cargo run --release --example fleet -- --processes 8 --database-url $URL
//! ```
//!
//! Options: `--decisions D` per process (20,000), `--call-us T` the time a
//! simulated call takes (500 µs), `--sync-ms P` (1,000), `--budget-tokens
//! L` the fleet's token limit (default: about four fifths of what the run
//! would spend), `--separate` (processes learn alone: the baseline),
//! `--kill-one-after-ms T` (SIGKILL process 0 after T ms), `--lease-ttl-ms`
//! (30,000), `--seed S`, `--rollout` (each task type rolls the learner out
//! against an incumbent of temperature 0.6 and 1,024 tokens, one phase for
//! the fleet, decided by its leader; dwell times are zero: the run is a
//! day in seconds). Each run works in a schema of its own, dropped at the
//! end unless `--keep`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio_postgres::NoTls;
use tuneloop::bandit::{LinUcbParams, PolicyConfig};
use tuneloop::core::{Features, RiskTier};
use tuneloop::gates::BudgetConfig;
use tuneloop::rollout::RolloutConfig;
use tuneloop::{Featurized, Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_eval::scenario::{TASKS, World};
use tuneloop_fleet::{Fleet, FleetConfig, PgDecisionLog, PgLogConfig, Store};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Clone)]
struct Args {
    processes: usize,
    url: String,
    decisions: usize,
    call_us: u64,
    sync_ms: u64,
    budget_tokens: Option<u64>,
    separate: bool,
    kill_after_ms: Option<u64>,
    lease_ttl_ms: u64,
    seed: u64,
    keep: bool,
    rollout: bool,
    member: Option<usize>,
}

fn parse() -> AnyResult<Args> {
    let mut a = Args {
        processes: 4,
        url: String::new(),
        decisions: 20_000,
        call_us: 500,
        sync_ms: 1_000,
        budget_tokens: None,
        separate: false,
        kill_after_ms: None,
        lease_ttl_ms: 30_000,
        seed: 1,
        keep: false,
        rollout: false,
        member: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--processes" => a.processes = value()?.parse()?,
            "--database-url" => a.url = value()?,
            "--decisions" => a.decisions = value()?.parse()?,
            "--call-us" => a.call_us = value()?.parse()?,
            "--sync-ms" => a.sync_ms = value()?.parse()?,
            "--budget-tokens" => a.budget_tokens = Some(value()?.parse()?),
            "--separate" => a.separate = true,
            "--kill-one-after-ms" => a.kill_after_ms = Some(value()?.parse()?),
            "--lease-ttl-ms" => a.lease_ttl_ms = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--keep" => a.keep = true,
            "--rollout" => a.rollout = true,
            "--member" => a.member = Some(value()?.parse()?),
            other => {
                return Err(format!("unknown option `{other}` (see the example's header)").into());
            }
        }
    }
    if a.url.is_empty() {
        return Err("--database-url is required (scripts/local-postgres start prints one)".into());
    }
    if a.processes == 0 || a.decisions == 0 {
        return Err("--processes and --decisions must be at least 1".into());
    }
    Ok(a)
}

fn main() -> AnyResult<()> {
    let args = parse()?;
    match args.member {
        Some(m) => member(&args, m),
        None => parent(&args),
    }
}

/// Tokens a call is expected to use on average here (prompt and
/// completion), to size the default budget.
const TOKENS_PER_CALL: f64 = 2_200.0;

fn budget_limit(args: &Args) -> u64 {
    args.budget_tokens.unwrap_or_else(|| {
        (0.8 * TOKENS_PER_CALL * (args.processes * args.decisions) as f64) as u64
    })
}

/// One process of the fleet: decides `--decisions` times and prints what
/// it saw as one JSON line.
fn member(args: &Args, m: usize) -> AnyResult<()> {
    let world = World::new()?;
    let log = Arc::new(PgDecisionLog::open(&args.url, PgLogConfig::default())?);
    let mut builder = Optimizer::builder()
        .context_dim(2)
        .decision_log(log.clone())
        .seed(args.seed.wrapping_mul(1_000).wrapping_add(m as u64))
        .budget(BudgetConfig {
            token_limit: Some(budget_limit(args)),
            ..BudgetConfig::default()
        });
    // The parameters in use today: temperature 0.6, 1,024 tokens.
    let incumbent = world
        .arms
        .iter()
        .position(|a| (a.params.temperature() - 0.6).abs() < 1e-9 && a.params.max_tokens() == 1024)
        .unwrap_or(0);
    for task in &TASKS {
        let mut config = TaskTypeConfig::new(world.arms.clone()).incumbent(incumbent);
        if args.rollout {
            config = config.rollout(RolloutConfig {
                min_dwell: [Duration::ZERO; 3],
                ..RolloutConfig::default()
            });
        }
        builder = builder.task_type(task.name, config);
    }
    let optimizer = builder.build()?;
    let fleet = if args.separate {
        None
    } else {
        Some(Fleet::start(
            &optimizer,
            FleetConfig {
                sync_period: Duration::from_millis(args.sync_ms),
                lease_ttl: Duration::from_millis(args.lease_ttl_ms),
                ..FleetConfig::new(&args.url)
            },
        )?)
    };
    println!(
        "{}",
        json!({"member": m, "started": true, "pid": std::process::id()})
    );
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_mul(7_919).wrapping_add(m as u64));
    let (mut served, mut refused, mut regret, mut late_regret) = (0u64, 0u64, 0.0, 0.0);
    let mut early_regret = 0.0;
    let (early, late) = (args.decisions / 10, args.decisions - args.decisions / 4);
    let started = Instant::now();
    for i in 0..args.decisions {
        let task = &TASKS[rng.random_range(0..TASKS.len())];
        let s: f64 = 2.0 * rng.random::<f64>() - 1.0;
        let prompt = (200.0 * 20f64.powf((s + 1.0) / 2.0)) as u64;
        let x = Features::new(vec![1.0, s])?;
        let context = Featurized {
            features: x,
            risk_tier: RiskTier::Low,
            prompt_tokens: prompt,
        };
        let rec =
            match optimizer.recommend_parameters(task.name, &context, &RecommendOptions::default())
            {
                Ok(r) => r,
                Err(_) => {
                    // Over the fleet's budget: the call is not made (the
                    // request still took its time to arrive).
                    refused += 1;
                    if args.call_us > 0 {
                        std::thread::sleep(Duration::from_micros(args.call_us));
                    }
                    continue;
                }
            };
        served += 1;
        if served == 1 {
            // The parent finds this process's decisions by the id's prefix.
            println!(
                "{}",
                json!({"member": m, "first_decision": rec.decision_id.to_string()})
            );
        }
        if args.call_us > 0 {
            std::thread::sleep(Duration::from_micros(args.call_us));
        }
        let outcome = world.outcome(task, rec.arm, s, &mut rng);
        let best = (0..world.arms.len())
            .map(|a| world.mean_quality(task, a, s))
            .fold(0.0, f64::max);
        let r = best - world.mean_quality(task, rec.arm, s);
        regret += r;
        if i >= late {
            late_regret += r;
        }
        if i < early {
            early_regret += r;
        }
        optimizer.record_outcome(rec.decision_id, &outcome)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = fleet.map(Fleet::shutdown);
    optimizer.shutdown_blocking();
    let flushed = log.flush(Duration::from_secs(30));
    let log_stats = log.stats();
    let q = |v: &[f64], p: f64| quantile(v, p);
    println!(
        "{}",
        json!({
            "member": m,
            "decisions": args.decisions,
            "served": served,
            "refused_over_budget": refused,
            "seconds": seconds,
            "mean_quality_regret": regret / served.max(1) as f64,
            "last_quarter_quality_regret": late_regret / (args.decisions - late).max(1) as f64,
            "first_tenth_quality_regret": early_regret / early.max(1) as f64,
            "log": {"written": log_stats.written, "dropped": log_stats.dropped,
                    "pending": log_stats.pending, "flushed": flushed},
            "phases": TASKS.iter().map(|t| (t.name.to_owned(), json!(optimizer.phase(t.name).ok().flatten().map(|p| p.as_str())))).collect::<serde_json::Map<_, _>>(),
            "fleet": stats.as_ref().map(|s| json!({
                "leader": s.leader, "published": s.published, "followed": s.followed,
                "follow_ms_p99": q(&s.follow_ms, 0.99),
                "exchanges": s.exchanges, "failures": s.failures,
                "connections": s.connections, "renewals": s.renewals,
                "lease_lapses": s.lease_lapses,
                "lag_ms_p50": q(&s.lag_ms, 0.5), "lag_ms_p99": q(&s.lag_ms, 0.99),
                "exchange_ms_p50": q(&s.exchange_ms, 0.5), "exchange_ms_p99": q(&s.exchange_ms, 0.99),
                "last_error": s.last_error,
            })),
        })
    );
    Ok(())
}

fn quantile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len() - 1) as f64 * p).round() as usize).copied()
}

fn runtime() -> AnyResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn execute(url: &str, sql: &str) -> AnyResult<()> {
    runtime()?.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(conn);
        client.batch_execute(sql).await
    })?;
    Ok(())
}

/// Spawns the processes, waits, and checks the store.
fn parent(args: &Args) -> AnyResult<()> {
    let schema = format!("tuneloop_fleet_{}", std::process::id());
    execute(&args.url, &format!("CREATE SCHEMA {schema}"))?;
    let sep = if args.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-csearch_path%3D{schema}", args.url);
    // Migrate once, before the processes race to.
    drop(Store::connect(&url)?);
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for m in 0..args.processes {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--member",
            &m.to_string(),
            "--database-url",
            &url,
            "--decisions",
            &args.decisions.to_string(),
            "--call-us",
            &args.call_us.to_string(),
            "--sync-ms",
            &args.sync_ms.to_string(),
            "--budget-tokens",
            &budget_limit(args).to_string(),
            "--lease-ttl-ms",
            &args.lease_ttl_ms.to_string(),
            "--seed",
            &args.seed.to_string(),
            "--processes",
            &args.processes.to_string(),
        ]);
        if args.separate {
            cmd.arg("--separate");
        }
        if args.rollout {
            cmd.arg("--rollout");
        }
        children.push(cmd.stdout(Stdio::piped()).spawn()?);
    }
    let readers: Vec<_> = children
        .iter_mut()
        .filter_map(|c| c.stdout.take())
        .map(|out| {
            std::thread::spawn(move || {
                BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut killed = None;
    if let Some(ms) = args.kill_after_ms {
        std::thread::sleep(Duration::from_millis(ms));
        if let Some(c) = children.first_mut() {
            c.kill()?; // SIGKILL
            eprintln!("fleet: killed process 0 (SIGKILL) at {ms} ms");
            // What it had committed: its rows once its last transaction
            // is over (committed or rolled back with the connection).
            std::thread::sleep(Duration::from_millis(500));
            killed = Some(Store::connect(&url)?.decisions()?);
        }
    }
    let mut statuses = Vec::new();
    for c in &mut children {
        statuses.push(c.wait()?.code());
    }
    let reports: Vec<Vec<Value>> = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    let wall = started.elapsed().as_secs_f64();
    let prefix_of = |id: tuneloop::core::DecisionId| (id.as_u128() >> 64) as u64;
    let first_of = |m: usize| -> Option<u64> {
        reports.get(m)?.iter().find_map(|v| {
            let id: tuneloop::core::DecisionId = v.get("first_decision")?.as_str()?.parse().ok()?;
            Some(prefix_of(id))
        })
    };

    let store = Store::connect(&url)?;
    let records = store.decisions()?;
    let ids: HashSet<_> = records.iter().map(|r| r.decision_id).collect();
    let with_outcome = records
        .iter()
        .filter(|r| r.resolution.outcome().is_some())
        .count();
    let defaulted = records
        .iter()
        .filter(|r| r.resolution.is_defaulted())
        .count();
    let spent: u64 = records
        .iter()
        .filter_map(|r| r.resolution.outcome())
        .map(|o| o.total_tokens())
        .sum();
    let today = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let window = chrono::DateTime::from_timestamp(today, 0).ok_or("a time out of range")?;
    let budget = store.budget("default", window)?;

    // The fleet's learning against one learner replaying every update
    // the log holds (decisions whose outcome was recorded).
    let world = World::new()?;
    let config = PolicyConfig::LinucbShared(LinUcbParams::default());
    let mut worst: Option<f64> = None;
    let mut per_task = serde_json::Map::new();
    for task in &TASKS {
        let mut single = config.build_for_arms(&world.arms, 2)?;
        for r in records.iter().filter(|r| r.task_type == task.name) {
            if let Some(reward) = r.resolution.recorded_reward() {
                single.update(&Features::new(r.context.clone())?, r.arm, reward)?;
            }
        }
        let expected = single.statistics().ok_or("no statistics")?;
        let models = store.learning_models(task.name)?;
        let Some(model) = models.first() else {
            continue;
        };
        let fleet = store.learning(task.name, model, &expected)?;
        let diff = fleet.max_difference(&expected);
        worst = Some(worst.map_or(diff, |w: f64| w.max(diff)));
        per_task.insert(
            task.name.into(),
            json!({"fleet_updates": fleet.updates(), "replayed_updates": expected.updates(), "max_difference": diff}),
        );
    }
    // The fleet's rollout as the leader left it, and what each process saw.
    let rollouts: serde_json::Map<String, Value> = store
        .rollouts()?
        .into_iter()
        .map(|r| {
            let events = store
                .rollout_events(&r.task_type)
                .map(|e| e.len())
                .unwrap_or(0);
            (
                r.task_type.clone(),
                json!({"phase": r.phase.as_str(), "held": r.held, "decisions": r.generation,
                       "leader": r.leader, "events_in_store": events}),
            )
        })
        .collect();
    let finals: Vec<&Value> = reports
        .iter()
        .filter_map(|r| r.iter().find(|v| v.get("served").is_some()))
        .collect();
    let served: u64 = finals.iter().filter_map(|v| v["served"].as_u64()).sum();
    let written: u64 = finals
        .iter()
        .filter_map(|v| v["log"]["written"].as_u64())
        .sum();
    let all_lags = |key: &str| -> Vec<f64> {
        finals
            .iter()
            .filter_map(|v| v["fleet"][key].as_f64())
            .collect()
    };
    let mean = |key: &str| -> Option<f64> {
        let v: Vec<f64> = finals.iter().filter_map(|v| v[key].as_f64()).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let limit = budget_limit(args);
    // The killed process's decisions committed before the kill, and at
    // the end: the same, or some were lost.
    let kill = killed.map(|at_kill| {
        let prefix = first_of(0);
        let mine = |rs: &[tuneloop::counterfactual::LoggedDecision]| -> HashSet<_> {
            rs.iter()
                .filter(|r| Some(prefix_of(r.decision_id)) == prefix)
                .map(|r| r.decision_id)
                .collect()
        };
        let (before, after) = (mine(&at_kill), mine(&records));
        json!({
            "process": 0,
            "committed_at_kill": before.len(),
            "of_those_in_log_at_end": before.intersection(&after).count(),
            "in_log_at_end": after.len(),
        })
    });
    let out = json!({
        "processes": args.processes,
        "decisions_per_process": args.decisions,
        "mode": if args.separate { "separate" } else { "shared" },
        "seconds": wall,
        "killed": kill,
        "exit_codes": statuses,
        "decisions": {
            "served": served,
            "in_log": records.len(),
            "distinct_ids": ids.len(),
            "with_outcome": with_outcome,
            "defaulted": defaulted,
            "written_by_processes": written,
        },
        "budget": {
            "limit_tokens": limit,
            "spent_tokens": spent,
            "within_limit": spent <= limit,
            "granted_tokens": budget.map(|b| b.granted_tokens),
            "leases": budget.map(|b| b.leases),
            "leases_reclaimed": budget.map(|b| b.reclaimed),
        },
        "sync_lag_ms": {
            "p50_of_processes_p50": quantile(&all_lags("lag_ms_p50"), 0.5),
            "max_of_processes_p99": all_lags("lag_ms_p99").into_iter().reduce(f64::max),
            "exchange_ms_p50": quantile(&all_lags("exchange_ms_p50"), 0.5),
        },
        "learning": {
            "merged_max_difference_from_replay": worst,
            "per_task": per_task,
            "mean_quality_regret": mean("mean_quality_regret"),
            "last_quarter_quality_regret": mean("last_quarter_quality_regret"),
            "first_tenth_quality_regret": mean("first_tenth_quality_regret"),
        },
        "rollout": {
            "fleet": rollouts,
            "every_process_in_the_fleets_phase": args.rollout.then(|| finals.iter().all(|p| {
                TASKS.iter().all(|t| p["phases"][t.name] == rollouts.get(t.name).map_or(Value::Null, |r| r["phase"].clone()))
            })),
            "processes_that_decided": finals.iter().filter(|p| p["fleet"]["published"].as_u64() > Some(0)).count(),
            "follow_ms_p99_max": all_lags("follow_ms_p99").into_iter().reduce(f64::max),
        },
        "processes_saw": finals,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    if !args.keep {
        execute(&args.url, &format!("DROP SCHEMA {schema} CASCADE"))?;
    }
    let killed_one = usize::from(args.kill_after_ms.is_some());
    if statuses.iter().skip(killed_one).any(|s| *s != Some(0)) {
        return Err(format!("a process failed: exit codes {statuses:?}").into());
    }
    Ok(())
}
