//! [`PgDecisionLog`]: the decision log in PostgreSQL, written in batches by
//! a background thread that outlives outages of the database.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use tokio_postgres::Client;
use tuneloop_counterfactual::{DecisionLog, LoggedDecision};

use crate::{Error, Result, connect_client, query_error, redact};

/// How the log buffers and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgLogConfig {
    /// Records kept in memory while they wait for the database (default
    /// 100,000: minutes of an outage at hundreds of decisions a second).
    /// Past it a record is dropped and counted.
    pub buffer: usize,
    /// Records per `INSERT` (default 2,000).
    pub batch: usize,
    /// Longest wait between reconnection attempts (default 5 s; the wait
    /// starts at 100 ms and doubles).
    pub max_backoff: Duration,
    /// Writer threads, each with a connection of its own (default 2: the
    /// server checks one batch's JSON while the next is sent).
    pub writers: usize,
    /// How long a writer waits for a batch to fill before it writes what
    /// it has (default 10 ms): at a low rate records go in one `INSERT`
    /// per `linger` instead of one each, so the log's work (and the
    /// server's) stays off the cores serving requests. Zero writes at once.
    pub linger: Duration,
}

impl Default for PgLogConfig {
    fn default() -> Self {
        PgLogConfig {
            buffer: 100_000,
            batch: 2_000,
            max_backoff: Duration::from_secs(5),
            writers: 2,
            linger: Duration::from_millis(10),
        }
    }
}

/// What the log has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PgLogStats {
    /// Records waiting (buffered or in the batch being written).
    pub pending: usize,
    /// Records written (a record retried after a lost acknowledgement
    /// counts once per acknowledged batch).
    pub written: u64,
    /// Records dropped because the buffer was full.
    pub dropped: u64,
    /// Batches that failed (each is retried).
    pub failed_batches: u64,
    /// Whether the last attempt reached the database.
    pub connected: bool,
}

/// A record ready for the `INSERT`: id, task type, time, JSON.
type Row = [String; 4];

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Row>,
    in_flight: usize,
    stats: PgLogStats,
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a record arrives or the log closes.
    work: Condvar,
    /// Signalled when a batch is written.
    progress: Condvar,
    config: PgLogConfig,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The decision log of a fleet: every process appends to the same table.
///
/// ```no_run
/// use std::sync::Arc;
/// use tuneloop_store::{PgDecisionLog, PgLogConfig};
/// let log = PgDecisionLog::open("postgres://postgres@127.0.0.1:5432/tuneloop", PgLogConfig::default())?;
/// // Optimizer::builder().decision_log(Arc::new(log)) ...
/// # Ok::<(), tuneloop_store::Error>(())
/// ```
#[derive(Debug)]
pub struct PgDecisionLog {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

const INSERT: &str = "INSERT INTO tuneloop_decisions (decision_id, task_type, decided_at, record)
    SELECT d::uuid, t, ts::timestamptz, r::json
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(d, t, ts, r)
    ON CONFLICT (decision_id) DO NOTHING";

impl PgDecisionLog {
    /// Connects to `url`, migrates the schema (as
    /// [`Store::connect`](crate::Store::connect)), and starts the writer.
    ///
    /// # Errors
    /// As [`Store::connect`](crate::Store::connect): the log refuses to
    /// start on a database it cannot use. Once started, outages are
    /// retried, not returned.
    pub fn open(url: &str, config: PgLogConfig) -> Result<PgDecisionLog> {
        if config.buffer == 0 || config.batch == 0 || !(1..=16).contains(&config.writers) {
            return Err(Error::Runtime(
                "buffer and batch must be at least 1 record, and writers 1 to 16".into(),
            ));
        }
        // Checks the URL and the schema now, so a mistake is an error at
        // start and not a log that silently never writes.
        drop(crate::Store::connect(url)?);
        let writers = config.writers;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            config,
        });
        let mut threads = Vec::with_capacity(writers);
        for i in 0..writers {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(e.to_string()))?;
            let writer = Writer {
                shared: shared.clone(),
                runtime,
                url: url.to_owned(),
                client: None,
            };
            let thread = std::thread::Builder::new()
                .name(format!("tuneloop pg log {i}"))
                .spawn(move || writer.run())
                .map_err(|e| Error::Runtime(e.to_string()))?;
            threads.push(thread);
        }
        Ok(PgDecisionLog {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> PgLogStats {
        let s = lock(&self.shared.state);
        PgLogStats {
            pending: s.queue.len() + s.in_flight,
            ..s.stats
        }
    }

    /// Waits until every record appended so far is written, or `timeout`
    /// passes; whether everything was written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.shared.state);
        while !(s.queue.is_empty() && s.in_flight == 0) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            s = self
                .shared
                .progress
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl DecisionLog for PgDecisionLog {
    fn append(&self, record: &LoggedDecision) -> tuneloop_counterfactual::Result<()> {
        let io = |kind: std::io::ErrorKind, message: String| tuneloop_counterfactual::Error::Io {
            path: "PostgreSQL decision log".into(),
            source: std::io::Error::new(kind, message),
        };
        let json = serde_json::to_string(record)
            .map_err(|e| io(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let row = [
            record.decision_id.to_string(),
            record.task_type.clone(),
            record.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true),
            json,
        ];
        let mut s = lock(&self.shared.state);
        if s.queue.len() + s.in_flight >= self.shared.config.buffer {
            s.stats.dropped += 1;
            return Err(io(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "its buffer of {} records is full (the database has been unreachable): record dropped",
                    self.shared.config.buffer
                ),
            ));
        }
        s.queue.push_back(row);
        // A writer wakes for the first record (and lingers for more) and
        // for a full batch, not for every record.
        let wake = s.queue.len() == 1 || s.queue.len() >= self.shared.config.batch;
        drop(s);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(())
    }
}

impl Drop for PgDecisionLog {
    /// Writes what is buffered (retrying while the database answers) and
    /// stops the writer; a record still unwritten when the database does
    /// not answer is counted as dropped.
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.work.notify_all();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A background writer: one connection, batches, backoff.
struct Writer {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    url: String,
    client: Option<Client>,
}

impl Writer {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let batch = {
                let mut s = lock(&self.shared.state);
                while s.queue.is_empty() && !s.closing {
                    s = self
                        .shared
                        .work
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if s.queue.is_empty() {
                    return;
                }
                // Linger for a fuller batch: at low rates one INSERT per
                // `linger` instead of one per record.
                let batch = self.shared.config.batch;
                let linger = self.shared.config.linger;
                if s.queue.len() < batch && !s.closing && !linger.is_zero() {
                    s = self
                        .shared
                        .work
                        .wait_timeout_while(s, linger, |s| s.queue.len() < batch && !s.closing)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if s.queue.is_empty() {
                    continue;
                }
                let n = s.queue.len().min(self.shared.config.batch);
                let batch: Vec<Row> = s.queue.drain(..n).collect();
                s.in_flight += batch.len();
                batch
            };
            match self.write(&batch) {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    let mut s = lock(&self.shared.state);
                    s.in_flight -= batch.len();
                    s.stats.written += batch.len() as u64;
                    s.stats.connected = true;
                    drop(s);
                    self.shared.progress.notify_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, records = batch.len(), "decision log batch not written; retrying");
                    self.client = None;
                    let mut s = lock(&self.shared.state);
                    s.in_flight -= batch.len();
                    s.stats.failed_batches += 1;
                    s.stats.connected = false;
                    if s.closing {
                        // Closing and the database does not answer: count
                        // what is left as dropped and stop.
                        s.stats.dropped += (batch.len() + s.queue.len()) as u64;
                        s.queue.clear();
                        drop(s);
                        self.shared.progress.notify_all();
                        return;
                    }
                    for row in batch.into_iter().rev() {
                        s.queue.push_front(row);
                    }
                    let (s, _) = self
                        .shared
                        .work
                        .wait_timeout_while(s, backoff, |s| !s.closing)
                        .unwrap_or_else(PoisonError::into_inner);
                    drop(s);
                    backoff = (backoff * 2).min(self.shared.config.max_backoff);
                }
            }
        }
    }

    fn write(&mut self, batch: &[Row]) -> Result<()> {
        let url = self.url.clone();
        self.runtime.block_on(async {
            if self.client.is_none() {
                self.client = Some(connect_client(&url).await?);
            }
            let client = self.client.as_ref().ok_or_else(|| Error::Connect {
                target: redact(&url),
                message: "no connection".into(),
                source: None,
            })?;
            let column = |i: usize| batch.iter().map(|r| r[i].as_str()).collect::<Vec<&str>>();
            let (ids, tasks, times, records) = (column(0), column(1), column(2), column(3));
            client
                .execute(INSERT, &[&ids, &tasks, &times, &records])
                .await
                .map_err(query_error("writing decisions"))?;
            Ok(())
        })
    }
}
