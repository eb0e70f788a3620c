//! The admin endpoint over loopback with a real HTTP client (reqwest):
//! the token, the Prometheus exposition (parsed by a Prometheus text
//! parser), the runtime configuration changing the next decision, a bad
//! body's 400 naming the field, and the rollout actions.
// The samples compared exactly are counts: integers, exact in an f64.
#![allow(clippy::float_cmp)]

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tuneloop::core::{ArmSet, ManualClock, Phase, TaskFeatures, TaskOutcome};
use tuneloop::gates::TrustRegion;
use tuneloop::rollout::{ProofConfig, RolloutConfig};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
use tuneloop_admin::{AdminConfig, serve};
use tuneloop_config::{RuntimeConfig, RuntimeConfigStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOKEN: &str = "admin-test-token";

/// A sample's metric name and sorted labels.
type Series = (String, Vec<(String, String)>);

/// The samples of a scrape, by metric name and labels.
fn scrape(text: &str) -> Result<HashMap<Series, f64>, std::io::Error> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let s = prometheus_parse::Scrape::parse(lines)?;
    Ok(s.samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let v = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            ((sample.metric, labels), v)
        })
        .collect())
}

fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_endpoint_exposes_metrics_changes_the_config_and_drives_rollouts() -> TestResult {
    let store = Arc::new(RuntimeConfigStore::in_memory(RuntimeConfig {
        exploration_rate: 0.0,
        ..RuntimeConfig::default()
    })?);
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0, 1.5])
        .build()?;
    let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
    // "code": a rollout waiting in shadow; "chat": a trust region that
    // excludes the two temperatures farthest from the incumbent (0.0).
    let optimizer = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms.clone()).rollout(RolloutConfig::default()),
        )
        .task_type(
            "chat",
            TaskTypeConfig::new(arms).trust_region(TrustRegion {
                temperature: 0.5,
                ..TrustRegion::default()
            }),
        )
        .clock(Arc::new(clock))
        .seed(4)
        .build()?;
    store.attach(&optimizer)?;
    let ask = |task: &str| {
        optimizer.recommend_parameters(task, &TaskFeatures::default(), &RecommendOptions::default())
    };
    for _ in 0..10 {
        let rec = ask("chat")?;
        optimizer.record_outcome(
            rec.decision_id,
            &TaskOutcome::success(0.5, 100.0)
                .with_tokens(30, 12)
                .with_cost(0.002),
        )?;
    }
    let pending = ask("code")?;

    let admin = serve(
        optimizer.clone(),
        AdminConfig {
            token: Some(TOKEN.into()),
            runtime_config: Some(store.clone()),
            ..AdminConfig::default()
        },
    )
    .await?;
    assert!(admin.addr().ip().is_loopback());
    let base = admin.url();
    let http = reqwest::Client::new();

    // The token: /health is open, the rest is not.
    let health: Value = http
        .get(format!("{base}/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pending"], 1);
    let denied = http.get(format!("{base}/metrics")).send().await?;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .get(format!("{base}/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // The exposition, parsed.
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let m = scrape(&text)?;
    let get = |name: &str, labels: &[(&str, &str)]| {
        m.get(&(name.to_owned(), l(labels)))
            .copied()
            .ok_or(format!("{name}{labels:?} not in the scrape:\n{text}"))
    };
    assert_eq!(get("tuneloop_recommendations_total", &[])?, 11.0);
    assert_eq!(get("tuneloop_outcomes_total", &[])?, 10.0);
    // Ten rewards of one outcome (quality 0.5, 100 ms, 0.002 USD) under
    // the default reward function: 0.7·0.5 + 0.15·2000/2100 + 0.15·0.01/0.012.
    let one = 0.7 * 0.5 + 0.15 * 2000.0 / 2100.0 + 0.15 * 0.01 / 0.012;
    assert!((get("tuneloop_reward_sum_total", &[])? - 10.0 * one).abs() < 1e-4);
    // Ten outcomes of 42 tokens and 0.002 USD each, spent by "chat" on "m".
    let spent = [("task_type", "chat"), ("model", "m")];
    assert_eq!(get("tuneloop_spend_tokens_total", &spent)?, 420.0);
    assert!((get("tuneloop_spend_cost_usd_total", &spent)? - 0.02).abs() < 1e-12);
    assert_eq!(
        get(
            "tuneloop_spend_tokens_total",
            &[("task_type", "code"), ("model", "m")]
        )?,
        0.0
    );
    assert_eq!(get("tuneloop_pending_decisions", &[])?, 1.0);
    // Two arms of four excluded on each of the ten chat decisions.
    assert_eq!(
        get(
            "tuneloop_gate_exclusions_total",
            &[("reason", "trust_region")]
        )?,
        20.0
    );
    assert_eq!(
        get(
            "tuneloop_gate_exclusions_total",
            &[("reason", "over_budget")]
        )?,
        0.0
    );
    assert_eq!(get("tuneloop_exploration_rate", &[])?, 0.0);
    assert_eq!(
        get(
            "tuneloop_rollout_phase",
            &[("task_type", "code"), ("phase", "shadow")]
        )?,
        1.0
    );
    assert_eq!(
        get(
            "tuneloop_rollout_phase",
            &[("task_type", "code"), ("phase", "general")]
        )?,
        0.0
    );
    assert_eq!(get("tuneloop_rollout_held", &[("task_type", "code")])?, 0.0);

    // POST /runtime-config: the next decision explores uniformly.
    let mut config = store.get();
    config.exploration_rate = 1.0;
    let posted = http
        .post(format!("{base}/runtime-config"))
        .bearer_auth(TOKEN)
        .json(&config)
        .send()
        .await?;
    assert_eq!(posted.status(), StatusCode::OK);
    // In shadow the incumbent's uniform choice is mixed with the
    // candidate's on a 5% probe.
    let rec = ask("code")?;
    let probe = if Some(rec.arm) == rec.shadow_arm {
        0.05
    } else {
        0.0
    };
    assert!(
        (rec.propensity - (0.95 * 0.25 + probe)).abs() < 1e-12,
        "{}",
        rec.propensity
    );
    let back: RuntimeConfig = http
        .get(format!("{base}/runtime-config"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(back.exploration_rate, 1.0);

    // A bad value and an unknown field: 400 naming the field; nothing changes.
    for (body, field) in [
        (json!({ "exploration_rate": 7.0 }), "exploration_rate"),
        (json!({ "exploration_rat": 0.5 }), "exploration_rat"),
    ] {
        let r = http
            .post(format!("{base}/runtime-config"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let e: Value = r.json().await?;
        let msg = e["error"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{msg}");
    }
    assert_eq!(store.get().exploration_rate, 1.0);

    // Rollouts: status, hold, resume; rollback in shadow is a conflict; an
    // unknown task type or action is 404.
    let status: Value = http
        .get(format!("{base}/rollouts"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(status["code"]["phase"], "shadow");
    assert_eq!(status["chat"], Value::Null);

    // What it learned: "chat" learned from its 10 outcomes, "code" from none.
    let learned: Value = http
        .get(format!("{base}/learned"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let outcomes = |task: &str| -> u64 {
        learned[task]["arms"]
            .as_array()
            .map(|arms| {
                arms.iter()
                    .filter_map(|a| a["tally"]["outcomes"].as_u64())
                    .sum()
            })
            .unwrap_or(u64::MAX)
    };
    assert_eq!(learned["chat"]["arms"].as_array().map(Vec::len), Some(4));
    assert_eq!(outcomes("chat"), 10);
    assert_eq!(outcomes("code"), 0);
    assert!(learned["chat"]["choice"].as_u64().is_some_and(|c| c < 4));
    let act = |task: &str, action: &str| {
        http.post(format!("{base}/rollouts/{task}/{action}"))
            .bearer_auth(TOKEN)
            .json(&json!({ "reason": "test" }))
            .send()
    };
    assert_eq!(act("code", "hold").await?.status(), StatusCode::OK);
    assert_eq!(
        optimizer.rollout_status("code")?.map(|s| s.held),
        Some(true)
    );
    assert_eq!(act("code", "resume").await?.status(), StatusCode::OK);
    assert_eq!(
        optimizer.rollout_status("code")?.map(|s| s.held),
        Some(false)
    );
    assert_eq!(
        act("code", "rollback").await?.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(act("code", "approve").await?.status(), StatusCode::CONFLICT);
    assert_eq!(act("chat", "hold").await?.status(), StatusCode::NOT_FOUND);
    assert_eq!(act("nope", "hold").await?.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        act("code", "explode").await?.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(optimizer.phase("code")?, Some(Phase::Shadow));

    optimizer.abandon(pending.decision_id, "test over")?;
    admin.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_non_loopback_address_needs_a_token() {
    let arms = ArmSet::grid()
        .models(["m"])
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let optimizer = Optimizer::builder()
        .task_type("t", TaskTypeConfig::new(arms))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = serve(
        optimizer,
        AdminConfig {
            addr: "0.0.0.0:0".parse().unwrap_or_else(|e| panic!("{e}")),
            token: None,
            ..AdminConfig::default()
        },
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("admin.addr"), "{err}");
}

#[tokio::test]
async fn an_approval_promotes_and_an_operator_rollback_holds() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
    let optimizer = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms).rollout(RolloutConfig {
                shadow_min_baseline_samples: 20,
                min_dwell: [std::time::Duration::ZERO; 3],
                approval_required: vec![Phase::Shadow],
                // The approval's mechanics, not the candidate's proof.
                proof: ProofConfig {
                    required: false,
                    ..ProofConfig::default()
                },
                ..RolloutConfig::default()
            }),
        )
        .clock(Arc::new(clock))
        .build()?;
    for _ in 0..20 {
        let rec = optimizer.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        optimizer.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 100.0))?;
    }
    let admin = serve(optimizer.clone(), AdminConfig::default()).await?;
    let base = admin.url();
    let http = reqwest::Client::new();
    // Without a token configured, no header is needed on loopback.
    let status: Value = http
        .get(format!("{base}/rollouts"))
        .send()
        .await?
        .json()
        .await?;
    let events = status["code"]["recent_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some(json!("awaiting_approval")),
        "{status}"
    );
    let approved: Value = http
        .post(format!("{base}/rollouts/code/approve"))
        .json(&json!({ "approver": "alice" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let kinds: Vec<&str> = approved["events"]
        .as_array()
        .map(|v| v.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["approved", "promoted"]);
    assert_eq!(approved["events"][0]["approver"], "alice");
    assert_eq!(optimizer.phase("code")?, Some(Phase::Canary));

    let rolled: Value = http
        .post(format!("{base}/rollouts/code/rollback"))
        .json(&json!({ "reason": "p99 alert" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(rolled["events"][0]["event"], "rolled_back_by_operator");
    assert_eq!(rolled["events"][0]["reason"], "p99 alert");
    let s = optimizer.rollout_status("code")?.ok_or("no rollout")?;
    assert_eq!((s.phase, s.held), (Phase::Shadow, true));
    let c = optimizer.counters();
    assert_eq!((c.promotions, c.rollbacks), (1, 1));
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let m = scrape(&text)?;
    assert_eq!(
        m.get(&("tuneloop_rollbacks_total".to_owned(), Vec::new())),
        Some(&1.0)
    );
    assert_eq!(
        m.get(&(
            "tuneloop_rollout_held".to_owned(),
            l(&[("task_type", "code")])
        )),
        Some(&1.0)
    );
    admin.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_live_log_and_state() -> TestResult {
    use tuneloop::counterfactual::JsonlLog;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0, 1.5])
        .build()?;
    let chain = Arc::new(std::sync::Mutex::new(
        tuneloop::gates::Provenance::in_memory(),
    ));
    let optimizer = Optimizer::builder()
        .task_type(
            "code",
            TaskTypeConfig::new(arms).rollout(RolloutConfig::default()),
        )
        .decision_log(Arc::new(JsonlLog::open(&log, 1 << 20, 1)?))
        .provenance(chain.clone())
        .seed(3)
        .build()?;
    let admin = serve(
        optimizer.clone(),
        AdminConfig {
            token: Some(TOKEN.into()),
            dashboard_log: Some(log.clone()),
            ..AdminConfig::default()
        },
    )
    .await?;
    let base = admin.url();
    let http = reqwest::Client::new();
    // Before any decision: the state, and why there are no charts.
    let page = http
        .get(format!("{base}/"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(page.status(), StatusCode::OK);
    let body = page.text().await?;
    assert!(
        body.contains("No decision yet") && body.contains("Rollouts now"),
        "{body}"
    );
    for i in 0..60 {
        let rec = optimizer.recommend_parameters(
            "code",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        optimizer.record_outcome(
            rec.decision_id,
            &TaskOutcome::success(0.5 + 0.005 * f64::from(i), 100.0),
        )?;
    }
    optimizer.hold_rollout("code", "looking")?;
    // The token in the query opens the page for a browser; a wrong one
    // does not.
    let wrong = http.get(format!("{base}/?token=nope")).send().await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = http.get(format!("{base}/?token={TOKEN}")).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    let content_type = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = page.text().await?;
    // Every chart of the report, the proof's (the chain has a record), the
    // rollout now, and the 60 decisions written before the page was made.
    for chart in tuneloop_report_charts() {
        assert!(
            body.contains(&format!("data-chart=\"{chart}\"")),
            "no {chart}"
        );
    }
    assert!(
        body.contains("<b>60</b><span>decisions</span>"),
        "decisions card"
    );
    assert!(
        body.contains("Rollouts now") && body.contains("held: looking"),
        "state"
    );
    admin.stop().await;
    Ok(())
}

/// The charts the dashboard draws: the report's six and the proof's.
fn tuneloop_report_charts() -> [&'static str; 7] {
    [
        "reward-over-time",
        "phase-timeline",
        "quality-cost",
        "estimators",
        "drift",
        "attribution",
        "proof",
    ]
}

/// Raw connections: what a slow or hostile client can hold. Each wait is
/// bounded generously (what is asserted is that the server acts, never
/// how fast).
mod connections {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tuneloop::core::ArmSet;
    use tuneloop::{Optimizer, TaskTypeConfig};
    use tuneloop_admin::{AdminConfig, HEADER_TIMEOUT, MAX_CONNECTIONS, serve};

    use super::{TOKEN, TestResult};

    async fn optimizer_and_config() -> Result<(Optimizer, AdminConfig), Box<dyn std::error::Error>>
    {
        let arms = ArmSet::grid().models(["m"]).temperatures([0.0]).build()?;
        let optimizer = Optimizer::builder()
            .task_type("code", TaskTypeConfig::new(arms))
            .build()?;
        let config = AdminConfig {
            token: Some(TOKEN.into()),
            ..AdminConfig::default()
        };
        Ok((optimizer, config))
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        tokio::time::timeout(HEADER_TIMEOUT * 6, stream.read_to_end(&mut out)).await??;
        Ok(out)
    }

    #[tokio::test]
    async fn half_a_header_is_closed_and_an_announced_huge_body_gets_413_unread() -> TestResult {
        let (optimizer, config) = optimizer_and_config().await?;
        let admin = serve(optimizer, config).await?;
        let mut half = TcpStream::connect(admin.addr()).await?;
        half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await?;
        // The server closes it (a 408, or nothing) once the header time is
        // up: it is not held open.
        until_closed(&mut half).await?;

        let mut big = TcpStream::connect(admin.addr()).await?;
        let head = format!(
            "POST /runtime-config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
        );
        big.write_all(head.as_bytes()).await?;
        let mut first = [0u8; 12];
        tokio::time::timeout(HEADER_TIMEOUT * 6, big.read_exact(&mut first)).await??;
        assert_eq!(
            &first,
            b"HTTP/1.1 413",
            "{}",
            String::from_utf8_lossy(&first)
        );
        admin.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_and_the_endpoint_serves_again() -> TestResult {
        let (optimizer, config) = optimizer_and_config().await?;
        let admin = serve(optimizer, config).await?;
        let mut idle = Vec::with_capacity(MAX_CONNECTIONS);
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(admin.addr()).await?);
        }
        // Give the server the time to take them all.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = TcpStream::connect(admin.addr()).await?;
        extra
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok();
        let answer = until_closed(&mut extra).await.unwrap_or_default();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        drop(idle);
        // The slots are free again once the idle connections are gone.
        let health = tokio::time::timeout(HEADER_TIMEOUT * 6, async {
            loop {
                match reqwest::get(format!("{}/health", admin.url())).await {
                    Ok(r) if r.status().is_success() => return,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await;
        assert!(health.is_ok(), "the endpoint did not serve again");
        admin.stop().await;
        Ok(())
    }
}

/// A runtime configuration that cannot be written: the POST says so (503)
/// instead of acknowledging a change that a restart would lose.
#[tokio::test]
async fn a_change_that_cannot_be_saved_is_not_acknowledged_as_saved() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A file in a directory that does not exist: every write fails.
    let path = dir.path().join("missing").join("runtime.json");
    let store = Arc::new(RuntimeConfigStore::open(&path)?);
    let arms = ArmSet::grid().models(["m"]).temperatures([0.0]).build()?;
    let optimizer = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms))
        .build()?;
    let admin = serve(
        optimizer,
        AdminConfig {
            runtime_config: Some(store.clone()),
            ..AdminConfig::default()
        },
    )
    .await?;
    let http = reqwest::Client::new();
    let posted = http
        .post(format!("{}/runtime-config", admin.url()))
        .json(&json!({"exploration_rate": 0.2}))
        .send()
        .await?;
    assert_eq!(posted.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = posted.json().await?;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("in effect but was not saved")),
        "{body}"
    );
    assert!((store.get().exploration_rate - 0.2).abs() < 1e-15);
    assert!(!path.exists());
    // Once it can be written, the next POST is saved and acknowledged.
    std::fs::create_dir_all(path.parent().ok_or("parent")?)?;
    let posted = http
        .post(format!("{}/runtime-config", admin.url()))
        .json(&json!({"exploration_rate": 0.3}))
        .send()
        .await?;
    assert_eq!(posted.status(), StatusCode::OK);
    let written: RuntimeConfig = serde_json::from_slice(&std::fs::read(&path)?)?;
    assert!((written.exploration_rate - 0.3).abs() < 1e-15);
    admin.stop().await;
    Ok(())
}
