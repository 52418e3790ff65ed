//! Ctrl-C and SIGTERM: the first ends the lesson (the summary prints, the links
//! detach), a second also kills a `-- COMMAND` that does not stop.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// How many stop signals arrived, and which came first.
pub struct StopSignals {
    count: AtomicU32,
    first: AtomicI32,
}

impl StopSignals {
    pub const fn new() -> StopSignals {
        StopSignals {
            count: AtomicU32::new(0),
            first: AtomicI32::new(0),
        }
    }

    /// Count one; only atomics, so a signal handler may call it.
    pub fn record(&self, signal: i32) {
        let _ = self
            .first
            .compare_exchange(0, signal, Ordering::Relaxed, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// At least one stop signal arrived: end the lesson.
    pub fn requested(&self) -> bool {
        self.count() > 0
    }

    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first stop signal, if one arrived.
    pub fn first(&self) -> Option<Signal> {
        Signal::try_from(self.first.load(Ordering::Relaxed)).ok()
    }
}

impl Default for StopSignals {
    fn default() -> StopSignals {
        StopSignals::new()
    }
}

/// The signals this process received.
pub static STOP_SIGNALS: StopSignals = StopSignals::new();

extern "C" fn record_stop(signal: i32) {
    STOP_SIGNALS.record(signal);
}

/// Count Ctrl-C and SIGTERM in [`STOP_SIGNALS`] instead of dying at once.
pub fn install_handlers() {
    // No SA_RESTART: a blocking poll() returns EINTR, so the loop sees the stop at once.
    let action = SigAction::new(
        SigHandler::Handler(record_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for stop in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches atomics.
        unsafe { signal::sigaction(stop, &action) }.expect("SIGINT and SIGTERM can be caught");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_signals_and_keeps_the_first() {
        let stop = StopSignals::new();
        assert!(!stop.requested());
        assert_eq!(stop.first(), None);
        stop.record(libc::SIGTERM);
        stop.record(libc::SIGINT);
        assert!(stop.requested());
        assert_eq!(stop.count(), 2);
        assert_eq!(stop.first(), Some(Signal::SIGTERM));
    }
}
