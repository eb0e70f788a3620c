//! The command-line contract: JSON on stdout, exit 2 with a message naming
//! file, line and field on bad input.

use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tuneloop(args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_tuneloop"))
        .args(args)
        .output()
}

fn write(dir: &Path, name: &str, text: &str) -> std::io::Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.display().to_string())
}

fn assert_bad_input(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(out.stdout.is_empty());
}

const GOOD: &str = r#"{"action": 0, "reward": 1.0, "propensity": 0.5, "target": [0.2, 0.8], "reward_hat": [0.5, 0.5]}"#;

#[test]
fn ope_prints_every_estimator_the_input_allows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = write(
        dir.path(),
        "ok.jsonl",
        &format!(
            "{GOOD}\n{}\n",
            GOOD.replace("\"action\": 0", "\"action\": 1")
        ),
    )?;
    let out = tuneloop(&["ope", "--input", &input, "--bootstrap", "100"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["rounds"], 2);
    for e in ["ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "dros"] {
        assert!(v["estimators"][e]["estimate"].is_f64(), "{e}");
        assert!(v["estimators"][e]["ci_low"].is_f64(), "{e}");
    }
    // IPW by hand: rounds (a=0, r=1, w=0.4) and (a=1, r=1, w=1.6): mean 1.0.
    let ipw = v["estimators"]["ipw"]["estimate"].as_f64().ok_or("ipw")?;
    assert!((ipw - 1.0).abs() < 1e-12);
    Ok(())
}

#[test]
fn ope_bad_input_exits_2_naming_line_and_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            "propensity",
            GOOD.replace("\"propensity\": 0.5", "\"propensity\": 0.0"),
        ),
        (
            "propensity",
            GOOD.replace("\"propensity\": 0.5", "\"propensity\": 1.5"),
        ),
        ("target", GOOD.replace("[0.2, 0.8]", "[0.2, 0.9]")),
        ("action", GOOD.replace("\"action\": 0", "\"action\": 5")),
        ("target", GOOD.replace("[0.2, 0.8]", "[0.2, 0.3, 0.5]")),
        (
            "reward",
            GOOD.replace("\"reward\": 1.0", "\"reward\": \"x\""),
        ),
    ];
    for (i, (field, bad)) in cases.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("bad{i}.jsonl"),
            &format!("{GOOD}\n\n{bad}\n"),
        )?;
        let out = tuneloop(&["ope", "--input", &path, "--bootstrap", "10"])?;
        assert_bad_input(&out, &[&path, "line 3", field]);
    }
    let empty = write(dir.path(), "empty.jsonl", "")?;
    assert_bad_input(&tuneloop(&["ope", "--input", &empty])?, &[&empty]);
    let no_q = write(
        dir.path(),
        "noq.jsonl",
        &format!("{}\n", GOOD.replace(", \"reward_hat\": [0.5, 0.5]", "")),
    )?;
    assert_bad_input(
        &tuneloop(&["ope", "--input", &no_q, "--estimators", "dr"])?,
        &["dr", "reward_hat"],
    );
    assert_bad_input(
        &tuneloop(&["ope", "--input", "/nonexistent/x.jsonl"])?,
        &["/nonexistent/x.jsonl"],
    );
    assert_bad_input(
        &tuneloop(&["ope", "--input", &no_q, "--estimators", "nope"])?,
        &["nope"],
    );
    assert_bad_input(
        &tuneloop(&["ope", "--input", &no_q, "--alpha", "2"])?,
        &["alpha"],
    );
    Ok(())
}

#[test]
fn simulate_supervised_follows_the_design_contract() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Label = 1 when x > 0: a learnable problem.
    let mut csv = String::from("x,label\n");
    for i in 0..2000 {
        let x = f64::from(i % 7) - 3.0;
        csv.push_str(&format!("{x},{}\n", u8::from(x > 0.0)));
    }
    let path = write(dir.path(), "data.csv", &csv)?;
    let out = tuneloop(&[
        "simulate",
        "--supervised",
        &path,
        "--policy",
        "linucb",
        "--seed",
        "3",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["policy"], "linucb");
    assert_eq!(v["rounds"], 2000);
    assert!(v["average_reward"].as_f64().ok_or("reward")? > 0.85);
    assert!(v["decisions_per_second"].as_f64().ok_or("dps")? > 0.0);
    for p in ["thompson", "epsilon-greedy", "uniform"] {
        let out = tuneloop(&["simulate", "--supervised", &path, "--policy", p])?;
        assert!(out.status.success(), "{p}");
    }
    Ok(())
}

#[test]
fn simulate_bad_csv_exits_2_naming_row_and_column() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bad_cell = write(dir.path(), "cell.csv", "a,b,label\n1,2,0\n3,oops,1\n")?;
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &bad_cell])?,
        &["line 3", "column 2", "`b`", "oops"],
    );
    let nan = write(dir.path(), "nan.csv", "a,label\n1,0\nNaN,1\n")?;
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &nan])?,
        &["line 3", "column 1"],
    );
    let label = write(dir.path(), "label.csv", "a,label\n1,0\n2,1.5\n")?;
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &label])?,
        &["line 3", "label"],
    );
    let width = write(dir.path(), "width.csv", "a,label\n1,0\n2,1,3\n")?;
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &width])?,
        &["line 3", "3 cells"],
    );
    let empty = write(dir.path(), "empty.csv", "")?;
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &empty])?,
        &["empty"],
    );
    assert_bad_input(
        &tuneloop(&["simulate", "--supervised", &bad_cell, "--policy", "nope"])?,
        &["nope"],
    );
    assert_bad_input(&tuneloop(&["simulate", "--scenario", "nope"])?, &["nope"]);
    Ok(())
}

#[test]
fn scenario_and_bench_print_json() -> TestResult {
    let out = tuneloop(&[
        "simulate",
        "--scenario",
        "llm-params",
        "--runs",
        "1",
        "--rounds",
        "50",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["arms"], 35);
    for (scenario, key) in [
        ("rollout-aa", "false_rollback_rate"),
        ("rollout-breach", "detection_rate"),
    ] {
        let out = tuneloop(&["simulate", "--scenario", scenario, "--runs", "2"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert!(v[key].is_f64(), "{scenario}: {v}");
    }
    let out = tuneloop(&["bench", "--iterations", "200", "--dims", "4", "--arms", "4"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(v["results"]["linucb_select"]["p50_ns"].is_u64());
    Ok(())
}

/// Decision `id` of a log over 3 arms logged uniformly: arm `a`, `reward`,
/// optionally part of `episode`.
fn uniform_record(
    arms: &tuneloop_core::ArmSet,
    id: u128,
    a: usize,
    reward: f64,
    episode: Option<u128>,
) -> Result<tuneloop_counterfactual::LoggedDecision, tuneloop_core::Error> {
    use tuneloop_core::{DecisionId, TaskOutcome};
    let arm = arms.arm(a)?.clone();
    Ok(tuneloop_counterfactual::LoggedDecision {
        schema_version: 1,
        decision_id: DecisionId::from_u128(id),
        request_id: None,
        episode_id: episode.map(DecisionId::from_u128),
        task_type: "t".into(),
        model: "m".into(),
        context_fingerprint: "0000000000000000".into(),
        context: vec![1.0],
        eligible: vec![0, 1, 2],
        eligible_ids: arms.iter().map(|a| a.id).collect(),
        arm: a,
        arm_id: arm.id,
        params: arm.params,
        propensity: 1.0 / 3.0,
        propensity_estimated: false,
        policy_kind: "uniform".into(),
        policy_version: 0,
        cohort: None,
        phase: None,
        shadow_arm: None,
        timestamp: chrono::Utc::now(),
        resolution: tuneloop_counterfactual::Resolution::Recorded {
            outcome: episode.map(|_| TaskOutcome::success(reward, 100.0)),
            reward,
        },
    })
}

fn three_arms() -> Result<tuneloop_core::ArmSet, tuneloop_core::Error> {
    tuneloop_core::ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()
}

/// A pseudo-random number in [0, 1) from a splitmix64 stream.
fn next_unit(state: &mut u64) -> f64 {
    *state = tuneloop_core::hash::splitmix64(*state);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// A pseudo-random arm in 0..3.
fn next_arm(state: &mut u64) -> usize {
    ((next_unit(state) * 3.0) as usize).min(2)
}

/// Writes a uniformly logged 3-arm decision log (arm means 0.2, 0.8, 0.4).
fn write_log(path: &Path, n: u64) -> TestResult {
    use tuneloop_counterfactual::{DecisionLog, JsonlLog};
    let arms = three_arms()?;
    let log = JsonlLog::open(path, u64::MAX, 0)?;
    let mut state = 12345u64;
    for i in 0..n {
        let a = next_arm(&mut state);
        let r = if next_unit(&mut state) < [0.2, 0.8, 0.4][a] {
            1.0
        } else {
            0.0
        };
        log.append(&uniform_record(&arms, u128::from(i), a, r, None)?)?;
    }
    Ok(())
}

/// `n` episodes of two uniformly logged decisions over 3 arms; an episode
/// that chose arm 1 twice earns 1, any other 0.2.
fn write_episode_log(path: &Path, n: u64) -> TestResult {
    use tuneloop_counterfactual::{DecisionLog, JsonlLog};
    let arms = three_arms()?;
    let log = JsonlLog::open(path, u64::MAX, 0)?;
    let mut state = 777u64;
    for e in 0..n {
        let chosen = [next_arm(&mut state), next_arm(&mut state)];
        let reward = if chosen == [1, 1] { 1.0 } else { 0.2 };
        for (step, &a) in chosen.iter().enumerate() {
            let id = u128::from(2 * e) + step as u128;
            log.append(&uniform_record(
                &arms,
                id,
                a,
                reward,
                Some(1 << 64 | u128::from(e)),
            )?)?;
        }
    }
    Ok(())
}

#[test]
fn evaluate_and_report_understand_episodes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("episodes.jsonl");
    write_episode_log(&log, 3000)?;
    let log_s = log.display().to_string();
    let counts = |e: &serde_json::Value| (e["episodes"].as_u64(), e["decisions"].as_u64());
    let args = [
        "evaluate",
        "--log",
        &log_s,
        "--policy",
        "fixed:1",
        "--bootstrap",
        "200",
    ];
    let v = stdout_json(&tuneloop(&args)?)?;
    let e = &v["episodes"];
    assert_eq!(counts(e), (Some(3000), Some(6000)), "{e}");
    // "Arm 1 twice" is worth 1 (every episode it weighs earned 1); the
    // uniform logger 1/9 + 8/9 * 0.2; crediting each decision alone would
    // say 1/3 + 2/3 * 0.2.
    let snipw = e["candidate"]["snipw"]["estimate"]
        .as_f64()
        .ok_or("snipw")?;
    assert!((snipw - 1.0).abs() < 1e-9, "{snipw}");
    let baseline = e["baseline"]["estimate"].as_f64().ok_or("baseline")?;
    assert!(
        (baseline - (1.0 / 9.0 + 8.0 / 9.0 * 0.2)).abs() < 0.03,
        "{baseline}"
    );
    assert_eq!(e["verdict"], "better");
    let per_decision = v["candidate"]["ipw"]["estimate"].as_f64().ok_or("ipw")?;
    assert!(
        (per_decision - (1.0 / 3.0 + 2.0 / 3.0 * 0.2)).abs() < 0.05,
        "{per_decision}"
    );

    let html = dir.path().join("report.html");
    let html_s = html.display().to_string();
    let v = stdout_json(&tuneloop(&["report", "--log", &log_s, "--out", &html_s])?)?;
    let e = &v["episodes"];
    assert_eq!(counts(e), (Some(3000), Some(6000)), "{e}");
    assert_eq!(e["by_length"], serde_json::json!([[2, 3000]]));
    assert!(std::fs::read_to_string(&html)?.contains("<h2>Episodes</h2>"));
    Ok(())
}

#[test]
fn evaluate_gives_a_verdict_and_names_bad_input() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    write_log(&log, 3000)?;
    let log_s = log.display().to_string();
    let run = |policy: &str| {
        tuneloop(&[
            "evaluate",
            "--log",
            &log_s,
            "--policy",
            policy,
            "--bootstrap",
            "500",
        ])
    };
    let out = run("fixed:1")?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["verdict"], "better");
    let dr = v["candidate"]["dr"]["estimate"].as_f64().ok_or("dr")?;
    assert!((dr - 0.8).abs() < 0.05, "{dr}");
    let v: serde_json::Value = serde_json::from_slice(&run("fixed:0")?.stdout)?;
    assert_eq!(v["verdict"], "not proven better");
    // A learning policy trains on the first half and is judged on the rest.
    let out = run("linucb")?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["trained_on_rounds"], 1500);
    assert_eq!(v["verdict"], "better", "LinUCB learns arm 1: {v}");
    assert_bad_input(&run("nope")?, &["nope"]);
    assert_bad_input(&run("fixed:x")?, &["fixed:x"]);
    assert_bad_input(&run("@/nonexistent.json")?, &["/nonexistent.json"]);
    // A torn last line is a warning, not a failure.
    let mut text = std::fs::read_to_string(&log)?;
    text.push_str("{\"schema_version\": 1, \"decis");
    std::fs::write(&log, text)?;
    let out = run("fixed:1")?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("torn"));
    Ok(())
}

fn stdout_json(out: &Output) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn eval_run_recommends_per_task_type_and_writes_a_plan_the_router_and_optimizer_load() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let plan = dir.path().join("plan");
    let history = dir.path().join("history.jsonl");
    let out = tuneloop(&[
        "eval",
        "run",
        "standard",
        "--runs",
        "2",
        "--repetitions",
        "4",
        "--routing-out",
        &plan.display().to_string(),
        "--history",
        &history.display().to_string(),
    ])?;
    let v = stdout_json(&out)?;
    // 11 cases × (2 providers × 2 parameter sets each) × 4 × 2 runs.
    assert_eq!(v["calls"], 11 * 4 * 4 * 2);
    assert_eq!(v["rounds"], serde_json::json!([0, 1]));
    assert_eq!(v["recommendations"].as_object().map(|m| m.len()), Some(10));
    // Progress went to stderr, JSON alone to stdout.
    assert!(String::from_utf8_lossy(&out.stderr).contains("eval run ["));

    let store = tuneloop_config::RuntimeConfigStore::open(plan.join("runtime-config.json"))?;
    let rc = store.get();
    assert_eq!(
        rc.metadata.optimized_by.as_deref(),
        Some("tuneloop eval run")
    );
    assert!(rc.default_parameters.is_some());
    let card = tuneloop::providers::Scorecard::open(
        Some(&plan.join("scorecard.json")),
        tuneloop::providers::ScorecardConfig::default(),
    )?;
    let e = card
        .entry("sim-cloud", "large", "factual_qa")
        .ok_or("no scorecard entry")?;
    // 2 factual cases × 2 parameter sets × 4 repetitions × 2 runs.
    assert_eq!(e.calls, 2 * 2 * 4 * 2);

    // The next run continues the history's round numbers.
    let again = tuneloop(&[
        "eval",
        "run",
        "standard",
        "--runs",
        "1",
        "--repetitions",
        "2",
        "--history",
        &history.display().to_string(),
    ])?;
    assert_eq!(stdout_json(&again)?["rounds"], serde_json::json!([2]));
    Ok(())
}

#[test]
fn eval_bad_suites_and_provider_files_exit_2_naming_the_entry() -> TestResult {
    let dir = tempfile::tempdir()?;
    let suite = write(
        dir.path(),
        "suite.json",
        r#"{"name": "s", "cases": [
            {"id": "a", "task_type": "t", "prompt": "p", "scorer": {"kind": "exact", "expected": "x"}},
            {"id": "b", "task_type": "t", "prompt": "p", "scorer": {"kind": "numeric", "expected": 1, "tolerance": -2}}]}"#,
    )?;
    let out = tuneloop(&["eval", "run", &suite])?;
    assert_bad_input(&out, &["suite.json", r#"cases[1] (id "b")"#, "tolerance"]);
    let out = tuneloop(&["eval", "run", "missing-suite.json"])?;
    assert_bad_input(&out, &["missing-suite.json"]);
    let providers = write(
        dir.path(),
        "providers.json",
        r#"[{"simulated": {"id": "a"}}, {"telepathic": {}}]"#,
    )?;
    let out = tuneloop(&["eval", "run", "standard", "--providers", &providers])?;
    assert_bad_input(&out, &["providers.json", "entry 1", "telepathic"]);
    let out = tuneloop(&["eval", "refine", "standard", "--case", "nope"])?;
    assert_bad_input(&out, &["--case", "nope", "capital"]);
    let out = tuneloop(&["eval", "run", "standard", "--runs", "0"])?;
    assert_bad_input(&out, &["runs"]);
    Ok(())
}

#[test]
fn eval_refine_and_aa_run_end_to_end_on_the_simulator() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("sessions");
    let out = tuneloop(&[
        "eval",
        "refine",
        "standard",
        "--case",
        "capital",
        "--out",
        &out_dir.display().to_string(),
    ])?;
    let v = stdout_json(&out)?;
    let sessions = v["sessions"].as_array().ok_or("no sessions")?;
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        let folder = s["folder"].as_str().ok_or("no folder")?;
        assert!(Path::new(folder).join("session.json").is_file());
        assert!(Path::new(folder).join("report.md").is_file());
        assert!(s["best_score"].as_f64() >= s["initial_score"].as_f64());
    }
    let cmp = v["comparison_file"].as_str().ok_or("no comparison file")?;
    assert!(Path::new(cmp).is_file());

    let out = tuneloop(&[
        "eval",
        "aa",
        "standard",
        "--trials",
        "5",
        "--repetitions",
        "2",
    ])?;
    let v = stdout_json(&out)?;
    assert_eq!(v["trials"], 5);
    assert!(
        v["any_flag_rate"]
            .as_f64()
            .is_some_and(|r| (0.0..=1.0).contains(&r))
    );
    Ok(())
}

#[test]
fn report_writes_one_page_with_every_chart_from_a_simulated_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    let html = dir.path().join("report.html");
    let sim = tuneloop(&[
        "simulate",
        "--scenario",
        "traffic",
        "--rounds",
        "6000",
        "--log",
        &log.display().to_string(),
    ])?;
    let s = stdout_json(&sim)?;
    assert_eq!(s["outcomes"], 6000);
    // A torn last line (a crash mid-write) is skipped with a warning.
    let mut text = std::fs::read_to_string(&log)?;
    text.push_str("{\"schema_version\":1,\"decision_id\":\"0000");
    std::fs::write(&log, text)?;
    let out = tuneloop(&[
        "report",
        "--log",
        &log.display().to_string(),
        "--out",
        &html.display().to_string(),
    ])?;
    let v = stdout_json(&out)?;
    assert_eq!(
        v["decisions"].as_u64(),
        Some(6000 - s["log_dropped"].as_u64().unwrap_or(0))
    );
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1));
    let page = std::fs::read_to_string(&html)?;
    for chart in [
        "reward-over-time",
        "phase-timeline",
        "quality-cost",
        "estimators",
        "drift",
        "attribution",
    ] {
        let at = page
            .find(&format!("data-chart=\"{chart}\""))
            .ok_or(format!("no {chart}"))?;
        assert!(page[at..].contains("<svg"), "{chart} has no svg");
    }
    // Self-contained: nothing is fetched.
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    // The scenario's rollouts promote at least once.
    assert!(v["promotions"].as_u64() >= Some(1));
    Ok(())
}

#[test]
fn report_names_a_bad_line_and_exits_2() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut record = serde_json::to_value(uniform_record(&three_arms()?, 1, 0, 1.0, None)?)?;
    record["propensity"] = serde_json::json!(1.5);
    let log = write(dir.path(), "bad.jsonl", &format!("{record}\n"))?;
    let out = tuneloop(&["report", "--log", &log, "--out", "/dev/null"])?;
    assert_bad_input(&out, &["bad.jsonl", "line 1", "propensity"]);
    let out = tuneloop(&["report", "--log", "missing.jsonl", "--out", "x.html"])?;
    assert_bad_input(&out, &["missing.jsonl"]);
    Ok(())
}

#[test]
fn eval_run_grades_judge_scored_cases_with_a_judge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let suite = write(
        dir.path(),
        "judged.json",
        r#"{"name": "judged", "cases": [
            {"id": "capital", "task_type": "factual_qa",
             "prompt": "What is the capital of Australia? Answer with the city name only.",
             "reference": "Canberra",
             "scorer": {"kind": "judge", "rubric": "names the right city"}}]}"#,
    )?;
    // Default simulated providers: a simulated judge grades by word overlap
    // with the reference, so a right answer scores 1 and "I am not sure." 0.
    let out = tuneloop(&["eval", "run", &suite, "--runs", "1", "--repetitions", "3"])?;
    let v = stdout_json(&out)?;
    for c in v["configs"].as_array().ok_or("no configs")? {
        assert_eq!(c["success_rate"], 1.0, "{c}");
        let q = c["quality"].as_f64().ok_or("no quality")?;
        // Every score is 0 or 1: the mean of three is a multiple of 1/3.
        assert!(((q * 3.0) - (q * 3.0).round()).abs() < 1e-9, "{q}");
    }
    // With providers of one's own, the grader must be named.
    let providers = write(
        dir.path(),
        "providers.json",
        r#"[{"simulated": {"id": "a", "models": ["large"]}}]"#,
    )?;
    let out = tuneloop(&["eval", "run", &suite, "--providers", &providers])?;
    assert_bad_input(&out, &["--judge"]);
    Ok(())
}

#[test]
fn eval_run_counts_and_shows_failed_calls_per_provider() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Provider `b` refuses every call; `a` never fails.
    let providers = write(
        dir.path(),
        "providers.json",
        r#"[{"simulated": {"id": "a", "models": ["large", "small"]}},
            {"simulated": {"id": "b", "models": ["large", "small"], "reject_credentials": true}}]"#,
    )?;
    let out = tuneloop(&[
        "eval",
        "run",
        "standard",
        "--providers",
        &providers,
        "--runs",
        "1",
        "--repetitions",
        "1",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let f = &v["failures"];
    let b = &f["providers"]["b"];
    assert_eq!(f["providers"]["a"]["failed"], 0, "{f}");
    assert!(b["calls"].as_u64() > Some(0), "{f}");
    assert_eq!(b["failed"], b["calls"], "{f}");
    assert_eq!(f["failed"], b["failed"], "{f}");
    assert_eq!(
        b["errors"][0]["calls"], b["failed"],
        "one message for all: {f}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = format!("b: {} of {} calls failed", b["failed"], b["calls"]);
    assert!(stderr.contains(&line), "{stderr}");
    Ok(())
}

#[test]
fn eval_serve_applies_passing_rounds_and_keeps_the_last_one_on_a_regression() -> TestResult {
    let dir = tempfile::tempdir()?;
    let at = |name: &str| dir.path().join(name).display().to_string();
    let (rc, prov, hist, sc) = (
        at("runtime.json"),
        at("provenance.jsonl"),
        at("history.jsonl"),
        at("scorecard.json"),
    );
    let args = [
        "eval",
        "serve",
        "standard",
        "--every",
        "1h",
        "--rounds",
        "3",
        "--runs",
        "1",
        "--repetitions",
        "4",
        "--runtime-config",
        &rc,
        "--provenance",
        &prov,
        "--history",
        &hist,
        "--scorecard",
        &sc,
    ];
    let v = stdout_json(&tuneloop(&args)?)?;
    let rounds = v["rounds"].as_array().ok_or("no rounds")?;
    assert_eq!(rounds.len(), 3, "{v}");
    let passed: Vec<&serde_json::Value> = rounds.iter().filter(|r| r["passed"] == true).collect();
    assert!(!passed.is_empty(), "{v}");
    // Every round is in the history; only the passing ones were applied.
    assert_eq!(std::fs::read_to_string(&hist)?.lines().count(), 3);
    let chain = tuneloop_gates::provenance::read(std::path::Path::new(&prov))?;
    assert_eq!(chain.len(), passed.len());
    tuneloop_gates::provenance::verify(&chain)?;
    // The runtime configuration holds the last passing round's plan.
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rc)?)?;
    let last = passed.last().ok_or("none passed")?;
    assert_eq!(
        config["default_parameters"], last["default_parameters"],
        "{config}"
    );
    assert_eq!(config["metadata"]["optimized_by"], "tuneloop eval serve");
    assert!(std::path::Path::new(&sc).exists());
    // Flags for eval run only are refused by name.
    let out = tuneloop(&[
        "eval",
        "serve",
        "standard",
        "--every",
        "1h",
        "--report",
        &at("r.json"),
    ])?;
    assert_bad_input(&out, &["--report", "eval run"]);
    let out = tuneloop(&["eval", "serve", "standard", "--every", "soon"])?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

#[test]
fn sizes_beyond_the_documented_limits_exit_2_naming_the_flag_or_the_limit() -> TestResult {
    // Each of these aborted (or asked for terabytes) before the limits.
    let dir = tempfile::tempdir()?;
    let input = write(dir.path(), "ok.jsonl", &format!("{GOOD}\n"))?;
    let out = tuneloop(&[
        "ope",
        "--input",
        &input,
        "--bootstrap",
        "18446744073709551615",
    ])?;
    assert_bad_input(&out, &["--bootstrap", "1000000"]);
    assert_bad_input(
        &tuneloop(&["bench", "--dims", "100000"])?,
        &["--dims", "1024"],
    );
    let out = tuneloop(&[
        "simulate",
        "--scenario",
        "traffic",
        "--rounds",
        "1000000000000",
    ])?;
    assert_bad_input(&out, &["--rounds"]);
    // Ten rows, label 4095 and 600 columns: 4,096 arms of 601 features.
    let mut csv = (0..600).map(|i| format!("f{i},")).collect::<String>() + "label\n";
    for r in 0..10 {
        csv += &"0.5,".repeat(600);
        csv += if r == 0 { "4095\n" } else { "1\n" };
    }
    let path = write(dir.path(), "wide.csv", &csv)?;
    let out = tuneloop(&["simulate", "--supervised", &path, "--policy", "linucb"])?;
    assert_bad_input(&out, &["MAX_STATE_VALUES"]);
    Ok(())
}

#[test]
fn bad_files_exit_2_with_one_message_and_the_report_never_overwrites_its_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let empty = write(dir.path(), "empty.jsonl", "\n\n")?;
    let out = tuneloop(&["ope", "--input", &empty])?;
    assert_bad_input(&out, &["empty.jsonl: the file has no rounds"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("line 0"));
    let not_gzip = write(dir.path(), "rounds.jsonl.gz", GOOD)?;
    let out = tuneloop(&["ope", "--input", &not_gzip])?;
    assert_bad_input(&out, &["rounds.jsonl.gz", "gzip"]);
    let d = dir.path().display().to_string();
    assert_bad_input(&tuneloop(&["ope", "--input", &d])?, &["directory"]);
    // `report --log L --out L` would replace the log with the page.
    let log = dir.path().join("decisions.jsonl");
    write_log(&log, 20)?;
    let before = std::fs::read(&log)?;
    let l = log.display().to_string();
    let out = tuneloop(&["report", "--log", &l, "--out", &l])?;
    assert_bad_input(&out, &["the log itself"]);
    assert_eq!(std::fs::read(&log)?, before);
    assert_bad_input(
        &tuneloop(&["report", "--log", &l, "--out", &d])?,
        &["directory"],
    );
    Ok(())
}

#[test]
fn report_skips_a_torn_line_in_the_middle_with_a_warning() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    write_log(&log, 40)?;
    let text = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = text.lines().collect();
    let torn = &lines[5][..lines[5].len() / 2];
    let mut cut = lines[..5].join("\n");
    cut.push_str(&format!("\n{torn}\n{}\n", lines[6..].join("\n")));
    std::fs::write(&log, cut)?;
    let out_html = dir.path().join("r.html").display().to_string();
    let out = tuneloop(&[
        "report",
        "--log",
        &log.display().to_string(),
        "--out",
        &out_html,
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("line 6: torn line"), "{err}");
    Ok(())
}

#[test]
fn report_on_thousands_of_models_stays_small_and_groups_the_rare_ones() -> TestResult {
    // 3,000 decisions over 3,000 distinct models: the attribution's
    // regression had a column per model (over 420 s for 5,000).
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    write_log(&log, 60)?;
    let template: Vec<serde_json::Value> = std::fs::read_to_string(&log)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut text = String::new();
    for i in 0..3000usize {
        let mut r = template[i % template.len()].clone();
        let model = format!("model-{i}");
        r["params"]["model"] = model.clone().into();
        r["model"] = model.into();
        r["arm_id"] = format!("{:016x}", i + 1).into();
        text.push_str(&r.to_string());
        text.push('\n');
    }
    std::fs::write(&log, text)?;
    let html = dir.path().join("r.html");
    let out = tuneloop(&[
        "report",
        "--log",
        &log.display().to_string(),
        "--out",
        &html.display().to_string(),
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html)?;
    assert!(
        page.contains("less frequent levels"),
        "the rare models share one column"
    );
    Ok(())
}

#[test]
fn eval_run_writes_a_replay_file_that_simulate_replays() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rewards.csv");
    let f = file.display().to_string();
    let out = tuneloop(&[
        "eval",
        "run",
        "standard",
        "--runs",
        "2",
        "--repetitions",
        "4",
        "--rewards-out",
        &f,
    ])?;
    stdout_json(&out)?;
    // A row per round, case and repetition: 2 × 11 × 4; a reward column per
    // configuration (2 providers × 2 parameter sets).
    let mut reader = csv::Reader::from_path(&file)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let arms: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("reward_"))
        .collect();
    assert_eq!(arms.len(), 4, "{header:?}");
    let mut sums = vec![0.0; header.len()];
    let mut rows = 0usize;
    for r in reader.records() {
        let r = r?;
        // One task-type indicator is set per row.
        let set = (0..header.len())
            .filter(|i| !arms.contains(i) && &r[*i] == "1")
            .count();
        assert_eq!(set, 1);
        for &i in &arms {
            sums[i] += r[i].parse::<f64>()?;
        }
        rows += 1;
    }
    assert_eq!(rows, 2 * 11 * 4);
    let best = arms
        .iter()
        .copied()
        .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
        .ok_or("no arm")?;

    let v = stdout_json(&tuneloop(&["simulate", "--rewards", &f, "--seed", "3"])?)?;
    assert_eq!(v["rounds"], rows);
    assert_eq!(v["best_fixed_arm"], header[best]["reward_".len()..]);
    let best_mean = sums[best] / rows as f64;
    assert!((v["best_fixed_reward"].as_f64().unwrap_or(0.0) - best_mean).abs() < 1e-9);
    let chosen: u64 = v["chosen"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(chosen as usize, rows);

    // A bad cell: exit 2 naming its row and column.
    let text = std::fs::read_to_string(&file)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = header.len() - 1;
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cells[last] = "n/a".into();
    lines[3] = cells.join(",");
    let broken = write(dir.path(), "broken.csv", &(lines.join("\n") + "\n"))?;
    let out = tuneloop(&["simulate", "--rewards", &broken])?;
    assert_bad_input(
        &out,
        &[
            "broken.csv",
            "line 4 (row 3)",
            &format!("column {}", last + 1),
            "`n/a`",
        ],
    );
    Ok(())
}

#[test]
fn report_with_a_provenance_chain_draws_the_proof_and_lists_every_change() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    let chain = dir.path().join("provenance.jsonl");
    let html = dir.path().join("report.html");
    let sim = tuneloop(&[
        "simulate",
        "--scenario",
        "traffic",
        "--rounds",
        "20000",
        "--seed",
        "3",
        "--log",
        &log.display().to_string(),
        "--provenance",
        &chain.display().to_string(),
    ])?;
    let s = stdout_json(&sim)?;
    let events = s["rollout_events"].as_u64().ok_or("rollout_events")?;
    assert!(events > 0, "{s}");
    let (log, chain_arg, out_html) = (
        log.display().to_string(),
        chain.display().to_string(),
        html.display().to_string(),
    );
    let report = || {
        tuneloop(&[
            "report",
            "--log",
            &log,
            "--provenance",
            &chain_arg,
            "--out",
            &out_html,
        ])
    };
    let out = report()?;
    let v = stdout_json(&out)?;
    // One record per rollout event of the run.
    assert_eq!(v["provenance_records"].as_u64(), Some(events));
    assert_eq!(v["charts"].as_array().map(Vec::len), Some(7));
    let page = std::fs::read_to_string(&html)?;
    let at = page.find("data-chart=\"proof\"").ok_or("no proof chart")?;
    assert!(page[at..].contains("<svg") && page[at..].contains("the chain verifies"));
    assert!(
        page.contains("promoted from shadow to canary"),
        "a promotion listed"
    );
    // A chain edited by hand is reported as such, not trusted silently.
    let text = std::fs::read_to_string(&chain)?;
    std::fs::write(&chain, text.replacen("promoted from", "moved from", 1))?;
    let out = report()?;
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html)?;
    assert!(
        page.contains("the chain does not verify"),
        "tampering shown"
    );
    // A file that is not a chain: exit 2 naming it.
    std::fs::write(&chain, "not json\n")?;
    let out = report()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--provenance"));
    Ok(())
}

/// `export`: a fleet's log from PostgreSQL, read back by `report` and
/// `ope`. Needs `TUNELOOP_DATABASE_URL` (scripts/local-postgres start).
#[cfg(feature = "postgres")]
#[test]
fn export_writes_a_fleets_log_that_the_other_commands_read() -> TestResult {
    use std::sync::Arc;
    use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
    use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    let Ok(url) = std::env::var("TUNELOOP_DATABASE_URL") else {
        eprintln!("skipped: no PostgreSQL (TUNELOOP_DATABASE_URL=$(scripts/local-postgres start))");
        return Ok(());
    };
    let schema = format!("t_export_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let url = format!("{url}?options=-csearch_path%3D{schema}");
    let log = Arc::new(tuneloop_store::PgDecisionLog::open(
        &url,
        tuneloop_store::PgLogConfig::default(),
    )?);
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    let o = Optimizer::builder()
        .task_type("t", TaskTypeConfig::new(arms))
        .decision_log(log.clone())
        .seed(5)
        .build()?;
    for i in 0..300 {
        let rec =
            o.recommend_parameters("t", &TaskFeatures::default(), &RecommendOptions::default())?;
        let q = if rec.arm == 1 { 0.8 } else { 0.4 } + f64::from(i % 3) / 100.0;
        o.record_outcome(rec.decision_id, &TaskOutcome::success(q, 100.0))?;
    }
    drop(o);
    assert!(log.flush(std::time::Duration::from_secs(30)));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("fleet.jsonl");
    let out = tuneloop(&[
        "export",
        "--database-url",
        &url,
        "--out",
        &file.display().to_string(),
    ])?;
    let v = stdout_json(&out)?;
    assert_eq!(v["decisions"], 300);
    assert_eq!(v["with_outcome"], 300);
    let html = dir.path().join("r.html");
    let report = tuneloop(&[
        "report",
        "--log",
        &file.display().to_string(),
        "--out",
        &html.display().to_string(),
    ])?;
    assert_eq!(stdout_json(&report)?["decisions"], 300);
    // `report` and `evaluate` read the database directly too.
    let report = tuneloop(&[
        "report",
        "--log",
        &url,
        "--out",
        &html.display().to_string(),
    ])?;
    assert_eq!(stdout_json(&report)?["decisions"], 300);
    assert!(std::fs::read_to_string(&html)?.contains("tuneloop report — postgres://"));
    let evaluate = tuneloop(&["evaluate", "--log", &url, "--policy", "uniform"])?;
    let v = stdout_json(&evaluate)?;
    assert!(
        v.to_string().contains("300") || v["rounds"].as_u64().is_some(),
        "{v}"
    );
    // A database URL that is not one: exit 2 naming it.
    let out = tuneloop(&[
        "export",
        "--database-url",
        "postgres://u:secret@h:notaport/x",
        "--out",
        &file.display().to_string(),
    ])?;
    assert_bad_input(&out, &["--database-url", "notaport"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
    Ok(())
}

#[cfg(not(feature = "postgres"))]
#[test]
fn a_database_log_without_the_postgres_feature_exits_2_saying_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    let html = dir.path().join("r.html").display().to_string();
    let out = tuneloop(&[
        "report",
        "--log",
        "postgres://u@127.0.0.1:1/x",
        "--out",
        &html,
    ])?;
    assert_bad_input(&out, &["--features postgres"]);
    let out = tuneloop(&[
        "export",
        "--database-url",
        "postgres://u@127.0.0.1:1/x",
        "--out",
        &html,
    ])?;
    assert_bad_input(&out, &["--features postgres"]);
    Ok(())
}

/// Every log the decision log's reader refuses, `evaluate` and `report`
/// refuse alike: exit 2, the file and the line named, the same message.
#[test]
fn evaluate_and_report_refuse_the_same_logs_with_the_same_message() -> TestResult {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir()?;
    let arms = three_arms()?;
    let good = serde_json::to_value(uniform_record(&arms, 1, 1, 1.0, None)?)?;
    let line = |v: &Value| v.to_string();
    let with = |path: &[&str], value: Value| -> Value {
        let mut v = good.clone();
        let mut slot = &mut v;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                slot[*key] = value.clone();
            } else {
                slot = &mut slot[*key];
            }
        }
        v
    };
    let without = |key: &str| -> Value {
        let mut v = good.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove(key);
        }
        v
    };
    let outcome = json!({"success": true, "quality": 0.5, "latency_ms": 10.0});
    let cases: Vec<(&str, String)> = vec![
        (
            "schema_version",
            line(&with(&["schema_version"], json!(99))),
        ),
        ("decision_id", line(&without("decision_id"))),
        (
            "decision_id",
            line(&with(&["decision_id"], json!("not-a-uuid"))),
        ),
        ("arm", line(&with(&["arm"], json!(7)))),
        (
            "temperature",
            line(&with(&["params", "temperature"], json!(5.0))),
        ),
        ("propensity", line(&with(&["propensity"], json!(0.0)))),
        ("propensity", line(&with(&["propensity"], json!(1.5)))),
        ("reward", line(&with(&["reward"], json!(1.5)))),
        ("eligible_ids", line(&with(&["eligible_ids"], json!([])))),
        ("arm_id", line(&with(&["arm_id"], json!("xyz")))),
        ("context", line(&with(&["context"], json!(["x"])))),
        ("quality", {
            let mut o = outcome.clone();
            o["quality"] = json!(2.0);
            line(&with(&["outcome"], o))
        }),
        ("cost_usd", {
            let mut o = outcome.clone();
            o["cost_usd"] = json!(-1.0);
            line(&with(&["outcome"], o))
        }),
        ("schema_version", "{\"oops\": 1}".to_owned()),
        // Resolutions no writer makes: an outcome without its reward, a
        // default marked on a recorded outcome, a reason without the
        // default, a default without a reward.
        ("reward", {
            let mut v = with(&["outcome"], outcome.clone());
            if let Some(o) = v.as_object_mut() {
                o.remove("reward");
            }
            line(&v)
        }),
        ("reward_defaulted", {
            let mut v = with(&["outcome"], outcome.clone());
            v["reward_defaulted"] = json!(true);
            line(&v)
        }),
        (
            "abandoned",
            line(&with(&["abandoned"], json!("dropped unrecorded"))),
        ),
        ("reward_defaulted", {
            let mut v = with(&["reward_defaulted"], json!(true));
            if let Some(o) = v.as_object_mut() {
                o.remove("reward");
            }
            line(&v)
        }),
    ];
    let bad_input = |out: &Output| -> String {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("bad input"))
            .unwrap_or_default()
            .to_owned()
    };
    for (i, (field, bad)) in cases.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("bad{i}.jsonl"),
            &format!("{}\n{bad}\n{}\n", line(&good), line(&good)),
        )?;
        let evaluate = tuneloop(&["evaluate", "--log", &path, "--policy", "fixed:0"])?;
        let out = dir
            .path()
            .join(format!("bad{i}.html"))
            .display()
            .to_string();
        let report = tuneloop(&["report", "--log", &path, "--out", &out])?;
        assert_bad_input(&evaluate, &[&path, "line 2", field]);
        assert_bad_input(&report, &[&path, "line 2", field]);
        assert_eq!(bad_input(&evaluate), bad_input(&report), "case {field}");
        assert!(
            !Path::new(&out).exists(),
            "case {field}: a report was written"
        );
    }
    Ok(())
}

/// `tuneloop evaluate --policy fixed:0` on `log` with `extra` flags.
fn evaluate_fixed_0(
    log: &str,
    extra: &[&str],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut args = vec![
        "evaluate",
        "--log",
        log,
        "--policy",
        "fixed:0",
        "--bootstrap",
        "200",
    ];
    args.extend_from_slice(extra);
    stdout_json(&tuneloop(&args)?)
}

/// `v` is a number within 1e-12 of `expected`.
fn close(v: &serde_json::Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-12)
}

/// 300 decisions over 3 arms logged uniformly (arm `i % 3`): arm 0 earns 1,
/// the others 0; 30 of arm 0's decisions were abandoned (default reward 0).
/// `fixed:0`'s weight is 3 on arm 0's rounds and 0 elsewhere, so
/// - left out (the default): 270 rounds, 70 of arm 0: IPW = 3·70/270,
///   SNIPW = 1, the logged mean 70/270;
/// - counted at their default: 300 rounds: IPW = SNIPW = 3·70/300 = 0.7,
///   the logged mean 70/300.
#[test]
fn abandoned_decisions_are_left_out_of_estimates_and_counted_alike_by_evaluate_and_report()
-> TestResult {
    use tuneloop_counterfactual::{AbandonReason, DecisionLog, JsonlLog, Resolution};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    let arms = three_arms()?;
    let log = JsonlLog::open(&path, u64::MAX, 0)?;
    let mut abandoned = 0;
    for i in 0..300u128 {
        let a = (i % 3) as usize;
        let mut r = uniform_record(&arms, i + 1, a, if a == 0 { 1.0 } else { 0.0 }, None)?;
        if a == 0 && abandoned < 30 && i % 2 == 0 {
            r.resolution = Resolution::Abandoned {
                reason: AbandonReason::Caller("the user cancelled".into()),
                default_reward: 0.0,
            };
            abandoned += 1;
        }
        log.append(&r)?;
    }
    assert_eq!(abandoned, 30);
    let p = path.display().to_string();
    let evaluate = |extra: &[&str]| evaluate_fixed_0(&p, extra);

    let left_out = evaluate(&[])?;
    assert_eq!(
        (
            left_out["rounds"].as_u64(),
            left_out["skipped_defaulted"].as_u64()
        ),
        (Some(270), Some(30))
    );
    assert!(
        close(
            &left_out["candidate"]["ipw"]["estimate"],
            3.0 * 70.0 / 270.0
        ),
        "{left_out}"
    );
    assert!(
        close(&left_out["candidate"]["snipw"]["estimate"], 1.0),
        "{left_out}"
    );
    assert!(
        close(&left_out["baseline"]["estimate"], 70.0 / 270.0),
        "{left_out}"
    );

    let counted = evaluate(&["--include-defaulted"])?;
    assert_eq!(
        (
            counted["rounds"].as_u64(),
            counted["skipped_defaulted"].as_u64()
        ),
        (Some(300), Some(0))
    );
    assert!(
        close(&counted["candidate"]["ipw"]["estimate"], 0.7),
        "{counted}"
    );
    assert!(
        close(&counted["candidate"]["snipw"]["estimate"], 0.7),
        "{counted}"
    );
    assert!(
        close(&counted["baseline"]["estimate"], 70.0 / 300.0),
        "{counted}"
    );

    let html = dir.path().join("report.html").display().to_string();
    let report = stdout_json(&tuneloop(&["report", "--log", &p, "--out", &html])?)?;
    assert_eq!(
        (report["rewarded"].as_u64(), report["defaulted"].as_u64()),
        (
            left_out["rounds"].as_u64(),
            left_out["skipped_defaulted"].as_u64()
        ),
        "{report}"
    );
    Ok(())
}

/// Two task types of 300 decisions over 3 arms logged uniformly (arm
/// `i % 3`): on `a` arm 0 earns 1 and the others 0, on `b` the reverse.
/// `fixed:0` is worth 1 on `a` (IPW = 3·100/300, the logged mean 1/3) and
/// 0 on `b` (the logged mean 2/3): better on one, worse on the other. The
/// overall figure weighs the two by their 300 rounds each: 0.5 against
/// the logged 0.5.
#[test]
fn evaluate_judges_each_task_type_apart_and_labels_the_overall_figure() -> TestResult {
    use tuneloop_counterfactual::{DecisionLog, JsonlLog};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    let arms = three_arms()?;
    let log = JsonlLog::open(&path, u64::MAX, 0)?;
    for i in 0..600u128 {
        let (task, a) = (if i % 2 == 0 { "a" } else { "b" }, ((i / 2) % 3) as usize);
        let good = (a == 0) == (task == "a");
        let mut r = uniform_record(&arms, i + 1, a, if good { 1.0 } else { 0.0 }, None)?;
        r.task_type = task.into();
        log.append(&r)?;
    }
    let p = path.display().to_string();
    let run = |extra: &[&str]| evaluate_fixed_0(&p, extra);
    let v = run(&[])?;
    let (a, b) = (&v["task_types"]["a"], &v["task_types"]["b"]);
    assert_eq!(
        (a["rounds"].as_u64(), b["rounds"].as_u64()),
        (Some(300), Some(300))
    );
    assert!(close(&a["candidate"]["ipw"]["estimate"], 1.0), "{a}");
    assert!(close(&a["baseline"]["estimate"], 1.0 / 3.0), "{a}");
    assert_eq!(a["verdict"], "better");
    assert!(close(&b["candidate"]["ipw"]["estimate"], 0.0), "{b}");
    assert!(close(&b["baseline"]["estimate"], 2.0 / 3.0), "{b}");
    assert_eq!(b["verdict"], "not proven better");
    assert!(close(&v["candidate"]["ipw"]["estimate"], 0.5), "{v}");
    assert!(close(&v["baseline"]["estimate"], 0.5), "{v}");
    assert_eq!(v["rounds"].as_u64(), Some(600));
    assert!(
        v["scope"]
            .as_str()
            .is_some_and(|s| s.starts_with("overall: 2 task types")),
        "{}",
        v["scope"]
    );

    let only_b = run(&["--task-type", "b"])?;
    assert_eq!(only_b["scope"], "task type `b`");
    assert_eq!(only_b["candidate"], b["candidate"]);
    assert_eq!(only_b["verdict"], "not proven better");
    let out = tuneloop(&[
        "evaluate",
        "--log",
        &p,
        "--policy",
        "fixed:0",
        "--task-type",
        "c",
    ])?;
    assert_bad_input(&out, &["--task-type", "`c`", "a, b"]);
    Ok(())
}

/// The file `Optimizer::save_snapshot` writes evaluates as the policy it
/// holds for each task type: the same figures as its learner extracted.
#[test]
fn an_optimizer_snapshot_evaluates_as_the_learner_it_holds_per_task_type() -> TestResult {
    use std::sync::Arc;
    use tuneloop::core::{ArmSet, TaskFeatures, TaskOutcome};
    use tuneloop::counterfactual::JsonlLog;
    use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let o = Optimizer::builder()
        .task_type("arithmetic", TaskTypeConfig::new(arms.clone()))
        .task_type("capitals", TaskTypeConfig::new(arms))
        .decision_log(Arc::new(JsonlLog::open(&log, u64::MAX, 0)?))
        .seed(11)
        .build()?;
    for i in 0..400u32 {
        let task = if i % 2 == 0 { "arithmetic" } else { "capitals" };
        let d = o.recommend(task, &TaskFeatures::default(), &RecommendOptions::default())?;
        let best = if task == "arithmetic" { 0 } else { 2 };
        let q = if d.recommendation().arm == best {
            0.9
        } else {
            0.3
        };
        d.record(&TaskOutcome::success(q, 100.0))?;
    }
    let snapshot = dir.path().join("snapshot.json");
    o.save_snapshot(&snapshot)?;
    drop(o);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&snapshot)?)?;
    let (l, s) = (log.display().to_string(), snapshot.display().to_string());
    let whole = stdout_json(&tuneloop(&[
        "evaluate",
        "--log",
        &l,
        "--policy",
        &format!("@{s}"),
        "--bootstrap",
        "200",
    ])?)?;
    for task in ["arithmetic", "capitals"] {
        let learner = dir.path().join(format!("{task}.json"));
        std::fs::write(&learner, saved["task_types"][task]["learner"].to_string())?;
        let alone = stdout_json(&tuneloop(&[
            "evaluate",
            "--log",
            &l,
            "--policy",
            &format!("@{}", learner.display()),
            "--task-type",
            task,
            "--bootstrap",
            "200",
        ])?)?;
        assert_eq!(
            whole["task_types"][task]["candidate"], alone["candidate"],
            "{task}"
        );
        assert_eq!(whole["task_types"][task]["rounds"].as_u64(), Some(200));
    }
    Ok(())
}

/// 1,000 decisions: 20 of arm 0 logged with propensity 0.01 (it was in
/// truth chosen 2% of the time), earning 1, the rest arm 1 (propensity
/// 0.99), earning 0. `fixed:0`'s IPW is 100·20/1000 = 2, outside the
/// logged rewards' [0, 1]; the weights' effective sample size is
/// (Σw)²/Σw² = 2000²/(20·100²) = 20 rounds, 2% of them.
#[test]
fn evaluate_names_an_estimate_outside_the_reward_range_and_little_support() -> TestResult {
    use tuneloop_counterfactual::{DecisionLog, JsonlLog};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    let arms = three_arms()?;
    let log = JsonlLog::open(&path, u64::MAX, 0)?;
    for i in 0..1000u128 {
        let a = usize::from(i % 50 != 0);
        let mut r = uniform_record(&arms, i + 1, a, if a == 0 { 1.0 } else { 0.0 }, None)?;
        r.eligible = vec![0, 1];
        r.eligible_ids.truncate(2);
        r.propensity = if a == 0 { 0.01 } else { 0.99 };
        log.append(&r)?;
    }
    let p = path.display().to_string();
    let out = tuneloop(&[
        "evaluate",
        "--log",
        &p,
        "--policy",
        "fixed:0",
        "--bootstrap",
        "100",
    ])?;
    let v = stdout_json(&out)?;
    let warnings = v["warnings"].as_array().ok_or("no warnings")?;
    let outside = warnings
        .iter()
        .find(|w| w["warning"] == "estimate_outside_reward_range" && w["estimator"] == "ipw")
        .ok_or_else(|| format!("no ipw range warning in {warnings:?}"))?;
    assert!((outside["estimate"].as_f64().ok_or("estimate")? - 2.0).abs() < 1e-12);
    assert_eq!(
        (outside["low"].as_f64(), outside["high"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    let support = warnings
        .iter()
        .find(|w| w["warning"] == "little_support")
        .ok_or_else(|| format!("no support warning in {warnings:?}"))?;
    assert!(
        (support["ess"].as_f64().ok_or("ess")? - 20.0).abs() < 1e-9,
        "{support}"
    );
    assert_eq!(support["rounds"].as_u64(), Some(1000));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("outside the logged rewards' range"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_suite_that_is_not_utf8_is_bad_input() -> TestResult {
    let dir = tempfile::tempdir()?;
    let suite = dir.path().join("suite.json");
    std::fs::write(&suite, b"{\"name\": \"x\xff\xfe\"}")?;
    let out = tuneloop(&["eval", "run", &suite.display().to_string(), "--runs", "1"])?;
    assert_bad_input(&out, &["suite.json", "not UTF-8", "offset 11"]);
    Ok(())
}

/// Values at the ends of f64 standardize (each column is scaled by its
/// largest magnitude first), and a 5 MB cell is cut in the message that
/// names it.
#[test]
fn replay_standardizes_extreme_values_and_cuts_a_huge_cell_in_its_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut text = String::from("x,reward_a,reward_b\n");
    for i in 0..200 {
        // One sign: the sum overflows f64 unless the column is scaled first.
        let (x, a) = if i % 2 == 0 {
            ("1.7e308", 1)
        } else {
            ("1.0e308", 0)
        };
        text.push_str(&format!("{x},{a},{}\n", 1 - a));
    }
    let big = write(dir.path(), "big.csv", &text)?;
    let v = stdout_json(&tuneloop(&["simulate", "--rewards", &big])?)?;
    // The feature tells the arms apart exactly; the oracle earns 1.
    assert_eq!(v["oracle_reward"].as_f64(), Some(1.0), "{v}");
    assert!(
        v["average_reward"].as_f64().is_some_and(f64::is_finite),
        "{v}"
    );

    let cell = format!(
        "x,reward_a,reward_b\n1,0,1\n{},0,1\n",
        "z".repeat(5_000_000)
    );
    let cell = write(dir.path(), "cell.csv", &cell)?;
    let out = tuneloop(&["simulate", "--rewards", &cell])?;
    assert_bad_input(
        &out,
        &["line 3", "column 1 (`x`)", "is not a finite number"],
    );
    assert!(
        out.stderr.len() < 1_000,
        "{} bytes of stderr",
        out.stderr.len()
    );
    Ok(())
}

/// A header line over 1 MiB is refused before it is parsed (a 100 MB
/// header used to take 4 GB before "no data rows").
#[test]
fn a_header_wider_than_a_mebibyte_is_refused_before_it_is_parsed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut header: String = (0..200_000).map(|i| format!("f{i},")).collect();
    header.push_str("reward_a,reward_b\n");
    assert!(header.len() > 1 << 20);
    let wide = write(dir.path(), "wide.csv", &header)?;
    for flag in ["--rewards", "--supervised"] {
        let out = tuneloop(&["simulate", flag, &wide])?;
        assert_bad_input(&out, &["wide.csv", "header line is longer than 1 MiB"]);
    }
    Ok(())
}

/// A case's prompt over 256 KiB is refused when the suite is read (a
/// 100 MB prompt used to run, at 1.2 GB).
#[test]
fn a_suite_with_a_prompt_larger_than_any_context_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let suite = serde_json::json!({
        "name": "big",
        "cases": [{"id": "one", "task_type": "qa", "prompt": "a".repeat(300 << 10),
                   "scorer": {"kind": "exact", "expected": "a"}}]
    });
    let path = write(dir.path(), "big.json", &suite.to_string())?;
    let out = tuneloop(&["eval", "run", &path, "--runs", "1"])?;
    assert_bad_input(
        &out,
        &[
            "big.json",
            "cases[0]",
            "prompt: 307200 bytes, over the 256 KiB",
        ],
    );
    Ok(())
}

/// `evaluate` reads at most `--max-decisions` (a small gzip file of valid
/// records could make them outgrow memory); `ope` at most `--max-values`.
#[test]
fn evaluate_and_ope_stop_at_their_limits_and_name_the_flag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    write_log(&log, 20)?;
    let out = tuneloop(&[
        "evaluate",
        "--log",
        &log.display().to_string(),
        "--policy",
        "uniform",
        "--max-decisions",
        "10",
    ])?;
    assert_bad_input(&out, &["more than 10 decisions", "--max-decisions"]);
    let rounds: String = (0..10).map(|_| format!("{GOOD}\n")).collect();
    let input = write(dir.path(), "rounds.jsonl", &rounds)?;
    // 10 rounds of 2 actions count 10 × (2 + 8) = 100 values.
    let out = tuneloop(&["ope", "--input", &input, "--max-values", "99"])?;
    assert_bad_input(&out, &["more than 99 values", "--max-values"]);
    let out = tuneloop(&[
        "ope",
        "--input",
        &input,
        "--max-values",
        "100",
        "--bootstrap",
        "0",
    ])?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The report's off-policy section names the same warnings as `evaluate`:
/// the last fifth of this log is arm 0, logged with a propensity of 0.01
/// (miscalibrated: it was chosen every time), earning 1; before it, arm 1
/// earning 0. The report's "candidate" (the last fifth's arm frequencies)
/// gets IPW = 200 · (1 / 0.01) / 1000 = 20, outside the rewards' [0, 1].
#[test]
fn the_report_names_an_estimate_outside_the_reward_range() -> TestResult {
    use tuneloop_counterfactual::{DecisionLog, JsonlLog};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    let arms = three_arms()?;
    let log = JsonlLog::open(&path, u64::MAX, 0)?;
    let start = chrono::Utc::now();
    for i in 0..1000u128 {
        let late = i >= 800;
        let a = usize::from(!late);
        let mut r = uniform_record(&arms, i + 1, a, if late { 1.0 } else { 0.0 }, None)?;
        r.eligible = vec![0, 1];
        r.eligible_ids.truncate(2);
        r.propensity = if late { 0.01 } else { 0.99 };
        r.timestamp = start + chrono::Duration::seconds(i as i64);
        log.append(&r)?;
    }
    let html = dir.path().join("r.html").display().to_string();
    let v = stdout_json(&tuneloop(&[
        "report",
        "--log",
        &path.display().to_string(),
        "--out",
        &html,
    ])?)?;
    let warnings = v["ope_warnings"].as_array().ok_or("no ope_warnings")?;
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.starts_with("candidate: ipw estimate 20.0000 is outside"))),
        "{warnings:?}"
    );
    assert!(std::fs::read_to_string(&html)?.contains("<b>Warning</b>: candidate: ipw estimate"));
    Ok(())
}
