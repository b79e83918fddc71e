//! Progress and cancellation between the attribution loop and whoever shows progress.
//!
//! The SDK host's `progress(done, total)` callback ([`crate::attribution::ModelHost`]) calls
//! [`report`]: it forwards the counts to the installed [`ProgressReporter`] (the CLI installs
//! progress bars, `cli::progress`) and answers `false` once [`cancel`] was called (Ctrl-C), so
//! that the method stops with `CANCELLED`. Library users install their own reporter or none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Receives the attribution progress of the current batch.
pub trait ProgressReporter: Send + Sync {
    /// `done` of `total` units of the current method call are finished (the method chooses the
    /// unit: sequences, input points...).
    fn attribution(&self, done: u64, total: u64);
    /// `done` of at most `total` new tokens are generated (the batch stops earlier when every
    /// row has reached its end of sequence).
    fn generation(&self, _done: u64, _total: u64) {}
}

static REPORTER: RwLock<Option<Arc<dyn ProgressReporter>>> = RwLock::new(None);
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Installs `reporter` (replacing any other); `None` removes it.
pub fn install(reporter: Option<Arc<dyn ProgressReporter>>) {
    // A poisoned lock only means a reporter panicked: the slot itself is still usable.
    let mut slot = REPORTER.write().unwrap_or_else(|e| e.into_inner());
    *slot = reporter;
}

/// Forwards one progress report; returns `false` when the run was cancelled.
pub fn report(done: u64, total: u64) -> bool {
    let slot = REPORTER.read().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = slot.as_ref() {
        r.attribution(done, total);
    }
    !is_cancelled()
}

/// Forwards one generation step (generation is not cancellable: a cancelled run stops at the
/// attribution's first progress report).
pub fn report_generation(done: u64, total: u64) {
    let slot = REPORTER.read().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = slot.as_ref() {
        r.generation(done, total);
    }
}

/// Asks the running attribution to stop at its next progress report.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`cancel`] was called.
pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}
