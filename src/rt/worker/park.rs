//! Parking and idling: what a worker does when it has nothing to run — turn its driver, help
//! siblings whose drivers stall, steal, spin for `spin_before_park`, then sleep in its driver
//! (`epoll_wait`), registered as a sleeper so producers can wake it (see `idle.rs` for whom to
//! wake and the Dekker argument that no wake-up is lost).

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use super::{Signal, WorkerCx};
use crate::rt::driver::STALL;
use crate::rt::scheduler::NO_TICKER;

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
pub(super) const COALESCE: Duration = Duration::from_micros(500);
/// Tasks fired by a timer wake-up wake no sibling at once: they are usually short (a loop
/// iteration, a retry, a timeout's cleanup), and waking a sibling to steal half of a batch costs
/// both workers a wake-up (an eventfd write, two context switches) that is longer than running
/// the batch. If work is still queued this long after the wake-up, a sibling is woken then.
pub(super) const HANDOFF_AFTER: Duration = Duration::from_micros(100);
/// See `WorkerCx::handoff_late_timer_work`.
const HANDOFF_CHECK_EVERY: u8 = 4;
/// What a worker arms for its timers before it sleeps (`WorkerCx::timer_plan`).
#[derive(Clone, Copy)]
enum TimerPlan {
    /// No timer to wake for.
    Nothing,
    /// Wake at `wake`: a deadline, or `margin` before one, spun to after waking.
    Deadline { wake: Instant, margin: Duration },
    /// This worker ticks for the runtime: wake at the grid tick `wake`.
    Tick { wake: Instant },
    /// The ticker fires our timers: sleep until our watch, armed for `watch`, ends the sleep.
    Rely { watch: Instant },
}

/// The first tick at or after `deadline` of the runtime's grid of period `COALESCE` that
/// starts at `epoch`. Never before `deadline`, at most one period after it.
///
/// Why a grid: every timer due between two ticks fires on one wake-up, and the ticks are the
/// same for every deadline, so the ticker's next wake-up is usually the tick its second clock
/// is already armed for (`Reactor::arm_ticks`).
fn coalesced_wake(deadline: Instant, epoch: Instant) -> Instant {
    let Some(since) = deadline.checked_duration_since(epoch) else {
        return epoch.max(deadline);
    };
    let period_ns = COALESCE.as_nanos();
    let ticks = since.as_nanos().div_ceil(period_ns);
    let wake = epoch + Duration::from_nanos((ticks * period_ns) as u64);
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
        // A task blocked in `block_on` on this thread is not running while we spin or sleep
        // (unless its future is woken already, as by a yield: it is polled again at once).
        #[cfg(feature = "observatory")]
        if !signal.notified.load(Relaxed) {
            crate::rt::observe::nested_worker_idles();
        }
        // Adaptive spinning (see `SpinGate`): after spins that found nothing, skip spinning
        // for a while. A worker woken every 200 µs would otherwise burn 50 µs per wake-up for
        // nothing and, on a small machine, take the CPU the thread handing it work needs.
        let spin = self.shared.config.spin_before_park;
        let mut gate = self.core.spin_gate.get();
        // A timer due within the spin would end it as a "find": park instead, with the timer
        // armed (see `timer_plan`); spinning to timers is the timer policy's call, not this
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
    pub(super) fn fire_siblings_timers(&self, now: Instant) -> usize {
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

    /// What to arm for this worker's timers before it sleeps (see `TimerPlan`).
    ///
    /// With few timers pending and nobody ticking, a worker wakes for its own next deadline
    /// (spinning its last `timer_spin_window` if it is near). A worker with more than
    /// `FEW_TIMERS` pending claims the runtime's *ticker* role (`Shared::ticker`): it wakes on
    /// the `COALESCE` grid for its own timers and those of every sibling asleep relying on it,
    /// and fires them all when it wakes (`fire_siblings_timers`). Its siblings then sleep
    /// without a timer of their own, behind a watch the ticker keeps pushing back. One thread
    /// pays the runtime's timer wake-ups, on two clocks taking turns (`Reactor::arm_ticks`),
    /// instead of every worker paying its own.
    fn timer_plan(&self) -> TimerPlan {
        let shared = &self.shared;
        let config = &shared.config;
        let remote = self.remote();
        let own = remote.driver.timers.next_deadline();
        let margin = config.timer_spin_window;
        let spin_to = |deadline: Instant| TimerPlan::Deadline {
            wake: deadline.checked_sub(margin).unwrap_or(deadline),
            margin,
        };
        if config.precise_timers {
            return own.map_or(TimerPlan::Nothing, spin_to);
        }
        let me = self.core.index;
        let epoch = shared.remotes[0].driver.epoch();
        let mut ticker = shared.ticker.load(Relaxed);
        // Many timers and nobody ticking: we tick. A ticker stuck in a task (its driver
        // unturned for `STALL`) hands the role to whoever notices, so the runtime's timers go
        // back onto the grid instead of waiting for the watches.
        let claim = if ticker == NO_TICKER {
            remote.driver.timers.len_hint() > FEW_TIMERS
        } else {
            ticker != me && shared.remotes[ticker].driver.is_stalled()
        };
        if claim {
            ticker = match shared.ticker.compare_exchange(ticker, me, Relaxed, Relaxed) {
                Ok(_) => me,
                Err(other) => other,
            };
        }
        if ticker == me {
            let mut next = own;
            for (i, r) in shared.remotes.iter().enumerate() {
                if i != me && r.driver.is_relying() {
                    if let Some(d) = r.driver.timers.next_deadline() {
                        next = Some(next.map_or(d, |n| n.min(d)));
                    }
                }
            }
            return match next {
                Some(d) => TimerPlan::Tick {
                    wake: coalesced_wake(d, epoch),
                },
                None => {
                    // Nothing left to tick for: let whoever has many timers next take over.
                    shared.ticker.store(NO_TICKER, Relaxed);
                    TimerPlan::Nothing
                }
            };
        }
        if ticker != NO_TICKER {
            // Announced before we look at the ticker's next tick (a Dekker pair with
            // `Driver::publish_tick`): either the ticker sees us relying and counts our
            // deadlines and pushes our watch, or we see its tick and time our watch by it.
            remote.driver.set_relying(true);
            let their_tick = shared.remotes[ticker].driver.tick_at();
            let now = Instant::now();
            // Should the ticker stop (blocked in a task), we wake this long after its tick.
            let guard = match their_tick {
                Some(t) => (now + 2 * STALL).max(t + STALL),
                None => now + 2 * STALL,
            };
            // A deadline of ours before the ticker's next tick is ours to wake for.
            let watch = match own.map(|d| coalesced_wake(d, epoch)) {
                Some(o) if their_tick.is_none_or(|t| o < t) => o.min(guard),
                _ => guard,
            };
            return TimerPlan::Rely { watch };
        }
        match own {
            None => TimerPlan::Nothing,
            // A long sleep or a timeout does not need its last 50 µs.
            Some(d) if d.saturating_duration_since(Instant::now()) > NEAR_DEADLINE => {
                TimerPlan::Deadline {
                    wake: d,
                    margin: Duration::ZERO,
                }
            }
            Some(d) => spin_to(d),
        }
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
            let plan = self.timer_plan();
            let wake_at = match plan {
                TimerPlan::Deadline { wake, margin: m } => {
                    margin = m;
                    Some(wake)
                }
                TimerPlan::Tick { wake } => Some(wake),
                TimerPlan::Rely { .. } | TimerPlan::Nothing => None,
            };
            // Sleep at most STALL while a sibling is awake: if it is stuck in a task, its
            // driver needs us (see driver.rs). A guest runtime needs its turns too. A timer
            // due within STALL bounds the sleep already: such a sleep is not announced as
            // unbounded, so a sibling that wakes and runs a task does not rouse us for nothing
            // (on a timer-heavy load that was one eventfd wake-up per timer wake-up).
            let timeout = if has_guest {
                Some(GUEST_TURN)
            } else if matches!(plan, TimerPlan::Rely { .. }) {
                // The watch bounds the sleep, and stands in for the `STALL` bound: the ticker
                // pushes it back only while it keeps ticking.
                None
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
            match plan {
                TimerPlan::Tick { wake } => {
                    held.arm_ticks(wake, wake + COALESCE);
                    remote.driver.publish_tick(Some(wake));
                    for (i, r) in shared.remotes.iter().enumerate() {
                        if i != core.index {
                            r.driver.push_watch(wake);
                        }
                    }
                }
                TimerPlan::Rely { watch } => remote.driver.arm_watch(watch),
                // Waking `margin` early (where it is cheap, see `timer_plan`): the kernel's
                // wake-up latency (tens of µs on a VM) is then spent before the deadline.
                TimerPlan::Deadline { wake, .. } => held.arm_timer(Some(wake)),
                TimerPlan::Nothing => {}
            }
            remote.metrics.add_park();
            #[cfg(feature = "observatory")]
            crate::rt::observe::trace::park(
                timeout,
                match plan {
                    TimerPlan::Nothing => crate::rt::observe::trace::ParkUntil::WakeOrIo,
                    TimerPlan::Deadline { .. } => {
                        crate::rt::observe::trace::ParkUntil::TimerDeadline
                    }
                    TimerPlan::Tick { .. } => crate::rt::observe::trace::ParkUntil::Tick,
                    TimerPlan::Rely { .. } => crate::rt::observe::trace::ParkUntil::SiblingTick,
                },
            );
            let _events = held.sleep(timeout, &remote.metrics);
            #[cfg(feature = "observatory")]
            crate::rt::observe::trace::unpark(_events);
            drop(held);
            match plan {
                TimerPlan::Tick { .. } => remote.driver.publish_tick(None),
                TimerPlan::Rely { .. } => {
                    remote.driver.set_relying(false);
                    remote.driver.forget_watch();
                }
                _ => {}
            }
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
    fn coalesced_wake_is_never_early_and_at_most_one_period_late() {
        let epoch = Instant::now();
        for us in [0u64, 1, 399, 400, 401, 799, 800, 1234, 55_555] {
            let deadline = epoch + Duration::from_micros(us);
            let wake = coalesced_wake(deadline, epoch);
            assert!(wake >= deadline, "early: {us} µs");
            assert!(wake - deadline <= COALESCE, "{us} µs");
            assert_eq!(
                (wake - epoch).as_nanos() % COALESCE.as_nanos(),
                0,
                "{us} µs"
            );
        }
        // Deadlines between two ticks share one wake-up: that is the point.
        let a = coalesced_wake(epoch + Duration::from_micros(10), epoch);
        let b = coalesced_wake(epoch + Duration::from_micros(390), epoch);
        assert_eq!(a, b);
        // A deadline before the epoch is not moved earlier.
        let early = epoch - Duration::from_micros(100);
        assert_eq!(coalesced_wake(early, epoch), epoch);
    }
}
