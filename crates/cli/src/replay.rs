//! `tuneloop simulate --rewards FILE.csv`: replay of logged evaluations.
//!
//! The file has a header; every column named `reward_<arm>` holds the
//! reward that arm would have earned on that row (several models or
//! settings evaluated on the same prompts), in `[0, 1]`; every other column
//! is a numeric feature. One round per row, in file order: the policy sees
//! the row's features, chooses an arm and learns that arm's reward only.
//! Features are standardized with the file's column means and standard
//! deviations (rewards are not looked at), so that features of any scale
//! suit the policies' defaults.
//!
//! Read with the `csv` crate; cells are trimmed of spaces; an error names
//! the file, the line, the data row and the column.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use tuneloop_core::{DecisionId, Features, MAX_ARMS, SelectionKey};

use crate::error::{CliError, CliResult};
use crate::simulate::config;

/// Most feature columns a replay file may have.
const MAX_FEATURES: usize = 1024;

/// A replay file, read and checked.
#[derive(Debug)]
struct Rewards {
    arms: Vec<String>,
    features: Vec<String>,
    /// Row-major, `rows × features`.
    x: Vec<f64>,
    /// Row-major, `rows × arms`.
    r: Vec<f64>,
}

impl Rewards {
    fn read(path: &Path) -> CliResult<Self> {
        let name = path.display().to_string();
        let bad = |what: String| CliError::bad(format!("{name}: {what}"));
        let mut file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        // The header's length is checked before it is parsed.
        let mut start = Vec::with_capacity(crate::csv::MAX_HEADER_BYTES + 1);
        Read::take(
            Read::by_ref(&mut file),
            crate::csv::MAX_HEADER_BYTES as u64 + 1,
        )
        .read_to_end(&mut start)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
        crate::csv::check_header_line(&start).map_err(bad)?;
        let mut reader = ::csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(std::io::Cursor::new(start).chain(file));
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|c| c.trim().to_owned())
            .collect();
        if header.iter().all(String::is_empty) {
            return Err(bad("the file is empty (expected a header row)".into()));
        }
        // For each column: Some(arm index) or None (a feature).
        let mut arms = Vec::new();
        let mut features = Vec::new();
        let mut role = Vec::with_capacity(header.len());
        for c in &header {
            match c.strip_prefix("reward_") {
                Some("") => return Err(bad("a column is named `reward_` without an arm".into())),
                Some(arm) => {
                    if arms.iter().any(|a| a == arm) {
                        return Err(bad(format!("two columns are named `{c}`")));
                    }
                    role.push(Some(arms.len()));
                    arms.push(arm.to_owned());
                }
                None => {
                    role.push(None);
                    features.push(c.clone());
                }
            }
        }
        if arms.len() < 2 {
            return Err(bad(format!(
                "{} reward_<arm> column(s); a replay needs at least two arms",
                arms.len()
            )));
        }
        if arms.len() > MAX_ARMS || features.len() > MAX_FEATURES {
            return Err(bad(format!(
                "{} arms and {} features; at most {MAX_ARMS} arms and {MAX_FEATURES} features",
                arms.len(),
                features.len()
            )));
        }
        let mut data = Rewards {
            arms,
            features,
            x: Vec::new(),
            r: Vec::new(),
        };
        let mut record = ::csv::ByteRecord::new();
        let mut row = 0usize;
        let mut rewards = vec![0.0; data.arms.len()];
        while reader
            .read_byte_record(&mut record)
            .map_err(|e| bad(e.to_string()))?
        {
            row += 1;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != header.len() {
                return Err(bad(format!(
                    "line {line} (row {row}): {} cells, but the header has {} columns",
                    record.len(),
                    header.len()
                )));
            }
            for (c, cell) in record.iter().enumerate() {
                let cell = cell.trim_ascii();
                let value = fast_float2::parse::<f64, _>(cell)
                    .ok()
                    .filter(|v| v.is_finite());
                let at = || {
                    format!(
                        "line {line} (row {row}), column {} (`{}`)",
                        c + 1,
                        header[c]
                    )
                };
                match (role[c], value) {
                    (Some(a), Some(v)) if (0.0..=1.0).contains(&v) => rewards[a] = v,
                    (Some(_), _) => {
                        return Err(bad(format!(
                            "{}: `{}` is not a reward in [0, 1] (rescale the rewards)",
                            at(),
                            crate::csv::shown(cell)
                        )));
                    }
                    (None, Some(v)) => data.x.push(v),
                    (None, None) => {
                        return Err(bad(format!(
                            "{}: `{}` is not a finite number",
                            at(),
                            crate::csv::shown(cell)
                        )));
                    }
                }
            }
            data.r.extend_from_slice(&rewards);
        }
        if row == 0 {
            return Err(bad("no data rows after the header".into()));
        }
        Ok(data)
    }

    fn rows(&self) -> usize {
        self.r.len() / self.arms.len()
    }

    /// The features standardized by column: `(x − mean) / sd`, 0 for a
    /// constant column. Each column is first divided by its largest
    /// magnitude (which leaves the standardized values as they are), so
    /// that values near the ends of `f64` (±1.7e308) neither overflow the
    /// sum nor the squares.
    fn standardized(&self) -> Vec<f64> {
        let w = self.features.len();
        if w == 0 {
            return Vec::new();
        }
        let n = self.rows() as f64;
        let mut out = self.x.clone();
        for c in 0..w {
            let scale = self
                .x
                .iter()
                .skip(c)
                .step_by(w)
                .fold(0.0_f64, |m, v| m.max(v.abs()));
            if scale == 0.0 {
                out.iter_mut().skip(c).step_by(w).for_each(|v| *v = 0.0);
                continue;
            }
            let col = || self.x.iter().skip(c).step_by(w).map(|v| v / scale);
            let mean = col().map(|v| v / n).sum::<f64>();
            let sd = (col().map(|v| (v - mean).powi(2) / n).sum::<f64>()).sqrt();
            for v in out.iter_mut().skip(c).step_by(w) {
                *v = if sd > 0.0 {
                    (*v / scale - mean) / sd
                } else {
                    0.0
                };
            }
        }
        out
    }
}

/// Replays `path` with `policy`; see the module's documentation.
pub(crate) fn run(path: &Path, policy: &str, seed: u64) -> CliResult<Value> {
    let cfg = config(policy, false)?;
    let data = Rewards::read(path)?;
    let (k, w, n) = (data.arms.len(), data.features.len(), data.rows());
    let d = w + 1;
    let mut p = cfg.build(k, d)?;
    let eligible: Vec<usize> = (0..k).collect();
    let x = data.standardized();
    let mut chosen = vec![0u64; k];
    let mut total = 0.0;
    let mut buf = vec![0.0; d];
    let start = Instant::now();
    for row in 0..n {
        buf[0] = 1.0;
        buf[1..].copy_from_slice(&x[row * w..(row + 1) * w]);
        let ctx = Features::new(std::mem::take(&mut buf))?;
        let s = p.select(
            &ctx,
            &eligible,
            &SelectionKey::new(seed, DecisionId::from_u128(row as u128)),
        )?;
        let r = data.r[row * k + s.arm];
        p.update(&ctx, s.arm, r)?;
        buf = ctx.into_vec();
        chosen[s.arm] += 1;
        total += r;
    }
    let secs = start.elapsed().as_secs_f64();
    let fixed: Vec<f64> = (0..k)
        .map(|a| (0..n).map(|row| data.r[row * k + a]).sum::<f64>() / n as f64)
        .collect();
    let best = (0..k).fold(0, |b, a| if fixed[a] > fixed[b] { a } else { b });
    let oracle = (0..n)
        .map(|row| {
            data.r[row * k..(row + 1) * k]
                .iter()
                .copied()
                .fold(0.0, f64::max)
        })
        .sum::<f64>()
        / n as f64;
    let average = total / n as f64;
    Ok(json!({
        "policy": policy,
        "rounds": n,
        "arms": data.arms,
        "features": data.features,
        "average_reward": average,
        "best_fixed_arm": data.arms[best],
        "best_fixed_reward": fixed[best],
        "regret_vs_best_fixed": fixed[best] - average,
        "oracle_reward": oracle,
        "fixed_arm_rewards": data.arms.iter().cloned().zip(fixed.iter().map(|&f| Value::from(f))).collect::<serde_json::Map<_, _>>(),
        "chosen": data.arms.iter().cloned().zip(chosen.into_iter().map(Value::from)).collect::<serde_json::Map<_, _>>(),
        "decisions_per_second": n as f64 / secs.max(1e-9),
        "seconds": secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(f.path(), text).unwrap_or_else(|e| panic!("{e}"));
        f
    }

    fn error_of(text: &str) -> String {
        let f = file(text);
        match run(f.path(), "linucb", 1) {
            Err(e) => e.to_string(),
            Ok(v) => panic!("accepted: {v}"),
        }
    }

    #[test]
    fn the_best_fixed_arm_and_the_counts_are_those_of_the_file() -> CliResult<()> {
        // Arm b pays 1 on every row, a pays 0: b is best in hindsight
        // (1.0) and a learner ends up choosing it nearly always.
        let mut text = String::from("x,reward_a,reward_b\n");
        for i in 0..400 {
            text.push_str(&format!("{},0,1\n", i % 7));
        }
        let f = file(&text);
        let v = run(f.path(), "linucb", 1)?;
        assert_eq!(v["rounds"], 400);
        assert_eq!(v["arms"], json!(["a", "b"]));
        assert_eq!(v["best_fixed_arm"], "b");
        assert_eq!(v["best_fixed_reward"], 1.0);
        assert_eq!(v["oracle_reward"], 1.0);
        let (a, b) = (
            v["chosen"]["a"].as_u64().unwrap_or(0),
            v["chosen"]["b"].as_u64().unwrap_or(0),
        );
        assert_eq!(a + b, 400);
        // The average is what the choices earned: b's count / rounds.
        assert_eq!(v["average_reward"], b as f64 / 400.0);
        assert!(b > 360, "{v}");
        Ok(())
    }

    #[test]
    fn the_learner_follows_a_feature_that_says_which_arm_pays() -> CliResult<()> {
        // Rows alternate: on x = 1 arm a pays, on x = 0 arm b. Each fixed
        // arm earns 0.5; the oracle 1; a contextual learner far above 0.5.
        let mut text = String::from("reward_a,x,reward_b\n");
        for i in 0..2000 {
            let x = i % 2;
            text.push_str(&format!("{x},{x},{}\n", 1 - x));
        }
        let f = file(&text);
        let v = run(f.path(), "linucb", 3)?;
        assert_eq!(v["best_fixed_reward"], 0.5);
        assert_eq!(v["oracle_reward"], 1.0);
        let avg = v["average_reward"].as_f64().unwrap_or(0.0);
        assert!(avg > 0.9, "{v}");
        Ok(())
    }

    #[test]
    fn bad_cells_are_named_by_row_and_column() {
        let e = error_of("x,reward_a,reward_b\n1,0.5,0.5\n2,0.5,high\n");
        assert!(
            e.contains("line 3 (row 2), column 3 (`reward_b`)") && e.contains("`high`"),
            "{e}"
        );
        let e = error_of("x,reward_a,reward_b\n1,0.5,1.5\n");
        assert!(e.contains("row 1") && e.contains("[0, 1]"), "{e}");
        let e = error_of("x,reward_a,reward_b\nNaN,0.5,0.5\n");
        assert!(e.contains("column 1 (`x`)"), "{e}");
        let e = error_of("x,reward_a,reward_b\n1,0.5\n");
        assert!(e.contains("2 cells"), "{e}");
        let e = error_of("x,reward_a\n1,0.5\n");
        assert!(e.contains("at least two arms"), "{e}");
        let e = error_of("reward_a,reward_a\n1,0.5\n");
        assert!(e.contains("two columns"), "{e}");
        let e = error_of("x,reward_a,reward_b\n");
        assert!(e.contains("no data rows"), "{e}");
        let e = error_of("");
        assert!(e.contains("empty"), "{e}");
    }
}
