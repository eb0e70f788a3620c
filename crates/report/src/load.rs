//! Reads a decision log into compact rows: one pass, the fields a report
//! needs, each arm's parameters parsed once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use tuneloop_core::{Cohort, ParameterSet, Phase};

use crate::{Error, Result};

/// Most distinct arms a report reads, over all task types: 16 task types at
/// the library's bound of arms each. Past it, the log is refused.
pub(crate) const MAX_REPORT_ARMS: usize = 16 * tuneloop_core::MAX_ARMS;

/// One decision, compactly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// Seconds since the Unix epoch.
    pub(crate) t: f64,
    pub(crate) task: u16,
    /// `None` without a rollout.
    pub(crate) cohort: Option<Cohort>,
    /// `None` without a rollout.
    pub(crate) phase: Option<Phase>,
    /// Index into [`Data::arms`].
    pub(crate) arm: u32,
    /// NaN when unknown.
    pub(crate) reward: f32,
    /// NaN without an outcome.
    pub(crate) quality: f32,
    pub(crate) cost: f32,
    pub(crate) tokens: f32,
    pub(crate) propensity: f64,
    pub(crate) has_outcome: bool,
}

/// An arm of a task type.
#[derive(Debug, Clone)]
pub(crate) struct Arm {
    pub(crate) task: u16,
    pub(crate) id: String,
    pub(crate) params: ParameterSet,
}

impl Arm {
    /// A short label: model, temperature, max_tokens (and variant).
    pub(crate) fn label(&self) -> String {
        let p = &self.params;
        let mut s = format!("{} t={} max={}", p.model(), p.temperature(), p.max_tokens());
        if let Some(v) = p.prompt_variant() {
            s.push_str(&format!(" [{v}]"));
        }
        s
    }
}

/// A decision log read for a report: one compact row per decision, each
/// arm's parameters parsed once. Read it with [`read_log`](crate::read_log).
#[derive(Debug, Default)]
pub struct Data {
    pub(crate) rows: Vec<Row>,
    pub(crate) arms: Vec<Arm>,
    pub(crate) tasks: Vec<String>,
    pub(crate) warnings: Vec<String>,
    /// Per episode id (decisions that carry one): its decisions and its
    /// reward (NaN while unknown).
    pub(crate) episodes: HashMap<u128, (u32, f32)>,
}

impl Data {
    /// Decisions read.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has no decision (never true for a log that was read).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// What was skipped while reading (torn lines), one message each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    task_type: Cow<'a, str>,
    #[serde(borrow)]
    arm_id: Cow<'a, str>,
    #[serde(borrow)]
    params: &'a RawValue,
    propensity: f64,
    #[serde(default)]
    cohort: Option<Cohort>,
    #[serde(default)]
    phase: Option<Phase>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default)]
    outcome: Option<OutcomeLine>,
    #[serde(default)]
    reward: Option<f64>,
    #[serde(default)]
    episode_id: Option<tuneloop_core::DecisionId>,
}

#[derive(Deserialize)]
struct OutcomeLine {
    quality: f64,
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    cost_usd: f64,
}

/// Reads `path` (gzip if it ends in `.gz`), reporting progress every
/// million lines to `progress`.
pub(crate) fn load(path: &Path, progress: &dyn Fn(usize)) -> Result<Data> {
    let name = path.display().to_string();
    let inner = tuneloop_counterfactual::input::open(path).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::Unsupported
        ) {
            Error::BadInput(format!("{name}: {e}"))
        } else {
            Error::Io(format!("{name}: {e}"))
        }
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, inner);
    let mut data = Data::default();
    let mut tasks: HashMap<String, u16> = HashMap::new();
    let mut arms: HashMap<(u16, String), u32> = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        let n = tuneloop_counterfactual::input::read_line(&mut reader, &mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Error::BadInput(format!("{name}: line {}: {e}", line_no + 1))
            } else {
                Error::Io(format!("{name}: {e}"))
            }
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line_no.is_multiple_of(1_000_000) {
            progress(line_no);
        }
        let complete = buf.last() == Some(&b'\n');
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = parse(&buf, &mut data, &mut tasks, &mut arms);
        match parsed {
            Ok(row) => data.rows.push(row),
            Err(reason) if !complete || tuneloop_counterfactual::input::is_torn(&buf) => {
                data.warnings.push(format!(
                    "{name}: line {line_no}: skipped a torn line ({reason})"
                ));
            }
            Err(reason) => {
                return Err(Error::BadInput(format!("{name}: line {line_no}: {reason}")));
            }
        }
    }
    if data.rows.is_empty() {
        return Err(Error::BadInput(format!("{name}: no decision in the log")));
    }
    // Decisions are logged when their outcome arrives: order by decision time.
    data.rows.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(data)
}

fn parse(
    buf: &[u8],
    data: &mut Data,
    tasks: &mut HashMap<String, u16>,
    arms: &mut HashMap<(u16, String), u32>,
) -> Result<Row, String> {
    let l: Line<'_> = serde_json::from_slice(buf).map_err(|e| e.to_string())?;
    let t = chrono::DateTime::parse_from_rfc3339(&l.timestamp)
        .map_err(|e| format!("timestamp: {e}"))?;
    let t = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) * 1e-9;
    if !(l.propensity.is_finite() && l.propensity > 0.0 && l.propensity <= 1.0) {
        return Err(format!("propensity: {} is not in (0, 1]", l.propensity));
    }
    if let Some(r) = l.reward
        && !(r.is_finite() && (0.0..=1.0).contains(&r))
    {
        return Err(format!("reward: {r} is not in [0, 1]"));
    }
    let task = match tasks.get(l.task_type.as_ref()) {
        Some(&i) => i,
        None => {
            let i = u16::try_from(data.tasks.len())
                .map_err(|_| "task_type: more than 65535 task types".to_owned())?;
            tasks.insert(l.task_type.to_string(), i);
            data.tasks.push(l.task_type.to_string());
            i
        }
    };
    let key = (task, l.arm_id.to_string());
    let arm = match arms.get(&key) {
        Some(&a) => a,
        None => {
            let params: ParameterSet =
                serde_json::from_str(l.params.get()).map_err(|e| format!("params: {e}"))?;
            if data.arms.len() >= MAX_REPORT_ARMS {
                return Err(format!(
                    "arm_id: more than {MAX_REPORT_ARMS} distinct arms in the log (a task type has at most {})",
                    tuneloop_core::MAX_ARMS
                ));
            }
            let a = data.arms.len() as u32;
            data.arms.push(Arm {
                task,
                id: key.1.clone(),
                params,
            });
            arms.insert(key, a);
            a
        }
    };
    let (quality, cost, tokens) = match &l.outcome {
        Some(o) => {
            if !(o.quality.is_finite() && (0.0..=1.0).contains(&o.quality)) {
                return Err(format!("outcome.quality: {} is not in [0, 1]", o.quality));
            }
            if !(o.cost_usd.is_finite() && o.cost_usd >= 0.0) {
                return Err(format!(
                    "outcome.cost_usd: {} is not a finite value >= 0",
                    o.cost_usd
                ));
            }
            (
                o.quality as f32,
                o.cost_usd as f32,
                (o.prompt_tokens + o.completion_tokens) as f32,
            )
        }
        None => (f32::NAN, f32::NAN, f32::NAN),
    };
    if let Some(e) = l.episode_id {
        let entry = data.episodes.entry(e.as_u128()).or_insert((0, f32::NAN));
        entry.0 = entry.0.saturating_add(1);
        if let Some(r) = l.reward {
            entry.1 = r as f32;
        }
    }
    Ok(Row {
        t,
        task,
        cohort: l.cohort,
        phase: l.phase,
        arm,
        reward: l.reward.map_or(f32::NAN, |r| r as f32),
        quality,
        cost,
        tokens,
        propensity: l.propensity,
        has_outcome: l.outcome.is_some(),
    })
}
