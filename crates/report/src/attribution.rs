//! The attribution: which parameters move reward, by least squares with
//! task-type fixed effects and heteroskedasticity-robust intervals.

use nalgebra::{DMatrix, DVector};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use tuneloop_eval::stats::Moments;

use crate::load::{Data, Row};

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
