//! A one-pass parser for plain decimal numbers (`-12.0345`, `7`), the
//! common case of the numeric text tuneloop reads (JSON Lines logs,
//! supervised CSV files), with the exact result `f64::from_str` gives.
//!
//! Clinger's fast path: when the digits read as an integer `m` are at most
//! 2^53 and at most 22 of them follow the point, `m / 10^k` is one
//! correctly rounded division of two exactly represented values, so it is
//! the correctly rounded value of the decimal. Anything else (exponents,
//! long mantissas, a bare `.5` or `5.`) is left to the caller, which falls
//! back to `f64::from_str`.

/// Powers of ten that `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the plain decimal at the start of `s`: an optional `-`, digits,
/// and optionally a point followed by more digits. Returns its value and
/// the number of bytes it spans, or `None` when the text is not a plain
/// decimal the fast path can round exactly (the caller should then use
/// `f64::from_str`): no digits, a leading `+` or `.`, a trailing `.`, an
/// exponent, a second sign or point right after it, more than 19 digits, a
/// mantissa above 2^53 or more than 22 decimals.
///
/// ```
/// use tuneloop_core::decimal::plain_decimal;
/// assert_eq!(plain_decimal(b"-12.0345,"), Some((-12.0345, 8)));
/// assert_eq!(plain_decimal(b"0.1"), Some((0.1, 3)));
/// assert_eq!(plain_decimal(b"1e5"), None); // exponent: use from_str
/// assert_eq!(plain_decimal(b".5"), None);
/// ```
#[inline]
pub fn plain_decimal(s: &[u8]) -> Option<(f64, usize)> {
    let neg = s.first() == Some(&b'-');
    let mut i = usize::from(neg);
    let (mut m, mut count, mut frac, mut point) = (0u64, 0usize, 0usize, false);
    while let Some(&c) = s.get(i) {
        match c {
            b'0'..=b'9' => {
                if count < 19 {
                    m = m * 10 + u64::from(c - b'0');
                }
                count += 1;
                frac += usize::from(point);
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    let plain = !matches!(s.get(i), Some(b'e' | b'E' | b'+' | b'-' | b'.'))
        && count > 0
        && count <= 19
        && (!point || (frac > 0 && frac < count))
        && m <= 1u64 << 53
        && frac <= 22;
    if !plain {
        return None;
    }
    let v = m as f64 / POW10[frac];
    Some((if neg { -v } else { v }, i))
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
            "1e3",
            "1E3",
            "1.5e-3",
            "--1",
            "1.2.3",
            "nan",
            "inf",
            "12345678901234567890",      // 20 digits
            "9007199254740993",          // 2^53 + 1
            "0.00000000000000000000001", // 23 decimals
        ] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn stops_at_the_first_byte_after_the_number() {
        assert_eq!(plain_decimal(b"3.25]"), Some((3.25, 4)));
        assert_eq!(plain_decimal(b"-0,1"), Some((-0.0, 2)));
        assert_eq!(plain_decimal(b"42 "), Some((42.0, 2)));
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
            if let Some((got, len)) = plain_decimal(text.as_bytes()) {
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text);
                prop_assert_eq!(len, text.len());
            }
        }
    }
}
