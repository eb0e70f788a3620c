//! Identifiers of decisions and arms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one decision: joins a recommendation to its outcome and
/// seeds its random choice. A UUID, serialized in its hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DecisionId(Uuid);

impl DecisionId {
    /// A fresh random (version 4) id.
    pub fn random() -> Self {
        DecisionId(Uuid::new_v4())
    }

    /// An id from its 128-bit value: for reproducible runs that number
    /// their decisions.
    pub const fn from_u128(v: u128) -> Self {
        DecisionId(Uuid::from_u128(v))
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0.as_u128()
    }

    /// The underlying UUID.
    pub const fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for DecisionId {
    fn from(u: Uuid) -> Self {
        DecisionId(u)
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for DecisionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(DecisionId)
    }
}

/// The stable identity of an arm: the content hash of its
/// [`ParameterSet`](crate::ParameterSet) ([`ParameterSet::arm_id`](crate::ParameterSet::arm_id)).
///
/// Displayed and serialized as 16 lowercase hexadecimal digits (a string,
/// so that tools that read JSON numbers as doubles keep every bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArmId(u64);

impl ArmId {
    /// The id from its raw value.
    pub const fn from_u64(v: u64) -> Self {
        ArmId(v)
    }
    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A text that is not an [`ArmId`] (16 hexadecimal digits); converts
/// into [`Error::InvalidArmId`](crate::Error::InvalidArmId).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an arm id (16 hexadecimal digits): {text:?}")]
pub struct ParseArmIdError {
    /// The text, cut to 64 characters.
    pub text: String,
}

impl FromStr for ArmId {
    type Err = ParseArmIdError;
    fn from_str(s: &str) -> Result<Self, ParseArmIdError> {
        let bad = || ParseArmIdError {
            text: s.chars().take(64).collect(),
        };
        // `from_str_radix` checks every digit; it also takes a leading `+`.
        if s.len() != 16 || s.starts_with('+') {
            return Err(bad());
        }
        u64::from_str_radix(s, 16).map(ArmId).map_err(|_| bad())
    }
}

impl Serialize for ArmId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Parsed from the input's own bytes where it allows (a log line
        // holds an id per eligible arm: no allocation for each).
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = ArmId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an arm id (16 hexadecimal digits)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<ArmId, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Hex)
    }
}

/// A [`std::hash::Hasher`] for maps keyed by [`ArmId`]: an arm id is already
/// a well-mixed 64-bit hash, so it is used as is instead of being hashed
/// again (SipHash would cost more than the lookup).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmIdHasher(u64);

impl std::hash::Hasher for ArmIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than `ArmId`: fold the bytes in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// `BuildHasher` of [`ArmIdHasher`]: `HashMap<ArmId, V, ArmIdBuildHasher>`.
pub type ArmIdBuildHasher = std::hash::BuildHasherDefault<ArmIdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let id = DecisionId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(id.to_string().parse::<DecisionId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<DecisionId>().is_err());
        assert_ne!(DecisionId::random(), DecisionId::random());
    }
}
