//! Fleet mode against a real PostgreSQL: members share learning, one
//! budget and outcomes. `TUNELOOP_DATABASE_URL=$(scripts/local-postgres
//! start) cargo test -p tuneloop-fleet --test fleet`;
//! skipped without it.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;
use tuneloop::bandit::{LinUcbParams, PolicyConfig};
use tuneloop::core::{ArmSet, Features, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::gates::BudgetConfig;
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_fleet::Error;
use tuneloop_fleet::{Fleet, FleetConfig, PgDecisionLog, PgLogConfig, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn server() -> Option<String> {
    match std::env::var("TUNELOOP_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "skipped: no PostgreSQL (TUNELOOP_DATABASE_URL=$(scripts/local-postgres start))"
            );
            None
        }
    }
}

/// A schema of the test's own: the URL that works in it.
fn fresh(url: &str, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    let schema = format!("f_{name}_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
    })?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-csearch_path%3D{schema}"))
}

fn arms() -> Result<ArmSet, tuneloop::core::Error> {
    ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.3, 0.6, 0.9, 1.2])
        .max_tokens([256, 1024])
        .build()
}

fn outcome(p: &ParameterSet, i: usize) -> TaskOutcome {
    let noise = 0.1 * (((i * 7919) % 101) as f64 / 100.0 - 0.5);
    let q = (0.9 - 0.8 * (p.temperature() - 0.3).powi(2) + noise).clamp(0.0, 1.0);
    TaskOutcome::success(q, 500.0).with_tokens(100, u64::from(p.max_tokens()) / 2)
}

const LIMIT: u64 = 600_000;

fn member(url: &str, seed: u64) -> Result<(Optimizer, Fleet), Box<dyn std::error::Error>> {
    let log = Arc::new(PgDecisionLog::open(url, PgLogConfig::default())?);
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .decision_log(log)
        .budget(BudgetConfig {
            token_limit: Some(LIMIT),
            ..BudgetConfig::default()
        })
        .seed(seed)
        .build()?;
    let fleet = Fleet::start(
        &opt,
        FleetConfig {
            sync_period: Duration::from_millis(50),
            ..FleetConfig::new(url)
        },
    )?;
    Ok((opt, fleet))
}

/// Three members, each deciding in its own thread; a tenth of the outcomes
/// are recorded by the next member. The budget runs out on the way.
#[test]
fn three_members_share_learning_budget_and_outcomes() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "three")?;
    let members = (0..3)
        .map(|m| member(&url, 10 + m))
        .collect::<Result<Vec<_>, _>>()?;
    let members = Arc::new(members);
    let handed = Arc::new(std::sync::Mutex::new(vec![Vec::new(); 3]));
    let threads: Vec<_> = (0..3)
        .map(|m| {
            let members = members.clone();
            let handed = handed.clone();
            std::thread::spawn(move || -> Result<(usize, usize), Error> {
                let (opt, _) = &members[m];
                let (mut served, mut refused) = (0, 0);
                for i in 0..1_500 {
                    let task = TaskFeatures {
                        title_length: (i % 50) as u64,
                        ..TaskFeatures::default()
                    };
                    let rec =
                        match opt.recommend_parameters("code", &task, &RecommendOptions::default())
                        {
                            Ok(r) => r,
                            Err(_) => {
                                refused += 1;
                                continue;
                            }
                        };
                    served += 1;
                    // A call takes a while; the fleet thread tops the lease up.
                    std::thread::sleep(Duration::from_micros(300));
                    let out = outcome(&rec.params, i);
                    if i % 10 == 0 {
                        // Another member records it.
                        if let Ok(mut h) = handed.lock() {
                            h[(m + 1) % 3].push((rec.decision_id, out));
                        }
                    } else {
                        opt.record_outcome(rec.decision_id, &out)?;
                    }
                    if i % 100 == 0 {
                        let mine = handed
                            .lock()
                            .map(|mut h| std::mem::take(&mut h[m]))
                            .unwrap_or_default();
                        for (id, o) in mine {
                            members[m].1.record_outcome(id, &o)?;
                        }
                    }
                }
                Ok((served, refused))
            })
        })
        .collect();
    let mut served = 0;
    for t in threads {
        let (s, _) = t.join().map_err(|_| "a member panicked")??;
        served += s;
    }
    // What was handed over after its member finished.
    let rest = handed
        .lock()
        .map(|mut h| std::mem::take(&mut *h))
        .unwrap_or_default();
    for (m, outcomes) in rest.into_iter().enumerate() {
        for (id, o) in outcomes {
            members[m].1.record_outcome(id, &o)?;
        }
    }
    // Let the handed-over outcomes reach their members, then stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while members.iter().map(|(o, _)| o.pending()).sum::<usize>() > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(members.iter().map(|(o, _)| o.pending()).sum::<usize>(), 0);
    let members = Arc::try_unwrap(members).map_err(|_| "members still shared")?;
    let mut received = 0;
    for (opt, fleet) in members {
        let stats = fleet.shutdown();
        received += stats.outcomes_received;
        assert!(stats.exchanges > 0, "{stats:?}");
        opt.shutdown_blocking();
    }
    assert!(
        received >= (served / 10 - 3) as u64,
        "{received} of about {} handed over",
        served / 10
    );

    let store = Store::connect(&url)?;
    let records = store.decisions()?;
    eprintln!("{served} decisions served, {received} outcomes recorded by another member");
    assert_eq!(records.len(), served, "every decision once");
    assert!(
        records
            .iter()
            .all(|r| r.resolution.outcome().is_some() && !r.resolution.is_defaulted())
    );
    // Budget: what was spent across the fleet stays within the limit, and
    // the limit was reached (decisions were refused).
    let spent: u64 = records
        .iter()
        .filter_map(|r| r.resolution.outcome())
        .map(TaskOutcome::total_tokens)
        .sum();
    eprintln!("{spent} tokens spent of {LIMIT}");
    assert!(spent <= LIMIT, "spent {spent} of {LIMIT}");
    assert!(
        served < 4_500,
        "the budget should have run out ({served} served)"
    );
    // Learning: the fleet's state equals one learner fed every update.
    let dim = records.first().map_or(0, |r| r.context.len());
    let mut single =
        PolicyConfig::LinucbShared(LinUcbParams::default()).build_for_arms(&arms()?, dim)?;
    for r in &records {
        single.update(
            &Features::new(r.context.clone())?,
            r.arm,
            r.resolution.recorded_reward().ok_or("no reward")?,
        )?;
    }
    let expected = single.statistics().ok_or("no statistics")?;
    let fleet_state = store_learning(&store, &expected)?;
    let diff = fleet_state.max_difference(&expected);
    assert!(
        diff < 1e-9,
        "fleet's learning differs from one learner by {diff}"
    );
    Ok(())
}

/// The fleet's learning of `code`, whatever its model key.
fn store_learning(
    store: &Store,
    like: &tuneloop::core::SufficientStatistics,
) -> Result<tuneloop::core::SufficientStatistics, Box<dyn std::error::Error>> {
    let models = store.learning_models("code")?;
    assert_eq!(models.len(), 1, "{models:?}");
    Ok(store.learning("code", &models[0], like)?)
}

#[test]
fn a_fleet_refuses_a_database_it_cannot_use() -> TestResult {
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .build()?;
    let Err(e) = Fleet::start(&opt, FleetConfig::new("postgres://u:secret@127.0.0.1:1/x")) else {
        return Err("joined a fleet on a closed port".into());
    };
    assert!(matches!(e, Error::Store(_)), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
    let Err(e) = Fleet::start(
        &opt,
        FleetConfig {
            lease_slice: 0.0,
            ..FleetConfig::new("postgres://127.0.0.1:1/x")
        },
    ) else {
        return Err("took a lease slice of 0".into());
    };
    assert!(e.to_string().contains("lease_slice"), "{e}");
    Ok(())
}

/// A rollout that moves on sample counts alone, quickly.
fn quick_rollout() -> tuneloop::rollout::RolloutConfig {
    let mut r = tuneloop::rollout::RolloutConfig {
        shadow_min_baseline_samples: 600,
        canary_min_samples: 150,
        guarded_min_samples: 150,
        min_dwell: [Duration::ZERO; 3],
        ..Default::default()
    };
    r.proof.required = false;
    r
}

fn rollout_member(url: &str, seed: u64) -> Result<(Optimizer, Fleet), Box<dyn std::error::Error>> {
    let log = Arc::new(PgDecisionLog::open(url, PgLogConfig::default())?);
    let opt = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms()?).rollout(quick_rollout()),
        )
        .decision_log(log)
        .seed(seed)
        .build()?;
    let fleet = Fleet::start(
        &opt,
        FleetConfig {
            sync_period: Duration::from_millis(100),
            ..FleetConfig::new(url)
        },
    )?;
    Ok((opt, fleet))
}

fn serve(opt: &Optimizer, n: usize) -> Result<(), Error> {
    for i in 0..n {
        let rec = opt.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        opt.record_outcome(rec.decision_id, &outcome(&rec.params, i))?;
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}

/// One member leads (the advisory lock), decides on every member's
/// outcomes read from the log, and the others follow within a sync; when
/// the leader goes, another takes over.
#[test]
fn one_leader_decides_the_fleets_rollout_and_the_others_follow() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "rollout")?;
    let members = (0..3)
        .map(|m| rollout_member(&url, 20 + m))
        .collect::<Result<Vec<_>, _>>()?;
    let leaders: Vec<usize> = (0..3).filter(|&m| members[m].1.stats().leader).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {leaders:?}");
    let leader = leaders[0];
    // Each member alone has too few samples for canary (600 in shadow):
    // only their sum, read by the leader, promotes.
    std::thread::scope(|s| -> TestResult {
        let handles: Vec<_> = members
            .iter()
            .map(|(opt, _)| s.spawn(move || serve(opt, 400)))
            .collect();
        for h in handles {
            h.join().map_err(|_| "a member panicked")??;
        }
        Ok(())
    })?;
    // The leader reads decisions 2 s old: wait for it to catch up.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let store = Store::connect(&url)?;
    let phase_of = |store: &Store| -> Option<tuneloop::core::Phase> {
        store
            .rollouts()
            .ok()?
            .into_iter()
            .find(|r| r.task_type == "code")
            .map(|r| r.phase)
    };
    while phase_of(&store) == Some(tuneloop::core::Phase::Shadow)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let fleet_phase = phase_of(&store).ok_or("no rollout row")?;
    assert_ne!(
        fleet_phase,
        tuneloop::core::Phase::Shadow,
        "the fleet's samples should promote it"
    );
    std::thread::sleep(Duration::from_millis(400));
    for (m, (opt, fleet)) in members.iter().enumerate() {
        assert_eq!(opt.phase("code")?, Some(fleet_phase), "member {m}");
        let s = fleet.stats();
        if m != leader {
            assert!(s.followed >= 1, "member {m}: {s:?}");
            assert!(
                s.follow_ms.iter().all(|&ms| ms < 1_000.0),
                "member {m}: {:?}",
                s.follow_ms
            );
        }
    }
    let events = store.rollout_events("code")?;
    assert!(
        events.iter().any(|e| e.event["event"] == "promoted"),
        "{events:?}"
    );
    // The leader goes: another member takes over within a few syncs.
    let mut members = members;
    let (gone_opt, gone_fleet) = members.remove(leader);
    drop(gone_fleet);
    drop(gone_opt);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !members.iter().any(|(_, f)| f.stats().leader) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(members.iter().filter(|(_, f)| f.stats().leader).count(), 1);
    Ok(())
}
