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
/// With more timers pending, a worker wakes for them only on the ticks of a grid and fires
/// every timer due by then in one go: the wake-up (tens of µs of kernel and cache work) is
/// shared by all of them instead of paid by each. `COALESCE` is the spacing of the ticks the
/// runtime as a whole wakes on; see `coalesced_wake`.
pub(super) const COALESCE: Duration = Duration::from_micros(400);
/// Tasks fired by a timer wake-up wake no sibling at once: they are usually short (a loop
/// iteration, a retry, a timeout's cleanup), and waking a sibling to steal half of a batch costs
/// both workers a wake-up (an eventfd write, two context switches) that is longer than running
/// the batch. If work is still queued this long after the wake-up, a sibling is woken then.
pub(super) const HANDOFF_AFTER: Duration = Duration::from_micros(100);
/// See `WorkerCx::handoff_late_timer_work`.
const HANDOFF_CHECK_EVERY: u8 = 4;
/// The most workers whose grids interleave (so the longest a coalesced timer waits is
/// `COALESCE * MAX_INTERLEAVE` when only its own worker wakes for timers).
const MAX_INTERLEAVE: u32 = 2;

/// The first tick at or after `deadline` of a grid of period `COALESCE * lanes` that starts
/// at `epoch`, shifted by `lane` of `lanes` phases. Never before `deadline`, at most one period
/// after it.
///
/// Why a grid, and why lanes: workers whose timer queues are all busy each wake on their own
/// lane of one runtime-wide grid, and a worker that wakes fires its sleeping siblings' due
/// timers too (`WorkerCx::fire_siblings_timers`). With two busy workers each waking every
/// 800 µs, half a period apart, every timer still fires on the next 400 µs tick of either
/// worker — the lateness of one worker waking every 400 µs, at half the wake-ups.
fn coalesced_wake(deadline: Instant, epoch: Instant, lane: u32, lanes: u32) -> Instant {
    let lanes = lanes.max(1);
    let period = COALESCE * lanes;
    let start = epoch + COALESCE * (lane % lanes);
    let Some(since) = deadline.checked_duration_since(start) else {
        return start.max(deadline);
    };
    let period_ns = period.as_nanos();
    let ticks = since.as_nanos().div_ceil(period_ns);
    let wake = start + Duration::from_nanos((ticks * period_ns) as u64);
    debug_assert!(wake >= deadline);
    wake
}

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
    /// Whether a sibling would find anything to do for us if the task we are about to run
    /// blocked: a pending timer or a registered socket in our driver, or another task queued
    /// here (e.g. the rest of a timer batch). With none, the rouse is owed
    /// instead (`Core::rouse_owed`) and paid by the first registration on our driver — the
    /// spaced sync-bridge round trip (one task, no timer, no socket) then wakes one worker,
    /// not two (issue 16: 2.08 wake-ups per round trip at a 1 ms gap on 2 workers).
    pub(super) fn driver_has_something_to_watch(&self) -> bool {
        let driver = &self.remote().driver;
        self.has_local_work() || driver.timers.len_hint() > 0 || driver.io.has_sockets()
    }

    /// This worker's thread just registered a timer or socket with its own driver, or queued a
    /// task here: pay a rouse skipped when this worker woke (see
    /// `driver_has_something_to_watch`), so a sibling watches what the running task leaves
    /// behind if it then blocks.
    #[inline]
    pub(crate) fn pay_owed_rouse(&self) {
        if self.core.rouse_owed.replace(false) {
            self.rouse_an_unbounded_sleeper();
        }
    }

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

    /// Runs `fire` (which fires timers onto this worker's queue) with the hand-off of what it
    /// wakes delayed by `HANDOFF_AFTER`, unless a hand-off is already pending (its deadline
    /// stands). Returns what `fire` returned: how many tasks woke.
    pub(super) fn fire_timers_handing_off_late(
        &self,
        now: Instant,
        fire: impl FnOnce() -> usize,
    ) -> usize {
        let core = &self.core;
        let pending = core.handoff_at.get();
        if pending.is_none() {
            core.handoff_at.set(Some(now + HANDOFF_AFTER));
            core.handoff_tasks.set(0);
        }
        let fired = fire();
        if pending.is_none() && fired == 0 {
            core.handoff_at.set(None);
        }
        fired
    }

    /// Called after each task while a timer batch's hand-off is pending: once the queue is empty
    /// there is nothing to hand off; once `HANDOFF_AFTER` has passed with work still queued, the
    /// batch is long after all and a sibling is woken the usual way. The clock is read after
    /// every `HANDOFF_CHECK_EVERY`-th task only: timer tasks are mostly a few µs, and one read
    /// per task was a clock read per timer fired.
    pub(super) fn handoff_late_timer_work(&self) {
        let core = &self.core;
        let Some(at) = core.handoff_at.get() else {
            return;
        };
        if !self.has_local_work() {
            core.handoff_at.set(None);
            return;
        }
        let n = core.handoff_tasks.get().wrapping_add(1);
        core.handoff_tasks.set(n);
        if !n.is_multiple_of(HANDOFF_CHECK_EVERY) {
            return;
        }
        if Instant::now() >= at {
            core.handoff_at.set(None);
            self.notify_if_surplus();
        }
    }

    /// Having woken from our driver anyway, fires the due timers of siblings asleep in theirs:
    /// their own coalesced wake-up may still be up to a grid period away (see
    /// `coalesced_wake`). The tasks land on our queue, as with `assist_unattended_drivers`.
    fn fire_siblings_timers(&self, now: Instant) -> usize {
        let index = self.core.index;
        let was = self.core.dispatching.replace(true);
        let mut fired = 0;
        for (i, r) in self.shared.remotes.iter().enumerate() {
            // Held: its owner sleeps in it (an awake owner fires its own timers).
            if i != index && !r.driver.is_unheld() {
                fired += r.driver.timers.fire_due(now);
            }
        }
        self.core.dispatching.set(was);
        self.remote().metrics.add_timers_fired(fired);
        fired
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
            // Our lane among the busy workers (those with many timers pending, us included).
            let (mut lane, mut lanes) = (0, 0);
            for (i, r) in self.shared.remotes.iter().enumerate() {
                if i == self.core.index || r.driver.timers.len_hint() > FEW_TIMERS {
                    if i < self.core.index {
                        lane += 1;
                    }
                    lanes += 1;
                }
            }
            let lanes = lanes.min(MAX_INTERLEAVE);
            let epoch = self.shared.remotes[0].driver.epoch();
            let wake = coalesced_wake(deadline, epoch, lane, lanes);
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
        // The clock read on waking, reused below when nothing spun in between (one read for
        // the driver's turn stamp, the hand-off deadline and the timers: a clock read is not
        // free on a VM's paravirtual clock).
        let mut woke_at = None;
        let was_dispatching = core.dispatching.replace(true);
        if !skip {
            let (wake_at, spin_to) = self.timer_wake(remote.driver.timers.next_deadline());
            margin = spin_to;
            // Sleep at most STALL while a sibling is awake: if it is stuck in a task, its
            // driver needs us (see driver.rs). A guest runtime needs its turns too. A timer
            // due within STALL bounds the sleep already: such a sleep is not announced as
            // unbounded, so a sibling that wakes and runs a task does not rouse us for nothing
            // (on a timer-heavy load that was one eventfd wake-up per timer wake-up).
            let timeout = if has_guest {
                Some(GUEST_TURN)
            } else if wake_at.is_some_and(|w| w.saturating_duration_since(Instant::now()) <= STALL)
            {
                None
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
            // A rouse still owed from the last wake-up is moot: we slept in our driver since.
            core.rouse_owed.set(false);
            remote.driver.end_unbounded_sleep();
            let now = Instant::now();
            remote.driver.mark_owner_turn_at(now);
            woke_at = Some(now);
            core.woke_from_park.set(true);
            remote.metrics.add_wakeup();
        }
        signal.sleeping.store(false, SeqCst);
        if shared.idle.unpark(core.index) {
            // A producer woke us and counted us as searching.
            core.searching.set(true);
        }
        self.spin_until_close_deadline(signal, margin);
        let now = match woke_at {
            Some(at) if margin.is_zero() => at,
            _ => Instant::now(),
        };
        // Tasks the timers wake wait `HANDOFF_AFTER` before they may wake a sibling.
        self.fire_timers_handing_off_late(now, || {
            let fired = remote.driver.timers.fire_due(now);
            remote.metrics.add_timers_fired(fired);
            if skip {
                fired
            } else {
                fired + self.fire_siblings_timers(now)
            }
        });
        self.handoff_late_timer_work();
        self.assist_unattended_drivers();
        core.dispatching.set(was_dispatching);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_wake_is_never_early_at_most_one_period_late_and_on_its_lane() {
        let epoch = Instant::now();
        for lanes in 1..=2u32 {
            let period = COALESCE * lanes;
            for lane in 0..lanes {
                for us in [0u64, 1, 399, 400, 401, 799, 800, 1234, 55_555] {
                    let deadline = epoch + Duration::from_micros(us);
                    let wake = coalesced_wake(deadline, epoch, lane, lanes);
                    assert!(wake >= deadline, "early: {us} µs, lane {lane}/{lanes}");
                    assert!(wake - deadline <= period, "{us} µs, lane {lane}/{lanes}");
                    let phase = (wake - epoch).as_nanos() % period.as_nanos();
                    assert_eq!(phase, (COALESCE * lane).as_nanos(), "{us} µs");
                }
            }
        }
        // Deadlines between two ticks share one wake-up: that is the point.
        let a = coalesced_wake(epoch + Duration::from_micros(10), epoch, 0, 1);
        let b = coalesced_wake(epoch + Duration::from_micros(390), epoch, 0, 1);
        assert_eq!(a, b);
        // A deadline before the epoch (or before the lane starts) is not moved earlier.
        let early = epoch + Duration::from_micros(100);
        assert_eq!(coalesced_wake(early, epoch, 1, 2), epoch + COALESCE);
    }
}
