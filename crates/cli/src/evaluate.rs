//! `tuneloop evaluate`: policy-level evaluation of a candidate on a
//! decision log written by the library.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tuneloop_bandit::{EpsilonGreedyParams, LinUcbParams, PolicyConfig, ThompsonParams};
use tuneloop_core::{Features, Policy, PolicySnapshot};
use tuneloop_counterfactual::{
    DefaultedRewards, EstimatorSettings, Evaluation, LogReader, LoggedDecision, OfflineEvaluator,
    by_task_type,
};

use crate::error::{CliError, CliResult};

/// What `--policy` names.
enum Candidate {
    /// Build this per task type and train it on the first part of the
    /// task type's decisions.
    Fresh(PolicyConfig),
    /// A trained policy, evaluated on every task type's whole log.
    Snapshot(Box<dyn Policy>),
    /// An optimizer's snapshot: per task type, the learner it holds.
    PerTaskType(BTreeMap<String, Box<dyn Policy>>),
}

fn parse_spec(spec: &str) -> CliResult<Candidate> {
    if let Some(path) = spec.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::bad(format!("--policy: cannot read snapshot {path}: {e}")))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::bad(format!("--policy: {path}: not JSON: {e}")))?;
        // The optimizer's snapshot (`Optimizer::save_snapshot`) holds a
        // learner per task type; a policy's holds one learner.
        if value.get("task_types").is_some() {
            let snap: tuneloop::OptimizerSnapshot = serde_json::from_value(value).map_err(|e| {
                CliError::bad(format!("--policy: {path}: not an optimizer snapshot: {e}"))
            })?;
            let mut learners = BTreeMap::new();
            for (task_type, t) in snap.task_types {
                let p = tuneloop_bandit::restore(&t.learner).map_err(|e| {
                    CliError::bad(format!("--policy: {path}: task type `{task_type}`: {e}"))
                })?;
                learners.insert(task_type, p);
            }
            return Ok(Candidate::PerTaskType(learners));
        }
        let snap: PolicySnapshot = serde_json::from_value(value)
            .map_err(|e| CliError::bad(format!("--policy: {path}: not a policy snapshot: {e}")))?;
        let p = tuneloop_bandit::restore(&snap)
            .map_err(|e| CliError::bad(format!("--policy: {path}: {e}")))?;
        return Ok(Candidate::Snapshot(p));
    }
    if spec.trim_start().starts_with('{') {
        let cfg: PolicyConfig = serde_json::from_str(spec)
            .map_err(|e| CliError::bad(format!("--policy: not a policy configuration: {e}")))?;
        return Ok(Candidate::Fresh(cfg));
    }
    let cfg = match spec {
        "linucb" => PolicyConfig::LinUcb(LinUcbParams::default()),
        "thompson" => PolicyConfig::Thompson(ThompsonParams::default()),
        "epsilon-greedy" => PolicyConfig::EpsilonGreedy(EpsilonGreedyParams::default()),
        "uniform" => PolicyConfig::Uniform,
        other => match other.strip_prefix("fixed:").map(str::parse::<usize>) {
            Some(Ok(arm)) => PolicyConfig::Fixed {
                arm,
                exploration_floor: 0.0,
            },
            _ => {
                return Err(CliError::bad(format!(
                    "--policy: `{other}` is not linucb|thompson|epsilon-greedy|uniform|fixed:ARM, a JSON policy configuration or @SNAPSHOT.json"
                )));
            }
        },
    };
    Ok(Candidate::Fresh(cfg))
}

/// Options of `evaluate` besides the log and the policy.
pub(crate) struct Options {
    pub(crate) train_fraction: Option<f64>,
    pub(crate) settings: EstimatorSettings,
    pub(crate) defaulted: DefaultedRewards,
    /// Evaluate this task type alone.
    pub(crate) task_type: Option<String>,
    /// Most decisions read.
    pub(crate) max_decisions: usize,
}

pub(crate) fn run(log: &Path, spec: &str, opts: Options) -> CliResult<Value> {
    let candidate = parse_spec(spec)?;
    let local = crate::export::local_log(log)?;
    // Read as a stream, up to the limit: a small gzip file of valid records
    // cannot make them outgrow memory.
    let mut reader = LogReader::open(&local.path)?;
    let mut records = Vec::new();
    for record in &mut reader {
        if records.len() == opts.max_decisions {
            return Err(CliError::bad(format!(
                "{}: more than {} decisions (--max-decisions): evaluate a part, or raise the limit",
                log.display(),
                opts.max_decisions
            )));
        }
        records.push(record?);
    }
    for w in reader.warnings() {
        eprintln!("tuneloop evaluate: warning: {w}");
    }
    if records.is_empty() {
        return Err(CliError::bad(format!(
            "{}: the log has no decisions",
            log.display()
        )));
    }
    let mut groups = by_task_type(&records);
    if let Some(wanted) = &opts.task_type {
        groups.retain(|(t, _)| t == wanted);
        if groups.is_empty() {
            let all: Vec<&str> = by_task_type(&records).into_iter().map(|(t, _)| t).collect();
            return Err(CliError::bad(format!(
                "--task-type: `{wanted}` has no decision in {} (it has: {})",
                log.display(),
                all.join(", ")
            )));
        }
    }
    // Per task type: its candidate, and the decisions it is judged on
    // (after those a fresh policy trained on).
    let mut candidates: BTreeMap<&str, Box<dyn Policy>> = BTreeMap::new();
    let mut trained: BTreeMap<&str, usize> = BTreeMap::new();
    let mut judged: Vec<&LoggedDecision> = Vec::with_capacity(records.len());
    let (mut fresh, mut shared, mut per_task) = (None, None, BTreeMap::new());
    match candidate {
        Candidate::Fresh(cfg) => fresh = Some(cfg),
        Candidate::Snapshot(p) => shared = Some(p),
        Candidate::PerTaskType(m) => per_task = m,
    }
    for (task_type, group) in &groups {
        let train = match &fresh {
            Some(cfg) => {
                let (p, train) = train_fresh(cfg, group, opts.train_fraction, log)?;
                candidates.insert(task_type, p);
                train
            }
            None => 0,
        };
        trained.insert(task_type, train);
        judged.extend_from_slice(&group[train..]);
    }
    let lookup = |task_type: &str| -> Option<&dyn Policy> {
        shared
            .as_deref()
            .or_else(|| candidates.get(task_type).map(|p| &**p))
            .or_else(|| per_task.get(task_type).map(|p| &**p))
    };
    let evaluator = OfflineEvaluator {
        settings: opts.settings,
        defaulted: opts.defaulted,
        ..OfflineEvaluator::default()
    };
    let by_task = evaluator.evaluate_by_task_type(judged.iter().copied(), &lookup)?;
    let mut task_types = serde_json::Map::new();
    for t in &by_task.task_types {
        for w in &t.evaluation.warnings {
            eprintln!(
                "tuneloop evaluate: warning: task type `{}`: {w}",
                t.task_type
            );
        }
        let mut v = evaluation_json(&t.evaluation, &evaluator)?;
        v["trained_on_rounds"] = json!(trained.get(t.task_type.as_str()).copied().unwrap_or(0));
        task_types.insert(t.task_type.clone(), v);
    }
    // A log with episodes: each one weighed whole as well (an episode may
    // span task types; each decision is valued by its task type's
    // candidate).
    let episodes = if judged.iter().any(|r| r.episode_id.is_some()) && opts.task_type.is_none() {
        let ep = evaluator.evaluate_episodes_by_task_type(judged.iter().copied(), &lookup)?;
        let mut est = serde_json::Map::new();
        for (k, v) in &ep.candidate {
            est.insert(k.name().to_owned(), serde_json::to_value(v)?);
        }
        json!({
            "episodes": ep.episodes,
            "decisions": ep.decisions,
            "skipped_without_reward": ep.skipped_without_reward,
            "skipped_defaulted": ep.skipped_defaulted,
            "skipped_inconsistent": ep.skipped_inconsistent,
            "unsupported_episodes": ep.unsupported_episodes,
            "candidate": est,
            "baseline": ep.baseline,
            "difference": ep.difference,
            "decision_estimator": "snipw",
            "verdict": if ep.candidate_is_better { "better" } else { "not proven better" },
        })
    } else {
        Value::Null
    };
    let policy = shared
        .as_deref()
        .or_else(|| candidates.values().next().map(|p| &**p))
        .or_else(|| per_task.values().next().map(|p| &**p))
        .map_or("none", |p| p.kind());
    let mut out = evaluation_json(&by_task.overall, &evaluator)?;
    out["log"] = json!(local.name);
    out["policy"] = json!(policy);
    out["trained_on_rounds"] = json!(trained.values().sum::<usize>());
    out["scope"] = json!(if by_task.task_types.len() == 1 {
        format!("task type `{}`", by_task.task_types[0].task_type)
    } else {
        format!(
            "overall: {} task types, each valued by its own candidate and reward model, weighted by its rounds",
            by_task.task_types.len()
        )
    });
    out["task_types"] = Value::Object(task_types);
    out["skipped_task_types"] = serde_json::to_value(&by_task.skipped)?;
    out["defaulted_rewards"] = json!(opts.defaulted);
    out["episodes"] = episodes;
    Ok(out)
}

/// A fresh `cfg` for one task type's `group`, trained on its first
/// `fraction` (default 0.5; 0 for fixed and uniform): the policy and how
/// many decisions it trained on (never splitting an episode).
fn train_fresh(
    cfg: &PolicyConfig,
    group: &[&LoggedDecision],
    fraction: Option<f64>,
    log: &Path,
) -> CliResult<(Box<dyn Policy>, usize)> {
    let fraction = fraction.unwrap_or(match cfg {
        PolicyConfig::Uniform | PolicyConfig::Fixed { .. } => 0.0,
        _ => 0.5,
    });
    if !(0.0..1.0).contains(&fraction) {
        return Err(CliError::bad(format!(
            "--train-fraction: {fraction} is not in [0, 1)"
        )));
    }
    let dim = group.first().map_or(0, |r| r.context.len());
    let num_arms = group
        .iter()
        .flat_map(|r| r.eligible.iter())
        .copied()
        .max()
        .unwrap_or(0)
        + 1;
    let mut p = cfg
        .build(num_arms, dim)
        .map_err(|e| CliError::bad(format!("--policy: {e}")))?;
    let mut train = (group.len() as f64 * fraction) as usize;
    while train > 0
        && train < group.len()
        && group[train].episode_id.is_some()
        && group[train].episode_id == group[train - 1].episode_id
    {
        train += 1;
    }
    // The training learns what the optimizer's learner learns: no default
    // reward.
    for r in &group[..train] {
        if let Some(reward) = r.resolution.recorded_reward() {
            let x = Features::new(r.context.clone())?;
            p.update(&x, r.arm, reward).map_err(|e| {
                CliError::bad(format!(
                    "{}: decision {} (task type `{}`): {e}",
                    log.display(),
                    r.decision_id,
                    r.task_type
                ))
            })?;
        }
    }
    Ok((p, train))
}

/// One evaluation as `evaluate` prints it.
fn evaluation_json(e: &Evaluation, evaluator: &OfflineEvaluator) -> CliResult<Value> {
    let mut candidate = serde_json::Map::new();
    for (k, est) in &e.candidate {
        candidate.insert(k.name().to_owned(), serde_json::to_value(est)?);
    }
    let mut warnings = Vec::with_capacity(e.warnings.len());
    for w in &e.warnings {
        let mut v = serde_json::to_value(w)?;
        v["message"] = json!(w.to_string());
        warnings.push(v);
    }
    Ok(json!({
        "warnings": warnings,
        "rounds": e.rounds,
        "skipped_without_reward": e.skipped_without_reward,
        "skipped_defaulted": e.skipped_defaulted,
        "unsupported_rounds": e.unsupported_rounds,
        "candidate": candidate,
        "baseline": e.baseline,
        "difference": e.difference,
        "decision_estimator": evaluator.decision_estimator.name(),
        "verdict": if e.candidate_is_better { "better" } else { "not proven better" },
    }))
}
