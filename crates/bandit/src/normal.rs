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

/// The standard normal CDF Φ(x), from [`erfc`] (relative error below
/// 1.2e-7).
pub(crate) fn cdf_direct(x: f64) -> f64 {
    0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// Φ is tabulated on `[-TABLE_EDGE, TABLE_EDGE]`; beyond, it is 0 or 1 to
/// within 1e-17.
const TABLE_EDGE: f64 = 8.5;
/// Table points per unit of `x`.
const TABLE_DENSITY: f64 = 64.0;

/// Intervals of the table: `x` from -8.5 to 8.5 by 1/64.
const INTERVALS: usize = (2.0 * TABLE_EDGE * TABLE_DENSITY) as usize;

/// The table of Φ: on each interval `[x_i, x_i + 1/64]`, `x_i = -8.5 +
/// i/64`, the coefficients `c` of the cubic `c0 + f(c1 + f(c2 + f c3))` in
/// `f = 64(x − x_i)` that matches Φ and φ at both ends (cubic Hermite
/// interpolation, in the power basis so that an evaluation is three
/// multiply-adds). Of a fixed length, so that an index clamped below it
/// needs no bounds check.
pub(crate) type CdfTable = [[f64; 4]; INTERVALS];

pub(crate) fn cdf_table() -> &'static CdfTable {
    static TABLE: std::sync::OnceLock<Box<CdfTable>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let node = |i: usize| {
            let x = -TABLE_EDGE + i as f64 / TABLE_DENSITY;
            // Φ and its derivative in f (φ times the step).
            (cdf_direct(x), pdf(x) / TABLE_DENSITY)
        };
        let mut table = Box::new([[0.0; 4]; INTERVALS]);
        for (i, c) in table.iter_mut().enumerate() {
            let ((p0, m0), (p1, m1)) = (node(i), node(i + 1));
            *c = [
                p0,
                m0,
                3.0 * (p1 - p0) - 2.0 * m0 - m1,
                2.0 * (p0 - p1) + m0 + m1,
            ];
        }
        table
    })
}

/// The standard normal CDF Φ(x) by cubic Hermite interpolation of a table
/// of Φ and its derivative φ (step 1/64). It agrees with [`cdf_direct`]
/// to 3e-8 absolute, within that fit's own error, and is several times
/// faster than evaluating `exp`.
#[inline]
pub(crate) fn cdf(x: f64) -> f64 {
    if x.is_nan() {
        return 0.5;
    }
    if x <= -TABLE_EDGE {
        return 0.0;
    }
    if x >= TABLE_EDGE {
        return 1.0;
    }
    cdf_clamped(cdf_table(), x)
}

/// Φ(x) by the same interpolation as [`cdf`], without branches: `x` is
/// clamped to the table's range, beyond which Φ is 0 or 1 to within 1e-17.
/// For inner loops over many arguments; `x` must not be NaN (a NaN gives
/// Φ(-8.5) rather than 0.5).
#[inline(always)]
pub(crate) fn cdf_clamped(table: &CdfTable, x: f64) -> f64 {
    let t = (x.clamp(-TABLE_EDGE, TABLE_EDGE) + TABLE_EDGE) * TABLE_DENSITY;
    // `t` is in [0, 1088]; `as` saturates, and the `min` proves the read in
    // bounds to the compiler (t = 1088 reads the last interval at f = 1).
    let i = (t as u32 as usize).min(INTERVALS - 1);
    let f = t - i as f64;
    let c = &table[i];
    c[0] + f * (c[1] + f * (c[2] + f * c[3]))
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
        ];
        for (x, want) in cases {
            let got = cdf(x);
            assert!(
                (got - want).abs() <= 1.2e-7 * want.max(1e-300),
                "Φ({x}) = {got}, want {want}"
            );
        }
        assert!(cdf(-40.0) >= 0.0 && cdf(40.0) <= 1.0);
        // The table agrees with the direct evaluation everywhere to within
        // the fit's own error (the Chebyshev fit's derivative is φ only to
        // about 1e-7, so the two differ at that level, not below).
        let mut worst: f64 = 0.0;
        for i in 0..=200_000 {
            let x = -9.0 + 18.0 * f64::from(i) / 200_000.0;
            worst = worst.max((cdf(x) - cdf_direct(x)).abs());
        }
        assert!(worst < 1e-7, "table error {worst}");
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
