//! Context features: dense vectors ([`Features`]) and the task description an
//! agent planner knows ([`TaskFeatures`]), turned into one by a [`Featurizer`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::StableHasher;

/// A dense context vector of finite `f64`s.
///
/// NaN and infinity are refused at construction, so every policy can trust
/// its input.
///
/// ```
/// use tuneloop_core::Features;
/// let x = Features::new(vec![1.0, 0.5])?;
/// assert_eq!(x.len(), 2);
/// assert!(Features::new(vec![f64::NAN]).is_err());
/// # Ok::<(), tuneloop_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct Features(Vec<f64>);

impl TryFrom<Vec<f64>> for Features {
    type Error = Error;
    fn try_from(v: Vec<f64>) -> Result<Self> {
        Features::new(v)
    }
}

impl From<Features> for Vec<f64> {
    fn from(f: Features) -> Self {
        f.0
    }
}

impl Features {
    /// Checks that every value is finite.
    ///
    /// # Errors
    /// [`Error::NonFiniteFeature`] naming the first bad position.
    pub fn new(values: Vec<f64>) -> Result<Self> {
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteFeature { index, value });
        }
        Ok(Features(values))
    }

    /// The values.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }

    /// Number of values (the dimension).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the zero-dimensional vector.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values, by value.
    pub fn into_vec(self) -> Vec<f64> {
        self.0
    }

    /// Checks the dimension.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`].
    pub fn expect_dim(&self, expected: usize) -> Result<()> {
        if self.0.len() == expected {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                expected,
                actual: self.0.len(),
            })
        }
    }

    /// A stable 64-bit fingerprint of the values (quantized to 1e-6), for
    /// logs: equal contexts share a fingerprint across processes.
    pub fn fingerprint(&self) -> u64 {
        let mut h = StableHasher::new();
        h.write_str("tuneloop.features.v1");
        h.write_u64(self.0.len() as u64);
        for &v in &self.0 {
            h.write_f64_micros(v);
        }
        h.finish()
    }
}

impl AsRef<[f64]> for Features {
    fn as_ref(&self) -> &[f64] {
        &self.0
    }
}

/// How much harm a wrong answer to a task can do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    /// Reversible, low-stakes work.
    #[default]
    Low,
    /// Ordinary work.
    Medium,
    /// Work whose mistakes are costly.
    High,
    /// Work whose mistakes are not acceptable.
    Critical,
}

impl RiskTier {
    /// 0 for `Low` up to 3 for `Critical`.
    pub fn ordinal(self) -> u8 {
        match self {
            RiskTier::Low => 0,
            RiskTier::Medium => 1,
            RiskTier::High => 2,
            RiskTier::Critical => 3,
        }
    }
}

/// What an agent planner knows about a task before calling a model.
///
/// Every field has a neutral default, so callers fill in what they have:
///
/// ```
/// use tuneloop_core::{RiskTier, TaskFeatures};
/// let task = TaskFeatures {
///     risk_tier: RiskTier::High,
///     title_length: 42,
///     complexity_indicators: vec!["refactor".into(), "concurrency".into()],
///     ..TaskFeatures::default()
/// };
/// assert_eq!(task.prior_failures, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskFeatures {
    /// How costly a mistake is.
    pub risk_tier: RiskTier,
    /// Length of the task's title, in characters.
    pub title_length: u64,
    /// Length of the task's description, in characters.
    pub description_length: u64,
    /// Number of acceptance criteria.
    pub acceptance_criteria_count: u64,
    /// Number of files in the task's scope.
    pub scope_files_count: u64,
    /// Most files the task may touch.
    pub max_files: u64,
    /// Most lines of code the task may change.
    pub max_loc: u64,
    /// Whether the task depends on something outside the repository.
    pub has_external_deps: bool,
    /// Free-form tags ("refactor", "security", ...), hashed into buckets.
    pub complexity_indicators: Vec<String>,
    /// The model the agent would use by default, hashed into buckets.
    pub model_name: String,
    /// Size of the prompt, in tokens.
    pub prompt_tokens: u64,
    /// How many times this task has failed before.
    pub prior_failures: u64,
}

/// Turns a [`TaskFeatures`] into a [`Features`] vector of fixed dimension.
pub trait Featurizer: Send + Sync + std::fmt::Debug {
    /// The dimension of every vector this featurizer returns.
    fn dim(&self) -> usize;

    /// The feature vector of `task`, of length [`dim`](Featurizer::dim).
    ///
    /// # Errors
    /// Implementation-defined; the default featurizer never fails.
    fn featurize(&self, task: &TaskFeatures) -> Result<Features>;
}

/// Counts enter as `ln(1 + n) / ln(1 + 10_000)`: 0 for 0, 1 for 10,000,
/// 4.8 for `u64::MAX`.
fn log_count(n: u64) -> f64 {
    (n as f64).ln_1p() / 10_000f64.ln_1p()
}

/// Most buckets for a hashed categorical field.
pub const MAX_BUCKETS: usize = 64;

/// The default featurizer: a bias, log-scaled counts, and hashed strings.
///
/// Layout (dimension `11 + complexity_buckets + model_buckets`, 19 with the
/// defaults of 4 and 4):
///
/// | index | feature |
/// |---|---|
/// | 0 | bias, always 1 |
/// | 1 | risk tier: 0, 1/3, 2/3, 1 for low..critical |
/// | 2..=7 | `log_count` of title length, description length, acceptance criteria, scope files, max files, max LOC |
/// | 8 | has external dependencies: 0 or 1 |
/// | 9, 10 | `log_count` of prompt tokens, prior failures |
/// | 11.. | complexity indicators: `log_count` of how many fall in each bucket |
/// | then | model name: one-hot bucket (all zero for an empty name) |
///
/// where `log_count(n) = ln(1 + n) / ln(10001)`. Strings are trimmed and
/// lowercased, then hashed with the [stable hash](crate::hash), so a bucket
/// never changes between runs; empty indicators are ignored. Every value is
/// finite and in `[0, 4.9]` whatever the input.
///
/// ```
/// use tuneloop_core::{DefaultFeaturizer, Featurizer, TaskFeatures};
/// let f = DefaultFeaturizer::default();
/// let x = f.featurize(&TaskFeatures::default())?;
/// assert_eq!(x.len(), 19);
/// assert_eq!(x.as_slice()[0], 1.0);
/// # Ok::<(), tuneloop_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultFeaturizer {
    complexity_buckets: usize,
    model_buckets: usize,
}

/// Number of leading features of [`DefaultFeaturizer`] before the buckets.
pub const DEFAULT_BASE_FEATURES: usize = 11;

impl Default for DefaultFeaturizer {
    fn default() -> Self {
        DefaultFeaturizer {
            complexity_buckets: 4,
            model_buckets: 4,
        }
    }
}

impl DefaultFeaturizer {
    /// A featurizer with the given number of buckets for complexity
    /// indicators and for the model name.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless both are in `1..=64`.
    pub fn with_buckets(complexity_buckets: usize, model_buckets: usize) -> Result<Self> {
        for (field, n) in [
            ("complexity_buckets", complexity_buckets),
            ("model_buckets", model_buckets),
        ] {
            if n == 0 || n > MAX_BUCKETS {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("{n} buckets; expected 1..=64"),
                });
            }
        }
        Ok(DefaultFeaturizer {
            complexity_buckets,
            model_buckets,
        })
    }

    fn bucket(text: &str, salt: &str, buckets: usize) -> Option<usize> {
        let norm = text.trim().to_lowercase();
        if norm.is_empty() {
            return None;
        }
        let mut h = StableHasher::new();
        h.write_str(salt);
        h.write_str(&norm);
        // `buckets` is at most 64, so the remainder fits any usize.
        Some((h.finish() % buckets as u64) as usize)
    }
}

impl Featurizer for DefaultFeaturizer {
    fn dim(&self) -> usize {
        DEFAULT_BASE_FEATURES + self.complexity_buckets + self.model_buckets
    }

    fn featurize(&self, t: &TaskFeatures) -> Result<Features> {
        let mut x = Vec::with_capacity(self.dim());
        x.push(1.0);
        x.push(f64::from(t.risk_tier.ordinal()) / 3.0);
        for n in [
            t.title_length,
            t.description_length,
            t.acceptance_criteria_count,
            t.scope_files_count,
            t.max_files,
            t.max_loc,
        ] {
            x.push(log_count(n));
        }
        x.push(f64::from(u8::from(t.has_external_deps)));
        x.push(log_count(t.prompt_tokens));
        x.push(log_count(t.prior_failures));
        let mut counts = vec![0u64; self.complexity_buckets];
        for tag in &t.complexity_indicators {
            if let Some(b) = Self::bucket(tag, "complexity", self.complexity_buckets) {
                counts[b] += 1;
            }
        }
        x.extend(counts.into_iter().map(log_count));
        let mut model = vec![0.0; self.model_buckets];
        if let Some(b) = Self::bucket(&t.model_name, "model", self.model_buckets) {
            model[b] = 1.0;
        }
        x.extend(model);
        Features::new(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dimension_is_as_documented() -> Result<()> {
        let f = DefaultFeaturizer::default();
        assert_eq!(f.dim(), 19);
        let g = DefaultFeaturizer::with_buckets(3, 2)?;
        assert_eq!(g.dim(), 16);
        assert_eq!(g.featurize(&TaskFeatures::default())?.len(), 16);
        assert!(DefaultFeaturizer::with_buckets(0, 2).is_err());
        assert!(DefaultFeaturizer::with_buckets(2, 65).is_err());
        Ok(())
    }

    #[test]
    fn values_follow_the_documented_formula() -> Result<()> {
        let f = DefaultFeaturizer::default();
        let t = TaskFeatures {
            risk_tier: RiskTier::High,
            title_length: 10_000,
            prior_failures: 0,
            has_external_deps: true,
            ..TaskFeatures::default()
        };
        let x = f.featurize(&t)?;
        let v = x.as_slice();
        assert!((v[0] - 1.0).abs() < 1e-15);
        assert!((v[1] - 2.0 / 3.0).abs() < 1e-15);
        assert!((v[2] - 1.0).abs() < 1e-15, "log_count(10000) = 1");
        assert!((v[8] - 1.0).abs() < 1e-15);
        assert!(v[10].abs() < 1e-15);
        // No model name: all model buckets zero.
        assert!(v[15..].iter().all(|&m| m == 0.0));
        Ok(())
    }

    #[test]
    fn extreme_inputs_stay_finite_and_bounded() -> Result<()> {
        let f = DefaultFeaturizer::default();
        let t = TaskFeatures {
            risk_tier: RiskTier::Critical,
            title_length: u64::MAX,
            description_length: u64::MAX,
            acceptance_criteria_count: u64::MAX,
            scope_files_count: u64::MAX,
            max_files: u64::MAX,
            max_loc: u64::MAX,
            has_external_deps: true,
            complexity_indicators: vec![
                String::new(),
                "   ".into(),
                "日本語のタグ".into(),
                "🦀".repeat(10_000),
                "x".into(),
            ],
            model_name: "モデル\u{0}".into(),
            prompt_tokens: u64::MAX,
            prior_failures: u64::MAX,
        };
        let x = f.featurize(&t)?;
        assert_eq!(x.len(), f.dim());
        assert!(
            x.as_slice()
                .iter()
                .all(|v| v.is_finite() && (0.0..4.9).contains(v))
        );
        // Three non-empty indicators land somewhere: bucket counts sum to 3.
        let counts: f64 = x.as_slice()[11..15]
            .iter()
            .map(|v| (v * 10_000f64.ln_1p()).exp_m1())
            .sum();
        assert!((counts - 3.0).abs() < 1e-9, "{counts}");
        Ok(())
    }

    #[test]
    fn buckets_ignore_case_and_whitespace() -> Result<()> {
        let f = DefaultFeaturizer::default();
        let a = TaskFeatures {
            model_name: "GPT-4o ".into(),
            ..TaskFeatures::default()
        };
        let b = TaskFeatures {
            model_name: "gpt-4o".into(),
            ..TaskFeatures::default()
        };
        assert_eq!(f.featurize(&a)?, f.featurize(&b)?);
        Ok(())
    }

    #[test]
    fn features_reject_non_finite_values() {
        assert_eq!(
            Features::new(vec![0.0, f64::INFINITY]),
            Err(Error::NonFiniteFeature {
                index: 1,
                value: f64::INFINITY
            })
        );
        assert!(serde_json::from_str::<Features>("[1.0, 2.0]").is_ok());
        assert!(serde_json::from_str::<Features>("[1e999]").is_err());
    }

    #[test]
    fn fingerprint_is_stable_under_float_noise() -> Result<()> {
        let a = Features::new(vec![0.1 * 3.0, 1.0])?;
        let b = Features::new(vec![0.3, 1.0])?;
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), Features::new(vec![0.3])?.fingerprint());
        Ok(())
    }

    proptest! {
        #[test]
        fn any_task_featurizes_finite(
            counts in proptest::collection::vec(any::<u64>(), 8),
            tags in proptest::collection::vec(".*", 0..8),
            model in ".*",
            ext in any::<bool>(),
        ) {
            let f = DefaultFeaturizer::default();
            let t = TaskFeatures {
                risk_tier: RiskTier::Medium,
                title_length: counts[0], description_length: counts[1],
                acceptance_criteria_count: counts[2], scope_files_count: counts[3],
                max_files: counts[4], max_loc: counts[5], has_external_deps: ext,
                complexity_indicators: tags, model_name: model,
                prompt_tokens: counts[6], prior_failures: counts[7],
            };
            let x = f.featurize(&t).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(x.len(), f.dim());
            prop_assert!(x.as_slice().iter().all(|v| v.is_finite()));
        }
    }
}
