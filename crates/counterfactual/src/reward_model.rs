//! Reward models for DM and the DR family: ridge regression per arm,
//! fitted with K-fold cross-fitting so no round is predicted by a model
//! that saw it.

use nalgebra::{DMatrix, DVector};

use crate::error::{Result, check_setting};

/// Out-of-fold predictions `q̂(x_i, a)` for every round `i` and arm `a`
/// (row-major `n × num_arms`). Round `i` belongs to fold `i % folds`; each
/// fold is predicted by per-arm ridge regressions (`λI + Σxxᵀ`) fitted on
/// the other folds, to rewards centred by those folds' mean reward `r̄`: the
/// prior pulls a rarely-played arm towards `r̄`, not towards 0. An arm
/// never observed outside a fold predicts `r̄` there.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) for `folds < 2`
/// or `lambda <= 0`.
pub fn cross_fit_ridge(
    contexts: &[Vec<f64>],
    actions: &[usize],
    rewards: &[f64],
    num_arms: usize,
    folds: usize,
    lambda: f64,
) -> Result<Vec<f64>> {
    check_setting("folds", folds as f64, folds >= 2, "at least 2 folds")?;
    check_setting("lambda", lambda, lambda > 0.0, "a ridge lambda > 0")?;
    let n = contexts.len();
    let d = contexts.first().map_or(0, Vec::len);
    let mut out = vec![0.0; n * num_arms];
    for f in 0..folds {
        let mean = fold_mean(rewards, folds, f);
        for i in (0..n).filter(|&i| i % folds == f) {
            out[i * num_arms..(i + 1) * num_arms].fill(mean);
        }
        for a in 0..num_arms {
            let mut gram = DMatrix::<f64>::identity(d, d) * lambda;
            let mut b = DVector::<f64>::zeros(d);
            let mut seen = false;
            for i in (0..n).filter(|&i| i % folds != f && actions[i] == a) {
                let x = DVector::from_column_slice(&contexts[i]);
                gram.ger(1.0, &x, &x, 1.0);
                b.axpy(rewards[i] - mean, &x, 1.0);
                seen = true;
            }
            if !seen {
                continue;
            }
            let Some(ch) = gram.cholesky() else { continue };
            let theta = ch.solve(&b);
            for i in (0..n).filter(|&i| i % folds == f) {
                out[i * num_arms + a] = mean
                    + theta
                        .iter()
                        .zip(&contexts[i])
                        .map(|(t, x)| t * x)
                        .sum::<f64>();
            }
        }
    }
    Ok(out)
}

/// Mean reward of the rounds outside fold `f` (0 if there are none).
fn fold_mean(rewards: &[f64], folds: usize, f: usize) -> f64 {
    let (sum, count) = rewards
        .iter()
        .enumerate()
        .filter(|(i, _)| i % folds != f)
        .fold((0.0, 0usize), |(s, c), (_, r)| (s + r, c + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// Out-of-fold predictions of one ridge regression over the joint
/// features `x ⊗ z_a` of context and arm features (`arm_features` is
/// row-major `num_arms × m`), so arms that share parameters share evidence;
/// layout and folds as in [`cross_fit_ridge`].
///
/// # Errors
/// As [`cross_fit_ridge`].
pub fn cross_fit_ridge_with_arm_features(
    contexts: &[Vec<f64>],
    actions: &[usize],
    rewards: &[f64],
    arm_features: &[f64],
    num_arms: usize,
    folds: usize,
    lambda: f64,
) -> Result<Vec<f64>> {
    check_setting("folds", folds as f64, folds >= 2, "at least 2 folds")?;
    check_setting("lambda", lambda, lambda > 0.0, "a ridge lambda > 0")?;
    let m = arm_features.len() / num_arms.max(1);
    check_setting(
        "arm_features",
        arm_features.len() as f64,
        m > 0 && m * num_arms == arm_features.len(),
        "num_arms rows of equal length",
    )?;
    let n = contexts.len();
    let d = contexts.first().map_or(0, Vec::len);
    let joint = |x: &[f64], a: usize| -> DVector<f64> {
        let z = &arm_features[a * m..(a + 1) * m];
        DVector::from_iterator(
            d * m,
            x.iter().flat_map(|xi| z.iter().map(move |zj| xi * zj)),
        )
    };
    let mut out = vec![0.0; n * num_arms];
    for f in 0..folds {
        let mean = fold_mean(rewards, folds, f);
        let mut gram = DMatrix::<f64>::identity(d * m, d * m) * lambda;
        let mut b = DVector::<f64>::zeros(d * m);
        for i in (0..n).filter(|&i| i % folds != f) {
            let phi = joint(&contexts[i], actions[i]);
            gram.ger(1.0, &phi, &phi, 1.0);
            b.axpy(rewards[i] - mean, &phi, 1.0);
        }
        let Some(ch) = gram.cholesky() else {
            for i in (0..n).filter(|&i| i % folds == f) {
                out[i * num_arms..(i + 1) * num_arms].fill(mean);
            }
            continue;
        };
        let theta = ch.solve(&b);
        for i in (0..n).filter(|&i| i % folds == f) {
            for a in 0..num_arms {
                out[i * num_arms + a] = mean + theta.dot(&joint(&contexts[i], a));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_reward_out_of_fold() -> Result<()> {
        // r = 0.2 + 0.5·x for arm 0, 0.9 − 0.3·x for arm 1, no noise.
        let contexts: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![1.0, f64::from(i % 10) / 10.0])
            .collect();
        let actions: Vec<usize> = (0..200).map(|i| (i / 3) % 2).collect();
        let rewards: Vec<f64> = contexts
            .iter()
            .zip(&actions)
            .map(|(x, &a)| {
                if a == 0 {
                    0.2 + 0.5 * x[1]
                } else {
                    0.9 - 0.3 * x[1]
                }
            })
            .collect();
        let q = cross_fit_ridge(&contexts, &actions, &rewards, 2, 3, 1e-6)?;
        for (i, x) in contexts.iter().enumerate() {
            assert!((q[i * 2] - (0.2 + 0.5 * x[1])).abs() < 1e-4);
            assert!((q[i * 2 + 1] - (0.9 - 0.3 * x[1])).abs() < 1e-4);
        }
        assert!(cross_fit_ridge(&contexts, &actions, &rewards, 2, 1, 1.0).is_err());
        Ok(())
    }

    #[test]
    fn an_unplayed_arm_is_predicted_at_the_mean_reward() -> Result<()> {
        // Only arm 0 is played, always rewarded 0.8; arm 1 never: its
        // prediction is the mean reward, not 0.
        let contexts: Vec<Vec<f64>> = (0..30).map(|_| vec![1.0]).collect();
        let actions = vec![0; 30];
        let rewards = vec![0.8; 30];
        let q = cross_fit_ridge(&contexts, &actions, &rewards, 2, 3, 1.0)?;
        for i in 0..30 {
            assert!((q[i * 2] - 0.8).abs() < 1e-12 && (q[i * 2 + 1] - 0.8).abs() < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn arm_features_let_an_unplayed_arm_be_predicted() -> Result<()> {
        // Reward = 0.1 + 0.6·t over temperature t; arm features [1, t].
        // Arm 2 (t = 1.0) is never played, yet its reward is predicted.
        let temps = [0.0, 0.5, 1.0];
        let z: Vec<f64> = temps.iter().flat_map(|&t| [1.0, t]).collect();
        let contexts: Vec<Vec<f64>> = (0..300).map(|_| vec![1.0]).collect();
        let actions: Vec<usize> = (0..300).map(|i| i % 2).collect();
        let rewards: Vec<f64> = actions.iter().map(|&a| 0.1 + 0.6 * temps[a]).collect();
        let q = cross_fit_ridge_with_arm_features(&contexts, &actions, &rewards, &z, 3, 3, 1e-6)?;
        for i in 0..300 {
            assert!((q[i * 3 + 2] - 0.7).abs() < 1e-3, "{}", q[i * 3 + 2]);
        }
        Ok(())
    }
}
