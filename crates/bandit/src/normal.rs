//! The standard normal distribution: CDF (statrs' `erfc`), density, the
//! quadrature rules of Thompson sampling's argmax probability, and draws
//! from a seeded generator. The sampler is written here (not taken from a
//! distribution crate) so that the draws are part of tuneloop's
//! value-stability contract.

use rand::Rng;

/// `1 / sqrt(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The standard normal CDF Φ(x), from statrs' complementary error function
/// (relative error below 1e-10). NaN gives 0.5.
#[inline]
pub(crate) fn cdf(x: f64) -> f64 {
    if x.is_nan() {
        return 0.5;
    }
    0.5 * statrs::function::erf::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// The standard normal density φ(x).
pub(crate) fn pdf(x: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// A uniform in the open interval (0, 1) from 53 random bits.
pub(crate) fn open_uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Draws standard normals by the Marsaglia polar method, keeping the spare.
#[derive(Debug, Default)]
pub(crate) struct NormalSampler {
    spare: Option<f64>,
}

impl NormalSampler {
    pub(crate) fn sample<R: Rng + ?Sized>(&mut self, rng: &mut R) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        loop {
            let u = 2.0 * open_uniform(rng) - 1.0;
            let v = 2.0 * open_uniform(rng) - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * m);
                return u * m;
            }
        }
    }
}

/// Nodes of [`hermite_rule`].
pub(crate) const HERMITE_NODES: usize = 24;

/// Gauss–Hermite rule for `∫ φ(z) f(z) dz` (probabilists' weight), with
/// `HERMITE_NODES` nodes sorted by decreasing `z`: exact for polynomials of
/// degree 47. Nodes and weights come from the Golub–Welsch eigenproblem of
/// the Jacobi matrix (off-diagonal `sqrt(k)`), solved once.
pub(crate) fn hermite_rule() -> &'static [(f64, f64)] {
    static RULE: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        let n = HERMITE_NODES;
        let mut j = nalgebra::DMatrix::<f64>::zeros(n, n);
        for k in 1..n {
            let v = (k as f64).sqrt();
            j[(k - 1, k)] = v;
            j[(k, k - 1)] = v;
        }
        let eig = nalgebra::SymmetricEigen::new(j);
        let mut rule: Vec<(f64, f64)> = (0..n)
            .map(|i| (eig.eigenvalues[i], eig.eigenvectors[(0, i)].powi(2)))
            .collect();
        rule.sort_by(|a, b| b.0.total_cmp(&a.0));
        rule
    })
}

/// 4-point Gauss–Legendre nodes on `[-1, 1]` and their weights.
pub(crate) const LEGENDRE4: [(f64, f64); 4] = [
    (-0.861_136_311_594_052_6, 0.347_854_845_137_453_9),
    (-0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
    (0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
    (0.861_136_311_594_052_6, 0.347_854_845_137_453_9),
];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn cdf_matches_reference_values() {
        // Reference values of Φ (to 16 digits, from tables / mpmath).
        let cases = [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.0, 0.158_655_253_931_457_05),
            (1.96, 0.975_002_104_851_779_5),
            (-3.0, 0.001_349_898_031_630_094_6),
            (5.0, 0.999_999_713_348_428_1),
            (-8.0, 6.220_960_574_271_784e-16),
        ];
        for (x, want) in cases {
            let got = cdf(x);
            assert!(
                (got - want).abs() <= 1e-10 * want,
                "Φ({x}) = {got}, want {want}"
            );
        }
        assert!(cdf(-40.0) >= 0.0 && cdf(40.0) <= 1.0);
        assert!((cdf(f64::NAN) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn hermite_rule_integrates_normal_moments_exactly() {
        let q = hermite_rule();
        let moment = |k: i32| q.iter().map(|(z, w)| w * z.powi(k)).sum::<f64>();
        // E[Z^0] = 1, E[Z^2] = 1, E[Z^4] = 3, E[Z^6] = 15, odd moments 0.
        assert!((moment(0) - 1.0).abs() < 1e-13);
        assert!((moment(2) - 1.0).abs() < 1e-12);
        assert!((moment(4) - 3.0).abs() < 1e-11);
        assert!((moment(6) - 15.0).abs() < 1e-10);
        assert!(moment(3).abs() < 1e-11);
        assert!(q.windows(2).all(|w| w[0].0 > w[1].0), "nodes descend");
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = NormalSampler::default();
        let n = 200_000;
        let (mut m1, mut m2) = (0.0, 0.0);
        for _ in 0..n {
            let z = s.sample(&mut rng);
            m1 += z;
            m2 += z * z;
        }
        let (m1, m2) = (m1 / f64::from(n), m2 / f64::from(n));
        // Standard errors: 1/sqrt(n) = 0.0022 and sqrt(2/n) = 0.0032.
        assert!(m1.abs() < 0.011, "{m1}");
        assert!((m2 - 1.0).abs() < 0.016, "{m2}");
    }
}
