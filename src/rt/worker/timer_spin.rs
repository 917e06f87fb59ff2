//! The timer spin: a worker that slept in its driver wakes `timer_spin_window` before its next
//! deadline (the kernel takes tens of microseconds to wake a thread) and spins the rest of the
//! way, so a timer fires within a microsecond or two of its deadline and never before.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{Signal, WorkerCx};

impl WorkerCx {
    /// If the next timer is due within `margin`, spin until it is (unless other work shows up),
    /// so it fires within a microsecond or two of its deadline and never before.
    pub(super) fn spin_until_close_deadline(&self, signal: &Signal, margin: Duration) {
        if margin.is_zero() {
            return;
        }
        let Some(deadline) = self.remote().driver.timers.next_deadline() else {
            return;
        };
        let now = Instant::now();
        if deadline <= now || deadline - now > margin {
            return;
        }
        while Instant::now() < deadline {
            std::hint::spin_loop();
            if signal.notified.load(Relaxed)
                || self.has_local_work()
                || !self.shared.injector.is_empty()
            {
                return;
            }
        }
    }
}
