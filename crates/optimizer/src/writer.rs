//! The background log writer: the hot path hands records to a bounded
//! queue and never waits on I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError, channel, sync_channel};
use std::thread::JoinHandle;

use tuneloop_counterfactual::{DecisionLog, LoggedDecision};

/// What the queue carries: a record, or a request to say when every record
/// before it has been handed to the sink.
#[derive(Debug)]
enum Message {
    Record(Box<LoggedDecision>),
    Flush(Sender<()>),
}

/// Sends records to a [`DecisionLog`] from a thread of its own.
///
/// Policy when the queue is full: the record is dropped and counted
/// (`log_dropped`), so a slow disk can never stall a request. Size the
/// queue (`OptimizerBuilder::log_queue`) for bursts.
#[derive(Debug)]
pub(crate) struct LogWriter {
    tx: Option<SyncSender<Message>>,
    handle: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl LogWriter {
    pub(crate) fn spawn(sink: Arc<dyn DecisionLog>, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Message>(capacity.max(1));
        let failed = Arc::new(AtomicU64::new(0));
        let failed_in = failed.clone();
        let handle = std::thread::Builder::new()
            .name("tuneloop-log".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        Message::Record(record) => {
                            if let Err(e) = sink.append(&record) {
                                failed_in.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "decision log write failed");
                            }
                        }
                        // The caller may have given up waiting.
                        Message::Flush(done) => drop(done.send(())),
                    }
                }
            })?;
        Ok(LogWriter {
            tx: Some(tx),
            handle: Some(handle),
            dropped: Arc::new(AtomicU64::new(0)),
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
        if let Some(tx) = &self.tx {
            match tx.try_send(Message::Record(Box::new(record))) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Waits until every record sent before the call has been handed to
    /// the sink (written, or counted as failed). Blocks while the queue is
    /// full: this is the one call that waits on the disk.
    pub(crate) fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = channel();
            if tx.send(Message::Flush(done)).is_ok() {
                // An error means the writer thread is gone: nothing to wait for.
                let _ = wait.recv();
            }
        }
    }
}

impl Drop for LogWriter {
    /// Flushes: closes the queue and waits for the writer to drain it.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
