//! The report's charts, drawn with plotters into SVG strings.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::{ArmPoint, Drift, Effect, Ope, Series, Timeline};

const W: u32 = 960;
const BLUE_: RGBColor = RGBColor(31, 119, 180);
const RED_: RGBColor = RGBColor(214, 39, 40);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const GRAY_: RGBColor = RGBColor(110, 110, 110);
const PALETTE: [RGBColor; 6] = [
    BLUE_,
    RGBColor(255, 127, 14),
    GREEN_,
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

type Res<T> = Result<T, String>;

/// A forest plot's row: a label and its points `(estimate, low, high, colour)`.
type ForestRow = (String, Vec<(f64, f64, f64, RGBColor)>);

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn cohort_color(c: &str) -> RGBColor {
    match c {
        "baseline" => BLUE_,
        "candidate" => RED_,
        _ => GRAY_,
    }
}

fn phase_color(p: &str) -> RGBColor {
    match p {
        "shadow" => RGBColor(199, 199, 199),
        "canary" => RGBColor(255, 187, 120),
        "guarded" => RGBColor(174, 199, 232),
        _ => RGBColor(152, 223, 138),
    }
}

fn svg(h: u32, draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Res<()>) -> Res<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(s)
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = ((hi - lo) * 0.08).max(1e-6);
    (lo - pad, hi + pad)
}

/// Mean reward per time bin and cohort, with 95% bands.
pub(crate) fn reward_over_time(series: &[Series], hours: f64) -> Res<String> {
    let lo = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.lo))
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.hi))
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = padded(lo.max(0.0), hi.min(1.0));
    svg(380, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..hours.max(1e-3), lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("hours since the first decision")
            .y_desc("mean reward")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for s in series {
            let color = cohort_color(s.cohort);
            let mut band: Vec<(f64, f64)> = s.points.iter().map(|(x, m)| (*x, m.hi)).collect();
            band.extend(s.points.iter().rev().map(|(x, m)| (*x, m.lo)));
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|(x, m)| (*x, m.mean)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{} (95% interval shaded)", s.cohort))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)
    })
}

/// Each task type's rollout phases over time; promotions and rollbacks marked.
pub(crate) fn timeline(lines: &[Timeline], hours: f64) -> Res<String> {
    let rows = lines.len().max(1);
    let names: Vec<String> = lines.iter().map(|l| l.task.clone()).collect();
    svg(90 + 46 * rows as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..hours.max(1e-3), 0.0..rows as f64)
            .map_err(err)?;
        let fmt = |y: &f64| {
            let i = y.floor() as usize;
            if (y - (i as f64 + 0.5)).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("hours since the first decision")
            .y_labels(rows * 2 + 1)
            .y_label_formatter(&fmt)
            .draw()
            .map_err(err)?;
        for (i, l) in lines.iter().enumerate() {
            let y = i as f64;
            chart
                .draw_series(l.segments.iter().map(|(a, b, p)| {
                    Rectangle::new([(*a, y + 0.2), (*b, y + 0.8)], phase_color(p).filled())
                }))
                .map_err(err)?;
            chart
                .draw_series(
                    l.segments
                        .iter()
                        .filter(|(a, b, _)| b - a > hours * 0.06)
                        .map(|(a, _, p)| {
                            Text::new(
                                (*p).to_owned(),
                                (*a + hours * 0.005, y + 0.58),
                                ("sans-serif", 12).into_font(),
                            )
                        }),
                )
                .map_err(err)?;
            for (at, _, _, rollback) in &l.events {
                if *rollback {
                    chart
                        .draw_series(std::iter::once(Cross::new(
                            (*at, y + 0.5),
                            7,
                            RED_.stroke_width(3),
                        )))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new(
                            (*at, y + 0.5),
                            7,
                            GREEN_.filled(),
                        )))
                        .map_err(err)?;
                }
            }
        }
        // Legend entries only: empty series with a legend.
        chart
            .draw_series(std::iter::empty::<TriangleMarker<(f64, f64), i32>>())
            .map_err(err)?
            .label("promotion")
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 6, GREEN_.filled()));
        chart
            .draw_series(std::iter::empty::<Cross<(f64, f64), i32>>())
            .map_err(err)?
            .label("rollback")
            .legend(|(x, y)| Cross::new((x + 8, y), 5, RED_.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)
    })
}

/// Arms' mean quality against mean cost, Pareto front per task type.
pub(crate) fn pareto(points: &[ArmPoint], tasks: &[String], tokens: bool) -> Res<String> {
    let xmax = points.iter().map(|p| p.cost_usd).fold(0.0, f64::max);
    let (ylo, yhi) = padded(
        points
            .iter()
            .map(|p| p.quality)
            .fold(f64::INFINITY, f64::min),
        points
            .iter()
            .map(|p| p.quality)
            .fold(f64::NEG_INFINITY, f64::max),
    );
    svg(420, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..(xmax * 1.08).max(1e-9), ylo..yhi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(if tokens {
                "mean tokens per call (the log records no cost)"
            } else {
                "mean cost per call (USD)"
            })
            .y_desc("mean quality")
            .x_label_formatter(&|x| {
                if tokens {
                    format!("{x:.0}")
                } else {
                    format!("{x:.4}")
                }
            })
            .draw()
            .map_err(err)?;
        for (ti, task) in tasks.iter().enumerate() {
            let color = PALETTE[ti % PALETTE.len()];
            let mine: Vec<&ArmPoint> = points.iter().filter(|p| &p.task == task).collect();
            if mine.is_empty() {
                continue;
            }
            let mut front: Vec<(f64, f64)> = mine
                .iter()
                .filter(|p| p.pareto)
                .map(|p| (p.cost_usd, p.quality))
                .collect();
            front.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(front.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{task}: Pareto front"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    mine.iter()
                        .filter(|p| !p.pareto)
                        .map(|p| Circle::new((p.cost_usd, p.quality), 4, color.mix(0.55).filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    front
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 6, color.filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(mine.iter().filter(|p| p.pareto).map(|p| {
                    Text::new(
                        p.label.clone(),
                        (p.cost_usd, p.quality),
                        ("sans-serif", 10).into_font(),
                    )
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)
    })
}

/// A forest plot: rows of (label, [(estimate, lo, hi, color, legend)]).
fn forest(
    rows: &[ForestRow],
    legend: &[(&str, RGBColor)],
    x_desc: &str,
    zero_line: bool,
) -> Res<String> {
    let n = rows.len().max(1);
    let xs = rows
        .iter()
        .flat_map(|(_, v)| v.iter().flat_map(|p| [p.1, p.2, p.0]));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if zero_line {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    let (lo, hi) = padded(lo, hi);
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    svg(80 + 34 * n as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(lo..hi, 0.0..n as f64)
            .map_err(err)?;
        let fmt = |y: &f64| {
            let i = y.floor() as usize;
            if (y - (i as f64 + 0.5)).abs() < 0.01 {
                labels.get(n - 1 - i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .y_labels(n * 2 + 1)
            .y_label_formatter(&fmt)
            .draw()
            .map_err(err)?;
        if zero_line {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.0), (0.0, n as f64)],
                    BLACK.mix(0.5),
                ))
                .map_err(err)?;
        }
        for (i, (_, points)) in rows.iter().enumerate() {
            let y0 = (n - 1 - i) as f64 + 0.5;
            let k = points.len() as f64;
            for (j, &(est, l, h, color)) in points.iter().enumerate() {
                let y = y0 + (j as f64 - (k - 1.0) / 2.0) * 0.22;
                chart
                    .draw_series(LineSeries::new(vec![(l, y), (h, y)], color.stroke_width(2)))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Circle::new((est, y), 4, color.filled())))
                    .map_err(err)?;
            }
        }
        for &(name, color) in legend {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        if !legend.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Each estimator's interval for the candidate and the baseline.
pub(crate) fn estimators(ope: &Ope) -> Res<String> {
    let mut rows: Vec<ForestRow> = Vec::new();
    let on: Vec<(f64, f64, f64, RGBColor)> = ope
        .on_policy
        .iter()
        .zip([RED_, BLUE_])
        .filter_map(|(m, c)| m.map(|m| (m.mean, m.lo, m.hi, c)))
        .collect();
    rows.push(("on-policy mean (own traffic)".into(), on));
    for (name, [cand, base]) in &ope.estimators {
        rows.push((
            (*name).to_owned(),
            vec![
                (cand.0, cand.1, cand.2, RED_),
                (base.0, base.1, base.2, BLUE_),
            ],
        ));
    }
    forest(
        &rows,
        &[("candidate", RED_), ("baseline", BLUE_)],
        "estimated policy value (95% interval)",
        false,
    )
}

/// Reward distribution by time window: 10–90% whiskers, 25–75% boxes,
/// medians and means.
pub(crate) fn drift(d: &Drift) -> Res<String> {
    let hours = d.windows.last().map_or(1.0, |w| w.1);
    svg(380, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..hours.max(1e-3), -0.02..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time window (hours since the first decision)")
            .y_desc("reward")
            .draw()
            .map_err(err)?;
        for &(a, b, _, mean, q) in &d.windows {
            let (l, r) = (a + (b - a) * 0.2, b - (b - a) * 0.2);
            let mid = (a + b) / 2.0;
            chart
                .draw_series(LineSeries::new(vec![(mid, q[0]), (mid, q[4])], GRAY_))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(l, q[1]), (r, q[3])],
                    BLUE_.mix(0.35).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    vec![(l, q[2]), (r, q[2])],
                    BLUE_.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new((mid, mean), 4, RED_.filled())))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(err)?
            .label("mean")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, RED_.filled()));
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(err)?
            .label("25–75% (line: median; whiskers: 10–90%)")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE_.mix(0.35).filled())
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)
    })
}

/// Effects of parameters on reward, with intervals.
pub(crate) fn attribution(effects: &[Effect]) -> Res<String> {
    let rows: Vec<ForestRow> = effects
        .iter()
        .map(|e| {
            let color = if e.lo > 0.0 {
                GREEN_
            } else if e.hi < 0.0 {
                RED_
            } else {
                GRAY_
            };
            (e.name.clone(), vec![(e.estimate, e.lo, e.hi, color)])
        })
        .collect();
    forest(
        &rows,
        &[],
        "change in mean reward (95% robust interval)",
        true,
    )
}

/// The proof's verdicts in order: estimate, lower bound, threshold.
pub(crate) fn proof(verdicts: &[(String, tuneloop_rollout::Verdict)]) -> Res<String> {
    let n = verdicts.len().max(1) as f64;
    let (lo, hi) = verdicts.iter().fold((0.0f64, 0.0f64), |(lo, hi), (_, v)| {
        (
            lo.min(v.lower_bound).min(v.threshold),
            hi.max(v.estimate).max(v.threshold),
        )
    });
    let (lo, hi) = padded(lo, hi);
    svg(340, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n + 1.0, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("verdict (in order)")
            .y_desc("reward gain, candidate − incumbent")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(vec![(0.0, 0.0), (n + 1.0, 0.0)], GRAY_))
            .map_err(err)?;
        for (i, (_, v)) in verdicts.iter().enumerate() {
            let x = i as f64 + 1.0;
            let colour = if v.passed { GREEN_ } else { RED_ };
            chart
                .draw_series(LineSeries::new(
                    vec![(x, v.lower_bound), (x, v.estimate)],
                    colour.stroke_width(3),
                ))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, v.estimate),
                    4,
                    colour.filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    vec![(x - 0.3, v.threshold), (x + 0.3, v.threshold)],
                    BLACK.stroke_width(2),
                ))
                .map_err(err)?;
        }
        Ok(())
    })
}
