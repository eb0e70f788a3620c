//! What the report shows, computed from the rows: reward over time by
//! cohort, the phase timeline, arms' quality against cost, off-policy
//! estimates for the candidate against the baseline, drift (the attribution is in `attribution.rs`).

use serde::Serialize;
use tuneloop_counterfactual::{EstimatorKind, EstimatorSettings, OpeData, OpeRound};
use tuneloop_eval::stats::Moments;

use tuneloop_core::{Cohort, Phase};

use crate::Result;
use crate::load::{Data, Row};

pub(crate) use crate::attribution::{Effect, attribution};

/// A mean with a normal 95% interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Mean {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

/// The mean of `xs` with a normal 95% interval (NaN when empty).
fn mean_ci(xs: impl IntoIterator<Item = f64>) -> Mean {
    let m = Moments::of(xs);
    if m.n == 0 {
        return Mean {
            n: 0,
            mean: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
        };
    }
    let half = 1.96 * (m.variance / m.n as f64).sqrt();
    Mean {
        n: m.n,
        mean: m.mean,
        lo: m.mean - half,
        hi: m.mean + half,
    }
}

/// The time span of the log, in seconds since the epoch.
pub(crate) fn span(data: &Data) -> (f64, f64) {
    let t0 = data.rows.first().map_or(0.0, |r| r.t);
    let t1 = data.rows.last().map_or(1.0, |r| r.t);
    (t0, if t1 > t0 { t1 } else { t0 + 1.0 })
}

/// Reward over time for one cohort: `(bin middle in hours from the start,
/// mean with interval)`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    pub(crate) cohort: &'static str,
    pub(crate) points: Vec<(f64, Mean)>,
}

pub(crate) fn reward_over_time(data: &Data, bins: usize) -> Vec<Series> {
    let (t0, t1) = span(data);
    let width = (t1 - t0) / bins as f64;
    let cohorts = [None, Some(Cohort::Baseline), Some(Cohort::Candidate)];
    let mut rewards = vec![vec![Vec::new(); bins]; cohorts.len()];
    for r in data.rows.iter().filter(|r| !r.reward.is_nan()) {
        let b = (((r.t - t0) / width) as usize).min(bins - 1);
        let c = cohorts.iter().position(|c| *c == r.cohort).unwrap_or(0);
        rewards[c][b].push(f64::from(r.reward));
    }
    let mut out = Vec::new();
    for (c, bins_c) in cohorts.into_iter().zip(rewards) {
        let points: Vec<(f64, Mean)> = bins_c
            .into_iter()
            .enumerate()
            .filter(|(_, xs)| xs.len() >= 5)
            .map(|(b, xs)| ((b as f64 + 0.5) * width / 3600.0, mean_ci(xs)))
            .collect();
        if !points.is_empty() {
            out.push(Series {
                cohort: c.map_or("all", Cohort::as_str),
                points,
            });
        }
    }
    out
}

/// A phase segment or event on one task type's timeline (hours).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Timeline {
    pub(crate) task: String,
    /// `(from, to, phase)`.
    pub(crate) segments: Vec<(f64, f64, &'static str)>,
    /// `(at, from, to, is_rollback)`.
    pub(crate) events: Vec<(f64, &'static str, &'static str, bool)>,
}

pub(crate) fn timelines(data: &Data) -> Vec<Timeline> {
    let (t0, t1) = span(data);
    let h = |t: f64| (t - t0) / 3600.0;
    let mut out = Vec::new();
    for (ti, task) in data.tasks.iter().enumerate() {
        let mut segments = Vec::new();
        let mut events = Vec::new();
        let mut cur: Option<(f64, Phase)> = None;
        for (r, phase) in data
            .rows
            .iter()
            .filter(|r| r.task as usize == ti)
            .filter_map(|r| r.phase.map(|p| (r, p)))
        {
            match cur {
                None => cur = Some((r.t, phase)),
                Some((start, p)) if p != phase => {
                    segments.push((h(start), h(r.t), p.as_str()));
                    events.push((h(r.t), p.as_str(), phase.as_str(), phase < p));
                    cur = Some((r.t, phase));
                }
                Some(_) => {}
            }
        }
        if let Some((start, p)) = cur {
            segments.push((h(start), h(t1), p.as_str()));
            out.push(Timeline {
                task: task.clone(),
                segments,
                events,
            });
        }
    }
    out
}

/// One arm's quality and cost.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ArmPoint {
    pub(crate) task: String,
    pub(crate) arm: String,
    pub(crate) label: String,
    pub(crate) n: u64,
    pub(crate) quality: f64,
    /// Mean cost per call in USD (or tokens, see [`arms_quality_cost`]).
    pub(crate) cost_usd: f64,
    pub(crate) pareto: bool,
}

/// Arms' mean quality and mean cost per call; when the log records no
/// cost at all, tokens per call stand in for cost (the `bool` says so).
pub(crate) fn arms_quality_cost(data: &Data) -> (Vec<ArmPoint>, bool) {
    let tokens = !data.rows.iter().any(|r| r.has_outcome && r.cost > 0.0);
    let mut acc = vec![(0u64, 0.0f64, 0.0f64); data.arms.len()];
    for r in data.rows.iter().filter(|r| r.has_outcome) {
        let a = &mut acc[r.arm as usize];
        a.0 += 1;
        a.1 += f64::from(r.quality);
        a.2 += f64::from(if tokens { r.tokens } else { r.cost });
    }
    let mut points: Vec<ArmPoint> = data
        .arms
        .iter()
        .zip(&acc)
        .filter(|(_, a)| a.0 > 0)
        .map(|(arm, &(n, q, c))| ArmPoint {
            task: data.tasks[arm.task as usize].clone(),
            arm: arm.id.clone(),
            label: arm.label(),
            n,
            quality: q / n as f64,
            cost_usd: c / n as f64,
            pareto: false,
        })
        .collect();
    // Pareto front within each task type: no other arm is at least as good
    // on both and strictly better on one.
    let flags: Vec<bool> = points
        .iter()
        .map(|p| {
            !points.iter().any(|o| {
                o.task == p.task
                    && o.quality >= p.quality
                    && o.cost_usd <= p.cost_usd
                    && (o.quality > p.quality || o.cost_usd < p.cost_usd)
            })
        })
        .collect();
    for (p, f) in points.iter_mut().zip(flags) {
        p.pareto = f;
    }
    (points, tokens)
}

/// A point estimate and its interval: `(estimate, low, high)`.
pub(crate) type Interval = (f64, f64, f64);

/// Off-policy estimates of the candidate and the baseline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ope {
    /// How the two policies were defined.
    pub(crate) basis: String,
    pub(crate) rounds: usize,
    pub(crate) on_policy: [Option<Mean>; 2],
    /// Per estimator: (name, candidate, baseline) as (estimate, lo, hi).
    pub(crate) estimators: Vec<(&'static str, [Interval; 2])>,
    /// What should make a reader doubt them (`evaluation_warnings`).
    pub(crate) warnings: Vec<String>,
}

/// Largest number of rounds the estimators use (an even sample beyond).
pub(crate) const OPE_MAX_ROUNDS: usize = 50_000;

/// Largest number of rounds × arms the estimators hold per matrix (2²³
/// values, 64 MiB): with many arms, the sample is smaller.
pub(crate) const OPE_MAX_CELLS: usize = 1 << 23;

pub(crate) fn off_policy(data: &Data, seed: u64) -> Result<Option<Ope>> {
    let has = |c| data.rows.iter().any(|r| r.cohort == Some(c));
    let has_cohorts = has(Cohort::Candidate) && has(Cohort::Baseline);
    let (t0, t1) = span(data);
    let in_policy = |r: &Row, which: usize| -> bool {
        if has_cohorts {
            r.cohort == Some([Cohort::Baseline, Cohort::Candidate][which])
        } else if which == 1 {
            r.t >= t1 - 0.2 * (t1 - t0)
        } else {
            r.t <= t0 + 0.2 * (t1 - t0)
        }
    };
    let basis = if has_cohorts {
        "each cohort's arm frequencies per task type (candidate vs baseline cohort)"
    } else {
        "arm frequencies per task type of the last fifth of the log (\"candidate\") vs the first fifth (\"baseline\"): the log has no rollout cohorts"
    };
    let rewarded: Vec<&Row> = data.rows.iter().filter(|r| !r.reward.is_nan()).collect();
    if rewarded.len() < 20 {
        return Ok(None);
    }
    let k = data.arms.len();
    // Empirical policies (context-free, per task type) and the reward model
    // (mean reward of each arm), from every rewarded row.
    let mut freq = [vec![0.0f64; k], vec![0.0f64; k]];
    let mut q = vec![(0.0f64, 0u64); k];
    for r in &rewarded {
        for (w, f) in freq.iter_mut().enumerate() {
            if in_policy(r, w) {
                f[r.arm as usize] += 1.0;
            }
        }
        let e = &mut q[r.arm as usize];
        e.0 += f64::from(r.reward);
        e.1 += 1;
    }
    let mut task_tot = [
        vec![0.0f64; data.tasks.len()],
        vec![0.0f64; data.tasks.len()],
    ];
    for (w, f) in freq.iter().enumerate() {
        for (a, c) in f.iter().enumerate() {
            task_tot[w][data.arms[a].task as usize] += c;
        }
    }
    let overall = rewarded.iter().map(|r| f64::from(r.reward)).sum::<f64>() / rewarded.len() as f64;
    let q_hat: Vec<f64> = q
        .iter()
        .map(|&(s, n)| if n > 0 { s / n as f64 } else { overall })
        .collect();
    // Each round holds two rows of `k` numbers: an even sample keeps them
    // within OPE_MAX_CELLS (a log with thousands of arms took gigabytes).
    let max_rounds = OPE_MAX_ROUNDS.min((OPE_MAX_CELLS / k.max(1)).max(1));
    let stride = rewarded.len().div_ceil(max_rounds);
    let sample: Vec<&Row> = rewarded.iter().step_by(stride).copied().collect();
    let settings = EstimatorSettings {
        bootstrap: 500,
        seed,
        ..EstimatorSettings::default()
    };
    let mut results: Vec<Vec<(EstimatorKind, tuneloop_counterfactual::Estimate)>> = Vec::new();
    let mut warnings = Vec::new();
    for w in [1usize, 0] {
        let rounds = sample.iter().map(|r| {
            let task = data.arms[r.arm as usize].task as usize;
            let tot = task_tot[w][task];
            let mut target = vec![0.0; k];
            if tot > 0.0 {
                for (a, t) in target.iter_mut().enumerate() {
                    if data.arms[a].task as usize == task {
                        *t = freq[w][a] / tot;
                    }
                }
            } else {
                target[r.arm as usize] = 1.0;
            }
            OpeRound {
                action: r.arm as usize,
                reward: f64::from(r.reward),
                propensity: r.propensity,
                target,
                reward_hat: Some(q_hat.clone()),
            }
        });
        let ope = OpeData::new(rounds)?;
        let estimates = tuneloop_counterfactual::estimate(&ope, &EstimatorKind::ALL, &settings)?;
        let whose = if w == 1 { "candidate" } else { "baseline" };
        warnings.extend(
            tuneloop_counterfactual::evaluation_warnings(&ope, &estimates, EstimatorKind::Dr)
                .into_iter()
                .map(|warning| format!("{whose}: {warning}")),
        );
        results.push(estimates);
    }
    let estimators = EstimatorKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let pick = |res: &Vec<(EstimatorKind, tuneloop_counterfactual::Estimate)>| {
                let e = &res[i].1;
                (
                    e.estimate,
                    e.ci_low.unwrap_or(e.normal_low),
                    e.ci_high.unwrap_or(e.normal_high),
                )
            };
            (kind.name(), [pick(&results[0]), pick(&results[1])])
        })
        .collect();
    let on = |w: usize| {
        let m = mean_ci(
            rewarded
                .iter()
                .filter(|r| in_policy(r, w))
                .map(|r| f64::from(r.reward)),
        );
        (m.n > 0).then_some(m)
    };
    Ok(Some(Ope {
        warnings,
        basis: basis.to_owned(),
        rounds: sample.len(),
        on_policy: [on(1), on(0)],
        estimators,
    }))
}

/// Reward distribution by time window, with change tests.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Drift {
    /// Per window: (start hour, end hour, n, mean, p10, p25, p50, p75, p90).
    pub(crate) windows: Vec<(f64, f64, usize, f64, [f64; 5])>,
    /// Kolmogorov–Smirnov statistic, first against last window.
    pub(crate) ks_d: f64,
    /// Its asymptotic p-value.
    pub(crate) ks_p: f64,
    /// One-way ANOVA p-value across windows.
    pub(crate) anova_p: Option<f64>,
    /// Last window's mean minus the first's.
    pub(crate) shift: f64,
}

fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Two-sample Kolmogorov–Smirnov: `(D, asymptotic p)`.
pub(crate) fn ks_two_sample(a: &mut [f64], b: &mut [f64]) -> (f64, f64) {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return (0.0, 1.0);
    }
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let ne = (n * m) as f64 / (n + m) as f64;
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    (d, kolmogorov_q(lambda))
}

pub(crate) fn drift(data: &Data, windows: usize) -> Option<Drift> {
    let (t0, t1) = span(data);
    let width = (t1 - t0) / windows as f64;
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); windows];
    for r in data.rows.iter().filter(|r| !r.reward.is_nan()) {
        let w = (((r.t - t0) / width) as usize).min(windows - 1);
        groups[w].push(f64::from(r.reward));
    }
    if groups.iter().filter(|g| g.len() >= 2).count() < 2 {
        return None;
    }
    let anova = tuneloop_eval::stats::anova_p(&groups);
    let mut out = Vec::new();
    for (w, g) in groups.iter_mut().enumerate() {
        if g.is_empty() {
            continue;
        }
        g.sort_by(f64::total_cmp);
        let q = |p: f64| tuneloop_counterfactual::percentile_sorted(g, p);
        out.push((
            w as f64 * width / 3600.0,
            (w + 1) as f64 * width / 3600.0,
            g.len(),
            g.iter().sum::<f64>() / g.len() as f64,
            [q(0.10), q(0.25), q(0.50), q(0.75), q(0.90)],
        ));
    }
    let first = groups.iter().position(|g| !g.is_empty())?;
    let last = groups.iter().rposition(|g| !g.is_empty())?;
    let mut a = groups[first].clone();
    let mut b = groups[last].clone();
    let shift = b.iter().sum::<f64>() / b.len() as f64 - a.iter().sum::<f64>() / a.len() as f64;
    let (ks_d, ks_p) = ks_two_sample(&mut a, &mut b);
    Some(Drift {
        windows: out,
        ks_d,
        ks_p,
        anova_p: anova,
        shift,
    })
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;

/// Episodes at a glance: how many, their decisions, their lengths and
/// their mean reward (over those with one).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Episodes {
    pub(crate) episodes: usize,
    pub(crate) decisions: u64,
    pub(crate) mean_decisions: f64,
    pub(crate) longest: u32,
    pub(crate) rewarded: usize,
    pub(crate) mean_reward: Option<f64>,
    /// Episodes by their number of decisions, up to 10 (10: ten or more).
    pub(crate) by_length: Vec<(u32, usize)>,
}

pub(crate) fn episodes(data: &Data) -> Option<Episodes> {
    if data.episodes.is_empty() {
        return None;
    }
    let n = data.episodes.len();
    let decisions: u64 = data.episodes.values().map(|e| u64::from(e.0)).sum();
    let rewards: Vec<f64> = data
        .episodes
        .values()
        .filter(|e| !e.1.is_nan())
        .map(|e| f64::from(e.1))
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for e in data.episodes.values() {
        *counts.entry(e.0.min(10)).or_insert(0usize) += 1;
    }
    Some(Episodes {
        episodes: n,
        decisions,
        mean_decisions: decisions as f64 / n as f64,
        longest: data.episodes.values().map(|e| e.0).max().unwrap_or(0),
        rewarded: rewards.len(),
        mean_reward: (!rewards.is_empty())
            .then(|| rewards.iter().sum::<f64>() / rewards.len() as f64),
        by_length: counts.into_iter().collect(),
    })
}
