//! What the report shows, computed from the rows: reward over time by
//! cohort, the phase timeline, arms' quality against cost, off-policy
//! estimates for the candidate against the baseline, drift, attribution.

use nalgebra::{DMatrix, DVector};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use tuneloop_counterfactual::{EstimatorKind, EstimatorSettings, OpeData, OpeRound};
use tuneloop_eval::stats::Moments;

use tuneloop_core::{Cohort, Phase};

use crate::Result;
use crate::load::{Data, Row};

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

/// One coefficient of the attribution regression.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Effect {
    pub(crate) name: String,
    pub(crate) estimate: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

/// Least squares of reward on the parameters (continuous ones per
/// standard deviation, categorical ones against their most frequent
/// level) with task-type fixed effects and heteroskedasticity-robust (HC1)
/// 95% intervals.
/// Levels of a categorical parameter (model, prompt variant) that get a
/// column of their own in [`attribution`]; the rest share one.
const MAX_LEVELS: usize = 30;

pub(crate) fn attribution(data: &Data) -> Option<Vec<Effect>> {
    let rows: Vec<&Row> = data.rows.iter().filter(|r| !r.reward.is_nan()).collect();
    let n = rows.len();
    if n < 30 {
        return None;
    }
    type Getter = Box<dyn Fn(&Row) -> f64>;
    let mut names: Vec<String> = Vec::new();
    let mut cols: Vec<Getter> = Vec::new();
    // Continuous parameters, standardized.
    let arms = std::sync::Arc::new(data.arms.clone());
    type Continuous = (&'static str, fn(&tuneloop_core::ParameterSet) -> f64);
    type Categorical = (&'static str, fn(&tuneloop_core::ParameterSet) -> String);
    let conts: [Continuous; 5] = [
        ("temperature (+1 sd)", |p| p.temperature()),
        ("top_p (+1 sd)", |p| p.top_p()),
        ("log2 max_tokens (+1 sd)", |p| {
            f64::from(p.max_tokens()).log2()
        }),
        ("frequency_penalty (+1 sd)", |p| p.frequency_penalty()),
        ("presence_penalty (+1 sd)", |p| p.presence_penalty()),
    ];
    for (name, f) in conts {
        let m = Moments::of(rows.iter().map(|r| f(&arms[r.arm as usize].params)));
        let sd = m.sd();
        if sd > 1e-9 {
            let arms = arms.clone();
            let mean = m.mean;
            names.push(name.to_owned());
            cols.push(Box::new(move |r: &Row| {
                (f(&arms[r.arm as usize].params) - mean) / sd
            }));
        }
    }
    // Categorical: model and prompt variant (reference: the most frequent).
    let cats: [Categorical; 2] = [
        ("model", |p| p.model().to_owned()),
        ("prompt_variant", |p| {
            p.prompt_variant().unwrap_or("(none)").to_owned()
        }),
    ];
    for (name, f) in cats {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &rows {
            *counts.entry(f(&arms[r.arm as usize].params)).or_default() += 1;
        }
        let Some(reference) = counts
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(k, _)| k.clone())
        else {
            continue;
        };
        // The most frequent levels get a column each; the rest share one,
        // so the regression stays small (a log with thousands of models
        // made it a thousands-wide system per row).
        let mut levels: Vec<(&String, usize)> = counts
            .iter()
            .filter(|(l, _)| **l != reference)
            .map(|(l, c)| (l, *c))
            .collect();
        levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kept: Vec<String> = levels
            .iter()
            .take(MAX_LEVELS)
            .map(|(l, _)| (*l).clone())
            .collect();
        for level in &kept {
            let arms = arms.clone();
            let level2 = level.clone();
            names.push(format!("{name} = {level} (vs {reference})"));
            cols.push(Box::new(move |r: &Row| {
                f64::from(u8::from(f(&arms[r.arm as usize].params) == level2))
            }));
        }
        if levels.len() > MAX_LEVELS {
            let arms = arms.clone();
            let (reference, kept) = (reference.clone(), kept.clone());
            names.push(format!(
                "{name} = any of {} less frequent levels (vs {reference})",
                levels.len() - MAX_LEVELS
            ));
            cols.push(Box::new(move |r: &Row| {
                let v = f(&arms[r.arm as usize].params);
                f64::from(u8::from(v != reference && !kept.contains(&v)))
            }));
        }
    }
    let shown = names.len();
    if shown == 0 {
        return Some(Vec::new());
    }
    // Task-type fixed effects by the within transformation (Frisch–Waugh–
    // Lovell): every column and the reward less its task type's mean. The
    // coefficients, the residuals and the robust covariance of the shown
    // columns are those of the regression with an intercept and a dummy
    // per task type, without its (tasks + p)² system: a log of 20,000
    // task types made that 3 GB and minutes.
    let p = cols.len();
    let tasks = data.tasks.len().max(1);
    let mut sums = vec![0.0f64; tasks * (p + 1)];
    let mut counts = vec![0u64; tasks];
    for r in &rows {
        let t = r.task as usize;
        let base = t * (p + 1);
        for (j, c) in cols.iter().enumerate() {
            sums[base + j] += c(r);
        }
        sums[base + p] += f64::from(r.reward);
        counts[t] += 1;
    }
    for (t, &c) in counts.iter().enumerate() {
        if c > 0 {
            for v in &mut sums[t * (p + 1)..(t + 1) * (p + 1)] {
                *v /= c as f64;
            }
        }
    }
    let used_tasks = counts.iter().filter(|&&c| c > 0).count();
    let mut x = vec![0.0; p];
    let within = |r: &Row, x: &mut [f64]| -> f64 {
        let base = r.task as usize * (p + 1);
        for (j, c) in cols.iter().enumerate() {
            x[j] = c(r) - sums[base + j];
        }
        f64::from(r.reward) - sums[base + p]
    };
    let mut xtx = DMatrix::<f64>::zeros(p, p);
    let mut xty = DVector::<f64>::zeros(p);
    for r in &rows {
        let y = within(r, &mut x);
        for i in 0..p {
            xty[i] += x[i] * y;
            for j in 0..=i {
                xtx[(i, j)] += x[i] * x[j];
            }
        }
    }
    for i in 0..p {
        for j in 0..i {
            xtx[(j, i)] = xtx[(i, j)];
        }
    }
    // A tiny ridge keeps collinear designs (a model only ever used at one
    // temperature) solvable; it does not move identified coefficients.
    for i in 0..p {
        xtx[(i, i)] += 1e-9 * (1.0 + xtx[(i, i)]);
    }
    let inv = xtx.clone().try_inverse()?;
    let beta = &inv * &xty;
    let mut meat = DMatrix::<f64>::zeros(p, p);
    for r in &rows {
        let y = within(r, &mut x);
        let fit: f64 = (0..p).map(|j| x[j] * beta[j]).sum();
        let e2 = (y - fit).powi(2);
        for i in 0..p {
            for j in 0..=i {
                meat[(i, j)] += e2 * x[i] * x[j];
            }
        }
    }
    for i in 0..p {
        for j in 0..i {
            meat[(j, i)] = meat[(i, j)];
        }
    }
    // HC1's degrees of freedom count the task types' means as the dummy
    // regression counts its intercept and dummies.
    let df = n.saturating_sub(p + used_tasks).max(1);
    let cov = &inv * meat * &inv * (n as f64 / df as f64);
    let q = StudentsT::new(0.0, 1.0, df as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(1.96);
    Some(
        (0..shown)
            .map(|j| {
                let se = cov[(j, j)].max(0.0).sqrt();
                Effect {
                    name: names[j].clone(),
                    estimate: beta[j],
                    lo: beta[j] - q * se,
                    hi: beta[j] + q * se,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Arm;
    use tuneloop_core::ParameterSet;

    fn arm(task: u16, model: &str, t: f64) -> Arm {
        let params = ParameterSet::builder(model)
            .temperature(t)
            .max_tokens(512)
            .build()
            .unwrap();
        Arm {
            task,
            id: params.arm_id().to_string(),
            params,
        }
    }

    fn row(
        t_hours: f64,
        arm: u32,
        reward: f64,
        quality: f64,
        cost: f64,
        phase: Option<Phase>,
    ) -> Row {
        Row {
            t: 1.7e9 + t_hours * 3600.0,
            task: 0,
            cohort: None,
            phase,
            arm,
            reward: reward as f32,
            quality: quality as f32,
            cost: cost as f32,
            tokens: 100.0,
            propensity: 0.5,
            has_outcome: true,
            defaulted: false,
        }
    }

    #[test]
    fn the_timeline_marks_one_promotion_and_one_rollback() {
        let data = Data {
            rows: [
                Phase::Shadow,
                Phase::Shadow,
                Phase::Canary,
                Phase::Canary,
                Phase::Shadow,
                Phase::Shadow,
            ]
            .iter()
            .enumerate()
            .map(|(i, &p)| row(i as f64, 0, 0.5, 0.5, 0.0, Some(p)))
            .collect(),
            arms: vec![arm(0, "m", 0.2)],
            tasks: vec!["t".into()],
            warnings: Vec::new(),
            episodes: std::collections::HashMap::new(),
        };
        let l = &timelines(&data)[0];
        assert_eq!(
            l.segments,
            vec![
                (0.0, 2.0, "shadow"),
                (2.0, 4.0, "canary"),
                (4.0, 5.0, "shadow")
            ]
        );
        assert_eq!(
            l.events,
            vec![
                (2.0, "shadow", "canary", false),
                (4.0, "canary", "shadow", true)
            ]
        );
    }

    #[test]
    fn the_pareto_front_keeps_undominated_arms() {
        // A: best and dearest; B: cheapest; C: dominated by B.
        let q = [(0.9, 0.01), (0.8, 0.001), (0.7, 0.005)];
        let data = Data {
            rows: (0..30)
                .map(|i| {
                    let a = i % 3;
                    row(i as f64, a as u32, 0.5, q[a].0, q[a].1, None)
                })
                .collect(),
            arms: vec![arm(0, "m", 0.2), arm(0, "m", 0.5), arm(0, "m", 0.9)],
            tasks: vec!["t".into()],
            warnings: Vec::new(),
            episodes: std::collections::HashMap::new(),
        };
        let (points, tokens) = arms_quality_cost(&data);
        assert!(!tokens);
        let front: Vec<bool> = points.iter().map(|p| p.pareto).collect();
        assert_eq!(front, vec![true, true, false]);
        assert!(
            (points[0].quality - 0.9).abs() < 1e-6 && (points[1].cost_usd - 0.001).abs() < 1e-9
        );
    }

    /// The sample standard deviation of the rows' temperatures.
    fn temperature_sd(rows: &[Row], arms: &[Arm]) -> f64 {
        let temps: Vec<f64> = rows
            .iter()
            .map(|r| arms[r.arm as usize].params.temperature())
            .collect();
        let m = temps.iter().sum::<f64>() / temps.len() as f64;
        (temps.iter().map(|t| (t - m).powi(2)).sum::<f64>() / (temps.len() - 1) as f64).sqrt()
    }

    #[test]
    fn attribution_separates_task_types_from_parameters_by_their_fixed_effects() {
        // reward = 0.1·temperature + 0.4·[task 1], no noise; task 1 runs
        // hotter, so pooling the task types would credit temperature with
        // part of task 1's +0.4. Its fixed effect takes it.
        let arms = vec![
            arm(0, "large", 0.2),
            arm(0, "large", 0.5),
            arm(1, "large", 0.5),
            arm(1, "large", 0.9),
        ];
        let rows: Vec<Row> = (0..400)
            .map(|i| {
                let a = i % arms.len();
                let r = 0.1 * arms[a].params.temperature() + 0.4 * f64::from(arms[a].task);
                let mut row = row(i as f64, a as u32, r, r, 0.0, None);
                row.task = arms[a].task;
                row
            })
            .collect();
        let sd = temperature_sd(&rows, &arms);
        let data = Data {
            rows,
            arms,
            tasks: vec!["a".into(), "b".into()],
            warnings: Vec::new(),
            episodes: std::collections::HashMap::new(),
        };
        let effects = attribution(&data).unwrap();
        let t = effects
            .iter()
            .find(|e| e.name.starts_with("temperature"))
            .unwrap();
        assert!((t.estimate - 0.1 * sd).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn attribution_recovers_a_known_linear_effect() {
        // reward = 0.3 + 0.1·temperature − 0.1·[model small], no noise.
        let arms = vec![
            arm(0, "large", 0.2),
            arm(0, "large", 0.5),
            arm(0, "large", 0.9),
            arm(0, "small", 0.2),
            arm(0, "small", 0.5),
        ];
        let rows: Vec<Row> = (0..500)
            .map(|i| {
                let a = i % arms.len();
                let p = &arms[a].params;
                let small = f64::from(u8::from(p.model() == "small"));
                let r = 0.3 + 0.1 * p.temperature() - 0.1 * small;
                row(i as f64, a as u32, r, r, 0.0, None)
            })
            .collect();
        // The per-sd effect is 0.1 × the sample sd of temperature.
        let sd = temperature_sd(&rows, &arms);
        let data = Data {
            rows,
            arms,
            tasks: vec!["t".into()],
            warnings: Vec::new(),
            episodes: std::collections::HashMap::new(),
        };
        let effects = attribution(&data).unwrap();
        let by = |n: &str| effects.iter().find(|e| e.name.starts_with(n)).unwrap();
        let t = by("temperature");
        assert!((t.estimate - 0.1 * sd).abs() < 1e-6, "{t:?}");
        let m = by("model = small");
        assert!((m.estimate + 0.1).abs() < 1e-6, "{m:?}");
        assert!(m.lo <= m.estimate && m.estimate <= m.hi);
    }

    #[test]
    fn reward_bins_average_their_rows() {
        // Hours 0–1 reward 0.2, hours 1–2 reward 0.8 (10 rows each).
        let rows: Vec<Row> = (0..20)
            .map(|i| {
                let h = f64::from(i) * 0.1;
                row(h, 0, if i < 10 { 0.2 } else { 0.8 }, 0.5, 0.0, None)
            })
            .collect();
        let data = Data {
            rows,
            arms: vec![arm(0, "m", 0.2)],
            tasks: vec!["t".into()],
            warnings: Vec::new(),
            episodes: std::collections::HashMap::new(),
        };
        let s = reward_over_time(&data, 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cohort, "all");
        let means: Vec<f64> = s[0].points.iter().map(|p| p.1.mean).collect();
        assert!(
            (means[0] - 0.2).abs() < 1e-6 && (means[1] - 0.8).abs() < 1e-6,
            "{means:?}"
        );
    }

    #[test]
    fn ks_matches_scipy() {
        // scipy.stats.ks_2samp([1..8], [5..12], method='asymp'): D = 0.5,
        // p = 0.1875; scipy.special.kolmogorov of the Stephens-corrected
        // statistic (what is computed here) = 0.18768427419801334.
        let mut a: Vec<f64> = (1..=8).map(f64::from).collect();
        let mut b: Vec<f64> = (5..=12).map(f64::from).collect();
        let (d, p) = ks_two_sample(&mut a, &mut b);
        assert!((d - 0.5).abs() < 1e-12);
        assert!((p - 0.187_684_274_198_013_34).abs() < 1e-9, "{p}");
        // Identical samples: D = 0, p = 1.
        let (d, p) = ks_two_sample(&mut a.clone(), &mut a);
        assert!(d.abs() < 1e-12 && (p - 1.0).abs() < 1e-12);
    }
}

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
