//! Identifiers of decisions.

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
