//! ALB's access log, off the request path: a request's [`Record`] is filled as it goes, and
//! sent, when its answer's body has been passed on (or the client hung up), to a writer thread
//! through a bounded channel. A full channel drops the line and counts it
//! (`elb_access_log_dropped_total`) rather than making a request wait for the disk.
//!
//! The writer appends to the file of `access_log.path`, creating it; it reopens the file on
//! SIGUSR1 (after logrotate moved it) and when a reload names another file, and flushes
//! whenever the channel is empty, so a line is on disk moments after its request ended. A file
//! that cannot be opened or written costs its lines (`elb_access_log_write_errors_total`, a
//! warning) and is tried again a second later.

mod record;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Duration;

use record::Record;
pub(crate) use record::{Pending, Tls, Trail};

/// Lines waiting for the writer at most; past it new lines are dropped.
const QUEUE: usize = 16_384;
/// Lines written between two flushes when lines keep coming.
const BATCH: usize = 1024;
/// How often an idle writer looks for a reopen or a new path.
const POLL: Duration = Duration::from_secs(1);

/// The access log's channel, file and counters.
#[derive(Debug)]
pub(crate) struct AccessLog {
    sender: SyncSender<Box<Record>>,
    /// Taken by [`AccessLog::start`].
    receiver: Mutex<Option<Receiver<Box<Record>>>>,
    /// The file lines go to; none: the log is off.
    path: Mutex<Option<PathBuf>>,
    /// Raised by SIGUSR1 and by a new path: the writer opens the file again.
    reopen: AtomicBool,
    pub lines: AtomicU64,
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
}

impl Default for AccessLog {
    fn default() -> Self {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            path: Mutex::new(None),
            reopen: AtomicBool::new(false),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        }
    }
}

impl AccessLog {
    /// Starts the writer thread (once).
    pub(crate) fn start(&'static self) -> std::io::Result<()> {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(receiver) = receiver {
            std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || self.write(&receiver))?;
        }
        Ok(())
    }

    /// Sends lines to `path` from now on (none: off); a new path is opened at once.
    pub(crate) fn set_path(&self, path: Option<PathBuf>) {
        let mut current = self
            .path
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != path {
            *current = path;
            self.reopen();
        }
    }

    /// Opens the file again before the next line (SIGUSR1: the old one was rotated away).
    pub(crate) fn reopen(&self) {
        self.reopen.store(true, Relaxed);
    }

    /// Queues a finished request's line, or drops it when the queue is full.
    fn send(&self, record: Box<Record>) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// The writer thread: formats and appends lines until the process ends.
    fn write(&self, receiver: &Receiver<Box<Record>>) {
        let mut file: Option<BufWriter<File>> = None;
        let mut line = String::with_capacity(1024);
        let mut failing = false;
        loop {
            let first = match receiver.recv_timeout(POLL) {
                Ok(record) => Some(record),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.reopen.swap(false, Relaxed) || (file.is_none() && first.is_some()) {
                file = self.open(&mut failing);
            }
            let batch = first
                .into_iter()
                .chain(std::iter::from_fn(|| receiver.try_recv().ok()))
                .take(BATCH);
            for record in batch {
                line.clear();
                record.format(&mut line);
                let written = match &mut file {
                    Some(out) => out.write_all(line.as_bytes()),
                    None => Err(std::io::Error::other("no file open")),
                };
                self.count(written, &mut failing);
            }
            if let Some(out) = &mut file {
                let flushed = out.flush();
                if flushed.is_err() {
                    self.count(flushed, &mut failing);
                    // Reopened for the next line: the file may have gone (a full disk, an
                    // unmounted directory).
                    file = None;
                }
            }
        }
    }

    /// Opens the log's file for appending, creating it; none when the log is off or the file
    /// cannot be opened (warned once until a line is written again).
    fn open(&self, failing: &mut bool) -> Option<BufWriter<File>> {
        let path = self
            .path
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        match File::options().append(true).create(true).open(&path) {
            Ok(file) => Some(BufWriter::with_capacity(64 * 1024, file)),
            Err(e) => {
                if !*failing {
                    tracing::warn!("access log {}: {e}; its lines are lost", path.display());
                    *failing = true;
                }
                None
            }
        }
    }

    /// Counts a line written, or its loss.
    fn count(&self, written: std::io::Result<()>, failing: &mut bool) {
        match written {
            Ok(()) => {
                self.lines.fetch_add(1, Relaxed);
                *failing = false;
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Relaxed);
                if !*failing {
                    tracing::warn!("access log: {e}; its lines are lost until it can be written");
                    *failing = true;
                }
            }
        }
    }
}
