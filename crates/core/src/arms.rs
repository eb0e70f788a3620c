//! Sets of arms: explicit lists or grids of [`ParameterSet`]s.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{ArmId, ArmIdBuildHasher};
use crate::params::ParameterSet;

/// Most arms an [`ArmSet`] may hold. A grid that would exceed it is refused
/// before anything is allocated.
pub const MAX_ARMS: usize = 4096;

/// One arm: a parameter set and its stable id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// The content hash of `params`.
    pub id: ArmId,
    /// The parameters applied when this arm is chosen.
    pub params: ParameterSet,
}

/// A deduplicated, bounded, ordered set of arms, with numeric arm features.
///
/// Arms are addressed by index (`0..len()`) on hot paths and by [`ArmId`]
/// in logs. Duplicate parameter sets (same id) keep their first position.
///
/// **Arm features** describe each arm numerically, so that a policy with
/// shared parameters can carry what it learns about one arm to its
/// neighbours. Each numeric parameter is mapped linearly from its range
/// over the set, `[lo, hi]`, to `c` in `[-1, 1]`; parameters that do not vary
/// across the set are left out (they add nothing beyond the bias). The
/// columns are, in order:
///
/// | name | value |
/// |---|---|
/// | `bias` | 1 (always kept) |
/// | `temperature`, `temperature^2` | `c` of temperature, and `c²` |
/// | `top_p`, `top_p^2` | `c` of top_p, and `c²` |
/// | `log_max_tokens`, `log_max_tokens^2` | `c` of ln(max_tokens), and `c²` |
/// | `frequency_penalty`, `presence_penalty` | `c` of the penalty |
/// | `model=NAME` | one-hot, one column per distinct model (if several) |
/// | `variant=NAME` | one-hot per distinct prompt variant, `variant=` for none (if several) |
///
/// The squares let a linear model find an interior best temperature or
/// length, which is the usual shape of quality against these parameters;
/// centring and scaling to `[-1, 1]` keeps that quadratic well conditioned
/// against a ridge prior.
///
/// ```
/// use tuneloop_core::ArmSet;
/// let arms = ArmSet::grid()
///     .models(["gpt-4o-mini", "llama3.1:8b"])
///     .temperatures([0.0, 0.4, 0.8])
///     .max_tokens([256, 1024])
///     .build()?;
/// assert_eq!(arms.len(), 12);
/// assert_eq!(arms.arm_feature_names()[0], "bias");
/// # Ok::<(), tuneloop_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ParameterSet>", into = "Vec<ParameterSet>")]
pub struct ArmSet {
    arms: Vec<Arm>,
    index: HashMap<ArmId, usize, ArmIdBuildHasher>,
    feature_names: Vec<String>,
    /// Row-major, `arms.len() × feature_names.len()`.
    features: Vec<f64>,
}

impl TryFrom<Vec<ParameterSet>> for ArmSet {
    type Error = Error;
    fn try_from(v: Vec<ParameterSet>) -> Result<Self> {
        ArmSet::new(v)
    }
}

impl From<ArmSet> for Vec<ParameterSet> {
    fn from(s: ArmSet) -> Self {
        s.arms.into_iter().map(|a| a.params).collect()
    }
}

impl ArmSet {
    /// An arm set from explicit parameter sets, in order, deduplicated.
    ///
    /// # Errors
    /// [`Error::EmptyArmSet`], or [`Error::TooManyArms`] past [`MAX_ARMS`]
    /// distinct arms.
    pub fn new(params: impl IntoIterator<Item = ParameterSet>) -> Result<Self> {
        let mut arms = Vec::new();
        let mut index = HashMap::default();
        for p in params {
            let id = p.arm_id();
            if index.contains_key(&id) {
                continue;
            }
            if arms.len() == MAX_ARMS {
                return Err(Error::TooManyArms {
                    size: MAX_ARMS + 1,
                    max: MAX_ARMS,
                });
            }
            index.insert(id, arms.len());
            arms.push(Arm { id, params: p });
        }
        if arms.is_empty() {
            return Err(Error::EmptyArmSet);
        }
        let (feature_names, features) = arm_features(&arms);
        Ok(ArmSet {
            arms,
            index,
            feature_names,
            features,
        })
    }

    /// A grid builder: the Cartesian product of per-parameter value lists.
    pub fn grid() -> ArmGrid {
        ArmGrid::default()
    }

    /// Number of arms.
    pub fn len(&self) -> usize {
        self.arms.len()
    }

    /// Never true for a constructed set; here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.arms.is_empty()
    }

    /// The arm at `index`.
    pub fn get(&self, index: usize) -> Option<&Arm> {
        self.arms.get(index)
    }

    /// The arm at `index`, or [`Error::UnknownArm`].
    pub fn arm(&self, index: usize) -> Result<&Arm> {
        self.arms.get(index).ok_or(Error::UnknownArm {
            arm: index,
            num_arms: self.arms.len(),
        })
    }

    /// The index of the arm with this id.
    pub fn index_of(&self, id: ArmId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The arm with this id.
    pub fn by_id(&self, id: ArmId) -> Option<&Arm> {
        self.index_of(id).map(|i| &self.arms[i])
    }

    /// The arms in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Arm> {
        self.arms.iter()
    }

    /// All arm indices, `0..len()`: the eligible set when nothing is gated.
    pub fn all_indices(&self) -> Vec<usize> {
        (0..self.arms.len()).collect()
    }

    /// Number of arm-feature columns.
    pub fn arm_feature_dim(&self) -> usize {
        self.feature_names.len()
    }

    /// Names of the arm-feature columns, in order (see the type's docs).
    pub fn arm_feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The arm features of the arm at `index`.
    pub fn arm_features(&self, index: usize) -> Option<&[f64]> {
        let d = self.feature_names.len();
        let start = index.checked_mul(d)?;
        self.features.get(start..start + d)
    }
}

impl<'a> IntoIterator for &'a ArmSet {
    type Item = &'a Arm;
    type IntoIter = std::slice::Iter<'a, Arm>;
    fn into_iter(self) -> Self::IntoIter {
        self.arms.iter()
    }
}

fn distinct<T: PartialEq + Clone>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Maps `v` from `[lo, hi]` to `[-1, 1]` (0 when the range is empty).
fn centered(v: f64, lo: f64, hi: f64) -> f64 {
    if hi - lo > 1e-12 {
        2.0 * (v - lo) / (hi - lo) - 1.0
    } else {
        0.0
    }
}

fn arm_features(arms: &[Arm]) -> (Vec<String>, Vec<f64>) {
    type Getter = fn(&ParameterSet) -> f64;
    let numeric: [(&str, Getter, bool); 5] = [
        ("temperature", |p| p.temperature(), true),
        ("top_p", |p| p.top_p(), true),
        ("log_max_tokens", |p| f64::from(p.max_tokens()).ln(), true),
        ("frequency_penalty", |p| p.frequency_penalty(), false),
        ("presence_penalty", |p| p.presence_penalty(), false),
    ];
    let mut names = vec!["bias".to_owned()];
    let mut columns: Vec<Vec<f64>> = vec![vec![1.0; arms.len()]];
    for (name, get, square) in numeric {
        let raw: Vec<f64> = arms.iter().map(|a| get(&a.params)).collect();
        let lo = raw.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if hi - lo <= 1e-12 {
            continue;
        }
        let col: Vec<f64> = raw.iter().map(|&v| centered(v, lo, hi)).collect();
        if square {
            names.push(name.to_owned());
            names.push(format!("{name}^2"));
            columns.push(col.iter().map(|c| c * c).collect());
            columns.insert(columns.len() - 1, col);
        } else {
            names.push(name.to_owned());
            columns.push(col);
        }
    }
    let models = distinct(arms.iter().map(|a| a.params.model()));
    if models.len() > 1 {
        for m in models {
            names.push(format!("model={m}"));
            columns.push(
                arms.iter()
                    .map(|a| f64::from(u8::from(a.params.model() == m)))
                    .collect(),
            );
        }
    }
    let variants = distinct(arms.iter().map(|a| a.params.prompt_variant()));
    if variants.len() > 1 {
        for v in variants {
            names.push(format!("variant={}", v.unwrap_or("")));
            columns.push(
                arms.iter()
                    .map(|a| f64::from(u8::from(a.params.prompt_variant() == v)))
                    .collect(),
            );
        }
    }
    let d = names.len();
    let mut features = vec![0.0; arms.len() * d];
    for (j, col) in columns.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            features[i * d + j] = *v;
        }
    }
    (names, features)
}

/// Builds an [`ArmSet`] as a Cartesian product; see [`ArmSet::grid`].
///
/// Every list defaults to the single default value of
/// [`ParameterSet::builder`]; models default to none and must be given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArmGrid {
    models: Vec<String>,
    temperatures: Vec<f64>,
    top_ps: Vec<f64>,
    max_tokens: Vec<u32>,
    frequency_penalties: Vec<f64>,
    presence_penalties: Vec<f64>,
    prompt_variants: Vec<Option<String>>,
}

impl ArmGrid {
    /// Models to try.
    pub fn models<I: IntoIterator<Item = S>, S: Into<String>>(mut self, v: I) -> Self {
        self.models = v.into_iter().map(Into::into).collect();
        self
    }
    /// Temperatures to try.
    pub fn temperatures(mut self, v: impl IntoIterator<Item = f64>) -> Self {
        self.temperatures = v.into_iter().collect();
        self
    }
    /// top_p values to try.
    pub fn top_ps(mut self, v: impl IntoIterator<Item = f64>) -> Self {
        self.top_ps = v.into_iter().collect();
        self
    }
    /// max_tokens values to try.
    pub fn max_tokens(mut self, v: impl IntoIterator<Item = u32>) -> Self {
        self.max_tokens = v.into_iter().collect();
        self
    }
    /// Frequency penalties to try.
    pub fn frequency_penalties(mut self, v: impl IntoIterator<Item = f64>) -> Self {
        self.frequency_penalties = v.into_iter().collect();
        self
    }
    /// Presence penalties to try.
    pub fn presence_penalties(mut self, v: impl IntoIterator<Item = f64>) -> Self {
        self.presence_penalties = v.into_iter().collect();
        self
    }
    /// Prompt variants to try (`None` is the unmodified prompt).
    pub fn prompt_variants<I: IntoIterator<Item = Option<S>>, S: Into<String>>(
        mut self,
        v: I,
    ) -> Self {
        self.prompt_variants = v.into_iter().map(|o| o.map(Into::into)).collect();
        self
    }

    /// The arm set of every combination, in row-major order (models
    /// outermost, prompt variants innermost).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when no model is given,
    /// [`Error::TooManyArms`] when the product exceeds [`MAX_ARMS`] (checked
    /// before building), or the first invalid value's error.
    pub fn build(self) -> Result<ArmSet> {
        if self.models.is_empty() {
            return Err(Error::InvalidConfig {
                field: "models",
                reason: "a grid needs at least one model".into(),
            });
        }
        let d = ParameterSet::builder("default");
        let d = d.build()?;
        let or = |v: Vec<f64>, x: f64| if v.is_empty() { vec![x] } else { v };
        let temps = or(self.temperatures, d.temperature());
        let tops = or(self.top_ps, d.top_p());
        let toks = if self.max_tokens.is_empty() {
            vec![d.max_tokens()]
        } else {
            self.max_tokens
        };
        let fps = or(self.frequency_penalties, 0.0);
        let pps = or(self.presence_penalties, 0.0);
        let vars = if self.prompt_variants.is_empty() {
            vec![None]
        } else {
            self.prompt_variants
        };
        let size = [
            self.models.len(),
            temps.len(),
            tops.len(),
            toks.len(),
            fps.len(),
            pps.len(),
            vars.len(),
        ]
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
        if size > MAX_ARMS {
            return Err(Error::TooManyArms {
                size,
                max: MAX_ARMS,
            });
        }
        let mut out = Vec::with_capacity(size);
        for m in &self.models {
            for &t in &temps {
                for &p in &tops {
                    for &k in &toks {
                        for &fp in &fps {
                            for &pp in &pps {
                                for v in &vars {
                                    out.push(
                                        ParameterSet::builder(m.clone())
                                            .temperature(t)
                                            .top_p(p)
                                            .max_tokens(k)
                                            .frequency_penalty(fp)
                                            .presence_penalty(pp)
                                            .prompt_variant(v.clone())
                                            .build()?,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        ArmSet::new(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_the_cartesian_product_deduplicated() -> Result<()> {
        let s = ArmSet::grid()
            .models(["a", "b"])
            .temperatures([0.0, 0.5, 0.5, 0.1 * 5.0])
            .max_tokens([100, 200, 400])
            .build()?;
        // 0.5 three times (once as float noise) collapses to one value.
        assert_eq!(s.len(), 2 * 2 * 3);
        for (i, arm) in s.iter().enumerate() {
            assert_eq!(s.index_of(arm.id), Some(i));
            assert_eq!(arm.params.arm_id(), arm.id);
        }
        Ok(())
    }

    #[test]
    fn grid_too_large_is_refused_before_building() {
        let many: Vec<u32> = (1..=100).collect();
        let r = ArmSet::grid()
            .models(["m"])
            .max_tokens(many.clone())
            .temperatures((0..50).map(|i| f64::from(i) / 25.0))
            .build();
        assert_eq!(
            r,
            Err(Error::TooManyArms {
                size: 5000,
                max: MAX_ARMS
            })
        );
    }

    #[test]
    fn empty_and_invalid_grids_are_errors() {
        assert_eq!(ArmSet::new(Vec::new()), Err(Error::EmptyArmSet));
        assert!(matches!(
            ArmSet::grid().build(),
            Err(Error::InvalidConfig {
                field: "models",
                ..
            })
        ));
        assert!(matches!(
            ArmSet::grid().models(["m"]).temperatures([9.0]).build(),
            Err(Error::ParameterOutOfRange {
                field: "temperature",
                ..
            })
        ));
    }

    #[test]
    fn arm_features_match_their_definition() -> Result<()> {
        let s = ArmSet::grid()
            .models(["a", "b"])
            .temperatures([0.0, 1.0])
            .build()?;
        assert_eq!(
            s.arm_feature_names(),
            ["bias", "temperature", "temperature^2", "model=a", "model=b"]
        );
        // Arm 3 is model b, temperature 1.0: c = 1, c² = 1.
        let f = s.arm_features(3).ok_or(Error::EmptyArmSet)?;
        let expected = [1.0, 1.0, 1.0, 0.0, 1.0];
        // Arm 0 is model a, temperature 0.0: c = -1, c² = 1.
        let f0 = s.arm_features(0).ok_or(Error::EmptyArmSet)?;
        for (x, e) in f0.iter().zip([1.0, -1.0, 1.0, 1.0, 0.0]) {
            assert!((x - e).abs() < 1e-15, "{f0:?}");
        }
        for (x, e) in f.iter().zip(expected) {
            assert!((x - e).abs() < 1e-15, "{f:?}");
        }
        assert_eq!(s.arm_features(4), None);
        Ok(())
    }

    #[test]
    fn log_max_tokens_feature_is_scaled() -> Result<()> {
        let s = ArmSet::grid()
            .models(["a"])
            .max_tokens([1, 131_072])
            .build()?;
        assert_eq!(s.arm_feature_names()[1], "log_max_tokens");
        let hi = s.arm_features(1).ok_or(Error::EmptyArmSet)?;
        assert!((hi[1] - 1.0).abs() < 1e-12 && (hi[2] - 1.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn serde_round_trip_keeps_order_and_ids() -> Result<()> {
        let s = ArmSet::grid()
            .models(["a"])
            .prompt_variants([None, Some("terse")])
            .build()?;
        let json = serde_json::to_string(&s).map_err(|e| Error::Snapshot {
            reason: e.to_string(),
        })?;
        let back: ArmSet = serde_json::from_str(&json).map_err(|e| Error::Snapshot {
            reason: e.to_string(),
        })?;
        assert_eq!(back, s);
        assert!(serde_json::from_str::<ArmSet>("[]").is_err());
        Ok(())
    }
}
