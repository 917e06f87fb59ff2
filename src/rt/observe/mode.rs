//! Which optional parts of the observatory are on, in one byte: the hot hooks load it once and
//! take their cold paths only when it is non-zero, so with only the (always-on) counters a poll
//! or a wake pays one relaxed load and a branch for all three switches.

use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

/// Timing ([`set_timing`](super::set_timing)).
pub(crate) const TIMING: u8 = 1;
/// The trace ([`set_tracing`](super::set_tracing)).
pub(crate) const TRACE: u8 = 2;
/// A live reader exists (a long-poll watchdog or an `ObserveServer`): workers publish what
/// they poll, and tasks join the task table at spawn (not only when they first park).
pub(crate) const LIVE: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(0);

/// The switches in force (bits [`TIMING`], [`TRACE`], [`LIVE`]).
#[inline(always)]
pub(crate) fn get() -> u8 {
    MODE.load(Relaxed)
}

/// Turns one switch on or off (bits are independent: `fetch_or`/`fetch_and`).
pub(crate) fn set(bit: u8, on: bool) {
    if on {
        MODE.fetch_or(bit, Relaxed);
    } else {
        MODE.fetch_and(!bit, Relaxed);
    }
}

/// Live readers in the process; `LIVE` is set while there is one. A mutex, not a counter and a
/// separate bit update, so a reader leaving and another arriving cannot leave the bit wrong.
static LIVE_READERS: Mutex<usize> = Mutex::new(0);

/// Registers a live reader for its lifetime.
pub(crate) struct LiveReader(());

impl LiveReader {
    pub(crate) fn new() -> LiveReader {
        let mut n = LIVE_READERS.lock();
        *n += 1;
        set(LIVE, true);
        LiveReader(())
    }
}

impl Drop for LiveReader {
    fn drop(&mut self) {
        let mut n = LIVE_READERS.lock();
        *n -= 1;
        if *n == 0 {
            set(LIVE, false);
        }
    }
}
