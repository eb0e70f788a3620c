//! tuneloop on a real model: learns temperature, max_tokens and the prompt
//! variant of short, automatically scored tasks on an OpenAI-compatible
//! server, then checks what it learned three ways.
//!
//! ```text
//! scripts/local-llm start          # llama.cpp's server with SmolLM2-135M
//! cargo run --release --example real_llm --features http -- --base-url "$(scripts/local-llm url)"
//! scripts/local-llm stop
//! ```
//!
//! Options: `--model NAME` (default smollm2), `--calls N` online calls
//! (default 450, about 6 minutes on SmolLM2 with one thread), `--holdout K`
//! tasks per arm and task type in the ground-truth pass (default 8),
//! `--fresh M` tasks per task type in the on-policy check (default 25),
//! `--log PATH` (default a file in the temporary directory), `--seed S`,
//! `--rewards-out FILE` (the held-out pass as a replay CSV for `tuneloop
//! simulate --rewards`).
//!
//! Three task types, each scored automatically: `capital` (the answer
//! contains the capital), `arithmetic` (the last number in the answer is
//! the sum) and `repeat` (the whole answer, lowercased and stripped of
//! punctuation, is the word asked for: normalized exact). Arms: temperature {0, 0.8, 1.2} ×
//! max_tokens {8, 32, 256} × prompt {plain, terse system prompt}; the
//! incumbent is a common default (0.8, 256, plain).
//!
//! 1. Online: the optimizer chooses each call's arm, the call goes through
//!    the `Router` (streamed, so the outcome has the time to the first
//!    token), the outcome goes back; every decision is logged.
//! 2. Ground truth: every arm on held-out tasks.
//! 3. Off-policy: the learned choice per task type against the incumbent,
//!    doubly robust on the online log.
//! 4. On-policy: the learned choice and the incumbent on the same fresh
//!    tasks (same seed per task), paired.
//!
//! Prints one JSON document.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tuneloop::bandit::Fixed;
use tuneloop::core::{
    ArmSet, DefaultFeaturizer, ErrorClass, Featurizer, ParameterSet, RewardFunction, TaskFeatures,
    TaskOutcome,
};
use tuneloop::counterfactual::{EstimatorSettings, JsonlLog, OfflineEvaluator, read_log};
use tuneloop::providers::{
    GenerationRequest, Message, OpenAiCompatible, OpenAiConfig, Provider, Router, RouterConfig,
    Tier,
};
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

const TERSE: &str = "Answer with the answer only: one word or one number, no explanation.";

const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Germany", "Berlin"),
    ("Spain", "Madrid"),
    ("Canada", "Ottawa"),
    ("Egypt", "Cairo"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
    ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Cuba", "Havana"),
    ("Thailand", "Bangkok"),
    ("the United Kingdom", "London"),
    ("Argentina", "Buenos Aires"),
    ("Australia", "Canberra"),
    ("Turkey", "Ankara"),
    ("Belgium", "Brussels"),
    ("the Netherlands", "Amsterdam"),
    ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"),
    ("Hungary", "Budapest"),
    ("South Korea", "Seoul"),
];

const WORDS: &[&str] = &[
    "banana", "river", "window", "garden", "pencil", "rocket", "castle", "guitar", "island",
    "ladder", "mirror", "forest", "candle", "bridge", "button", "carpet", "dragon", "engine",
    "feather", "hammer", "jacket", "kitten", "lemon", "magnet", "needle", "orange", "pillow",
    "rabbit", "saddle", "tunnel",
];

const TASK_TYPES: [&str; 3] = ["capital", "arithmetic", "repeat"];

/// One checkable question.
#[derive(Debug, Clone)]
struct Task {
    kind: &'static str,
    question: String,
    answer: String,
}

/// A small deterministic generator (SplitMix64): the tasks and seeds of a
/// run depend on `--seed` alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn task(kind: &'static str, rng: &mut Rng) -> Task {
    match kind {
        "capital" => {
            let (country, city) = CAPITALS[rng.below(CAPITALS.len())];
            Task {
                kind,
                question: format!("What is the capital of {country}?"),
                answer: city.to_owned(),
            }
        }
        "arithmetic" => {
            let (a, b) = (1 + rng.below(20), 1 + rng.below(20));
            Task {
                kind,
                question: format!("What is {a} + {b}?"),
                answer: (a + b).to_string(),
            }
        }
        _ => {
            let word = WORDS[rng.below(WORDS.len())];
            Task {
                kind,
                question: format!("Repeat this word exactly: {word}"),
                answer: word.to_owned(),
            }
        }
    }
}

fn normalized(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// 1 for a right answer, 0 otherwise.
fn score(task: &Task, text: &str) -> f64 {
    let right = match task.kind {
        "capital" => normalized(text).contains(&normalized(&task.answer)),
        "arithmetic" => text
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|s| !s.is_empty())
            .is_some_and(|n| n == task.answer),
        _ => normalized(text) == task.answer,
    };
    if right { 1.0 } else { 0.0 }
}

fn messages(task: &Task, params: &ParameterSet) -> Vec<Message> {
    match params.prompt_variant() {
        Some("terse") => vec![Message::system(TERSE), Message::user(&task.question)],
        _ => vec![Message::user(&task.question)],
    }
}

/// One call: the outcome (quality = the score) and whether it was right.
async fn call(router: &Router, task: &Task, params: &ParameterSet, seed: u64) -> TaskOutcome {
    let mut request = GenerationRequest::new("real-llm", messages(task, params), params)
        .with_task_type(task.kind);
    request.seed = Some(seed);
    match router.generate(&request).await {
        Ok(routed) => {
            let quality = score(task, &routed.response.text);
            routed.response.outcome(quality)
        }
        Err(e) => {
            eprintln!("call failed: {e}");
            TaskOutcome::failure(ErrorClass::Transient, 0.0)
        }
    }
}

#[derive(Debug)]
struct Args {
    base_url: String,
    model: String,
    calls: usize,
    holdout: usize,
    fresh: usize,
    log: PathBuf,
    seed: u64,
    rewards_out: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        base_url: std::env::var("TUNELOOP_LLM_URL").unwrap_or_default(),
        model: "smollm2".into(),
        calls: 450,
        holdout: 8,
        fresh: 25,
        log: std::env::temp_dir().join("tuneloop-real-llm.jsonl"),
        seed: 1,
        rewards_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--base-url" => a.base_url = value()?,
            "--model" => a.model = value()?,
            "--calls" => a.calls = number(value()?)?,
            "--holdout" => a.holdout = number(value()?)?,
            "--fresh" => a.fresh = number(value()?)?,
            "--log" => a.log = value()?.into(),
            "--seed" => a.seed = number(value()?)? as u64,
            "--rewards-out" => a.rewards_out = Some(value()?.into()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.base_url.is_empty() {
        return Err(
            "needs --base-url URL (or TUNELOOP_LLM_URL): start a server with scripts/local-llm start"
                .into(),
        );
    }
    if a.fresh < 2 || a.calls == 0 {
        return Err("--calls must be > 0 and --fresh at least 2".into());
    }
    Ok(a)
}

/// Mean and a normal 95% interval of `v`.
fn mean_ci(v: &[f64]) -> Value {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let half = 1.96 * (var / n).sqrt();
    json!({ "mean": mean, "ci95": [mean - half, mean + half], "n": v.len() })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args().map_err(|e| {
        eprintln!("real_llm: {e}");
        e
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

#[allow(clippy::too_many_lines)]
async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let arms = ArmSet::grid()
        .models([args.model.as_str()])
        .temperatures([0.0, 0.8, 1.2])
        .max_tokens([8, 32, 256])
        .prompt_variants([None, Some("terse")])
        .build()?;
    let incumbent = arms
        .iter()
        .position(|a| {
            (a.params.temperature() - 0.8).abs() < 1e-9
                && a.params.max_tokens() == 256
                && a.params.prompt_variant().is_none()
        })
        .ok_or("no incumbent arm")?;
    let label = |i: usize| {
        arms.get(i).map_or_else(String::new, |a| {
            let p = &a.params;
            format!(
                "t={} max={} {}",
                p.temperature(),
                p.max_tokens(),
                p.prompt_variant().unwrap_or("plain")
            )
        })
    };
    let provider = OpenAiCompatible::new(OpenAiConfig {
        id: "local".into(),
        tier: Tier::Local,
        base_url: args.base_url.clone(),
        api_key_env: None,
        stream: true,
        read_timeout: Duration::from_secs(120),
        ..OpenAiConfig::default()
    })?;
    let router = Router::new(
        vec![Arc::new(provider) as Arc<dyn Provider>],
        RouterConfig {
            deadline: Duration::from_secs(120),
            ..RouterConfig::default()
        },
    )?;
    let reward = RewardFunction::default();
    let _ = std::fs::remove_file(&args.log);
    let mut builder = Optimizer::builder()
        .decision_log(Arc::new(JsonlLog::open(&args.log, 64 << 20, 2)?))
        .reward(reward.clone())
        .seed(args.seed);
    for t in TASK_TYPES {
        builder = builder.task_type(
            t,
            TaskTypeConfig::new(arms.clone())
                .incumbent(incumbent)
                .prompt("terse", TERSE),
        );
    }
    let optimizer = builder.build()?;

    // 1. Online.
    let mut rng = Rng(args.seed);
    let mut overhead = Duration::ZERO;
    let mut call_time = Duration::ZERO;
    // Online calls and right answers per (arm, task type).
    let mut online: BTreeMap<(usize, &str), (u32, f64)> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..args.calls {
        let kind = TASK_TYPES[i % TASK_TYPES.len()];
        let t = task(kind, &mut rng);
        let seed = rng.next();
        let before = Instant::now();
        let rec = optimizer.recommend_parameters(
            kind,
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
        let chosen = Instant::now();
        let outcome = call(&router, &t, &rec.params, seed).await;
        let called = Instant::now();
        optimizer.record_outcome(rec.decision_id, &outcome)?;
        overhead += (chosen - before) + called.elapsed();
        call_time += called - chosen;
        let e = online.entry((rec.arm, kind)).or_default();
        e.0 += 1;
        e.1 += outcome.quality;
        if (i + 1) % 100 == 0 {
            eprintln!("online: {} calls in {:.0?}", i + 1, started.elapsed());
        }
    }
    let online_wall = started.elapsed();
    // The learned choice per task type: the learner's most likely arm.
    let mut learned = BTreeMap::new();
    for t in TASK_TYPES {
        learned.insert(t, optimizer.learned(t, &TaskFeatures::default())?.choice);
    }
    let counters = optimizer.counters();
    optimizer.shutdown().await;
    drop(optimizer);

    // 2. Ground truth: every arm on held-out tasks (a stream of their own).
    let mut held = Rng(args.seed ^ 0x005e_ed0f_4e1d);
    // Every task drawn first, then every seed (the order of the draws).
    let tasks: Vec<Task> = TASK_TYPES
        .iter()
        .flat_map(|&k| (0..args.holdout).map(move |_| k))
        .map(|k| task(k, &mut held))
        .collect();
    let holdout: Vec<(Task, u64)> = tasks.into_iter().map(|t| (t, held.next())).collect();
    let mut table = Vec::new();
    // Per held-out task, every arm's reward: the replay file's rows.
    let mut replay: Vec<Vec<f64>> = vec![Vec::new(); holdout.len()];
    for (i, arm) in arms.iter().enumerate() {
        let mut by_type: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        let mut latency = 0.0;
        for (row, (t, seed)) in holdout.iter().enumerate() {
            let o = call(&router, t, &arm.params, *seed).await;
            let r = reward.reward(&o)?;
            replay[row].push(r);
            let e = by_type.entry(t.kind).or_default();
            e.0 += o.quality;
            e.1 += r;
            latency += o.latency_ms;
        }
        let n = holdout.len() as f64;
        let per = args.holdout.max(1) as f64;
        let online_of_arm: BTreeMap<&str, Value> = TASK_TYPES
            .iter()
            .filter_map(|&k| {
                let (n, right) = online.get(&(i, k)).copied()?;
                Some((
                    k,
                    json!({ "calls": n, "accuracy": round3(right / f64::from(n)) }),
                ))
            })
            .collect();
        table.push(json!({
            "arm": i,
            "label": label(i),
            "accuracy": round3(by_type.values().map(|v| v.0).sum::<f64>() / n),
            "accuracy_by_task_type": by_type.iter().map(|(k, v)| (k.to_string(), round3(v.0 / per))).collect::<BTreeMap<_, _>>(),
            "reward": round3(by_type.values().map(|v| v.1).sum::<f64>() / n),
            "mean_latency_ms": latency / n,
            "online_by_task_type": online_of_arm,
        }));
        eprintln!("held-out: arm {i} ({}) done", label(i));
    }
    let best_by_type: BTreeMap<&str, usize> = TASK_TYPES
        .iter()
        .map(|&k| {
            let best = (0..arms.len())
                .max_by(|&a, &b| {
                    let acc =
                        |i: usize| table[i]["accuracy_by_task_type"][k].as_f64().unwrap_or(0.0);
                    acc(a).total_cmp(&acc(b))
                })
                .unwrap_or(0);
            (k, best)
        })
        .collect();
    if let Some(path) = &args.rewards_out {
        let mut w = csv::Writer::from_path(path)?;
        let mut header = vec!["arithmetic".to_owned(), "capital".to_owned()];
        header.extend(arms.iter().map(|a| {
            format!(
                "reward_t{}_max{}_{}",
                a.params.temperature(),
                a.params.max_tokens(),
                a.params.prompt_variant().unwrap_or("plain")
            )
        }));
        w.write_record(&header)?;
        for ((t, _), rewards) in holdout.iter().zip(&replay) {
            let mut row = vec![
                if t.kind == "arithmetic" { "1" } else { "0" }.to_owned(),
                if t.kind == "capital" { "1" } else { "0" }.to_owned(),
            ];
            row.extend(rewards.iter().map(|r| format!("{r:.6}")));
            w.write_record(&row)?;
        }
        w.flush()?;
    }

    // 3. Off-policy, per task type, on the online log.
    let records = read_log(&args.log)?.records;
    let dim = DefaultFeaturizer::default().dim();
    let evaluator = OfflineEvaluator {
        settings: EstimatorSettings {
            bootstrap: 2_000,
            seed: 1,
            ..EstimatorSettings::default()
        },
        ..OfflineEvaluator::default()
    };
    // 4. On-policy: the learned choice and the incumbent on the same fresh
    // tasks with the same seeds.
    let mut fresh = Rng(args.seed ^ 0x00f4_e511);
    let mut per_type = BTreeMap::new();
    let mut gains = Vec::new();
    let mut learned_acc = Vec::new();
    let mut incumbent_acc = Vec::new();
    for t in TASK_TYPES {
        let of_type: Vec<_> = records
            .iter()
            .filter(|r| &*r.task_type == t)
            .cloned()
            .collect();
        let arm = learned[t];
        let ope = evaluator.compare(
            &of_type,
            &Fixed::new(arm, arms.len(), dim, 0.0)?,
            &Fixed::new(incumbent, arms.len(), dim, 0.0)?,
        )?;
        let mut rewards = Vec::new();
        let mut acc = Vec::new();
        let mut inc_acc = Vec::new();
        let mut gain = Vec::new();
        for _ in 0..args.fresh {
            let q = task(t, &mut fresh);
            let seed = fresh.next();
            let mine = call(&router, &q, &arms.arm(arm)?.params, seed).await;
            let theirs = call(&router, &q, &arms.arm(incumbent)?.params, seed).await;
            rewards.push(reward.reward(&mine)?);
            acc.push(mine.quality);
            inc_acc.push(theirs.quality);
            gain.push(mine.quality - theirs.quality);
        }
        let measured = mean_ci(&rewards);
        let on_policy = measured["mean"].as_f64().unwrap_or(f64::NAN);
        let covered = ope.candidate.ci_low <= on_policy && on_policy <= ope.candidate.ci_high;
        // Both are estimates: their difference against its standard error
        // (each interval's half-width over 1.96).
        let se_ope = (ope.candidate.ci_high - ope.candidate.ci_low) / (2.0 * 1.96);
        let se_on = measured["ci95"][1].as_f64().unwrap_or(f64::NAN) - on_policy;
        let se = (se_ope.powi(2) + (se_on / 1.96).powi(2)).sqrt();
        let z = (ope.candidate.estimate - on_policy) / se;
        per_type.insert(
            t,
            json!({
                "learned_arm": arm,
                "learned": label(arm),
                "best_arm_in_held_out_pass": label(best_by_type[t]),
                "ope_reward": { "estimate": ope.candidate.estimate, "ci95": [ope.candidate.ci_low, ope.candidate.ci_high], "rounds": ope.rounds, "estimator": "dr" },
                "ope_gain_over_incumbent": { "estimate": ope.difference.estimate, "ci95": [ope.difference.ci_low, ope.difference.ci_high] },
                "on_policy_reward": measured,
                "ope_interval_covers_on_policy": covered,
                "ope_minus_on_policy_z": z,
                "on_policy_accuracy": mean_ci(&acc),
                "incumbent_accuracy": mean_ci(&inc_acc),
                "accuracy_gain_over_incumbent": mean_ci(&gain),
            }),
        );
        gains.extend(gain);
        learned_acc.extend(acc);
        incumbent_acc.extend(inc_acc);
    }
    let share = overhead.as_secs_f64() / (overhead + call_time).as_secs_f64();
    let out = json!({
        "base_url": args.base_url,
        "online": {
            "calls": args.calls,
            "wall_s": online_wall.as_secs_f64(),
            "recommendations": counters.recommendations,
            "outcomes": counters.outcomes,
            "log_dropped": counters.log_dropped,
            "tuneloop_share_of_call_time": share,
            "tuneloop_mean_us_per_call": overhead.as_secs_f64() * 1e6 / args.calls as f64,
        },
        "incumbent": label(incumbent),
        "arms": table,
        "task_types": per_type,
        "learned_accuracy": mean_ci(&learned_acc),
        "incumbent_accuracy": mean_ci(&incumbent_acc),
        "accuracy_gain_over_incumbent": mean_ci(&gains),
        "log": args.log,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
