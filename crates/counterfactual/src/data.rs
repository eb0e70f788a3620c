//! Estimator-level input: one logged round per row, with the evaluated
//! policy's distribution (`target`) and optionally a reward model's
//! predictions (`reward_hat`) over the round's `K` actions.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far a `target` row's sum may be from 1.
pub const TARGET_SUM_TOLERANCE: f64 = 1e-6;

/// One logged round, as in `tuneloop ope --input`.
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
        let mut data = OpeData::empty();
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

impl OpeData {
    fn empty() -> Self {
        OpeData {
            n: 0,
            k: 0,
            action: Vec::new(),
            reward: Vec::new(),
            pscore: Vec::new(),
            target: Vec::new(),
            reward_hat: None,
        }
    }
}

/// Bytes of whole lines parsed at a time: enough to share among the cores,
/// few enough that a large file does not sit in memory as text.
const CHUNK: usize = 4 << 20;

/// Reads estimator-level JSON Lines (gzip if the name ends in `.gz`, with
/// the `gzip` feature): one [`OpeRound`] a line, parsed by serde_json.
/// Blank lines are skipped. The file is read in chunks of whole lines;
/// each chunk's lines are parsed on every core (feature `parallel`) while
/// the next chunk is read, and appended in file order.
///
/// # Errors
/// [`Error::Io`], or [`Error::InvalidLine`] naming the first bad line and
/// its field.
pub fn read_jsonl(path: &Path) -> Result<OpeData> {
    read_jsonl_limited(path, DEFAULT_MAX_VALUES)
}

/// Most values [`read_jsonl`] reads, counted as rounds × (actions + 8):
/// each round's target probabilities and predicted rewards, and the eight
/// per-round numbers the estimators keep. 2²⁴ of them hold, say, 1.6
/// million rounds of 2 actions, or 150,000 of 100, in well under 1 GB
/// while the estimators run (2²⁷ target probabilities alone, the limit
/// before, let a small gzip file take more than 4 GB).
pub const DEFAULT_MAX_VALUES: usize = 1 << 24;

/// As [`read_jsonl`], reading at most `max_values` values (rounds ×
/// (actions + 8), see [`DEFAULT_MAX_VALUES`]), so that a small compressed
/// file cannot make the rounds outgrow memory.
///
/// # Errors
/// As [`read_jsonl`], and [`Error::InvalidLine`] at the line that passes
/// the limit.
pub fn read_jsonl_limited(path: &Path, max_values: usize) -> Result<OpeData> {
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let bad = |line: usize, reason: String| Error::InvalidLine {
        path: name.clone(),
        line,
        reason,
    };
    let mut input = crate::input::open(path).map_err(io)?;
    let mut carry = Vec::new();
    let mut chunk = next_chunk(&mut input, &mut carry).map_err(io)?;
    let mut data = OpeData::empty();
    let mut lines_before = 0;
    // Blank bytes since the last round (to a chunk's precision).
    let mut blank = 0u64;
    while !chunk.is_empty() {
        let (next, parsed) = crate::par::join(
            || next_chunk(&mut input, &mut carry),
            || parse_lines(&chunk),
        );
        if parsed.is_empty() {
            blank += chunk.len() as u64;
            if blank > crate::input::MAX_BLANK_BYTES {
                return Err(bad(
                    lines_before + memchr::memchr_iter(b'\n', &chunk).count(),
                    format!(
                        "more than {} MiB of blank lines without a round (input::MAX_BLANK_BYTES): stopped",
                        crate::input::MAX_BLANK_BYTES >> 20
                    ),
                ));
            }
        } else {
            blank = 0;
        }
        for (line, round) in parsed {
            let line = lines_before + line;
            let round = round.map_err(|reason| bad(line, reason))?;
            data.push(round).map_err(|e| match e {
                Error::InvalidRound { field, reason, .. } => {
                    bad(line, format!("field `{field}`: {reason}"))
                }
                other => other,
            })?;
            if data.n.saturating_mul(data.k.saturating_add(8)) > max_values {
                return Err(bad(
                    line,
                    format!(
                        "the input holds more than {max_values} values (rounds × (actions + 8)): the limit (`ope --max-values`)"
                    ),
                ));
            }
        }
        lines_before += memchr::memchr_iter(b'\n', &chunk).count();
        chunk = next.map_err(io)?;
    }
    if data.n == 0 {
        return Err(Error::EmptyFile { path: name });
    }
    Ok(data)
}

/// The next `CHUNK` bytes or so of `input`, cut after a line end (a line
/// longer than a chunk is read whole); the rest of the last line waits in
/// `carry`. Empty at the end of the input. Each byte is searched for a line
/// end once, so a long line costs linear time.
fn next_chunk(input: &mut dyn Read, carry: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    // What came before `start` holds no line end: the carried partial line,
    // or bytes already searched.
    let mut buf = std::mem::take(carry);
    loop {
        let start = buf.len();
        let got = Read::take(&mut *input, CHUNK as u64).read_to_end(&mut buf)?;
        if got == 0 {
            return Ok(buf);
        }
        if buf.len() >= CHUNK
            && let Some(cut) = memchr::memrchr(b'\n', &buf[start..])
        {
            *carry = buf.split_off(start + cut + 1);
            return Ok(buf);
        }
        if buf.len() > CHUNK + crate::input::MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a line longer than {} bytes (input::MAX_LINE_BYTES)",
                    crate::input::MAX_LINE_BYTES
                ),
            ));
        }
    }
}

/// The non-blank lines of `chunk`, each parsed, with their 1-based numbers
/// within it.
fn parse_lines(chunk: &[u8]) -> Vec<(usize, std::result::Result<OpeRound, String>)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, end) in memchr::memchr_iter(b'\n', chunk)
        .chain(std::iter::once(chunk.len()))
        .enumerate()
    {
        let text = &chunk[start..end];
        start = end + 1;
        if !text.iter().all(u8::is_ascii_whitespace) {
            lines.push((i + 1, text));
        }
    }
    crate::par::map_range(lines.len(), |i| {
        let (line, text) = lines[i];
        let round =
            serde_json::from_slice::<OpeRound>(text).map_err(|e| describe_json_error(text, &e));
        (line, round)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<OpeData> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tempdir".into(),
            source: e,
        })?;
        let path = dir.path().join("rounds.jsonl");
        std::fs::write(&path, text).map_err(|e| Error::Io {
            path: "rounds.jsonl".into(),
            source: e,
        })?;
        read_jsonl(&path)
    }

    #[test]
    fn an_integer_action_written_as_a_float_is_refused_naming_the_field() {
        // One parse path: `3.0` is not an integer, whatever the line's shape.
        let e =
            read("{\"action\": 3.0, \"reward\": 1, \"propensity\": 0.5, \"target\": [0.5, 0.5]}\n")
                .map(|d| d.len());
        match e {
            Err(Error::InvalidLine {
                line: 1, reason, ..
            }) => {
                assert!(reason.contains("field `action`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rounds_beyond_the_value_limit_are_refused_at_the_line_that_passes_it() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tempdir".into(),
            source: e,
        })?;
        let path = dir.path().join("rounds.jsonl");
        let line = "{\"action\": 0, \"reward\": 1, \"propensity\": 0.5, \"target\": [0.5, 0.5]}\n";
        std::fs::write(&path, line.repeat(10)).map_err(|e| Error::Io {
            path: "rounds.jsonl".into(),
            source: e,
        })?;
        // 10 rounds of 2 actions: 10 × (2 + 8) values.
        assert_eq!(read_jsonl_limited(&path, 100)?.len(), 10);
        match read_jsonl_limited(&path, 99) {
            Err(Error::InvalidLine {
                line: 10, reason, ..
            }) => {
                assert!(reason.contains("--max-values"), "{reason}");
            }
            other => panic!("{:?}", other.map(|d| d.len())),
        }
        Ok(())
    }

    #[test]
    fn chunks_keep_line_numbers_and_lines_longer_than_a_chunk() -> Result<()> {
        // Three chunks' worth of lines, one line longer than a chunk, and
        // a bad line at the end: its number counts every line before it.
        let k = 200_000;
        let long_target = format!("[1{}]", ",0".repeat(k - 1));
        let short = "{\"action\": 0, \"reward\": 1, \"propensity\": 0.5, \"target\": [1]}\n";
        let mut text = String::new();
        let mut lines = 0;
        while text.len() < 2 * CHUNK {
            text.push_str(short);
            lines += 1;
        }
        text.push('\n');
        lines += 1;
        let data = read(&text)?;
        assert_eq!(data.len(), lines - 1);
        text.push_str(&format!(
            "{{\"action\": 0, \"reward\": 1, \"propensity\": 0.5, \"target\": {long_target}}}\n"
        ));
        match read(&text) {
            Err(Error::InvalidLine { line, reason, .. }) => {
                assert_eq!(line, lines + 1);
                assert!(reason.contains("field `target`"), "{reason}");
            }
            other => panic!("{:?}", other.map(|d| d.len())),
        }
        Ok(())
    }
}
