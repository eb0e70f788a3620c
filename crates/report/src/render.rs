//! The page: sections of charts and captions, the cards above them, and a
//! self-check script.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};

use crate::Log;
use crate::analysis;
use crate::charts;
use crate::html::esc;
use crate::{Error, Options, Result};

/// The charts every report has, in page order (`data-chart` names).
pub const CHARTS: [&str; 6] = [
    "reward-over-time",
    "phase-timeline",
    "quality-cost",
    "estimators",
    "drift",
    "attribution",
];

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// A rendered page and a summary of what it shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The HTML page, self-contained.
    pub html: String,
    /// What the page shows, as JSON (the CLI prints it).
    pub summary: Value,
}

/// Renders the page about `data`, telling `progress` about each stage.
///
/// # Errors
/// [`Error::Internal`] when a chart cannot be drawn, and the off-policy
/// estimators' errors.
pub fn render(data: &Log, options: &Options<'_>, progress: &dyn Fn(&str)) -> Result<Report> {
    let started = Instant::now();
    let stage = |what: &str| {
        progress(&format!(
            "{what} ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
    };
    let (t0, t1) = analysis::span(data);
    let hours = (t1 - t0) / 3600.0;
    let series = analysis::reward_over_time(data, 48);
    let lines = analysis::timelines(data);
    let (arms, cost_is_tokens) = analysis::arms_quality_cost(data);
    stage("aggregated");
    let ope = analysis::off_policy(data, options.seed)?;
    stage("off-policy estimates");
    let drift = analysis::drift(data, 8);
    let effects = analysis::attribution(data);
    let episodes = analysis::episodes(data);
    stage("drift and attribution");

    let chart =
        |r: Result<String, String>| r.map_err(|e| Error::Internal(format!("drawing a chart: {e}")));
    let mut sections: Vec<(&str, &str, String, String)> = Vec::new();
    // 1. Reward over time.
    sections.push((
        CHARTS[0],
        "Reward over time, by cohort",
        chart(charts::reward_over_time(&series, hours))?,
        format!(
            "Mean reward in {} equal time bins (bins with fewer than 5 rewarded decisions are left out), with normal 95% intervals.",
            48
        ),
    ));
    // 2. Phase timeline.
    let timeline_note = if lines.is_empty() {
        "No decision in this log carries a rollout phase: no rollout ran.".to_owned()
    } else {
        let mut s = String::from("Phases as logged with each decision. ");
        for l in &lines {
            let promos = l.events.iter().filter(|e| !e.3).count();
            let backs = l.events.iter().filter(|e| e.3).count();
            let _ = write!(
                s,
                "<b>{}</b>: {promos} promotion(s), {backs} rollback(s)",
                esc(&l.task)
            );
            for e in &l.events {
                let _ = write!(s, "; {:.1} h {} → {}", e.0, e.1, e.2);
            }
            s.push_str(". ");
        }
        s
    };
    sections.push((
        CHARTS[1],
        "Rollout phases, promotions and rollbacks",
        chart(charts::timeline(&lines, hours))?,
        timeline_note,
    ));
    // 3. Quality against cost.
    let mut table = String::from(
        "<table><tr><th>task type</th><th>arm</th><th>calls</th><th>quality</th><th>cost</th><th>Pareto</th></tr>",
    );
    for p in arms.iter().filter(|p| p.pareto) {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.5}</td><td>yes</td></tr>",
            esc(&p.task),
            esc(&p.label),
            p.n,
            p.quality,
            p.cost_usd
        );
    }
    table.push_str("</table>");
    sections.push((
        CHARTS[2],
        "Each arm's quality against its cost",
        chart(charts::pareto(&arms, &data.tasks, cost_is_tokens))?,
        format!(
            "Mean outcome quality and cost per call of every arm that was used; large dots joined by a line are each task type's Pareto front (no other arm is both better and cheaper). {} arms, {} on a front.{table}",
            arms.len(),
            arms.iter().filter(|p| p.pareto).count()
        ),
    ));
    // 4. Estimators.
    match &ope {
        Some(o) => {
            let mut t = String::from(
                "<table><tr><th>estimator</th><th>candidate</th><th>baseline</th></tr>",
            );
            for (name, [c, b]) in &o.estimators {
                let _ = write!(
                    t,
                    "<tr><td>{name}</td><td>{:.3} [{:.3}, {:.3}]</td><td>{:.3} [{:.3}, {:.3}]</td></tr>",
                    c.0, c.1, c.2, b.0, b.1, b.2
                );
            }
            t.push_str("</table>");
            for w in &o.warnings {
                let _ = write!(t, "<p><b>Warning</b>: {}</p>", esc(w));
            }
            sections.push((
                CHARTS[3],
                "Off-policy estimates: candidate against baseline",
                chart(charts::estimators(o))?,
                format!(
                    "Policies: {}. Each estimator's value of each policy on {} logged rounds (an even sample of at most {}), with 95% percentile-bootstrap intervals (500 resamples); the reward model of DM and the DR family is each arm's mean reward. The first row is each policy's mean reward on its own traffic.{t}",
                    esc(&o.basis),
                    o.rounds,
                    analysis::OPE_MAX_ROUNDS
                ),
            ));
        }
        None => sections.push((
            CHARTS[3],
            "Off-policy estimates: candidate against baseline",
            chart(charts::estimators(&analysis_placeholder()))?,
            "Too few rewarded decisions (fewer than 20) to estimate anything.".into(),
        )),
    }
    // 5. Drift.
    match &drift {
        Some(d) => {
            let verdict = if d.ks_p < 0.01 {
                "the reward distribution changed (p < 0.01)"
            } else {
                "no change detected at the 1% level"
            };
            sections.push((
                CHARTS[4],
                "Drift: the reward distribution by time window",
                chart(charts::drift(d))?,
                format!(
                    "{} equal time windows. First against last window: Kolmogorov–Smirnov D = {:.3}, p = {}; mean shift {:+.3}. One-way ANOVA across all windows: p = {}. Verdict: <b>{verdict}</b>. (With many decisions, tiny shifts are significant: read the shift too.)",
                    d.windows.len(),
                    d.ks_d,
                    fmt_p(d.ks_p),
                    d.shift,
                    d.anova_p.map_or("n/a".into(), fmt_p)
                ),
            ));
        }
        None => sections.push((
            CHARTS[4],
            "Drift: the reward distribution by time window",
            chart(charts::drift(&analysis::Drift {
                windows: Vec::new(),
                ks_d: 0.0,
                ks_p: 1.0,
                anova_p: None,
                shift: 0.0,
            }))?,
            "Too few rewarded decisions spread over time to compare windows.".into(),
        )),
    }
    // 6. Attribution.
    let effects = effects.unwrap_or_default();
    sections.push((
        CHARTS[5],
        "Attribution: which parameters move reward",
        chart(charts::attribution(&effects))?,
        if effects.is_empty() {
            "Too few rewarded decisions, or no parameter varied.".into()
        } else {
            "Least-squares effects on reward of each parameter that varied: continuous parameters per standard deviation, categorical ones against their most frequent level, with task-type fixed effects and heteroskedasticity-robust (HC1) 95% intervals. Green: reliably positive; red: reliably negative. These are associations in logged traffic: the policy chose parameters by context, so read them as leads, not causes.".into()
        },
    ));
    stage("charts drawn");

    let rewarded = data.rows.iter().filter(|r| !r.reward.is_nan()).count();
    let defaulted = data.rows.iter().filter(|r| r.defaulted).count();
    let mean_reward = data
        .rows
        .iter()
        .filter(|r| !r.reward.is_nan())
        .map(|r| f64::from(r.reward))
        .sum::<f64>()
        / rewarded.max(1) as f64;
    let start =
        chrono::DateTime::from_timestamp(t0 as i64, 0).map_or_else(String::new, |d| d.to_rfc3339());
    let end =
        chrono::DateTime::from_timestamp(t1 as i64, 0).map_or_else(String::new, |d| d.to_rfc3339());
    // The charts the self-check expects: the six, and the proof's when
    // there is a provenance chain.
    let mut expected: Vec<&str> = CHARTS.to_vec();
    if !options.provenance.is_empty() {
        expected.push("proof");
    }
    let mut html = String::with_capacity(1 << 20);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tuneloop {kind} — {title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f7f9; color: #1d2433; }}
header {{ background: #1d2433; color: #fff; padding: 20px 32px; }}
header h1 {{ margin: 0 0 6px; font-size: 22px; }}
header p {{ margin: 0; opacity: .8; }}
main {{ max-width: 1000px; margin: 0 auto; padding: 16px; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin: 8px 0 18px; }}
.card {{ background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
.card b {{ display: block; font-size: 20px; }}
.card span {{ font-size: 12px; color: #5b6478; }}
figure {{ background: #fff; border-radius: 8px; margin: 0 0 18px; padding: 14px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
figure h2 {{ font-size: 17px; margin: 0 0 8px; }}
figure svg {{ width: 100%; height: auto; }}
figcaption {{ font-size: 13.5px; color: #3b4356; line-height: 1.45; }}
table {{ border-collapse: collapse; margin-top: 8px; font-size: 12.5px; }}
td, th {{ border-bottom: 1px solid #e3e6ec; padding: 3px 10px 3px 0; text-align: left; }}
nav a {{ margin-right: 12px; color: #2a5bd7; text-decoration: none; font-size: 13px; }}
</style></head>
<body data-check="pending">
<header><h1>tuneloop {kind}</h1><p>{title} · {start} → {end}</p></header>
<main>
<div class="cards">
<div class="card"><b>{n}</b><span>decisions</span></div>
<div class="card"><b>{rewarded}</b><span>with a reward</span></div>
<div class="card"><b>{defaulted}</b><span>abandoned or expired (left out)</span></div>
<div class="card"><b>{mean_reward:.3}</b><span>mean reward</span></div>
<div class="card"><b>{tasks}</b><span>task types</span></div>
<div class="card"><b>{narms}</b><span>arms used</span></div>
<div class="card"><b>{hours:.1} h</b><span>time span</span></div>
</div>
<nav>"#,
        title = esc(&options.title),
        kind = if options.live.is_some() {
            "dashboard"
        } else {
            "report"
        },
        n = data.rows.len(),
        tasks = data.tasks.len(),
        narms = arms.len(),
    );
    for (id, title, _, _) in &sections {
        let _ = write!(html, r##"<a href="#{id}">{}</a>"##, esc(title));
    }
    html.push_str("</nav>\n");
    if let Some(live) = &options.live {
        crate::live::section(&mut html, live);
    }
    for (id, title, svg, caption) in &sections {
        let _ = write!(
            html,
            "<figure id=\"{id}\" data-chart=\"{id}\"><h2>{}</h2>\n{svg}\n<figcaption>{caption}</figcaption></figure>\n",
            esc(title)
        );
    }
    if let Some(e) = &episodes {
        let _ = write!(
            html,
            "<figure id=\"episodes\"><h2>Episodes</h2><figcaption>{} episodes (agent tasks of several calls with one outcome) hold {} decisions, {:.2} each on average, {} at most; {} have an outcome, of mean reward {}. Each decision of an episode carries the episode's reward; <code>tuneloop evaluate</code> weighs whole episodes (trajectory importance sampling, see docs/offline-evaluation.md).</figcaption><table><tr><th>decisions</th><th>episodes</th></tr>",
            e.episodes,
            e.decisions,
            e.mean_decisions,
            e.longest,
            e.rewarded,
            e.mean_reward
                .map_or_else(|| "unknown".to_owned(), |r| format!("{r:.3}")),
        );
        for (len, count) in &e.by_length {
            let label = if *len >= 10 {
                "10 or more".to_owned()
            } else {
                len.to_string()
            };
            let _ = write!(html, "<tr><td>{label}</td><td>{count}</td></tr>");
        }
        html.push_str("</table></figure>\n");
    }
    if !options.provenance.is_empty() {
        crate::live::provenance(&mut html, options.provenance)
            .map_err(|e| Error::Internal(format!("drawing the proof chart: {e}")))?;
    }
    if !data.warnings.is_empty() {
        html.push_str("<figure><h2>Warnings</h2><ul>");
        for w in &data.warnings {
            let _ = write!(html, "<li>{}</li>", esc(w));
        }
        html.push_str("</ul></figure>");
    }
    let _ = write!(
        html,
        r#"<p style="font-size:12px;color:#5b6478">Made by tuneloop {version} in {secs:.1} s.</p>
</main>
<script>
// Self-check, read by the headless-browser test: every chart is present
// and drawn, and no script failed.
(function () {{
  var errors = [];
  window.addEventListener('error', function (e) {{ errors.push(String(e.message)); }});
  function check() {{
    var expected = {expected};
    var missing = expected.filter(function (id) {{
      var f = document.querySelector('figure[data-chart="' + id + '"]');
      var svg = f && f.querySelector('svg');
      if (!svg) return true;
      var box = svg.getBoundingClientRect();
      return box.width < 100 || box.height < 50 || svg.querySelectorAll('*').length < 10;
    }});
    document.body.setAttribute('data-check',
      errors.length ? 'error: ' + errors.join('; ')
      : missing.length ? 'missing: ' + missing.join(',')
      : 'ok: ' + expected.length + ' charts');
  }}
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', check); else check();
}})();
</script>
</body></html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        secs = started.elapsed().as_secs_f64(),
        expected = serde_json::to_string(&expected)?,
    );
    let summary = json!({
        "decisions": data.rows.len(),
        "rewarded": rewarded,
        "defaulted": defaulted,
        "task_types": data.tasks,
        "arms": arms.len(),
        "charts": expected,
        "rollbacks": lines.iter().map(|l| l.events.iter().filter(|e| e.3).count()).sum::<usize>(),
        "promotions": lines.iter().map(|l| l.events.iter().filter(|e| !e.3).count()).sum::<usize>(),
        "drift": drift.as_ref().map(|d| json!({"ks_d": d.ks_d, "ks_p": d.ks_p, "shift": d.shift, "anova_p": d.anova_p})),
        "ope_warnings": ope.as_ref().map(|o| o.warnings.clone()),
        "estimators": ope.as_ref().map(|o| o.estimators.iter().map(|(n, [c, b])| json!({"estimator": n, "candidate": [c.0, c.1, c.2], "baseline": [b.0, b.1, b.2]})).collect::<Vec<_>>()),
        "attribution": effects,
        "episodes": episodes,
        "warnings": data.warnings,
        "provenance_records": options.provenance.len(),
        "seconds": started.elapsed().as_secs_f64(),
        "bytes": html.len(),
    });
    Ok(Report { html, summary })
}

fn analysis_placeholder() -> analysis::Ope {
    analysis::Ope {
        basis: String::new(),
        rounds: 0,
        on_policy: [None, None],
        estimators: Vec::new(),
        warnings: Vec::new(),
    }
}

/// A page without a log (none configured, or no decision in it yet): the
/// live rollouts and the provenance chain, and `why` there are no charts.
///
/// # Errors
/// [`Error::Internal`] when the proof chart cannot be drawn.
pub fn render_status(options: &Options<'_>, why: &str) -> Result<String> {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tuneloop dashboard — {title}</title>\
         <style>body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1d2433; }} \
         td, th {{ border-bottom: 1px solid #e3e6ec; padding: 3px 10px 3px 0; text-align: left; }} \
         figure {{ margin: 0 0 18px; }} svg {{ width: 100%; height: auto; }}</style></head>\
         <body data-check=\"no charts: {why_attr}\"><h1>tuneloop dashboard</h1><p>{why}</p>\n",
        title = esc(&options.title),
        why = esc(why),
        why_attr = esc(why),
    );
    if let Some(live) = &options.live {
        crate::live::section(&mut html, live);
    }
    if !options.provenance.is_empty() {
        crate::live::provenance(&mut html, options.provenance)
            .map_err(|e| Error::Internal(format!("drawing the proof chart: {e}")))?;
    }
    html.push_str("</body></html>\n");
    Ok(html)
}
