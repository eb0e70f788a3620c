//! `tuneloop ope`: estimator-level off-policy evaluation of a JSON Lines file.

use std::path::Path;

use serde_json::{Value, json};
use tuneloop_counterfactual::{EstimatorKind, EstimatorSettings, estimate, read_jsonl_limited};

use crate::error::{CliError, CliResult};

/// Runs the estimators named in `estimators` (all that the input allows
/// when `None`) and returns the output object of
/// `docs/offline-evaluation.md`: `{"rounds", "estimators": {name: {"estimate",
/// "ci_low", "ci_high", "ess", "max_weight"}}}`.
pub(crate) fn run(
    input: &Path,
    estimators: Option<&str>,
    max_values: usize,
    settings: EstimatorSettings,
) -> CliResult<Value> {
    settings.check()?;
    let data = read_jsonl_limited(input, max_values)?;
    let kinds: Vec<EstimatorKind> = match estimators {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                EstimatorKind::from_name(name).ok_or_else(|| {
                    CliError::bad(format!(
                        "--estimators: unknown estimator `{name}`; known: ipw,snipw,dm,dr,sndr,switch-dr,dros"
                    ))
                })
            })
            .collect::<CliResult<_>>()?,
        None => EstimatorKind::ALL
            .into_iter()
            .filter(|k| data.has_reward_hat() || !k.needs_reward_model())
            .collect(),
    };
    if kinds.is_empty() {
        return Err(CliError::bad("--estimators: no estimator named"));
    }
    eprintln!(
        "tuneloop ope: {} rounds, {} actions, {} estimators, {} bootstrap resamples",
        data.len(),
        data.num_actions(),
        kinds.len(),
        settings.bootstrap
    );
    let out = estimate(&data, &kinds, &settings)?;
    let mut map = serde_json::Map::new();
    for (k, e) in out {
        map.insert(
            k.name().to_owned(),
            json!({
                "estimate": e.estimate,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "normal_ci_low": e.normal_low,
                "normal_ci_high": e.normal_high,
                "ess": e.ess,
                "max_weight": e.max_weight,
                "unsupported_rounds": e.unsupported_rounds,
            }),
        );
    }
    Ok(json!({
        "rounds": data.len(),
        "actions": data.num_actions(),
        "alpha": settings.alpha,
        "bootstrap": settings.bootstrap,
        "seed": settings.seed,
        "estimators": map,
    }))
}
