//! `tuneloop evaluate`: policy-level evaluation of a candidate on a
//! decision log written by the library.

use std::path::Path;

use serde_json::{Value, json};
use tuneloop_bandit::{EpsilonGreedyParams, LinUcbParams, PolicyConfig, ThompsonParams};
use tuneloop_core::{Features, Policy, PolicySnapshot};
use tuneloop_counterfactual::{DefaultedRewards, EstimatorSettings, OfflineEvaluator, read_log};

use crate::error::{CliError, CliResult};

/// What `--policy` names.
enum Candidate {
    /// Build this and train it on the first part of the log.
    Fresh(PolicyConfig),
    /// A trained policy, evaluated on the whole log.
    Snapshot(Box<dyn Policy>),
}

fn parse_spec(spec: &str) -> CliResult<Candidate> {
    if let Some(path) = spec.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::bad(format!("--policy: cannot read snapshot {path}: {e}")))?;
        let snap: PolicySnapshot = serde_json::from_str(&text)
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
}

pub(crate) fn run(log: &Path, spec: &str, opts: Options) -> CliResult<Value> {
    let candidate = parse_spec(spec)?;
    let local = crate::export::local_log(log)?;
    let contents = read_log(&local.path)?;
    for w in &contents.warnings {
        eprintln!("tuneloop evaluate: warning: {w}");
    }
    let records = contents.records;
    let first = records
        .first()
        .ok_or_else(|| CliError::bad(format!("{}: the log has no decisions", log.display())))?;
    let dim = first.context.len();
    let num_arms = records
        .iter()
        .flat_map(|r| r.eligible.iter())
        .copied()
        .max()
        .unwrap_or(0)
        + 1;
    let (policy, train) = match candidate {
        Candidate::Snapshot(p) => (p, 0),
        Candidate::Fresh(cfg) => {
            let fraction = opts.train_fraction.unwrap_or(match cfg {
                PolicyConfig::Uniform | PolicyConfig::Fixed { .. } => 0.0,
                _ => 0.5,
            });
            if !(0.0..1.0).contains(&fraction) {
                return Err(CliError::bad(format!(
                    "--train-fraction: {fraction} is not in [0, 1)"
                )));
            }
            let mut p = cfg
                .build(num_arms, dim)
                .map_err(|e| CliError::bad(format!("--policy: {e}")))?;
            let mut train = (records.len() as f64 * fraction) as usize;
            // Never split an episode between training and evaluation.
            while train > 0
                && train < records.len()
                && records[train].episode_id.is_some()
                && records[train].episode_id == records[train - 1].episode_id
            {
                train += 1;
            }
            // The training learns what the optimizer's learner learns: no
            // default reward.
            for (i, r) in records[..train].iter().enumerate() {
                if let Some(reward) = r.resolution.recorded_reward() {
                    let x = Features::new(r.context.clone())?;
                    p.update(&x, r.arm, reward).map_err(|e| {
                        CliError::bad(format!(
                            "{}: decision {} (record {}): {e}",
                            log.display(),
                            r.decision_id,
                            i + 1
                        ))
                    })?;
                }
            }
            (p, train)
        }
    };
    let evaluator = OfflineEvaluator {
        settings: opts.settings,
        defaulted: opts.defaulted,
        ..OfflineEvaluator::default()
    };
    let e = evaluator.evaluate(&records[train..], policy.as_ref())?;
    let mut candidate = serde_json::Map::new();
    for (k, est) in &e.candidate {
        candidate.insert(k.name().to_owned(), serde_json::to_value(est)?);
    }
    // A log with episodes: each one weighed whole as well.
    let episodes = if records[train..].iter().any(|r| r.episode_id.is_some()) {
        let ep = evaluator.evaluate_episodes(&records[train..], policy.as_ref())?;
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
    Ok(json!({
        "log": local.name,
        "policy": policy.kind(),
        "trained_on_rounds": train,
        "rounds": e.rounds,
        "skipped_without_reward": e.skipped_without_reward,
        "skipped_defaulted": e.skipped_defaulted,
        "defaulted_rewards": opts.defaulted,
        "unsupported_rounds": e.unsupported_rounds,
        "candidate": candidate,
        "baseline": e.baseline,
        "difference": e.difference,
        "decision_estimator": evaluator.decision_estimator.name(),
        "verdict": if e.candidate_is_better { "better" } else { "not proven better" },
        "episodes": episodes,
    }))
}
