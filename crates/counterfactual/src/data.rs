//! Estimator-level input: one logged round per row, with the evaluated
//! policy's distribution (`target`) and optionally a reward model's
//! predictions (`reward_hat`) over the round's `K` actions.

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use tuneloop_core::decimal::parse_prefix;

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

/// A scanner for the one shape `ope` lines have, faster than a general JSON
/// deserializer; numbers go through `f64::from_str`, which rounds
/// correctly. Anything it does not recognize (escapes in keys, unknown or
/// repeated keys, other types) makes it give up, and the caller falls back
/// to serde_json, which also explains errors.
struct FastLine<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> FastLine<'a> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        while let Some(&b) = self.s.get(self.i) {
            match b {
                b'"' => {
                    self.i += 1;
                    return Some(&self.s[start..self.i - 1]);
                }
                b'\\' => return None,
                _ => self.i += 1,
            }
        }
        None
    }

    fn number(&mut self) -> Option<f64> {
        self.ws();
        let start = self.i;
        // One pass for decimals (`-12.0345`, `5.3e-05`), exactly as
        // `from_str` rounds them; anything else is scanned again for
        // `from_str`.
        if let Some((v, len)) = parse_prefix(&self.s[start..]) {
            self.i = start + len;
            return Some(v);
        }
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        // The bytes are ASCII digits, signs, points and exponents.
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn numbers(&mut self) -> Option<Vec<f64>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(64);
        if self.eat(b']').is_some() {
            return Some(out);
        }
        loop {
            out.push(self.number()?);
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                return Some(out);
            }
        }
    }

    fn round(line: &'a [u8]) -> Option<OpeRound> {
        let mut p = FastLine { s: line, i: 0 };
        p.eat(b'{')?;
        let (mut action, mut reward, mut propensity, mut target, mut reward_hat) =
            (None, None, None, None, None);
        loop {
            let key = p.key()?;
            p.eat(b':')?;
            let fresh = match key {
                b"action" => {
                    let v = p.number()?;
                    (v >= 0.0 && v.fract() == 0.0 && v < 9.0e15).then_some(())?;
                    action.replace(v as usize).is_none()
                }
                b"reward" => reward.replace(p.number()?).is_none(),
                b"propensity" => propensity.replace(p.number()?).is_none(),
                b"target" => target.replace(p.numbers()?).is_none(),
                b"reward_hat" => reward_hat.replace(p.numbers()?).is_none(),
                _ => return None,
            };
            if !fresh {
                return None;
            }
            if p.eat(b',').is_none() {
                p.eat(b'}')?;
                break;
            }
        }
        p.ws();
        (p.i == p.s.len()).then_some(())?;
        Some(OpeRound {
            action: action?,
            reward: reward?,
            propensity: propensity?,
            target: target?,
            reward_hat,
        })
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

/// One chunk of lines, validated and laid out flat by a parser thread.
struct ParsedChunk {
    /// The chunk's rounds (validated as if the chunk were the whole file).
    data: OpeData,
    /// The chunk's first round's width and whether it has `reward_hat`,
    /// with its line: what the chunks must agree on.
    first: Option<(usize, bool, usize)>,
    /// Lines in the chunk.
    line_count: usize,
    /// The first bad line within the chunk and what is wrong with it.
    error: Option<(usize, String)>,
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

    /// Appends `other`, which has the same width and `reward_hat` presence.
    fn append(&mut self, other: OpeData) {
        if self.n == 0 {
            *self = other;
            return;
        }
        self.n += other.n;
        self.action.extend_from_slice(&other.action);
        self.reward.extend_from_slice(&other.reward);
        self.pscore.extend_from_slice(&other.pscore);
        self.target.extend_from_slice(&other.target);
        if let (Some(all), Some(q)) = (&mut self.reward_hat, other.reward_hat) {
            all.extend_from_slice(&q);
        }
    }
}

/// Parses and validates a chunk of whole lines.
fn parse_chunk(chunk: &[u8]) -> ParsedChunk {
    let mut out = ParsedChunk {
        data: OpeData::empty(),
        first: None,
        line_count: 0,
        error: None,
    };
    // memchr finds line ends many bytes at a time; `split` took a tenth of
    // the whole read comparing one byte at a time.
    let ends = memchr::memchr_iter(b'\n', chunk).chain(std::iter::once(chunk.len()));
    let mut start = 0;
    for end in ends {
        let text = &chunk[start..end];
        start = end + 1;
        out.line_count += 1;
        if out.error.is_some() || text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let round = match FastLine::round(text) {
            Some(r) => r,
            None => match serde_json::from_slice::<OpeRound>(text) {
                Ok(r) => r,
                Err(e) => {
                    out.error = Some((out.line_count, describe_json_error(text, &e)));
                    continue;
                }
            },
        };
        out.first.get_or_insert((
            round.target.len(),
            round.reward_hat.is_some(),
            out.line_count,
        ));
        if let Err(e) = out.data.push(round) {
            let reason = match e {
                Error::InvalidRound { field, reason, .. } => format!("field `{field}`: {reason}"),
                other => other.to_string(),
            };
            out.error = Some((out.line_count, reason));
        }
    }
    // The lines end with an empty tail after the chunk's final newline,
    // counted above as a line: undo that.
    if chunk.last() == Some(&b'\n') {
        out.line_count -= 1;
    }
    out
}

/// Reads estimator-level JSON Lines (gzip if the name ends in `.gz`).
/// Blank lines are skipped. A reader thread inflates the file in
/// newline-aligned chunks while a parser thread parses them, so
/// decompression and parsing overlap; whenever the parser falls behind
/// (its queue is full) the reader parses the chunk at hand itself, and once
/// the file is read it parses what is left with the parser. Parsed chunks'
/// buffers go back to the reader for reuse.
///
/// # Errors
/// [`Error::Io`], or [`Error::InvalidLine`] naming the line and the field.
pub fn read_jsonl(path: &Path) -> Result<OpeData> {
    // One spawned parser; the reader parses too when the parser falls
    // behind and once the file is read.
    const PARSERS: usize = 1;
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let mut reader = BufReader::new(crate::input::open(path).map_err(io)?);
    let (tx, rx) = mpsc::sync_channel::<RawChunk>(2);
    let rx = Mutex::new(rx);
    let (done_tx, done_rx) = mpsc::channel::<DoneChunk>();
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let mut assembly = Assembly::new();
    let mut io_error = None;
    std::thread::scope(|scope| {
        let (rx, reader_done_tx) = (&rx, done_tx.clone());
        // The reader inflates gzip, the one sequential stage, and parses
        // only when the parser is behind: two parsers beside it would share
        // two cores three ways and slow the inflation down.
        let reader_spare_tx = spare_tx.clone();
        scope.spawn(move || {
            read_chunks(&mut reader, tx, &spare_rx, &reader_done_tx);
            drop(spare_rx);
            parse_chunks(rx, reader_done_tx, &reader_spare_tx);
        });
        for _ in 0..PARSERS {
            let (done_tx, spare_tx) = (done_tx.clone(), spare_tx.clone());
            scope.spawn(move || parse_chunks(rx, done_tx, &spare_tx));
        }
        drop(done_tx);
        // Chunks are put together in file order as they arrive, while the
        // rest are read; all are received, even after an error, so no
        // thread waits on a queue nobody empties.
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0;
        for part in done_rx {
            match part {
                Ok((seq, chunk)) => {
                    pending.insert(seq, chunk);
                    while let Some(chunk) = pending.remove(&next) {
                        assembly.add(chunk);
                        next += 1;
                    }
                }
                Err(e) => {
                    io_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = io_error {
        return Err(io(e));
    }
    let bad = |line: usize, reason: String| Error::InvalidLine {
        path: name.clone(),
        line,
        reason,
    };
    if let Some((line, reason)) = assembly.error {
        return Err(bad(line, reason));
    }
    if assembly.data.n == 0 {
        return Err(bad(0, "the file has no rounds".into()));
    }
    Ok(assembly.data)
}

/// The file's rounds, put together from its chunks in order.
struct Assembly {
    data: OpeData,
    /// Width and `reward_hat` presence of the file's first round.
    shape: Option<(usize, bool)>,
    /// Lines before the next chunk.
    offset: usize,
    /// The file's first bad line and what is wrong with it; chunks after
    /// it are not added.
    error: Option<(usize, String)>,
}

impl Assembly {
    fn new() -> Self {
        Assembly {
            data: OpeData::empty(),
            shape: None,
            offset: 0,
            error: None,
        }
    }

    /// Adds the next chunk in file order, or records why it does not fit.
    fn add(&mut self, part: ParsedChunk) {
        if self.error.is_some() {
            return;
        }
        if let Some((k, hat, line)) = part.first {
            let (k0, hat0) = *self.shape.get_or_insert((k, hat));
            if k != k0 {
                let reason = format!("field `target`: {k} values, but the first round has {k0}");
                self.error = Some((self.offset + line, reason));
                return;
            }
            if hat != hat0 {
                let reason = if hat0 {
                    "field `reward_hat`: missing, but earlier rounds have it"
                } else {
                    "field `reward_hat`: present, but earlier rounds lack it"
                };
                self.error = Some((self.offset + line, reason.into()));
                return;
            }
        }
        if let Some((line, reason)) = part.error {
            self.error = Some((self.offset + line, reason));
            return;
        }
        self.data.append(part.data);
        self.offset += part.line_count;
    }
}

/// A chunk of whole lines, numbered in file order.
type RawChunk = std::io::Result<(usize, Vec<u8>)>;

/// A chunk parsed (or the read error in its place), numbered in file order.
type DoneChunk = std::io::Result<(usize, ParsedChunk)>;

/// A parser: takes chunks until the reader is done and the queue is empty,
/// sends back each one parsed, and returns its buffer to the reader.
fn parse_chunks(
    rx: &Mutex<Receiver<RawChunk>>,
    done_tx: Sender<DoneChunk>,
    spare_tx: &Sender<Vec<u8>>,
) {
    loop {
        // The lock is held only to take the next chunk.
        let next = rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let sent = match next {
            Err(_) => return,
            Ok(Err(e)) => done_tx.send(Err(e)),
            Ok(Ok((seq, chunk))) => {
                let parsed = parse_chunk(&chunk);
                // The reader may be done and gone: then the buffer is dropped.
                let _ = spare_tx.send(chunk);
                done_tx.send(Ok((seq, parsed)))
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Reads `reader` in chunks of about `READ_CHUNK` bytes cut at line ends and
/// sends them, numbered, until the end or the first error (sent too); a
/// chunk the parsers' queue has no room for, it parses itself and sends to
/// `done_tx`. Fills buffers the parsers have returned before it allocates
/// new ones (fresh memory costs a page fault per 4 KiB).
fn read_chunks(
    reader: &mut dyn Read,
    tx: SyncSender<RawChunk>,
    spare_rx: &Receiver<Vec<u8>>,
    done_tx: &Sender<DoneChunk>,
) {
    let mut own_spare = None;
    let mut carry: Vec<u8> = Vec::new();
    let mut seq = 0;
    loop {
        let mut buf = own_spare
            .take()
            .or_else(|| spare_rx.try_recv().ok())
            .unwrap_or_default();
        buf.clear();
        buf.append(&mut carry);
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
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
                let _ = tx.send(Ok((seq, buf)));
            }
            return;
        }
        // Keep the partial last line for the next chunk; a chunk with no
        // line end yet is all partial line: read on before sending any.
        match memchr::memrchr(b'\n', &buf) {
            Some(cut) => carry = buf.split_off(cut + 1),
            None => {
                carry = buf;
                continue;
            }
        }
        match tx.try_send(Ok((seq, buf))) {
            Ok(()) => {}
            Err(TrySendError::Full(Ok((seq, buf)))) => {
                if done_tx.send(Ok((seq, parse_chunk(&buf)))).is_err() {
                    return;
                }
                own_spare = Some(buf);
            }
            Err(_) => return,
        }
        seq += 1;
    }
}

/// Bytes per chunk handed to a parser.
const READ_CHUNK: usize = 1 << 19;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_equal_from_str_bit_for_bit() {
        use tuneloop_core::hash::splitmix64;
        let parse = |text: &str| {
            let mut p = FastLine {
                s: text.as_bytes(),
                i: 0,
            };
            p.number().filter(|_| p.i == text.len())
        };
        let mut state = 7u64;
        let mut next = |k: u64| {
            state = splitmix64(state);
            state % k
        };
        for _ in 0..200_000 {
            let digits = 1 + next(24) as usize;
            let mut s = String::new();
            if next(2) == 0 {
                s.push('-');
            }
            let point = next(digits as u64 + 1) as usize;
            for i in 0..digits {
                if i == point && i > 0 {
                    s.push('.');
                }
                s.push(char::from(b'0' + next(10) as u8));
            }
            if next(8) == 0 {
                s.push_str(&format!("e-{}", next(30)));
            }
            let reference: f64 = s.parse().unwrap();
            assert_eq!(
                parse(&s).map(f64::to_bits),
                Some(reference.to_bits()),
                "{s}"
            );
        }
        for odd in [
            "",
            "-",
            ".5",
            "5.",
            "1e5",
            "+1",
            "1.2.3",
            "--1",
            "12345678901234567890",
            "-0.0",
            "9007199254740993",
        ] {
            assert_eq!(
                parse(odd).map(f64::to_bits),
                odd.parse::<f64>().ok().map(f64::to_bits),
                "{odd}"
            );
        }
    }

    #[test]
    fn the_fast_path_agrees_with_serde_json() {
        let lines = [
            r#"{"action": 3, "reward": 1.0, "propensity": 0.0294117647058823, "target": [0.05268, 1e-5, 0.1], "reward_hat": [0.0031980304197504433, 2.5E-3, 0]}"#,
            r#"{ "target":[0.5,0.5] , "propensity":0.5,"reward":-0.25,"action":0 }"#,
            r#"{"action": 1, "reward": 0, "propensity": 1, "target": [0, 1], "reward_hat": null}"#,
        ];
        for l in lines {
            let slow: OpeRound = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            match FastLine::round(l.as_bytes()) {
                Some(fast) => assert_eq!(fast, slow, "{l}"),
                // `null` is left to serde_json: the fallback handles it.
                None => assert!(l.contains("null"), "{l}"),
            }
        }
    }

    #[test]
    fn the_fast_path_gives_up_on_anything_unusual() {
        for l in [
            r#"{"action": 1.5, "reward": 0, "propensity": 1, "target": [1]}"#,
            r#"{"action": 0, "action": 0, "reward": 0, "propensity": 1, "target": [1]}"#,
            r#"{"action": 0, "reward": "x", "propensity": 1, "target": [1]}"#,
            r#"{"action": 0, "reward": 0, "propensity": 1, "target": [1], "extra": 2}"#,
            r#"{"action": 0, "reward": 0, "propensity": 1}"#,
            r#"{"act\u0069on": 0, "reward": 0, "propensity": 1, "target": [1]}"#,
            r#"{"action": 0, "reward": 0, "propensity": 1, "target": [1]} trailing"#,
        ] {
            assert!(FastLine::round(l.as_bytes()).is_none(), "{l}");
        }
    }
}
