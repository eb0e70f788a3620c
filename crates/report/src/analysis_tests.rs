//! Tests of `analysis.rs` (and the attribution), against closed forms
//! and scipy's values.

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

fn row(t_hours: f64, arm: u32, reward: f64, quality: f64, cost: f64, phase: Option<Phase>) -> Row {
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
    assert!((points[0].quality - 0.9).abs() < 1e-6 && (points[1].cost_usd - 0.001).abs() < 1e-9);
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
