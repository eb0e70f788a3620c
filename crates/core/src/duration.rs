//! Durations in tuneloop's public APIs are [`std::time::Duration`]s; in
//! JSON (configurations, snapshots) they are numbers of seconds, under
//! field names that say so (`min_dwell_seconds`). [`seconds`] is the serde
//! adapter; [`MAX`] bounds every configured duration, so that adding one to
//! a time stamp can never overflow.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest duration a setting may hold: 100 years.
pub const MAX: Duration = Duration::from_secs(100 * 366 * 86_400);

/// `at + d`, or `None` past the end of representable time.
pub fn after(at: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    at.checked_add_signed(TimeDelta::from_std(d).ok()?)
}

/// `at - d`, or `None` before the start of representable time.
pub fn before(at: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    at.checked_sub_signed(TimeDelta::from_std(d).ok()?)
}

/// Serde adapter: a [`Duration`] as a number of seconds (an integer when
/// whole). Reading refuses negative, non-finite and out-of-range numbers
/// (beyond [`MAX`]) with a message naming the value.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `d` as seconds.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    /// Reads seconds.
    ///
    /// # Errors
    /// A negative, non-finite or too large number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        from_secs(v).map_err(D::Error::custom)
    }

    pub(crate) fn from_secs(v: f64) -> Result<Duration, String> {
        Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| *d <= super::MAX)
            .ok_or_else(|| format!("{v} is not a number of seconds in [0, 100 years]"))
    }

    /// The same for arrays of durations.
    pub mod array {
        use std::time::Duration;

        use serde::ser::SerializeTuple;
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        /// Writes each duration as seconds.
        ///
        /// # Errors
        /// Those of the serializer.
        pub fn serialize<S: Serializer, const N: usize>(
            ds: &[Duration; N],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(N)?;
            for d in ds {
                if d.subsec_nanos() == 0 {
                    t.serialize_element(&d.as_secs())?;
                } else {
                    t.serialize_element(&d.as_secs_f64())?;
                }
            }
            t.end()
        }

        /// Reads `N` numbers of seconds.
        ///
        /// # Errors
        /// A wrong length, or a negative, non-finite or too large number.
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<[Duration; N], D::Error> {
            let v: Vec<f64> = Vec::deserialize(d)?;
            let n = v.len();
            let ds: Vec<Duration> = v
                .into_iter()
                .map(super::from_secs)
                .collect::<Result<_, _>>()
                .map_err(D::Error::custom)?;
            ds.try_into()
                .map_err(|_| D::Error::custom(format!("{n} durations, expected {N}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        #[serde(with = "seconds")]
        ttl_seconds: Duration,
        #[serde(with = "seconds::array")]
        dwell_seconds: [Duration; 2],
    }

    #[test]
    fn durations_are_seconds_in_json_and_bad_ones_are_refused() -> serde_json::Result<()> {
        let s = S {
            ttl_seconds: Duration::from_secs(600),
            dwell_seconds: [Duration::ZERO, Duration::from_millis(1_500)],
        };
        let json = serde_json::to_string(&s)?;
        assert_eq!(json, r#"{"ttl_seconds":600,"dwell_seconds":[0,1.5]}"#);
        assert_eq!(serde_json::from_str::<S>(&json)?, s);
        for bad in [
            r#"{"ttl_seconds":-1,"dwell_seconds":[0,0]}"#,
            r#"{"ttl_seconds":1e300,"dwell_seconds":[0,0]}"#,
            r#"{"ttl_seconds":1,"dwell_seconds":[0]}"#,
        ] {
            assert!(serde_json::from_str::<S>(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn time_arithmetic_saturates_to_none_instead_of_panicking() {
        assert_eq!(
            after(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            None
        );
        assert_eq!(
            before(DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)),
            None
        );
        assert_eq!(after(DateTime::<Utc>::MIN_UTC, Duration::MAX), None);
        let t = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            after(t, Duration::from_secs(60)).map(|a| a.timestamp()),
            Some(60)
        );
    }
}
