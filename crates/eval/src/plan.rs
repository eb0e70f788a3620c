//! Recommendations per task type and the routing plan derived from them.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::ParameterSet;
use tuneloop_providers::{Entry, Scorecard, ScorecardConfig, Tier};
use tuneloop_rollout::Phase;

use crate::error::{Error, Result};
use crate::runner::{BenchmarkRun, CallRecord};
use crate::suite::Suite;
use crate::summary::EVAL_SCHEMA_VERSION;
use crate::verdict::ConfigReport;

/// Quality at or above which a call counts as a verified-correct answer in
/// the scorecard.
pub const VERIFIED_QUALITY: f64 = 0.5;

/// A recommended configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The provider.
    pub provider: String,
    /// Its tier.
    pub tier: Tier,
    /// The parameters (their model is the model to use).
    pub parameters: ParameterSet,
    /// Mean quality.
    pub quality: f64,
    /// Its interval.
    pub ci: (f64, f64),
    /// Median latency (ms).
    pub latency_p50_ms: f64,
    /// The furthest rollout phase it qualifies for.
    pub max_phase: Option<Phase>,
}

/// What to use for one task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The task type.
    pub task_type: String,
    /// The best configuration that passed every gate (highest lower
    /// interval bound; ties by mean, then latency); `None` if none passed.
    pub choice: Option<Choice>,
    /// The best configuration on another provider (another tier first)
    /// that passed every gate but, possibly, the accuracy gate.
    pub fallback: Option<Choice>,
    /// The chosen provider's first call was much slower than its median:
    /// send it a warm-up request before traffic.
    pub warm_up: bool,
    /// Why, in words.
    pub reasons: Vec<String>,
}

/// A routing configuration: per task type, which provider, model and
/// parameters; which providers to disable; and a scorecard seeded with the
/// benchmark's calls. [`RoutingPlan::write`] writes `routing.json` and
/// `scorecard.json` (which `Scorecard::open` loads for the `Router` and
/// the `Optimizer`); the CLI also writes the optimizer's
/// `runtime-config.json` from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingPlan {
    /// Format version.
    pub schema_version: u32,
    /// The suite.
    pub suite: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Per task type.
    pub recommendations: BTreeMap<String, Recommendation>,
    /// Providers in the order to try them: online before local, then by
    /// how many task types chose them.
    pub provider_order: Vec<String>,
    /// Providers no task type chose or falls back to.
    pub disabled_providers: Vec<String>,
    /// The model each enabled provider should serve (its most chosen).
    pub provider_models: BTreeMap<String, String>,
    /// The parameters chosen for the most task types.
    pub default_parameters: Option<ParameterSet>,
    /// Mean quality of the choices.
    pub score: Option<f64>,
    /// Scorecard entries (`provider/model/task_type`) of every call.
    pub scorecard: BTreeMap<String, Entry>,
}

impl RoutingPlan {
    /// `providers` as the plan wants them for a `Router`: disabled ones
    /// left out, the rest in [`provider_order`](Self::provider_order)
    /// (providers the plan does not know keep their order, after those it
    /// does). Pass the result to `Router::new`.
    pub fn order_providers(
        &self,
        providers: Vec<std::sync::Arc<dyn tuneloop_providers::Provider>>,
    ) -> Vec<std::sync::Arc<dyn tuneloop_providers::Provider>> {
        let mut kept: Vec<_> = providers
            .into_iter()
            .filter(|p| !self.disabled_providers.iter().any(|d| d == p.id()))
            .collect();
        kept.sort_by_key(|p| {
            self.provider_order
                .iter()
                .position(|o| o == p.id())
                .unwrap_or(usize::MAX)
        });
        kept
    }

    /// Writes `routing.json` and `scorecard.json` into `dir` (created if
    /// missing), atomically.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, json) in [
            ("routing.json", serde_json::to_vec_pretty(self)),
            ("scorecard.json", serde_json::to_vec_pretty(&self.scorecard)),
        ] {
            let path = dir.join(name);
            let json = json.map_err(|e| Error::io(&path, e.into()))?;
            tuneloop_core::fs::write_atomic(&path, &json).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}

fn choice(r: &ConfigReport, runs: &[BenchmarkRun]) -> Option<Choice> {
    let parameters = runs
        .iter()
        .find_map(|run| run.parameters.get(&r.summary.key.arm))?
        .clone();
    Some(Choice {
        provider: r.summary.key.provider.clone(),
        tier: r.summary.tier,
        parameters,
        quality: r.summary.quality.mean,
        ci: r.summary.ci,
        latency_p50_ms: r.summary.latency_p50_ms,
        max_phase: r.gates.max_phase,
    })
}

fn rank(a: &&ConfigReport, b: &&ConfigReport) -> std::cmp::Ordering {
    let (a, b) = (&a.summary, &b.summary);
    b.ci.0
        .total_cmp(&a.ci.0)
        .then(b.quality.mean.total_cmp(&a.quality.mean))
        .then(a.latency_p50_ms.total_cmp(&b.latency_p50_ms))
        .then(a.key.cmp(&b.key))
}

pub(crate) fn recommend(
    task_type: &str,
    configs: &[ConfigReport],
    runs: &[BenchmarkRun],
    warm_up: &BTreeMap<String, bool>,
) -> Recommendation {
    let mut of_type: Vec<&ConfigReport> = configs
        .iter()
        .filter(|c| c.summary.key.task_type == task_type)
        .collect();
    of_type.sort_by(rank);
    let mut reasons = Vec::new();
    let chosen = of_type
        .iter()
        .find(|c| c.gates.passed)
        .and_then(|b| choice(b, runs));
    if let Some(c) = &chosen {
        reasons.push(format!(
            "{} {} at quality {:.3} [{:.3}, {:.3}] passed every gate ({} configurations compared)",
            c.provider,
            c.parameters.model(),
            c.quality,
            c.ci.0,
            c.ci.1,
            of_type.len()
        ));
    } else {
        reasons.push(format!(
            "no configuration of {} passed every gate",
            of_type.len()
        ));
        for c in of_type.iter().take(3) {
            let g = &c.gates;
            let failed: Vec<&str> = [
                ("restraint", &g.restraint),
                ("variance", &g.variance),
                ("regression", &g.regression),
                ("accuracy", &g.accuracy),
            ]
            .iter()
            .filter(|(_, check)| !check.passed)
            .map(|(n, _)| *n)
            .collect();
            reasons.push(format!("{}: failed {}", c.summary.key, failed.join(", ")));
        }
    }
    let fallback_candidates = |other_tier: bool| {
        of_type
            .iter()
            .filter(|c| {
                let g = &c.gates;
                g.restraint.passed
                    && g.variance.passed
                    && g.regression.passed
                    && c.summary.successes > 0
            })
            .filter(|c| match &chosen {
                Some(ch) => {
                    c.summary.key.provider != ch.provider
                        && (!other_tier || c.summary.tier != ch.tier)
                }
                None => false,
            })
            .copied()
            .next()
    };
    let fallback = fallback_candidates(true)
        .or_else(|| fallback_candidates(false))
        .and_then(|c| choice(c, runs));
    if let Some(f) = &fallback {
        reasons.push(format!(
            "fallback {} {} at quality {:.3}",
            f.provider,
            f.parameters.model(),
            f.quality
        ));
    }
    let warm = chosen
        .as_ref()
        .is_some_and(|c| warm_up.get(&c.provider).copied().unwrap_or(false));
    if warm {
        reasons.push("the chosen provider's first call was slow: warm it up".into());
    }
    Recommendation {
        task_type: task_type.to_owned(),
        choice: chosen,
        fallback,
        warm_up: warm,
        reasons,
    }
}

pub(crate) fn plan(
    suite: &Suite,
    recommendations: BTreeMap<String, Recommendation>,
    calls: &[&CallRecord],
    configs: &[ConfigReport],
) -> RoutingPlan {
    let mut chosen_count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut used: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut model_count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut params_count: BTreeMap<String, (usize, &ParameterSet)> = BTreeMap::new();
    let mut tiers: BTreeMap<&str, Tier> = BTreeMap::new();
    for c in configs {
        tiers.insert(&c.summary.key.provider, c.summary.tier);
    }
    let mut score = (0.0, 0usize);
    let recs = recommendations.clone();
    for r in recs.values() {
        if let Some(c) = &r.choice {
            *chosen_count.entry(&c.provider).or_default() += 1;
            used.insert(&c.provider);
            *model_count
                .entry((&c.provider, c.parameters.model()))
                .or_default() += 1;
            params_count
                .entry(c.parameters.arm_id().to_string())
                .or_insert((0, &c.parameters))
                .0 += 1;
            score.0 += c.quality;
            score.1 += 1;
        }
        if let Some(f) = &r.fallback {
            used.insert(&f.provider);
            model_count
                .entry((&f.provider, f.parameters.model()))
                .or_default();
        }
    }
    let mut provider_order: Vec<&str> = used.iter().copied().collect();
    provider_order.sort_by(|a, b| {
        tiers
            .get(a)
            .cmp(&tiers.get(b))
            .then(chosen_count.get(b).cmp(&chosen_count.get(a)))
            .then(a.cmp(b))
    });
    let disabled_providers = tiers
        .keys()
        .filter(|p| !used.contains(*p))
        .map(|p| (*p).to_owned())
        .collect();
    let mut provider_models: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for ((p, m), n) in model_count {
        let e = provider_models
            .entry(p.to_owned())
            .or_insert((n, m.to_owned()));
        if n > e.0 {
            *e = (n, m.to_owned());
        }
    }
    let default_parameters = params_count
        .values()
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| (*p).clone());
    let scorecard = Scorecard::in_memory(ScorecardConfig::default());
    for c in calls {
        scorecard.record(
            &c.provider,
            &c.model,
            &c.task_type,
            c.success,
            std::time::Duration::from_secs_f64(c.latency_ms.max(0.0) / 1000.0),
            0.0,
        );
        if c.success {
            scorecard.verify(
                &c.provider,
                &c.model,
                &c.task_type,
                c.quality >= VERIFIED_QUALITY,
            );
        }
    }
    RoutingPlan {
        schema_version: EVAL_SCHEMA_VERSION,
        suite: suite.name.clone(),
        created_at: Utc::now(),
        recommendations,
        provider_order: provider_order.into_iter().map(str::to_owned).collect(),
        disabled_providers,
        provider_models: provider_models
            .into_iter()
            .map(|(p, (_, m))| (p, m))
            .collect(),
        default_parameters,
        score: (score.1 > 0).then(|| score.0 / score.1 as f64),
        scorecard: scorecard.export(),
    }
}
