//! A tamper-evident record of every change: who, when, why, which version,
//! approved by whom. Each record carries the SHA-256 of the previous one,
//! so editing, inserting, reordering or dropping any record but the newest
//! breaks the chain. Dropping records from the end cannot be seen in the
//! file alone: keep the newest record's `hash` (the head) where the file's
//! writer cannot change it, and compare it with the chain's last hash.
//! A last line torn by a crash (never acknowledged) is left out on reading
//! and cut off when the chain is reopened.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Deepest nesting of a change's `details` that [`Provenance::record`]
/// takes: the chain must read back (serde_json stops at 128 levels).
pub const MAX_DETAILS_DEPTH: usize = 64;

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Generation parameters (an incumbent arm, an arm set).
    Parameters,
    /// A policy's version (promotion of a candidate).
    PolicyVersion,
    /// Configuration (gates, budgets, rollout).
    Configuration,
    /// A rollout phase change or rollback.
    Rollout,
}

/// Who approved a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approver.
    pub approver: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A change to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Who made it (a person or a component).
    pub actor: String,
    /// What kind of change.
    pub kind: ChangeKind,
    /// Why.
    pub reason: String,
    /// The version after the change.
    pub version: String,
    /// Approval, if required and given.
    pub approval: Option<Approval>,
    /// Anything else worth keeping (old and new values, evidence).
    pub details: serde_json::Value,
}

/// One record of the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceRecord {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// `hash` of the previous record ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's canonical encoding.
    pub hash: String,
}

/// The canonical bytes a record's hash covers: every field but `hash`,
/// length-prefixed, in a fixed order, with the timestamp in RFC 3339 at
/// nanosecond precision and details as compact JSON (object keys sorted).
fn canonical(seq: u64, timestamp: &DateTime<Utc>, change: &Change, prev_hash: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    field(b"tuneloop.provenance.v1");
    field(&seq.to_le_bytes());
    field(
        timestamp
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .as_bytes(),
    );
    field(change.actor.as_bytes());
    field(
        serde_json::to_string(&change.kind)
            .unwrap_or_default()
            .as_bytes(),
    );
    field(change.reason.as_bytes());
    field(change.version.as_bytes());
    match &change.approval {
        Some(a) => {
            field(b"approved");
            field(a.approver.as_bytes());
            field(a.at.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        }
        None => field(b"unapproved"),
    }
    field(change.details.to_string().as_bytes());
    field(prev_hash.as_bytes());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_of(seq: u64, timestamp: &DateTime<Utc>, change: &Change, prev_hash: &str) -> String {
    hex(&Sha256::digest(canonical(
        seq, timestamp, change, prev_hash,
    )))
}

/// Checks a chain: sequence numbers from 0 without gaps, every hash right,
/// every record linked to the one before.
///
/// # Errors
/// [`Error::Tampered`] naming the first bad record.
pub fn verify(records: &[ProvenanceRecord]) -> Result<()> {
    let mut prev = GENESIS.to_owned();
    for (i, r) in records.iter().enumerate() {
        let bad = |problem: &str| {
            Err(Error::Tampered {
                seq: r.seq,
                problem: problem.to_owned(),
            })
        };
        if r.seq != i as u64 {
            return bad(&format!(
                "expected sequence number {i} (a record was dropped or moved)"
            ));
        }
        if r.prev_hash != prev {
            return bad("does not link to the previous record");
        }
        if hash_of(r.seq, &r.timestamp, &r.change, &r.prev_hash) != r.hash {
            return bad("its contents do not match its hash (edited)");
        }
        prev.clone_from(&r.hash);
    }
    Ok(())
}

/// An append-only provenance chain, in memory and optionally persisted as
/// JSON Lines (one record a line, flushed per record).
#[derive(Debug)]
pub struct Provenance {
    records: Vec<ProvenanceRecord>,
    file: Option<(PathBuf, File)>,
}

impl Default for Provenance {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Provenance {
    /// A chain kept in memory only.
    pub fn in_memory() -> Self {
        Provenance {
            records: Vec::new(),
            file: None,
        }
    }

    /// Opens (or creates) a chain persisted at `path`, verifying what is
    /// already there.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Tampered`] if the file's chain does not
    /// verify (a record that does not parse counts as tampering).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let (records, end) = if path.exists() {
            read_with_end(&path)?
        } else {
            (Vec::new(), 0)
        };
        verify(&records)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        // A torn last write is cut off before anything is appended.
        if file.metadata().map_err(io)?.len() > end {
            file.set_len(end).map_err(io)?;
        }
        Ok(Provenance {
            records,
            file: Some((path, file)),
        })
    }

    /// Records a change, now.
    ///
    /// # Errors
    /// [`Error::Io`] if the record cannot be persisted (it is then not
    /// kept in memory either).
    pub fn record(&mut self, change: Change, now: DateTime<Utc>) -> Result<&ProvenanceRecord> {
        let depth = json_depth(&change.details);
        if depth > MAX_DETAILS_DEPTH {
            return Err(Error::InvalidSetting {
                field: "details",
                value: depth as f64,
                expected: "JSON nested at most 64 deep (MAX_DETAILS_DEPTH), so the chain reads back",
            });
        }
        let seq = self.records.len() as u64;
        let prev_hash = self
            .records
            .last()
            .map_or_else(|| GENESIS.to_owned(), |r| r.hash.clone());
        let hash = hash_of(seq, &now, &change, &prev_hash);
        let record = ProvenanceRecord {
            seq,
            timestamp: now,
            change,
            prev_hash,
            hash,
        };
        if let Some((path, file)) = &mut self.file {
            let io = |source| Error::Io {
                path: path.display().to_string(),
                source,
            };
            let mut line = serde_json::to_vec(&record).map_err(|e| io(std::io::Error::other(e)))?;
            line.push(b'\n');
            let before = file.metadata().map_err(io)?.len();
            if let Err(e) = file.write_all(&line).and_then(|()| file.flush()) {
                // A short write (a full disk): cut the fragment off, so the
                // chain still reads back and the next record starts a line.
                let _ = file.set_len(before);
                return Err(io(e));
            }
        }
        self.records.push(record);
        Ok(&self.records[self.records.len() - 1])
    }

    /// The records, oldest first.
    pub fn records(&self) -> &[ProvenanceRecord] {
        &self.records
    }
}

/// Reads a persisted chain (without verifying it).
///
/// # Errors
/// [`Error::Io`], or [`Error::Tampered`] for a line that does not parse.
pub fn read(path: &Path) -> Result<Vec<ProvenanceRecord>> {
    Ok(read_with_end(path)?.0)
}

/// The records, and the length of the file up to the end of the last whole
/// record. A last line without a line break that does not parse is a write
/// torn by a crash (never acknowledged): it is left out.
fn read_with_end(path: &Path) -> Result<(Vec<ProvenanceRecord>, u64)> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let (mut out, mut end, mut buf, mut i) = (Vec::new(), 0u64, Vec::new(), 0usize);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        i += 1;
        let complete = buf.last() == Some(&b'\n');
        if buf.trim_ascii().is_empty() {
            end += n as u64;
            continue;
        }
        match serde_json::from_slice::<ProvenanceRecord>(buf.trim_ascii_end()) {
            Ok(r) => {
                out.push(r);
                end += n as u64;
            }
            Err(_) if !complete => break,
            Err(e) => {
                return Err(Error::Tampered {
                    seq: out.len() as u64,
                    problem: format!("line {i} does not parse: {e}"),
                });
            }
        }
    }
    Ok((out, end))
}
