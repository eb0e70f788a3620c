//! [`Scorecard`]: per provider, model and domain — calls, successes,
//! verified successes (accuracy), latency over the last 100 calls and as an
//! EWMA, cost — persisted as JSON, thread-safe, and the basis of adaptive
//! selection.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable naming the scorecard file when none is configured.
pub const SCORECARD_ENV: &str = "TUNELOOP_SCORECARD";

/// Latencies kept per entry.
pub const LATENCY_WINDOW: usize = 100;

/// Adaptive-selection thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardConfig {
    /// Verified calls before accuracy counts (default 10).
    pub min_samples: u64,
    /// Accuracy below which a model is dropped (default 0.3).
    pub drop_below: f64,
    /// Accuracy above which a model is favoured (default 0.7).
    pub favour_above: f64,
    /// Weight of the newest latency in the EWMA (default 0.2).
    pub ewma_alpha: f64,
}

impl Default for ScorecardConfig {
    fn default() -> Self {
        ScorecardConfig {
            min_samples: 10,
            drop_below: 0.3,
            favour_above: 0.7,
            ewma_alpha: 0.2,
        }
    }
}

/// The record of one provider, model and domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an answer.
    pub successes: u64,
    /// Answers verified correct.
    pub verified_successes: u64,
    /// Answers checked (correct or not).
    pub verified: u64,
    /// The last [`LATENCY_WINDOW`] latencies, in ms.
    pub latencies_ms: VecDeque<f64>,
    /// Exponentially weighted latency, in ms.
    pub ewma_latency_ms: Option<f64>,
    /// Total cost, in USD.
    pub cost_usd: f64,
}

impl Entry {
    /// Checks what a file or a snapshot could get wrong: counts that
    /// contradict each other (more successes than calls, more verified
    /// successes than verifications), latencies and a cost that are
    /// negative or not finite, a latency window longer than
    /// [`LATENCY_WINDOW`].
    ///
    /// # Errors
    /// The field at fault and why.
    pub fn validate(&self) -> Result<(), String> {
        if self.successes > self.calls {
            return Err(format!(
                "successes: {} is more than the {} calls",
                self.successes, self.calls
            ));
        }
        if self.verified_successes > self.verified {
            return Err(format!(
                "verified_successes: {} is more than the {} verified",
                self.verified_successes, self.verified
            ));
        }
        let bad = |v: f64| !(v.is_finite() && v >= 0.0);
        if let Some(v) = self.latencies_ms.iter().find(|v| bad(**v)) {
            return Err(format!("latencies_ms: {v} is not a latency (finite, >= 0)"));
        }
        if self.latencies_ms.len() > LATENCY_WINDOW {
            return Err(format!(
                "latencies_ms: {} values, more than the window's {LATENCY_WINDOW}",
                self.latencies_ms.len()
            ));
        }
        if let Some(v) = self.ewma_latency_ms.filter(|v| bad(*v)) {
            return Err(format!(
                "ewma_latency_ms: {v} is not a latency (finite, >= 0)"
            ));
        }
        if bad(self.cost_usd) {
            return Err(format!(
                "cost_usd: {} is not a cost (finite, >= 0)",
                self.cost_usd
            ));
        }
        Ok(())
    }

    /// Verified accuracy, once `min_samples` answers were checked.
    pub fn accuracy(&self, min_samples: u64) -> Option<f64> {
        (self.verified >= min_samples.max(1))
            .then(|| self.verified_successes as f64 / self.verified as f64)
    }
}

/// What adaptive selection makes of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Too few verified samples, or accuracy between the thresholds.
    Neutral,
    /// Accuracy above `favour_above`.
    Favoured,
    /// Accuracy below `drop_below`: not selected.
    Dropped,
}

/// Weights of the routing score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreWeights {
    /// Weight of latency.
    pub latency: f64,
    /// Weight of cost.
    pub cost: f64,
    /// Weight of reliability.
    pub reliability: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            latency: 0.3,
            cost: 0.3,
            reliability: 0.4,
        }
    }
}

/// A thread-safe scorecard, persisted as JSON (atomic writes).
#[derive(Debug)]
pub struct Scorecard {
    config: ScorecardConfig,
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

/// Every entry of `entries` validates, or the first that does not, by key.
fn check(entries: &BTreeMap<String, Entry>) -> Result<(), String> {
    entries
        .iter()
        .try_for_each(|(k, e)| e.validate().map_err(|m| format!("entry `{k}`: {m}")))
}

fn key(provider: &str, model: &str, domain: &str) -> String {
    format!("{provider}/{model}/{domain}")
}

impl Scorecard {
    /// A scorecard kept in memory.
    pub fn in_memory(config: ScorecardConfig) -> Self {
        Scorecard {
            config,
            path: None,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// A scorecard persisted at `path` — or, if `None`, at the path in
    /// [`SCORECARD_ENV`] (in memory if unset) — loaded if the file exists.
    ///
    /// # Errors
    /// An I/O error, or invalid data for a file that does not parse.
    pub fn open(path: Option<&Path>, config: ScorecardConfig) -> std::io::Result<Self> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(SCORECARD_ENV).map(PathBuf::from));
        let entries = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read(p)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                let entries: BTreeMap<String, Entry> =
                    serde_json::from_slice(&text).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {e}", p.display()),
                        )
                    })?;
                check(&entries).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", p.display()),
                    )
                })?;
                entries
            }
            _ => BTreeMap::new(),
        };
        Ok(Scorecard {
            config,
            path,
            entries: Mutex::new(entries),
        })
    }

    /// Records a call's result.
    pub fn record(
        &self,
        provider: &str,
        model: &str,
        domain: &str,
        success: bool,
        latency: Duration,
        cost_usd: f64,
    ) {
        let ms = latency.as_secs_f64() * 1000.0;
        let a = self.config.ewma_alpha.clamp(0.0, 1.0);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = entries.entry(key(provider, model, domain)).or_default();
        e.calls += 1;
        if success {
            e.successes += 1;
            e.latencies_ms.push_back(ms);
            if e.latencies_ms.len() > LATENCY_WINDOW {
                e.latencies_ms.pop_front();
            }
            e.ewma_latency_ms = Some(e.ewma_latency_ms.map_or(ms, |old| (1.0 - a) * old + a * ms));
        }
        if cost_usd.is_finite() && cost_usd > 0.0 {
            e.cost_usd += cost_usd;
        }
    }

    /// Records whether an answer was verified correct.
    pub fn verify(&self, provider: &str, model: &str, domain: &str, correct: bool) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = entries.entry(key(provider, model, domain)).or_default();
        e.verified += 1;
        e.verified_successes += u64::from(correct);
    }

    /// The entry, if any.
    pub fn entry(&self, provider: &str, model: &str, domain: &str) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key(provider, model, domain))
            .cloned()
    }

    /// Adaptive standing of a model.
    pub fn standing(&self, provider: &str, model: &str, domain: &str) -> Standing {
        match self
            .entry(provider, model, domain)
            .and_then(|e| e.accuracy(self.config.min_samples))
        {
            Some(a) if a < self.config.drop_below => Standing::Dropped,
            Some(a) if a > self.config.favour_above => Standing::Favoured,
            _ => Standing::Neutral,
        }
    }

    /// A routing score in `[0, 1]`: weighted reliability (successes with a
    /// prior of 2 of 2), latency score `1 / (1 + ewma_s)` and cost score
    /// `1 / (1 + 100 · cost per call)`; a favoured model gets a bonus of 0.1.
    pub fn score(&self, provider: &str, model: &str, domain: &str, w: &ScoreWeights) -> f64 {
        let e = self.entry(provider, model, domain).unwrap_or_default();
        let reliability = (e.successes as f64 + 2.0) / (e.calls as f64 + 2.0);
        let latency = 1.0 / (1.0 + e.ewma_latency_ms.unwrap_or(0.0) / 1000.0);
        let cost = 1.0 / (1.0 + 100.0 * e.cost_usd / (e.calls.max(1) as f64));
        let total = (w.latency + w.cost + w.reliability).max(f64::MIN_POSITIVE);
        let base = (w.latency * latency + w.cost * cost + w.reliability * reliability) / total;
        let bonus = if self.standing(provider, model, domain) == Standing::Favoured {
            0.1
        } else {
            0.0
        };
        (base + bonus).min(1.0)
    }

    /// Every entry, keyed `provider/model/domain`, to persist elsewhere
    /// (the optimizer's snapshots).
    pub fn export(&self) -> BTreeMap<String, Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces every entry by `entries` (from [`export`](Self::export)).
    ///
    /// # Errors
    /// The first entry that does not validate ([`Entry::validate`]),
    /// named by its key; nothing changes then.
    pub fn import(&self, entries: BTreeMap<String, Entry>) -> Result<(), String> {
        check(&entries)?;
        *self.entries.lock().unwrap_or_else(PoisonError::into_inner) = entries;
        Ok(())
    }

    /// Writes the scorecard to its file (atomically); does nothing in memory.
    ///
    /// # Errors
    /// An I/O error.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let json = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            serde_json::to_vec_pretty(&*entries).map_err(std::io::Error::other)?
        };
        tuneloop_core::fs::write_atomic(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files that contradict themselves are refused, naming the entry and
    /// the field, instead of giving an accuracy of 5.0 or a negative cost.
    #[test]
    fn a_file_whose_counts_or_values_cannot_be_is_refused_by_entry_and_field() -> std::io::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let cases = [
            (
                r#"{"p/m/d": {"calls": 10, "successes": 10, "verified_successes": 50, "verified": 10, "latencies_ms": [], "ewma_latency_ms": null, "cost_usd": 0.0}}"#,
                "verified_successes: 50 is more than the 10 verified",
            ),
            (
                r#"{"p/m/d": {"calls": 1, "successes": 2, "verified_successes": 0, "verified": 0, "latencies_ms": [], "ewma_latency_ms": null, "cost_usd": 0.0}}"#,
                "successes: 2 is more than the 1 calls",
            ),
            (
                r#"{"p/m/d": {"calls": 1, "successes": 1, "verified_successes": 0, "verified": 0, "latencies_ms": [-5.0], "ewma_latency_ms": null, "cost_usd": 0.0}}"#,
                "latencies_ms: -5 is not a latency",
            ),
            (
                r#"{"p/m/d": {"calls": 1, "successes": 1, "verified_successes": 0, "verified": 0, "latencies_ms": [], "ewma_latency_ms": null, "cost_usd": -1.0}}"#,
                "cost_usd: -1 is not a cost",
            ),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("scorecard-{i}.json"));
            std::fs::write(&path, text)?;
            let err = Scorecard::open(Some(&path), ScorecardConfig::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("entry `p/m/d`") && err.contains(expected),
                "{err}"
            );
        }
        Ok(())
    }
}
