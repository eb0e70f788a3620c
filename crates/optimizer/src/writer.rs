//! The background log writer: the hot path hands records to a bounded
//! queue and never waits on I/O.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tuneloop_counterfactual::{DecisionLog, LoggedDecision};

/// How far the writer has got: records it has handed to the sink (written
/// or failed), with a condition variable for blocking waiters and a
/// [`tokio::sync::Notify`] for async ones (it works on any executor).
#[derive(Debug, Default)]
struct Progress {
    done: Mutex<u64>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

impl Progress {
    fn done(&self) -> u64 {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn advance(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
        self.notify.notify_waiters();
    }
}

/// Sends records to a [`DecisionLog`] from a thread of its own.
///
/// Policy when the queue is full: the record is dropped and counted
/// (`log_dropped`), so a slow disk can never stall a request. Size the
/// queue (`OptimizerBuilder::log_queue`) for bursts.
#[derive(Debug)]
pub(crate) struct LogWriter {
    tx: Option<SyncSender<LoggedDecision>>,
    handle: Option<JoinHandle<()>>,
    /// Records queued so far.
    sent: AtomicU64,
    progress: Arc<Progress>,
    /// Set by `close`: later records are dropped (and counted).
    closed: AtomicBool,
    dropped: AtomicU64,
    failed: Arc<AtomicU64>,
}

impl LogWriter {
    pub(crate) fn spawn(sink: Arc<dyn DecisionLog>, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<LoggedDecision>(capacity.max(1));
        let failed = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Progress::default());
        let (failed_in, progress_in) = (failed.clone(), progress.clone());
        let handle = std::thread::Builder::new()
            .name("tuneloop-log".into())
            .spawn(move || {
                for record in rx {
                    if let Err(e) = sink.append(&record) {
                        failed_in.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "decision log write failed");
                    }
                    progress_in.advance();
                }
            })?;
        Ok(LogWriter {
            tx: Some(tx),
            handle: Some(handle),
            sent: AtomicU64::new(0),
            progress,
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            failed,
        })
    }

    /// Records `(dropped, failed)` so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.dropped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn send(&self, record: LoggedDecision) {
        let Some(tx) = self
            .tx
            .as_ref()
            .filter(|_| !self.closed.load(Ordering::Acquire))
        else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match tx.try_send(record) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Release);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until every record queued before the call has been handed to
    /// the sink (written, or counted as failed).
    pub(crate) fn flush(&self) {
        let target = self.sent.load(Ordering::Acquire);
        let mut done = self
            .progress
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *done < target && !self.writer_gone() {
            done = self
                .progress
                .changed
                .wait_timeout(done, std::time::Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// As [`flush`](Self::flush), awaiting instead of blocking.
    pub(crate) async fn flush_async(&self) {
        let target = self.sent.load(Ordering::Acquire);
        loop {
            let notified = self.progress.notify.notified();
            if self.progress.done() >= target || self.writer_gone() {
                return;
            }
            notified.await;
        }
    }

    /// Refuses later records (dropped and counted as such).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The writer thread ended (it panicked in a sink): nobody advances
    /// the progress any more.
    fn writer_gone(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for LogWriter {
    /// Closes the queue. Outside an async runtime, waits for the writer to
    /// drain it, so that a program that drops its optimizer before exiting
    /// keeps every record. Inside one (a tokio worker, or any thread of a
    /// runtime), never waits: the writer drains on its own thread, and
    /// `Optimizer::shutdown` is how an async program waits for it.
    fn drop(&mut self) {
        self.tx.take();
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
