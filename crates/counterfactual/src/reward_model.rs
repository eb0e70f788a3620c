//! Reward models for DM and the DR family: ridge regression per arm,
//! fitted with K-fold cross-fitting so no round is predicted by a model
//! that saw it.

use nalgebra::{DMatrix, DVector};

use crate::error::{Result, check_setting};

/// Out-of-fold predictions `q̂(x_i, a)` for every round `i` and arm `a`
/// (row-major `n × num_arms`). Round `i` belongs to fold `i % folds`; each
/// fold is predicted by per-arm ridge regressions (`λI + Σxxᵀ`) fitted on
/// the other folds. An arm never observed outside a fold predicts 0 there.
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
        for a in 0..num_arms {
            let mut gram = DMatrix::<f64>::identity(d, d) * lambda;
            let mut b = DVector::<f64>::zeros(d);
            let mut seen = false;
            for i in (0..n).filter(|&i| i % folds != f && actions[i] == a) {
                let x = DVector::from_column_slice(&contexts[i]);
                gram.ger(1.0, &x, &x, 1.0);
                b.axpy(rewards[i], &x, 1.0);
                seen = true;
            }
            if !seen {
                continue;
            }
            let Some(ch) = gram.cholesky() else { continue };
            let theta = ch.solve(&b);
            for i in (0..n).filter(|&i| i % folds == f) {
                out[i * num_arms + a] = theta.iter().zip(&contexts[i]).map(|(t, x)| t * x).sum();
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
}
