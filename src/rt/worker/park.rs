//! Parking and idling: what a worker does when it has nothing to run — turn its driver, help
//! siblings whose drivers stall, steal, spin for `spin_before_park`, then sleep in its driver
//! (`epoll_wait`), registered as a sleeper so producers can wake it (see `idle.rs` for whom to
//! wake and the Dekker argument that no wake-up is lost).

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use super::{Signal, WorkerCx};
use crate::rt::driver::STALL;

/// The longest a worker sleeps while it blocks on a future of a runtime without worker threads
/// (a *guest*, see `WorkerCx::drive`): nobody else drives the guest's timers and sockets.
const GUEST_TURN: Duration = Duration::from_millis(1);

/// Timer policy (see `Builder::precise_timers`): the early wake-up and spin are spent on a
/// deadline only when at most this many timers are pending on the worker...
const FEW_TIMERS: usize = 8;
/// ...and the deadline is at most this far away when the worker goes to sleep: a long sleep
/// or a timeout does not need its last 50 µs.
const NEAR_DEADLINE: Duration = Duration::from_millis(20);
/// With more timers pending, a worker wakes for them at most once per `COALESCE` and fires
/// every timer due by then in one go: the wake-up (tens of µs of kernel and cache work) is
/// shared by all of them instead of paid by each.
pub(super) const COALESCE: Duration = Duration::from_micros(400);

impl WorkerCx {
    /// Whether some sibling is awake, so its driver might stall while we sleep.
    fn a_sibling_is_awake(&self) -> bool {
        let index = self.core.index;
        self.shared
            .remotes
            .iter()
            .enumerate()
            .any(|(i, r)| i != index && r.driver.is_unheld())
    }

    /// Called when this worker starts running tasks after sleeping in its driver: if a sibling
    /// sleeps with no time bound, nobody would look at our driver should this task block, so
    /// wake that sibling; it re-parks with a bound while we are awake. See driver.rs.
    pub(super) fn rouse_an_unbounded_sleeper(&self) {
        // Pairs with the fence in `Driver::announce_unbounded_sleep`: our driver's unlock is
        // ordered before the flag loads below.
        std::sync::atomic::fence(SeqCst);
        let index = self.core.index;
        if let Some(r) = self
            .shared
            .remotes
            .iter()
            .enumerate()
            .find(|(i, r)| *i != index && r.driver.owner_sleeps_unbounded())
            .map(|(_, r)| r)
        {
            r.driver.io.unpark();
        }
    }

    /// Nothing to run: timers, I/O, stealing, a short spin, then sleep.
    pub(super) fn idle(&self, signal: &Signal, has_guest: bool) {
        if self.maintenance() > 0 || self.has_local_work() {
            return;
        }
        if self.assist_unattended_drivers() > 0 {
            return;
        }
        if let Some(task) = self.steal_work() {
            self.run_task(task);
            return;
        }
        // Adaptive spinning (see `SpinGate`): after spins that found nothing, skip spinning
        // for a while. A worker woken every 200 µs would otherwise burn 50 µs per wake-up for
        // nothing and, on a small machine, take the CPU the thread handing it work needs.
        let spin = self.shared.config.spin_before_park;
        let mut gate = self.core.spin_gate.get();
        // A timer due within the spin would end it as a "find": park instead, with the timer
        // armed (see `timer_wake`); spinning to timers is the timer policy's call, not this
        // spin's (on a timer-heavy load it would otherwise spin between every two timers).
        let timer_soon = self
            .remote()
            .driver
            .timers
            .next_deadline()
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < spin);
        if !spin.is_zero() && !timer_soon && self.core.searching.get() && gate.should_spin() {
            let start = Instant::now();
            let mut spins = 0u32;
            let found = loop {
                crate::rt::block_on::spin_pause(&mut spins);
                if signal.notified.load(Relaxed) || self.shared.is_shutdown() {
                    break true;
                }
                if let Some(task) = self.steal_work() {
                    gate.record(true);
                    self.core.spin_gate.set(gate);
                    self.run_task(task);
                    return;
                }
                if spins.is_multiple_of(16) && self.maintenance() > 0 {
                    break true;
                }
                if start.elapsed() >= spin {
                    break false;
                }
            };
            gate.record(found);
            self.core.spin_gate.set(gate);
            if found {
                return;
            }
        } else {
            self.core.spin_gate.set(gate);
        }
        self.park(signal, has_guest);
    }

    /// When to wake for the next timer, and whether to spin to it (see `COALESCE`).
    fn timer_wake(&self, deadline: Option<Instant>) -> (Option<Instant>, Duration) {
        let config = &self.shared.config;
        let Some(deadline) = deadline else {
            return (None, Duration::ZERO);
        };
        let margin = config.timer_spin_window;
        if config.precise_timers {
            return (
                Some(deadline.checked_sub(margin).unwrap_or(deadline)),
                margin,
            );
        }
        let pending = self.remote().driver.timers.len_hint();
        if pending > FEW_TIMERS {
            let wake = match self.core.last_timer_wake.get() {
                Some(last) => deadline.max(last + COALESCE),
                None => deadline,
            };
            return (Some(wake), Duration::ZERO);
        }
        if deadline.saturating_duration_since(Instant::now()) > NEAR_DEADLINE {
            return (Some(deadline), Duration::ZERO);
        }
        (
            Some(deadline.checked_sub(margin).unwrap_or(deadline)),
            margin,
        )
    }

    fn park(&self, signal: &Signal, has_guest: bool) {
        let core = &self.core;
        let shared = &self.shared;
        let remote = self.remote();
        let was_searching = core.searching.replace(false);
        if shared.idle.park(core.index, was_searching) && shared.has_pending_work() {
            shared.notify_parked();
        }
        signal.sleeping.store(true, SeqCst);
        // Re-check after announcing sleep: see the Dekker argument in idle.rs.
        let skip =
            signal.notified.load(SeqCst) || shared.is_shutdown() || shared.has_pending_work();
        let mut margin = Duration::ZERO;
        let was_dispatching = core.dispatching.replace(true);
        if !skip {
            let (wake_at, spin_to) = self.timer_wake(remote.driver.timers.next_deadline());
            margin = spin_to;
            // Sleep at most STALL while a sibling is awake: if it is stuck in a task, its
            // driver needs us (see driver.rs). A guest runtime needs its turns too.
            let timeout = if has_guest {
                Some(GUEST_TURN)
            } else {
                remote.driver.announce_unbounded_sleep();
                if self.a_sibling_is_awake() {
                    remote.driver.end_unbounded_sleep();
                    Some(STALL)
                } else {
                    None
                }
            };
            let mut held = remote.driver.hold();
            // Waking `margin` early (where it is cheap, see `timer_wake`): the kernel's wake-up
            // latency (tens of µs on a VM) is then spent before the deadline, not after it.
            held.arm_timer(wake_at);
            remote.metrics.add_park();
            #[cfg(feature = "observatory")]
            crate::rt::observe::trace::park(timeout);
            held.sleep(timeout, &remote.metrics);
            #[cfg(feature = "observatory")]
            crate::rt::observe::trace::unpark();
            drop(held);
            remote.driver.end_unbounded_sleep();
            remote.driver.mark_owner_turn();
            core.woke_from_park.set(true);
            remote.metrics.add_wakeup();
        }
        signal.sleeping.store(false, SeqCst);
        if shared.idle.unpark(core.index) {
            // A producer woke us and counted us as searching.
            core.searching.set(true);
        }
        self.spin_until_close_deadline(signal, margin);
        let now = Instant::now();
        let fired = remote.driver.timers.fire_due(now);
        if fired > 0 {
            core.last_timer_wake.set(Some(now));
        }
        remote.metrics.add_timers_fired(fired);
        self.assist_unattended_drivers();
        core.dispatching.set(was_dispatching);
    }
}
