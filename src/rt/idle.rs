//! Who sleeps, who searches, and whom to wake.
//!
//! A worker with nothing to run first *searches* (steals from siblings and the injector), then
//! *parks* in its reactor's `poll`. Waking a parked worker costs a syscall (an eventfd write)
//! on the waker's side and a context switch on the sleeper's, so work producers wake at most
//! one worker, and only when nobody is already searching:
//!
//! * `state` packs `num_searching` (low 16 bits) and `num_unparked` (the rest).
//! * A producer pushes work, then (after a SeqCst fence) reads `state`: if nobody searches and
//!   someone sleeps, it pops one sleeper under the lock, counts it as unparked *and searching*,
//!   and wakes it. Searching workers absorb bursts: a burst of spawns wakes one worker, not one
//!   per spawn.
//! * When a searching worker finds work it stops searching; if it was the last searcher and
//!   work is still queued, it wakes another, so a backlog keeps pulling in help one worker at a
//!   time — and a single spawn wakes exactly one worker.
//! * A worker going to sleep records itself in `sleepers`, then re-checks every queue. Producer
//!   (push, fence, read state) and sleeper (write state, fence, read queues) form a Dekker pair:
//!   at least one of them sees the other, so no work is left behind with everyone asleep.
//! * At most half the workers search at once, so a single spawn does not set every idle core
//!   spinning.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::rt::loom::{fence, AtomicUsize, Mutex};

const SEARCH_MASK: usize = 0xFFFF;
const UNPARK_SHIFT: usize = 16;
const UNPARK_ONE: usize = 1 << UNPARK_SHIFT;

pub(crate) struct Idle {
    state: AtomicUsize,
    num_workers: usize,
    sleepers: Mutex<Vec<usize>>,
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            num_workers,
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
        }
    }

    fn num_searching(state: usize) -> usize {
        state & SEARCH_MASK
    }

    fn num_unparked(state: usize) -> usize {
        state >> UNPARK_SHIFT
    }

    fn should_notify(&self) -> bool {
        let s = self.state.load(SeqCst);
        Self::num_searching(s) == 0 && Self::num_unparked(s) < self.num_workers
    }

    /// A cheap, unfenced look: might a worker be asleep with nobody searching? Producers pushing
    /// onto their *own* deque use it to skip the fenced path: if it races with a worker falling
    /// asleep, the work is still on an awake worker's queue (the producer's), so nothing is
    /// stranded — only a steal opportunity is missed until the next push.
    pub(crate) fn maybe_should_notify(&self) -> bool {
        let s = self.state.load(Relaxed);
        Self::num_searching(s) == 0 && Self::num_unparked(s) < self.num_workers
    }

    /// Called by a producer after publishing work. Returns the worker to wake, if any; it has
    /// already been counted as unparked and searching.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        fence(SeqCst);
        if !self.should_notify() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        if !self.should_notify() {
            return None;
        }
        let idx = sleepers.pop()?;
        self.state.fetch_add(UNPARK_ONE | 1, SeqCst);
        Some(idx)
    }

    /// A worker wants to search. Refused when half the workers already do.
    pub(crate) fn try_start_searching(&self) -> bool {
        let s = self.state.load(SeqCst);
        if 2 * Self::num_searching(s) >= self.num_workers.max(2) && self.num_workers > 1 {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searching worker found work (or gave up). Returns true if it was the last searcher:
    /// the caller must then look for work left queued and wake a sleeper only if there is
    /// some. Producers that pushed while it searched woke nobody, counting on it; the fence
    /// makes that look and their push a Dekker pair (`loom_models::idle_last_searcher_vs_push`),
    /// so a lone spawn wakes exactly one worker instead of one plus a needless second one.
    pub(crate) fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        let last = Self::num_searching(prev) == 1;
        if last {
            fence(SeqCst);
        }
        last
    }

    /// A worker goes to sleep. Returns true if it was the last searcher (the caller must then
    /// check for pending work and wake someone if there is any).
    pub(crate) fn park(&self, idx: usize, searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        let dec = UNPARK_ONE | usize::from(searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        sleepers.push(idx);
        drop(sleepers);
        // The sleeper's half of the Dekker pair: the queue re-checks that follow must not be
        // ordered before the state write above. The producer has its fence (in
        // `worker_to_notify`); a SeqCst read-modify-write alone does not order the later loads
        // of *other* locations (the queues, read with Acquire or weaker) in the language's
        // memory model, and loom finds the lost wake-up without this fence
        // (`loom_models::idle_push_vs_worker_falling_asleep`). Once per park: free next to
        // the epoll_wait that follows.
        fence(SeqCst);
        searching && Self::num_searching(prev) == 1
    }

    /// A worker stopped sleeping. Returns true when it was woken by a producer (which popped it
    /// from `sleepers` and counted it as searching); false when it woke on its own (I/O, timer,
    /// or it never slept), in which case it is removed from `sleepers` here.
    pub(crate) fn unpark(&self, idx: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&i| i == idx) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(UNPARK_ONE, SeqCst);
                false
            }
            None => true,
        }
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.load(SeqCst);
        (Self::num_searching(s), Self::num_unparked(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wakeup_per_burst() {
        let idle = Idle::new(4);
        for i in 1..4 {
            assert!(!idle.park(i, false));
        }
        assert_eq!(idle.counts(), (0, 1));
        let first = idle.worker_to_notify().expect("a sleeper is woken");
        // The woken worker counts as searching, so further pushes wake nobody.
        assert_eq!(idle.worker_to_notify(), None);
        assert_eq!(idle.counts(), (1, 2));
        // It was woken by a producer: `unpark` says so and does not count it twice.
        assert!(idle.unpark(first));
        assert!(idle.stop_searching());
        assert!(idle.worker_to_notify().is_some());
    }

    #[test]
    fn self_wakeup_removes_sleeper() {
        let idle = Idle::new(2);
        idle.park(1, false);
        assert!(!idle.unpark(1));
        assert_eq!(idle.counts(), (0, 2));
        assert_eq!(idle.worker_to_notify(), None);
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
        let single = Idle::new(1);
        assert!(single.try_start_searching());
    }
}
