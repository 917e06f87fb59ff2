//! The task state word.
//!
//! Every task carries one `AtomicUsize` that answers, at any instant, "who may touch the future,
//! who may touch the output, and how many pointers to this allocation exist". All transitions are
//! compare-and-swap loops (or single `fetch_*` operations) on this word, so the protocol can be
//! read off the functions in this file.
//!
//! ```text
//!  bit:  63 ................ 8 | 7      | 6            | 5          | 4             | 3         | 2        | 1       | 0
//!        refcount (REF_ONE=256) | LINKED | OUTPUT_TAKEN | JOIN_WAKER | JOIN_INTEREST | CANCELLED | COMPLETE | RUNNING | SCHEDULED
//! ```
//!
//! Lifecycle of a task that is spawned, parks once and completes:
//!
//! ```text
//!  spawn: SCHEDULED|JOIN_INTEREST, refs=2 (queue, JoinHandle)
//!  run:   RUNNING                 (SCHEDULED cleared; the queue's reference is now the runner's)
//!  park:  idle|LINKED             (first park: linked into the owned-task list, which takes a
//!                                  reference; the runner drops its own; a Waker holds one)
//!  wake:  SCHEDULED               (the waker's reference moves into the run queue)
//!  run:   RUNNING → COMPLETE      (output stored before COMPLETE is published)
//! ```

use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use crate::rt::loom::AtomicUsize;

/// The task is in a run queue, or will be pushed to one when the current poll ends.
/// Whoever sets this bit on an idle task owns the job of enqueueing it. Cleared when a runner
/// takes the task and when the task completes; a queue entry of a task that shutdown completed
/// meanwhile finds `COMPLETE` and is skipped.
pub(crate) const SCHEDULED: usize = 1 << 0;
/// A thread is polling the future right now; nobody else may touch the future.
pub(crate) const RUNNING: usize = 1 << 1;
/// The future has finished (or was dropped): the stage holds the output or a `JoinError`.
/// Once set it is never cleared, and the future is never polled again.
pub(crate) const COMPLETE: usize = 1 << 2;
/// `abort()` or runtime shutdown asked for the future to be dropped at its next opportunity.
pub(crate) const CANCELLED: usize = 1 << 3;
/// A `JoinHandle` still exists, so the output must be kept for it. Cleared when the handle drops.
pub(crate) const JOIN_INTEREST: usize = 1 << 4;
/// The awaiter slot holds the `JoinHandle`'s waker and belongs to the task side (read-only for
/// the handle). While clear, the slot belongs to the handle, which may write it.
pub(crate) const JOIN_WAKER: usize = 1 << 5;
/// The output was moved out (by the join handle) or dropped (when nobody wanted it). Together
/// with `COMPLETE` it says what the stage union holds: the future (not complete), the output
/// (complete, not taken) or nothing (complete and taken).
pub(crate) const OUTPUT_TAKEN: usize = 1 << 6;
/// The task is (or was, until shutdown took it out) in the owned-task list, which holds one
/// reference. A task is linked lazily, by its runner, the first time a poll returns `Pending`:
/// until then it is always in a run queue or being polled, where shutdown finds it anyway (a
/// queue entry dropped unrun cancels its task), so a task that finishes in its first poll
/// never touches the list's lock. Set in the same CAS that parks the task; read by the runner
/// only (at park and at completion, both while it holds `RUNNING`).
pub(crate) const LINKED: usize = 1 << 7;
/// One reference. The count lives in the bits above the flags.
pub(crate) const REF_ONE: usize = 1 << 8;
/// Mask of the flag bits.
#[cfg(test)]
const FLAGS: usize = REF_ONE - 1;

/// A copy of the state word, with named accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(pub(crate) usize);

impl Snapshot {
    #[inline]
    pub(crate) fn is_scheduled(self) -> bool {
        self.0 & SCHEDULED != 0
    }
    #[inline]
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    #[inline]
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    #[inline]
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    #[inline]
    pub(crate) fn has_join_interest(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    #[inline]
    pub(crate) fn has_join_waker(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    #[inline]
    pub(crate) fn is_output_taken(self) -> bool {
        self.0 & OUTPUT_TAKEN != 0
    }
    #[inline]
    pub(crate) fn is_linked(self) -> bool {
        self.0 & LINKED != 0
    }
    #[inline]
    pub(crate) fn ref_count(self) -> usize {
        self.0 / REF_ONE
    }
}

impl fmt::Debug for Snapshot {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("scheduled", &self.is_scheduled())
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.has_join_interest())
            .field("join_waker", &self.has_join_waker())
            .field("output_taken", &self.is_output_taken())
            .field("linked", &self.is_linked())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// What `transition_to_running` found.
pub(crate) enum StartPoll {
    /// Poll the future.
    Poll,
    /// Drop the future instead of polling it: the task was cancelled.
    Cancel,
    /// The task already completed (it was aborted and finished elsewhere); just drop the reference.
    Skip,
}

/// What `transition_to_idle` decided after a poll returned `Pending`.
pub(crate) enum AfterPoll {
    /// The task parked; the runner's reference is released.
    Idle,
    /// The task was woken during its own poll: the runner's reference goes back into a queue.
    Reschedule,
    /// `abort()` arrived during the poll: the runner drops the future now.
    Cancel,
}

/// What a wake decided.
pub(crate) enum WakeAction {
    /// Nothing to do: already scheduled, running (the runner will reschedule) or complete.
    None,
    /// Push the task into a run queue. For `wake_by_ref` a new reference has already been added.
    Schedule,
}

/// The atomic state word.
pub(crate) struct State(AtomicUsize);

impl State {
    /// A freshly spawned task: scheduled (it goes straight into a queue), with a join handle,
    /// and `refs` references.
    #[inline]
    pub(crate) fn new(refs: usize) -> State {
        State(AtomicUsize::new(
            SCHEDULED | JOIN_INTEREST | (refs * REF_ONE),
        ))
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Acquire))
    }

    /// Runs `f` in a CAS loop; `f` returns the new value (or `None` to leave the word alone) and a
    /// result. Returns the result of the last call.
    #[inline]
    fn update<R>(&self, mut f: impl FnMut(Snapshot) -> (Option<usize>, R)) -> R {
        let mut cur = self.0.load(Acquire);
        loop {
            let (next, out) = f(Snapshot(cur));
            let Some(next) = next else { return out };
            match self.0.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => return out,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A runner took the task from a queue: `SCHEDULED → RUNNING`.
    #[inline]
    pub(crate) fn transition_to_running(&self) -> StartPoll {
        self.update(|s| {
            // A queued task is normally idle. It can be running or complete only when runtime
            // shutdown claimed it while this queue entry was in flight; then skip it.
            if s.is_complete() || s.is_running() {
                return (None, StartPoll::Skip);
            }
            let next = (s.0 & !SCHEDULED) | RUNNING;
            let action = if s.is_cancelled() {
                StartPoll::Cancel
            } else {
                StartPoll::Poll
            };
            (Some(next), action)
        })
    }

    /// A poll returned `Pending` (and the runner linked the task into the owned-task list,
    /// which this records with `LINKED`).
    #[inline]
    pub(crate) fn transition_to_idle(&self) -> AfterPoll {
        self.update(|s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return (None, AfterPoll::Cancel);
            }
            let next = (s.0 & !RUNNING) | LINKED;
            if s.is_scheduled() {
                // Stay SCHEDULED: the runner's reference becomes the queue's reference.
                (Some(next), AfterPoll::Reschedule)
            } else {
                (Some(next), AfterPoll::Idle)
            }
        })
    }

    /// Records `LINKED` outside the park CAS: a fresh task linked at spawn (feature
    /// `observatory`), or a task aborted during the poll that linked it (its runner holds
    /// `RUNNING`, so nobody else reads the bit meanwhile).
    #[inline]
    pub(crate) fn set_linked(&self) {
        self.0.fetch_or(LINKED, AcqRel);
    }

    /// The future finished (its output or error is already stored): `RUNNING → COMPLETE`.
    /// Returns the state before the transition, so the caller knows whether a handle still wants
    /// the output and whether a join waker must be woken.
    #[inline]
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        // A wake during the final poll (or an abort) may have set SCHEDULED; a complete task is
        // in no queue and will never be, so clear it too.
        // One CAS, not two read-modify-writes: a state with neither RUNNING nor COMPLETE would
        // let a waker schedule a task whose future is gone.
        self.update(|s| {
            debug_assert!(s.is_running() && !s.is_complete());
            (Some((s.0 & !(RUNNING | SCHEDULED)) | COMPLETE), s)
        })
    }

    /// Shutdown claims a task that no thread is polling so it can drop the future on the
    /// shutting-down thread, even if a queue entry for it still exists (that entry will find the
    /// task running or complete and skip it). Returns true when the caller now holds `RUNNING` and
    /// must cancel the task. Either way the task is marked `CANCELLED`, so a runner that is
    /// polling it right now cancels it when the poll returns.
    #[inline]
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.update(|s| {
            if s.is_complete() {
                return (None, false);
            }
            let claim = !s.is_running();
            let mut next = s.0 | CANCELLED;
            if claim {
                next |= RUNNING;
            }
            (Some(next), claim)
        })
    }

    /// A waker consumed by value is waking the task. Its reference is reused for the queue entry
    /// when the task must be scheduled; otherwise the caller drops it.
    #[inline]
    pub(crate) fn transition_to_notified_by_val(&self) -> WakeAction {
        self.update(|s| {
            if s.is_complete() || s.is_scheduled() {
                (None, WakeAction::None)
            } else if s.is_running() {
                (Some(s.0 | SCHEDULED), WakeAction::None)
            } else {
                (Some(s.0 | SCHEDULED), WakeAction::Schedule)
            }
        })
    }

    /// A borrowed waker is waking the task: scheduling it needs a new reference for the queue.
    #[inline]
    pub(crate) fn transition_to_notified_by_ref(&self) -> WakeAction {
        self.update(|s| {
            if s.is_complete() || s.is_scheduled() {
                (None, WakeAction::None)
            } else if s.is_running() {
                (Some(s.0 | SCHEDULED), WakeAction::None)
            } else {
                assert!(s.0 <= isize::MAX as usize, "task reference count overflow");
                (Some((s.0 | SCHEDULED) + REF_ONE), WakeAction::Schedule)
            }
        })
    }

    /// `JoinHandle::abort`: mark the task cancelled. When it is idle it must be scheduled so a
    /// runner drops its future; that needs a new reference, which this adds.
    #[inline]
    pub(crate) fn transition_to_aborted(&self) -> WakeAction {
        self.update(|s| {
            if s.is_complete() || s.is_cancelled() {
                (None, WakeAction::None)
            } else if s.is_running() || s.is_scheduled() {
                (Some(s.0 | CANCELLED), WakeAction::None)
            } else {
                (
                    Some((s.0 | CANCELLED | SCHEDULED) + REF_ONE),
                    WakeAction::Schedule,
                )
            }
        })
    }

    /// The join handle hands its (already written) waker to the task side.
    /// Fails, returning the current state, once the task is complete.
    #[inline]
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|s| {
            debug_assert!(s.has_join_interest() && !s.has_join_waker());
            if s.is_complete() {
                (None, Err(s))
            } else {
                (Some(s.0 | JOIN_WAKER), Ok(Snapshot(s.0 | JOIN_WAKER)))
            }
        })
    }

    /// The join handle takes the awaiter slot back to replace its waker.
    /// Fails once the task is complete (the task side may be reading the slot).
    #[inline]
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|s| {
            debug_assert!(s.has_join_interest() && s.has_join_waker());
            if s.is_complete() {
                (None, Err(s))
            } else {
                (Some(s.0 & !JOIN_WAKER), Ok(Snapshot(s.0 & !JOIN_WAKER)))
            }
        })
    }

    /// The join handle is dropped. Returns the state before, so the caller knows whether it must
    /// drop an output that is already there.
    #[inline]
    pub(crate) fn drop_join_interest(&self) -> Snapshot {
        Snapshot(self.0.fetch_and(!JOIN_INTEREST, AcqRel))
    }

    /// Records that the output left the stage (moved out or dropped).
    #[inline]
    pub(crate) fn set_output_taken(&self) {
        self.0.fetch_or(OUTPUT_TAKEN, AcqRel);
    }

    #[inline]
    pub(crate) fn ref_inc(&self) {
        let prev = self
            .0
            .fetch_add(REF_ONE, std::sync::atomic::Ordering::Relaxed);
        // A count this large means references leak in a loop; aborting beats wrapping around.
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference; returns true when it was the last.
    #[inline]
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.0.fetch_sub(REF_ONE, AcqRel));
        debug_assert!(
            prev.ref_count() >= 1,
            "task reference count underflow: {prev:?}"
        );
        prev.ref_count() == 1
    }

    /// Drops two references at once (the runner's and the owned list's, at completion).
    #[inline]
    pub(crate) fn ref_dec_twice(&self) -> bool {
        let prev = Snapshot(self.0.fetch_sub(2 * REF_ONE, AcqRel));
        debug_assert!(
            prev.ref_count() >= 2,
            "task reference count underflow: {prev:?}"
        );
        prev.ref_count() == 2
    }

    /// Test helper: the flags without the count.
    #[cfg(test)]
    #[inline]
    pub(crate) fn flags(&self) -> usize {
        self.0.load(Acquire) & FLAGS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_run_park_wake_complete() {
        let s = State::new(3);
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        assert_eq!(s.flags(), RUNNING | JOIN_INTEREST);
        assert!(matches!(s.transition_to_idle(), AfterPoll::Idle));
        assert!(matches!(
            s.transition_to_notified_by_ref(),
            WakeAction::Schedule
        ));
        assert_eq!(s.load().ref_count(), 4);
        assert!(matches!(
            s.transition_to_notified_by_ref(),
            WakeAction::None
        ));
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        let prev = s.transition_to_complete();
        assert!(prev.has_join_interest());
        assert!(s.load().is_complete() && !s.load().is_running());
    }

    #[test]
    fn wake_while_running_reschedules() {
        let s = State::new(3);
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        assert!(matches!(
            s.transition_to_notified_by_val(),
            WakeAction::None
        ));
        assert!(matches!(s.transition_to_idle(), AfterPoll::Reschedule));
        assert!(s.load().is_scheduled());
    }

    #[test]
    fn completion_clears_scheduled() {
        let s = State::new(3);
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        // Woken during its final poll: SCHEDULED is set, but the task completes.
        assert!(matches!(
            s.transition_to_notified_by_ref(),
            WakeAction::None
        ));
        s.transition_to_complete();
        assert!(!s.load().is_scheduled(), "{:?}", s.load());
        assert!(s.load().is_complete());
    }

    #[test]
    fn abort_idle_task_schedules_it() {
        let s = State::new(3);
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        assert!(matches!(s.transition_to_idle(), AfterPoll::Idle));
        assert!(matches!(s.transition_to_aborted(), WakeAction::Schedule));
        assert!(matches!(s.transition_to_aborted(), WakeAction::None));
        assert!(matches!(s.transition_to_running(), StartPoll::Cancel));
    }

    #[test]
    fn join_waker_cannot_be_set_after_complete() {
        let s = State::new(3);
        assert!(s.set_join_waker().is_ok());
        assert!(s.unset_join_waker().is_ok());
        assert!(matches!(s.transition_to_running(), StartPoll::Poll));
        s.transition_to_complete();
        assert!(s.set_join_waker().is_err());
    }
}
