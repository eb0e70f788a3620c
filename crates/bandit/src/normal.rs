//! The standard normal distribution: CDF, density, and draws from a seeded
//! generator. Written here (not taken from a distribution crate) so that the
//! draws are part of tuneloop's value-stability contract.

use rand::Rng;

/// `1 / sqrt(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The complementary error function, with fractional error below 1.2e-7
/// everywhere (the Chebyshev fit `erfcc` of Press et al., *Numerical
/// Recipes*, §6.2).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The standard normal CDF Φ(x).
pub(crate) fn cdf(x: f64) -> f64 {
    0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
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

/// Nodes and weights of composite 4-point Gauss–Legendre quadrature on
/// `[-6, 6]` in 12 unit panels, for integrals against φ.
pub(crate) fn quadrature() -> &'static [(f64, f64); 48] {
    static NODES: std::sync::OnceLock<[(f64, f64); 48]> = std::sync::OnceLock::new();
    NODES.get_or_init(|| {
        const X: [f64; 4] = [
            -0.861_136_311_594_052_6,
            -0.339_981_043_584_856_3,
            0.339_981_043_584_856_3,
            0.861_136_311_594_052_6,
        ];
        const W: [f64; 4] = [
            0.347_854_845_137_453_9,
            0.652_145_154_862_546_1,
            0.652_145_154_862_546_1,
            0.347_854_845_137_453_9,
        ];
        let mut out = [(0.0, 0.0); 48];
        for panel in 0..12 {
            let mid = -5.5 + panel as f64;
            for j in 0..4 {
                let z = mid + 0.5 * X[j];
                out[panel * 4 + j] = (z, 0.5 * W[j] * pdf(z));
            }
        }
        out
    })
}

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
        ];
        for (x, want) in cases {
            let got = cdf(x);
            assert!(
                (got - want).abs() <= 1.2e-7 * want.max(1e-300),
                "Φ({x}) = {got}, want {want}"
            );
        }
        assert!(cdf(-40.0) >= 0.0 && cdf(40.0) <= 1.0);
    }

    #[test]
    fn quadrature_integrates_the_normal_moments() {
        let q = quadrature();
        let m0: f64 = q.iter().map(|(_, w)| w).sum();
        let m2: f64 = q.iter().map(|(z, w)| w * z * z).sum();
        // Mass of φ on [-6, 6] is 1 − 1.97e-9; second moment 1 − 2.9e-7.
        assert!((m0 - 1.0).abs() < 1e-8, "{m0}");
        assert!((m2 - 1.0).abs() < 1e-6, "{m2}");
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
