//! A one-pass parser for the decimal numbers tuneloop reads (JSON Lines
//! logs, supervised CSV files): `-12.0345`, `7`, `0.0031980304197504433`,
//! `5.300811081483554e-05`, with the exact result `f64::from_str` gives.
//!
//! The digits read as an integer `m` (leading zeros dropped, at most 19
//! significant digits) and the point and exponent as a power of ten `e`:
//! the value is `m · 10^e`. Three ways to round it correctly:
//!
//! - `m <= 2^53` and `-22 <= e <= 22` (Clinger's fast path): `m · 10^e`
//!   or `m / 10^-e` is one correctly rounded operation on two exactly
//!   represented `f64`s.
//! - otherwise, for `-30 <= e <= 0` (the 17–19 digit numbers that printing
//!   an `f64` in full produces, and small numbers like `1.8e-07`): `m` times
//!   a 128-bit reciprocal of `10^-e`, which gives the top 64 bits of the
//!   quotient to within one unit, enough to round but for the 1 in 1,024
//!   quotients that lie within that unit of a halfway point; those go to
//! - integer division: `m` is shifted left until the quotient
//!   `q = ⌊m·2^s / 10^-e⌋` has at least 54 bits; its top 53 bits are the
//!   mantissa, the next bit is the rounding bit, and the bits below it
//!   together with the remainder say whether the value lies exactly on the
//!   halfway point (then ties go to even, as IEEE 754 and `from_str` do).
//!   It needs `10^-e < 2^74`, so `e >= -22`.
//!
//! Anything else (more than 19 significant digits, a power of ten outside
//! those ranges, a bare `.5` or `5.`, `inf`, `nan`) is left to the caller,
//! which falls back to `f64::from_str`.

/// Powers of ten that `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the number at the start of `s`: an optional `-`, digits,
/// optionally a point followed by more digits, optionally `e` or `E`, a
/// sign and up to four digits. Returns its value and the number of bytes
/// it spans, or `None` when the text is not such a number or not one this
/// parser rounds (the caller should then use `f64::from_str`): no digits,
/// a leading `+` or `.`, a trailing `.` or `e`, a second sign, point or
/// exponent right after it, more than 19 significant digits, or a power of
/// ten outside the ranges of the module documentation.
///
/// ```
/// use tuneloop_core::decimal::parse_prefix;
/// assert_eq!(parse_prefix(b"-12.0345,"), Some((-12.0345, 8)));
/// assert_eq!(parse_prefix(b"0.1"), Some((0.1, 3)));
/// assert_eq!(
///     parse_prefix(b"0.0031980304197504433]"),
///     Some((0.0031980304197504433, 21))
/// );
/// assert_eq!(parse_prefix(b"5.3e-05 "), Some((5.3e-05, 7)));
/// assert_eq!(parse_prefix(b"1e300"), None); // out of range: use from_str
/// assert_eq!(parse_prefix(b".5"), None);
/// ```
#[inline]
pub fn parse_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let neg = s.first() == Some(&b'-');
    let int_start = usize::from(neg);
    // `m` holds the significant digits (those from the first non-zero one
    // on), `sig` counts them.
    let (mut m, mut sig) = (0u64, 0usize);
    let mut i = digit_run(s, int_start, &mut m, &mut sig)?;
    if i == int_start {
        return None;
    }
    let mut exp10 = 0i32;
    if s.get(i) == Some(&b'.') {
        let end = digit_run(s, i + 1, &mut m, &mut sig)?;
        let frac = end - (i + 1);
        if frac == 0 {
            return None;
        }
        exp10 = -i32::try_from(frac).ok()?;
        i = end;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        let neg_exp = s.get(i) == Some(&b'-');
        i += usize::from(matches!(s.get(i), Some(b'-' | b'+')));
        let (start, mut e) = (i, 0i32);
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start == 4 {
                return None;
            }
            e = e * 10 + i32::from(c - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        // Checked: two billion decimals would take it past i32::MIN.
        exp10 = exp10.checked_add(if neg_exp { -e } else { e })?;
    }
    if matches!(s.get(i), Some(b'e' | b'E' | b'+' | b'-' | b'.')) {
        return None;
    }
    let v = if m == 0 {
        0.0
    } else if m <= 1u64 << 53 && (0..=22).contains(&exp10) {
        m as f64 * POW10[exp10.unsigned_abs() as usize]
    } else if m <= 1u64 << 53 && (-22..0).contains(&exp10) {
        m as f64 / POW10[exp10.unsigned_abs() as usize]
    } else if (-30..=0).contains(&exp10) {
        divide(m, exp10.unsigned_abs() as usize)?
    } else {
        return None;
    };
    Some((if neg { -v } else { v }, i))
}

/// Reads the digits from `s[i..]` into `m` and `sig` (leading zeros of
/// `m` are not significant) and returns where they end; `None` past 19
/// significant digits. Eight digits at a time while they fit, because one
/// at a time each waits on the previous multiply.
#[inline]
fn digit_run(s: &[u8], mut i: usize, m: &mut u64, sig: &mut usize) -> Option<usize> {
    while *sig <= 11 {
        let Some(eight) = s.get(i..i + 8).and_then(eight_digits) else {
            break;
        };
        if *m == 0 {
            // Leading zeros: the first non-zero digit starts the count.
            *sig = eight.lead_zeros.map_or(0, |z| 8 - z);
            *m = u64::from(eight.value);
        } else {
            *m = *m * 100_000_000 + u64::from(eight.value);
            *sig += 8;
        }
        i += 8;
    }
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if *m != 0 || c != b'0' {
            if *sig == 19 {
                return None;
            }
            *m = *m * 10 + u64::from(c - b'0');
            *sig += 1;
        }
        i += 1;
    }
    Some(i)
}

/// Eight ASCII digits read as one number.
struct Eight {
    value: u32,
    /// How many of them are leading zeros (`None`: all eight are zeros).
    lead_zeros: Option<usize>,
}

/// Reads eight bytes as eight decimal digits, first byte most significant,
/// or `None` if any is not a digit. SWAR: the bytes minus `'0'` are
/// combined pairwise (`10·a + b` in every second byte), then the four
/// pairs in one pair of multiplies whose 2^32 coefficients sum to the
/// eight-digit value.
#[inline]
fn eight_digits(bytes: &[u8]) -> Option<Eight> {
    let chunk = u64::from_le_bytes(bytes.try_into().ok()?);
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    let high = 0xf0f0_f0f0_f0f0_f0f0u64;
    let zeros = 0x3030_3030_3030_3030u64;
    let all_digits =
        chunk & high == zeros && chunk.wrapping_add(0x0606_0606_0606_0606) & high == zeros;
    if !all_digits {
        return None;
    }
    let d = chunk - zeros;
    let lead_zeros = (d != 0).then(|| d.trailing_zeros() as usize / 8);
    // Byte 2j now holds the two-digit number of digits 2j and 2j+1.
    let pairs = d.wrapping_mul(10).wrapping_add(d >> 8);
    let mask = 0x0000_00ff_0000_00ffu64;
    // (p0 + p4·2^32)(10^6·2^32 + 100) and (p2 + p6·2^32)(10^4·2^32 + 1)
    // carry p0·10^6 + p4·100 and p2·10^4 + p6 at 2^32; the parts below 2^32
    // (at most 99·100 + 99) do not carry into it.
    let a = (pairs & mask).wrapping_mul(100 + (1_000_000 << 32));
    let b = ((pairs >> 16) & mask).wrapping_mul(1 + (10_000 << 32));
    let value = (a.wrapping_add(b) >> 32) as u32;
    Some(Eight { value, lead_zeros })
}

/// `⌈2^e / 10^k⌉` and `e` for `k <= 30`, with `e` chosen so the
/// reciprocal lies in `(2^126, 2^127]`: the multipliers of [`divide`].
const RECIPROCALS: [(u128, u32); 31] = {
    let mut table = [(0u128, 0u32); 31];
    let mut k = 0;
    while k < 31 {
        let p = 10u128.pow(k as u32);
        // 2^(b−1) <= 10^k < 2^b, so 2^(126 + b) / 10^k is in (2^126, 2^127].
        let e = 126 + (128 - p.leading_zeros());
        // Long division of 2^e by p, one bit at a time (r < p < 2^100).
        let (mut q, mut r) = (0u128, 0u128);
        let mut bit = e + 1;
        while bit > 0 {
            bit -= 1;
            r = r * 2 + (bit == e) as u128;
            q *= 2;
            if r >= p {
                r -= p;
                q += 1;
            }
        }
        table[k] = (q + (r != 0) as u128, e);
        k += 1;
    }
    table
};

/// `m / 10^k` correctly rounded (to nearest, ties to even), for `m >= 1`
/// and `k <= 30`; `None` in the rare case it takes an exact division that
/// `k > 22` rules out.
///
/// Multiplies by the reciprocal `R = ⌈2^e / 10^k⌉` instead of dividing:
/// `m·R = m·2^e/10^k + m·δ` with `0 <= m·δ < m`, and the top 64 bits `t`
/// of the product drop at least `bits(m) + 61` bits, so `t` is the top 64
/// bits of the exact quotient or one more. Its low 11 bits decide the
/// rounding unless they are `0x400` or `0x401`, where the one unit of doubt
/// could cross the halfway point: then (1 time in 1,024) the exact integer
/// division decides.
#[inline]
fn divide(m: u64, k: usize) -> Option<f64> {
    let (r, e) = RECIPROCALS[k];
    let lo = u128::from(m) * (r & u128::from(u64::MAX));
    let hi = u128::from(m) * (r >> 64);
    // m·R >> 64; m·R < 2^191, so this cannot overflow.
    let top = hi + (lo >> 64);
    let z = top.leading_zeros();
    let t = ((top << z) >> 64) as u64;
    let low = t & 0x7ff;
    if low == 0x400 || low == 0x401 {
        return (k <= 22).then(|| divide_rounded(m, k));
    }
    let mantissa = (t >> 11) + u64::from(low > 0x400);
    // t ≈ m/10^k · 2^(e − (128 − z)), t >> 11 the mantissa.
    let exp = i64::from(128 - z) + 11 - i64::from(e);
    Some(mantissa as f64 * f64::from_bits(((1023 + exp) as u64) << 52))
}

/// `m / 10^k` correctly rounded (to nearest, ties to even), for `m >= 1`
/// and `k <= 22`, by integer division: see the module documentation.
fn divide_rounded(m: u64, k: usize) -> f64 {
    let p = 10u128.pow(k as u32);
    let (m_bits, p_bits) = (64 - m.leading_zeros(), 128 - p.leading_zeros());
    // n = m·2^s >= 2^(53 + bits(p)) > 2^53·p, so q >= 2^53 has at least 54
    // bits; n has at most max(64, 54 + bits(10^22) = 74) = 128 bits.
    let s = (54 + p_bits).saturating_sub(m_bits);
    let n = u128::from(m) << s;
    let (q, r) = (n / p, n % p);
    let e = 128 - q.leading_zeros() - 53; // bits below the mantissa, >= 1
    let mantissa = (q >> e) as u64;
    let rest = q & ((1u128 << e) - 1);
    let half = 1u128 << (e - 1);
    let up = rest > half || (rest == half && (r != 0 || mantissa & 1 == 1));
    // mantissa + 1 may be 2^53, which is still exact.
    let mantissa = mantissa + u64::from(up);
    // The value is mantissa · 2^(e − s); the exponent stays well inside the
    // normal range (the value lies between 10^-22 and 2^64).
    let exp = i64::from(e) - i64::from(s);
    mantissa as f64 * f64::from_bits(((1023 + exp) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_what_the_fast_path_cannot_round() {
        for text in [
            "",
            "-",
            ".",
            "5.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "1.e3",
            "1e3e",
            "1e3.5",
            "1e12345",             // five exponent digits
            "1e23",                // 10^23 is not exact
            "1e-31",               // past the reciprocals' table
            "12345678901234567e1", // m above 2^53 times a power of ten
            "--1",
            "1.2.3",
            "nan",
            "inf",
            "12345678901234567890",   // 20 digits
            "12345678901234567890.5", // 21 significant digits
            "18446744073709551615",   // 2^64 − 1: 20 significant digits
            "0.3000000000000000444089209850062616169452667236328125",
            "0.00000000000000000012345678901234567890", // 20 significant
            "0.0000000000000000000000000000001",        // 10^-31
        ] {
            assert_eq!(parse_prefix(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn stops_at_the_first_byte_after_the_number() {
        assert_eq!(parse_prefix(b"3.25]"), Some((3.25, 4)));
        assert_eq!(parse_prefix(b"-0,1"), Some((-0.0, 2)));
        assert_eq!(parse_prefix(b"42 "), Some((42.0, 2)));
    }

    #[test]
    fn exponents_scale_by_exact_powers_of_ten() {
        for text in [
            "1e3",
            "1E3",
            "1e+3",
            "-1.5e-3",
            "5.300811081483554e-05",
            "9.909637666783478e-05",
            "2.5e22",
            "1.2345678901234567e-5", // 17 digits: integer division
            "0e999",
            "-0.0e-999",
            "0.000000000000000000000001e5", // 24 decimals, then 10^5
        ] {
            let want: f64 = text.parse().expect("valid number");
            let (got, len) = parse_prefix(text.as_bytes()).expect(text);
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
            assert_eq!(len, text.len(), "{text}");
        }
    }

    #[test]
    fn long_mantissas_round_to_nearest_even() {
        for text in [
            "9007199254740993",     // 2^53 + 1: halfway, down to even 2^53
            "9007199254740995",     // halfway, up to even 2^53 + 4
            "9007199254740993.0",   // the same halfway point with a decimal
            "9007199254740993.001", // just above halfway: up
            "9007199254740992.999", // just below 2^53 + 1: down
            "4503599627370496.5",   // 2^52 + 1/2: halfway, down to even
            "4503599627370497.5",   // halfway, up to even 2^52 + 2
            "9999999999999999999",  // 19 nines
            "1000000000000000001",
            "0.0031980304197504433",
            "0.1000000000000000055", // 0.1's double plus a little
            "123456.7890123456789",
            "0.0000012345678901234567", // 22 decimals
        ] {
            let want: f64 = text.parse().expect("valid decimal");
            let (got, len) = parse_prefix(text.as_bytes()).expect(text);
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
            assert_eq!(len, text.len(), "{text}");
        }
        assert_eq!(
            parse_prefix(b"9007199254740993"),
            Some((9_007_199_254_740_992.0, 16))
        );
        assert_eq!(
            parse_prefix(b"4503599627370497.5"),
            Some((4_503_599_627_370_498.0, 18))
        );
    }

    proptest! {
        #[test]
        fn any_digit_string_parses_as_from_str_does(
            mantissa in "-?[0-9]{1,24}(\\.[0-9]{1,24})?",
            exponent in proptest::option::of(-40i32..40),
        ) {
            let text = match exponent {
                Some(e) => format!("{mantissa}e{e}"),
                None => mantissa.clone(),
            };
            let want: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let digits = mantissa.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').len();
            let decimals = mantissa.find('.').map_or(0, |p| mantissa.len() - p - 1);
            // The power of ten the digits, read as an integer, are scaled by.
            let power = exponent.unwrap_or(0) - decimals as i32;
            let exact = significant <= 19
                && if digits.trim_start_matches('0').parse::<u64>().is_ok_and(|m| m <= 1 << 53) {
                    (-22..=22).contains(&power)
                } else {
                    (-22..=0).contains(&power)
                };
            match parse_prefix(text.as_bytes()) {
                Some((got, len)) => {
                    prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text);
                    prop_assert_eq!(len, text.len());
                }
                None => prop_assert!(
                    !exact,
                    "{} refused with {} significant digits, 10^{}",
                    text, significant, power
                ),
            }
        }
    }

    #[test]
    fn reciprocals_are_the_ceilings_of_powers_of_two_over_powers_of_ten() {
        // Reference values: ⌈2^e / 10^k⌉ in Python's exact integers.
        assert_eq!(RECIPROCALS[0], (1 << 127, 127));
        for (k, e, r) in [
            (
                1,
                130,
                136_112_946_768_375_385_385_349_842_972_707_284_583u128,
            ),
            (7, 150, 142_724_769_270_595_988_105_828_596_944_949_513_639),
            (19, 190, 156_927_543_384_667_019_095_894_735_580_191_660_403),
            (22, 200, 160_693_804_425_899_027_554_196_209_234_116_260_253),
        ] {
            assert_eq!(RECIPROCALS[k], (r, e), "k = {k}");
        }
        for (k, &(r, e)) in RECIPROCALS.iter().enumerate() {
            assert!(r > 1 << 126 && r <= 1 << 127, "k = {k}");
            assert_eq!(e, 126 + (128 - 10u128.pow(k as u32).leading_zeros()));
        }
    }

    #[test]
    fn the_reciprocal_path_defers_near_halfway_points() {
        // 2^53 + 1 is halfway between two doubles: t's low bits are 0x400
        // and the exact division rounds it to even.
        assert_eq!(
            divide(9_007_199_254_740_993, 0),
            Some(9_007_199_254_740_992.0)
        );
        assert_eq!(
            divide(9_007_199_254_740_995, 0),
            Some(9_007_199_254_740_996.0)
        );
        assert_eq!(
            divide(45_035_996_273_704_965, 1),
            Some(4_503_599_627_370_496.0)
        );
        // Past 10^22 the exact division is out of reach: left to from_str.
        // (1000000000000000336 · R's top 64 bits end in 0x401.)
        assert_eq!(divide(1_000_000_000_000_000_336, 23), None);
    }

    proptest! {
        #[test]
        fn the_reciprocal_path_equals_exact_division(
            m in 1u64..=u64::MAX,
            k in 0usize..=22,
        ) {
            let got = divide(m, k).map(f64::to_bits);
            prop_assert_eq!(got, Some(divide_rounded(m, k).to_bits()), "{} / 10^{}", m, k);
        }

        #[test]
        fn the_reciprocal_path_equals_from_str_past_ten_to_the_22(
            m in 1u64..10_000_000_000_000_000_000,
            k in 23usize..=30,
        ) {
            let want: f64 = format!("{m}e-{k}").parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            if let Some(got) = divide(m, k) {
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{} / 10^{}", m, k);
            }
        }
    }

    proptest! {
        #[test]
        fn long_decimals_equal_from_str_bit_for_bit(
            neg in any::<bool>(),
            mantissa in 9_007_199_254_740_993u64..=9_999_999_999_999_999_999,
            zeros in 0usize..4,
            point in 0usize..20,
        ) {
            // `mantissa` (16–19 digits, above 2^53) with `point` of its
            // digits after the decimal point and `zeros` zeros before them.
            let digits = mantissa.to_string();
            let point = point.min(digits.len() - 1);
            let (int, frac) = digits.split_at(digits.len() - point);
            let text = if zeros > 0 {
                format!("{}0.{}{digits}", if neg { "-" } else { "" }, "0".repeat(zeros - 1))
            } else if frac.is_empty() {
                format!("{}{int}", if neg { "-" } else { "" })
            } else {
                format!("{}{int}.{frac}", if neg { "-" } else { "" })
            };
            let want: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let (got, len) = parse_prefix(text.as_bytes())
                .ok_or_else(|| TestCaseError::fail(format!("{text} refused")))?;
            prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text);
            prop_assert_eq!(len, text.len());
        }
    }

    proptest! {
        #[test]
        fn equals_from_str_bit_for_bit(
            neg in any::<bool>(),
            int in 0u64..10_000_000_000,
            frac in proptest::option::of("[0-9]{1,12}"),
        ) {
            let text = format!(
                "{}{int}{}",
                if neg { "-" } else { "" },
                frac.map(|f| format!(".{f}")).unwrap_or_default()
            );
            let want: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            if let Some((got, len)) = parse_prefix(text.as_bytes()) {
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text);
                prop_assert_eq!(len, text.len());
            }
        }
    }
}
