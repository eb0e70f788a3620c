//! Reads a decision log into compact rows: one pass through the log's one
//! reader, the fields a report needs, each arm's parameters kept once.

use std::collections::HashMap;
use std::path::Path;

use tuneloop_core::{ArmId, Cohort, ParameterSet, Phase};
use tuneloop_counterfactual::{LogReader, LoggedDecision};

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
    /// NaN when unknown, and for a default reward (abandoned or expired:
    /// no call was observed; left out of every estimate, as the learner
    /// and `evaluate` leave it out).
    pub(crate) reward: f32,
    /// NaN without an outcome.
    pub(crate) quality: f32,
    pub(crate) cost: f32,
    pub(crate) tokens: f32,
    pub(crate) propensity: f64,
    pub(crate) has_outcome: bool,
    /// Abandoned or expired: logged with the configured default reward.
    pub(crate) defaulted: bool,
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
/// arm's parameters kept once. Read it with [`read_log`](crate::read_log).
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

/// Reads `path` (gzip if it ends in `.gz`) through the decision log's one
/// reader ([`LogReader`]): what `tuneloop evaluate` refuses, the report
/// refuses, with the same message. Reports progress every million lines
/// to `progress`.
pub(crate) fn load(path: &Path, progress: &dyn Fn(usize)) -> Result<Data> {
    let mut reader = LogReader::open(path).map_err(from_log)?;
    let mut data = Data::default();
    let mut tasks: HashMap<String, u16> = HashMap::new();
    let mut arms: HashMap<(u16, ArmId), u32> = HashMap::new();
    while let Some(record) = reader.next() {
        let record = record.map_err(from_log)?;
        if reader.line().is_multiple_of(1_000_000) {
            progress(reader.line());
        }
        let row = row(&record, &mut data, &mut tasks, &mut arms).map_err(|reason| {
            Error::BadInput(format!(
                "{}: line {}: {reason}",
                path.display(),
                reader.line()
            ))
        })?;
        data.rows.push(row);
    }
    data.warnings = reader.into_warnings();
    if data.rows.is_empty() {
        return Err(Error::BadInput(format!(
            "{}: no decision in the log",
            path.display()
        )));
    }
    // Decisions are logged when their outcome arrives: order by decision time.
    data.rows.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(data)
}

/// The log reader's refusals are bad input; a file that cannot be read
/// for another reason is the machine's.
fn from_log(e: tuneloop_counterfactual::Error) -> Error {
    match e.kind() {
        tuneloop_core::ErrorKind::BadInput => Error::BadInput(e.to_string()),
        _ => Error::Io(e.to_string()),
    }
}

/// One record as a compact row; the task type and arm are numbered on
/// first sight (bounded: [`MAX_REPORT_ARMS`]).
fn row(
    l: &LoggedDecision,
    data: &mut Data,
    tasks: &mut HashMap<String, u16>,
    arms: &mut HashMap<(u16, ArmId), u32>,
) -> Result<Row, String> {
    let t = l.timestamp.timestamp() as f64 + f64::from(l.timestamp.timestamp_subsec_nanos()) * 1e-9;
    let task = match tasks.get(l.task_type.as_str()) {
        Some(&i) => i,
        None => {
            let i = u16::try_from(data.tasks.len())
                .map_err(|_| "task_type: more than 65535 task types".to_owned())?;
            tasks.insert(l.task_type.clone(), i);
            data.tasks.push(l.task_type.clone());
            i
        }
    };
    let key = (task, l.arm_id);
    let arm = match arms.get(&key) {
        Some(&a) => a,
        None => {
            if data.arms.len() >= MAX_REPORT_ARMS {
                return Err(format!(
                    "arm_id: more than {MAX_REPORT_ARMS} distinct arms in the log (a task type has at most {})",
                    tuneloop_core::MAX_ARMS
                ));
            }
            let a = data.arms.len() as u32;
            data.arms.push(Arm {
                task,
                id: l.arm_id.to_string(),
                params: l.params.clone(),
            });
            arms.insert(key, a);
            a
        }
    };
    let (quality, cost, tokens) = match l.resolution.outcome() {
        Some(o) => (o.quality as f32, o.cost_usd as f32, o.total_tokens() as f32),
        None => (f32::NAN, f32::NAN, f32::NAN),
    };
    if let Some(e) = l.episode_id {
        let entry = data.episodes.entry(e.as_u128()).or_insert((0, f32::NAN));
        entry.0 = entry.0.saturating_add(1);
        if let Some(r) = l.resolution.recorded_reward() {
            entry.1 = r as f32;
        }
    }
    Ok(Row {
        t,
        task,
        cohort: l.cohort,
        phase: l.phase,
        arm,
        reward: l
            .resolution
            .recorded_reward()
            .map_or(f32::NAN, |r| r as f32),
        quality,
        cost,
        tokens,
        propensity: l.propensity,
        has_outcome: l.resolution.outcome().is_some(),
        defaulted: l.resolution.is_defaulted(),
    })
}
