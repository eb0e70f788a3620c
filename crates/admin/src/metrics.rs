//! The Prometheus registry of what an optimizer exposes, filled anew for
//! each scrape (prometheus-client).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tuneloop::Optimizer;
use tuneloop_config::RuntimeConfigStore;
use tuneloop_core::Phase;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    registry.register(name, help, g);
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The registry of everything the optimizer exposes, filled now.
pub(crate) fn registry(
    o: &Optimizer,
    runtime: Option<&RuntimeConfigStore>,
) -> tuneloop::Result<Registry> {
    let mut r = Registry::with_prefix("tuneloop");
    let c = o.counters();
    counter(
        &mut r,
        "recommendations",
        "Recommendations made",
        c.recommendations,
    );
    counter(&mut r, "outcomes", "Outcomes recorded", c.outcomes);
    let reward = Counter::<f64, AtomicU64>::default();
    reward.inc_by(c.reward_sum);
    r.register(
        "reward_sum",
        "Sum of the rewards of the outcomes recorded",
        reward,
    );
    counter(
        &mut r,
        "expired",
        "Decisions that expired without an outcome",
        c.expired,
    );
    counter(
        &mut r,
        "abandoned",
        "Decisions given up without an outcome",
        c.abandoned,
    );
    counter(
        &mut r,
        "misapplied",
        "Outcomes of calls not made as their arm says (over its max_tokens): logged, not learned",
        c.misapplied,
    );
    counter(
        &mut r,
        "fallbacks",
        "Decisions that fell back to the incumbent",
        c.fallbacks,
    );
    counter(&mut r, "promotions", "Rollout promotions", c.promotions);
    counter(&mut r, "rollbacks", "Rollout rollbacks", c.rollbacks);
    counter(
        &mut r,
        "log_dropped",
        "Log records dropped on a full queue",
        c.log_dropped,
    );
    counter(
        &mut r,
        "log_failed",
        "Log records the sink failed to write",
        c.log_failed,
    );
    let exclusions = Family::<Labels, Counter>::default();
    for (kind, n) in tuneloop::gates::Reason::KINDS
        .iter()
        .zip(c.gate_exclusions_by_reason)
    {
        exclusions
            .get_or_create(&labels(&[("reason", kind)]))
            .inc_by(n);
    }
    r.register(
        "gate_exclusions",
        "Arms excluded by gates, by reason",
        exclusions,
    );
    let spend_tokens = Family::<Labels, Counter>::default();
    let spend_cost = Family::<Labels, Counter<f64, AtomicU64>>::default();
    for s in o.spend() {
        let l = labels(&[("task_type", &s.task_type), ("model", &s.model)]);
        spend_tokens.get_or_create(&l).inc_by(s.tokens);
        spend_cost.get_or_create(&l).inc_by(s.cost_usd);
    }
    r.register(
        "spend_tokens",
        "Tokens the recorded outcomes spent, by task type and model",
        spend_tokens,
    );
    r.register(
        "spend_cost_usd",
        "US dollars the recorded outcomes spent (their cost, or their tokens priced by the budget), by task type and model",
        spend_cost,
    );
    gauge(
        &mut r,
        "pending_decisions",
        "Decisions awaiting an outcome",
        o.pending() as f64,
    );
    if let Some(u) = o.budget_usage() {
        gauge(
            &mut r,
            "budget_spent_tokens",
            "Tokens spent in the budget's window",
            u.spent_tokens as f64,
        );
        gauge(
            &mut r,
            "budget_spent_cost_usd",
            "Cost spent in the budget's window",
            u.spent_cost_usd,
        );
        if let Some(t) = u.remaining_tokens {
            gauge(
                &mut r,
                "budget_remaining_tokens",
                "Tokens left in the window",
                t as f64,
            );
        }
        if let Some(t) = u.remaining_cost_usd {
            gauge(
                &mut r,
                "budget_remaining_cost_usd",
                "Cost left in the window",
                t,
            );
        }
    }
    if let Some(store) = runtime {
        gauge(
            &mut r,
            "exploration_rate",
            "The runtime configuration's exploration rate",
            store.get().exploration_rate,
        );
    }
    let phase = Family::<Labels, Gauge>::default();
    let held = Family::<Labels, Gauge>::default();
    let observations = Family::<Labels, Gauge>::default();
    let p99 = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let quality = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let errors = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let proof_estimate = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let proof_lower = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let proof_threshold = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let proof_rounds = Family::<Labels, Gauge>::default();
    let proof_passed = Family::<Labels, Gauge>::default();
    let proof_consecutive = Family::<Labels, Gauge>::default();
    for t in o.task_types() {
        let Some(s) = o.rollout_status(t)? else {
            continue;
        };
        for p in [Phase::Shadow, Phase::Canary, Phase::Guarded, Phase::General] {
            let name = p.as_str();
            phase
                .get_or_create(&labels(&[("task_type", t), ("phase", name)]))
                .set(i64::from(s.phase == p));
        }
        held.get_or_create(&labels(&[("task_type", t)]))
            .set(i64::from(s.held));
        for (cohort, summary) in [("baseline", &s.baseline), ("candidate", &s.candidate)] {
            let l = labels(&[("task_type", t), ("cohort", cohort)]);
            observations
                .get_or_create(&l)
                .set(i64::try_from(summary.observations).unwrap_or(i64::MAX));
            if let Some(v) = summary.p99_ms {
                p99.get_or_create(&l).set(v);
            }
            if let Some(v) = summary.quality_mean {
                quality.get_or_create(&l).set(v);
            }
            if let Some(v) = summary.error_rate {
                errors.get_or_create(&l).set(v);
            }
        }
        if let Some(v) = &s.last_verdict {
            let l = labels(&[
                ("task_type", t),
                ("phase", v.phase.as_str()),
                ("kind", v.kind.name()),
            ]);
            proof_estimate.get_or_create(&l).set(v.estimate);
            proof_lower.get_or_create(&l).set(v.lower_bound);
            proof_threshold.get_or_create(&l).set(v.threshold);
            proof_rounds
                .get_or_create(&l)
                .set(i64::try_from(v.rounds).unwrap_or(i64::MAX));
            proof_passed.get_or_create(&l).set(i64::from(v.passed));
            proof_consecutive
                .get_or_create(&l)
                .set(i64::from(v.consecutive));
        }
    }
    r.register("rollout_phase", "1 for a rollout's current phase", phase);
    r.register("rollout_held", "1 while a rollout is held", held);
    r.register(
        "slo_observations",
        "Observations of the SLO monitor, by cohort",
        observations,
    );
    r.register(
        "slo_latency_p99_ms",
        "99th percentile latency, by cohort",
        p99,
    );
    r.register("slo_quality_mean", "Mean quality, by cohort", quality);
    r.register("slo_error_rate", "Share of failed calls, by cohort", errors);
    r.register(
        "proof_estimate",
        "The latest verdict's estimated reward gain of the candidate",
        proof_estimate,
    );
    r.register(
        "proof_lower_bound",
        "The latest verdict's one-sided lower bound of the gain",
        proof_lower,
    );
    r.register(
        "proof_threshold",
        "The bound the latest verdict had to reach",
        proof_threshold,
    );
    r.register(
        "proof_rounds",
        "Rounds behind the latest verdict",
        proof_rounds,
    );
    r.register(
        "proof_passed",
        "1 when the latest verdict passed",
        proof_passed,
    );
    r.register(
        "proof_consecutive",
        "Passing shadow windows in a row",
        proof_consecutive,
    );
    Ok(r)
}
