//! Estimator-level input: one logged round per row, with the evaluated
//! policy's distribution (`target`) and optionally a reward model's
//! predictions (`reward_hat`) over the round's `K` actions.

use std::io::{BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far a `target` row's sum may be from 1.
pub const TARGET_SUM_TOLERANCE: f64 = 1e-6;

/// One logged round, as in `tuneloop ope --input` (see DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeRound {
    /// The action the logging policy took, in `0..K`.
    pub action: usize,
    /// The reward observed.
    pub reward: f64,
    /// The logging policy's probability of `action`, in `(0, 1]`.
    pub propensity: f64,
    /// The evaluated policy's distribution over the `K` actions.
    pub target: Vec<f64>,
    /// A reward model's prediction for each action (needed by DM and the
    /// DR family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_hat: Option<Vec<f64>>,
}

/// Validated rounds in flat arrays: what every estimator reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OpeData {
    n: usize,
    k: usize,
    action: Vec<usize>,
    reward: Vec<f64>,
    pscore: Vec<f64>,
    /// Row-major `n × k`.
    target: Vec<f64>,
    /// Row-major `n × k`, if every round has one.
    reward_hat: Option<Vec<f64>>,
}

fn invalid(round: usize, field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidRound {
        round,
        field,
        reason: reason.into(),
    }
}

impl OpeData {
    /// Checks every round and lays the data out flat.
    ///
    /// # Errors
    /// [`Error::Empty`], or [`Error::InvalidRound`] naming the first bad
    /// round and field: propensity outside `(0, 1]`, a `target` of another
    /// width than the first round's or not summing to 1, an action out of
    /// range, a non-finite number, `reward_hat` in some rounds only.
    pub fn new(rounds: impl IntoIterator<Item = OpeRound>) -> Result<Self> {
        let mut data = OpeData {
            n: 0,
            k: 0,
            action: Vec::new(),
            reward: Vec::new(),
            pscore: Vec::new(),
            target: Vec::new(),
            reward_hat: None,
        };
        for r in rounds {
            data.push(r)?;
        }
        if data.n == 0 {
            return Err(Error::Empty);
        }
        Ok(data)
    }

    fn push(&mut self, r: OpeRound) -> Result<()> {
        let i = self.n;
        if i == 0 {
            if r.target.is_empty() {
                return Err(invalid(
                    i,
                    "target",
                    "empty: expected one probability per action",
                ));
            }
            self.k = r.target.len();
            if r.reward_hat.is_some() {
                self.reward_hat = Some(Vec::new());
            }
        }
        let k = self.k;
        if r.target.len() != k {
            return Err(invalid(
                i,
                "target",
                format!("{} values, but the first round has {k}", r.target.len()),
            ));
        }
        if r.action >= k {
            return Err(invalid(
                i,
                "action",
                format!("{} is not below the number of actions {k}", r.action),
            ));
        }
        if !r.reward.is_finite() {
            return Err(invalid(
                i,
                "reward",
                format!("{} is not a finite number", r.reward),
            ));
        }
        if !(r.propensity.is_finite() && r.propensity > 0.0 && r.propensity <= 1.0) {
            return Err(invalid(
                i,
                "propensity",
                format!("{} is not in (0, 1]", r.propensity),
            ));
        }
        let mut sum = 0.0;
        for (a, &p) in r.target.iter().enumerate() {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(invalid(
                    i,
                    "target",
                    format!("probability of action {a} is {p}, not in [0, 1]"),
                ));
            }
            sum += p;
        }
        if (sum - 1.0).abs() > TARGET_SUM_TOLERANCE {
            return Err(invalid(
                i,
                "target",
                format!("probabilities sum to {sum}, not 1"),
            ));
        }
        match (&mut self.reward_hat, r.reward_hat) {
            (Some(all), Some(q)) => {
                if q.len() != k {
                    return Err(invalid(
                        i,
                        "reward_hat",
                        format!("{} values, expected {k}", q.len()),
                    ));
                }
                if let Some((a, v)) = q.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(invalid(
                        i,
                        "reward_hat",
                        format!("prediction for action {a} is {v}"),
                    ));
                }
                all.extend_from_slice(&q);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(invalid(
                    i,
                    "reward_hat",
                    "missing, but earlier rounds have it",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    i,
                    "reward_hat",
                    "present, but earlier rounds lack it",
                ));
            }
        }
        self.action.push(r.action);
        self.reward.push(r.reward);
        self.pscore.push(r.propensity);
        self.target.extend_from_slice(&r.target);
        self.n += 1;
        Ok(())
    }

    /// Number of rounds.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Never true for constructed data.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Number of actions.
    pub fn num_actions(&self) -> usize {
        self.k
    }
    /// Whether reward-model predictions are present.
    pub fn has_reward_hat(&self) -> bool {
        self.reward_hat.is_some()
    }
    /// Action of round `i`.
    pub fn action(&self, i: usize) -> usize {
        self.action[i]
    }
    /// Reward of round `i`.
    pub fn reward(&self, i: usize) -> f64 {
        self.reward[i]
    }
    /// Logging propensity of round `i`.
    pub fn propensity(&self, i: usize) -> f64 {
        self.pscore[i]
    }
    /// Target distribution of round `i`.
    pub fn target(&self, i: usize) -> &[f64] {
        &self.target[i * self.k..(i + 1) * self.k]
    }
    /// Reward-model predictions of round `i`.
    pub fn reward_hat(&self, i: usize) -> Option<&[f64]> {
        self.reward_hat
            .as_ref()
            .map(|q| &q[i * self.k..(i + 1) * self.k])
    }
}

/// Says which field of a line that did not deserialize is wrong, for a
/// message a person can act on; falls back to serde's own message.
fn describe_json_error(text: &[u8], err: &serde_json::Error) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        return format!("not valid JSON: {err}");
    };
    let Some(obj) = value.as_object() else {
        return "not a JSON object".into();
    };
    let number = |v: &serde_json::Value| v.is_number();
    let numbers = |v: &serde_json::Value| {
        v.as_array()
            .is_some_and(|a| a.iter().all(serde_json::Value::is_number))
    };
    type Check<'a> = (
        &'a str,
        bool,
        &'a dyn Fn(&serde_json::Value) -> bool,
        &'a str,
    );
    let checks: [Check<'_>; 5] = [
        (
            "action",
            true,
            &|v| v.as_u64().is_some(),
            "a non-negative integer",
        ),
        ("reward", true, &number, "a number"),
        ("propensity", true, &number, "a number"),
        ("target", true, &numbers, "an array of numbers"),
        (
            "reward_hat",
            false,
            &|v| v.is_null() || numbers(v),
            "an array of numbers",
        ),
    ];
    for (field, required, ok, what) in checks {
        match obj.get(field) {
            None if required => return format!("field `{field}`: missing"),
            Some(v) if !ok(v) => return format!("field `{field}`: expected {what}, found {v}"),
            _ => {}
        }
    }
    if let Some(k) = obj
        .keys()
        .find(|k| !["action", "reward", "propensity", "target", "reward_hat"].contains(&k.as_str()))
    {
        return format!("field `{k}`: unknown field");
    }
    err.to_string()
}

/// Reads estimator-level JSON Lines (gzip if the name ends in `.gz`).
/// Blank lines are skipped. A reader thread inflates the file in
/// newline-aligned chunks while the calling thread parses them, so
/// decompression and parsing overlap.
///
/// # Errors
/// [`Error::Io`], or [`Error::InvalidLine`] naming the line and the field.
pub fn read_jsonl(path: &Path) -> Result<OpeData> {
    const CHUNK: usize = 1 << 20;
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader: Box<dyn Read + Send> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    let mut rounds = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let parsed: Result<()> = std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut carry: Vec<u8> = Vec::new();
            loop {
                let mut buf = std::mem::take(&mut carry);
                let start = buf.len();
                buf.resize(start + CHUNK, 0);
                let mut filled = start;
                // Fill the chunk (a decoder may return short reads).
                while filled < buf.len() {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(k) => filled += k,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                buf.truncate(filled);
                if filled == start {
                    if !buf.is_empty() {
                        let _ = tx.send(Ok(buf));
                    }
                    return;
                }
                // Keep the partial last line for the next chunk.
                if let Some(cut) = buf.iter().rposition(|&b| b == b'\n') {
                    carry = buf.split_off(cut + 1);
                }
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
        });
        let mut line_no = 0;
        for chunk in rx {
            let chunk = chunk.map_err(io)?;
            for text in chunk.split(|&b| b == b'\n') {
                line_no += 1;
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let round =
                    serde_json::from_slice::<OpeRound>(text).map_err(|e| Error::InvalidLine {
                        path: name.clone(),
                        line: line_no,
                        reason: describe_json_error(text, &e),
                    })?;
                rounds.push(round);
                lines.push(line_no);
            }
            // `split` yields an empty tail after the chunk's final newline,
            // counted above as a line: undo that.
            if chunk.last() == Some(&b'\n') {
                line_no -= 1;
            }
        }
        Ok(())
    });
    parsed?;
    OpeData::new(rounds).map_err(|e| match e {
        Error::InvalidRound {
            round,
            field,
            reason,
        } => Error::InvalidLine {
            path: name.clone(),
            line: lines.get(round).copied().unwrap_or(0),
            reason: format!("field `{field}`: {reason}"),
        },
        Error::Empty => Error::InvalidLine {
            path: name.clone(),
            line: 0,
            reason: "the file has no rounds".into(),
        },
        other => other,
    })
}
