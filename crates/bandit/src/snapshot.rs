//! Snapshots: a policy's whole state as versioned JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tuneloop_core::{PolicySnapshot, Result as CoreResult};

use crate::error::{Error, Result};

/// The snapshot format version written by this release of every policy.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) fn to_snapshot<T: Serialize>(
    policy: &T,
    kind: &str,
    version: u64,
) -> CoreResult<PolicySnapshot> {
    let state = serde_json::to_value(policy).map_err(|e| tuneloop_core::Error::Snapshot {
        reason: format!("{kind}: {e}"),
    })?;
    Ok(PolicySnapshot {
        schema_version: SCHEMA_VERSION,
        kind: kind.to_owned(),
        version,
        state,
    })
}

pub(crate) fn from_snapshot<T: DeserializeOwned>(s: &PolicySnapshot, kind: &str) -> Result<T> {
    if s.kind != kind {
        return Err(Error::Snapshot {
            reason: format!("snapshot is of kind `{}`, expected `{kind}`", s.kind),
        });
    }
    if s.schema_version != SCHEMA_VERSION {
        return Err(Error::Snapshot {
            reason: format!(
                "snapshot schema version {} is not supported (this release reads {SCHEMA_VERSION})",
                s.schema_version
            ),
        });
    }
    T::deserialize(&s.state).map_err(|e| Error::Snapshot {
        reason: format!("{kind} state: {e}"),
    })
}
