//! The sections a log alone cannot give: each rollout's state now (the
//! dashboard), and the provenance chain with the candidate's proof.

use std::fmt::Write as _;

use serde::Serialize;
use tuneloop_core::Phase;
use tuneloop_gates::ProvenanceRecord;
use tuneloop_rollout::{RolloutEvent, Verdict};

use crate::charts;
use crate::html::esc;

/// A rollout's state now, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveRollout {
    /// The task type.
    pub task_type: String,
    /// Its phase.
    pub phase: Phase,
    /// Whether promotion is held.
    pub held: bool,
    /// The candidate's share of traffic.
    pub candidate_fraction: f64,
    /// Observations of the baseline cohort.
    pub baseline_observations: u64,
    /// Observations of the candidate cohort.
    pub candidate_observations: u64,
    /// The proof's latest verdict.
    pub last_verdict: Option<Verdict>,
}

/// The table of rollouts now.
pub(crate) fn section(html: &mut String, live: &[LiveRollout]) {
    html.push_str(
        "<figure id=\"rollouts-now\"><h2>Rollouts now</h2><table><tr><th>task type</th><th>phase</th><th>held</th><th>candidate share</th><th>baseline / candidate observations</th><th>latest verdict</th></tr>",
    );
    for r in live {
        let _ = write!(
            html,
            "<tr><td>{}</td><td><b>{}</b></td><td>{}</td><td>{:.0}%</td><td>{} / {}</td><td>{}</td></tr>",
            esc(&r.task_type),
            r.phase,
            if r.held { "yes" } else { "no" },
            100.0 * r.candidate_fraction,
            r.baseline_observations,
            r.candidate_observations,
            r.last_verdict
                .as_ref()
                .map_or_else(|| "none yet".to_owned(), |v| esc(&v.to_string())),
        );
    }
    if live.is_empty() {
        html.push_str("<tr><td colspan=\"6\">No task type has a rollout.</td></tr>");
    }
    html.push_str(
        "</table><figcaption>The optimizer's state when this page was made: reload for the latest.</figcaption></figure>\n",
    );
}

/// The verdicts recorded in a provenance chain, in order, with their task
/// types.
pub(crate) fn verdicts(records: &[ProvenanceRecord]) -> Vec<(String, Verdict)> {
    records
        .iter()
        .filter_map(|r| {
            let task = r.change.details.get("task_type")?.as_str()?.to_owned();
            let event = r.change.details.get("event")?;
            match serde_json::from_value::<RolloutEvent>(event.clone()).ok()? {
                RolloutEvent::Verdict(v) => Some((task, *v)),
                _ => None,
            }
        })
        .collect()
}

/// The proof chart and the table of every change.
pub(crate) fn provenance(html: &mut String, records: &[ProvenanceRecord]) -> Result<(), String> {
    let verdicts = verdicts(records);
    let verified = match tuneloop_gates::provenance::verify(records) {
        Ok(()) => "the chain verifies (every hash and link is right)".to_owned(),
        Err(e) => format!("<b>the chain does not verify</b>: {}", esc(&e.to_string())),
    };
    let svg = charts::proof(&verdicts)?;
    let passed = verdicts.iter().filter(|(_, v)| v.passed).count();
    let _ = write!(
        html,
        "<figure id=\"proof\" data-chart=\"proof\"><h2>The candidate's proof</h2>\n{svg}\n<figcaption>Each verdict of the rollout proof in the order made ({} verdicts, {passed} passed): the estimated reward gain of the candidate over the incumbent (dot) and its one-sided 95% lower bound (bar end), green when the bound reached the threshold (tick: 0 off-policy in shadow, minus the non-inferiority margin on-policy in canary and guarded). From the provenance chain of {} records: {verified}.</figcaption>",
        verdicts.len(),
        records.len(),
    );
    html.push_str(
        "<table><tr><th>#</th><th>when</th><th>who</th><th>task type</th><th>what</th></tr>",
    );
    // The newest first; a long chain is cut to its last 200 changes.
    for r in records.iter().rev().take(200) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.seq,
            r.timestamp.format("%Y-%m-%d %H:%M:%S"),
            esc(&r.change.actor),
            esc(r
                .change
                .details
                .get("task_type")
                .and_then(|t| t.as_str())
                .unwrap_or(&r.change.version)),
            esc(&r.change.reason),
        );
    }
    html.push_str("</table></figure>\n");
    Ok(())
}
