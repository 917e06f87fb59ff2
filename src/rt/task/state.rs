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
//! With the feature `observatory` the word also carries the observatory's per-task facts, so
//! that counting them rides the compare-and-swaps the runtime makes anyway (a wake's, a poll
//! start's, a poll end's) instead of a word of their own in every task (see [`obs`]):
//!
//! ```text
//!  bit:  63 ........ 48 | 47 ....... 25 | 24 .... 17 | 16 .. 14 | 13 ... 8 | 7 ... 0
//!        poll count     | refcount      | last worker| channels | causes   | flags (as above)
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
#[cfg(not(feature = "observatory"))]
pub(crate) const REF_ONE: usize = 1 << 8;
/// One reference. The count lives in the bits above the observatory's (see [`obs`]).
#[cfg(feature = "observatory")]
pub(crate) const REF_ONE: usize = 1 << obs::REF_SHIFT;
/// The reference count's bits.
#[cfg(not(feature = "observatory"))]
const REF_MASK: usize = !(REF_ONE - 1);
#[cfg(feature = "observatory")]
const REF_MASK: usize = ((1 << obs::POLLS_SHIFT) - 1) & !(REF_ONE - 1);

/// Whether a state (before adding a reference) holds so many references that one more must
/// not be added: a count this large means references leak in a loop, and aborting beats
/// wrapping around. Without the observatory, the top bit; with it, half the count's 23 bits
/// (about 4 million references to one task), so a count never carries into the poll count.
#[inline(always)]
fn too_many_refs(state: usize) -> bool {
    #[cfg(not(feature = "observatory"))]
    return state > isize::MAX as usize;
    #[cfg(feature = "observatory")]
    return state & REF_MASK > REF_MASK / 2;
}

/// The observatory's bits of the state word (feature `observatory`), between the flags and the
/// reference count, and the poll count above it. Who writes them:
///
/// * **causes** (bits 8–13, bit `8 + i` for `WakeSource::ALL[i]`): a wake sets its source's bit
///   in the CAS that marks the task notified ([`WakeCause`]); a poll start takes them (clears
///   them in `transition_to_running`, and counts them from the value it replaced). A wake of a
///   task that is already scheduled writes the word only when its bit is not set yet. A new
///   task starts with the self bit set, so that a first poll looks like a yield loop's poll and
///   the poll start tells both apart from the rest with one compare.
/// * **channels** (bits 14–16): the channel kinds the task's last poll registered its waker
///   with, folded in by the poll end's CAS (`transition_to_idle`); cleared by the poll start.
/// * **last worker** (bits 17–24): the index + 1 of the worker that started the latest poll
///   (0: none yet, or not on a worker; `0xFF`: an index past 253, not recorded), set by the
///   poll start.
/// * **poll count** (bits 48–63): the poll start adds one. When the count reaches 2^15 (its
///   top bit, the word's, is set), the next poll start sees that bit in the value it replaced,
///   carries 2^15 into the task's record (`observe::task`) and clears the bit
///   ([`State::carry_polls`]), so the common poll start tests the causes and the carry with one
///   mask, and the count never reaches the reference count.
///
/// The reference count keeps bits 25–47.
#[cfg(feature = "observatory")]
pub(crate) mod obs {
    pub(crate) const CAUSE_SHIFT: u32 = 8;
    pub(crate) const CAUSE_MASK: usize = 0x3F << CAUSE_SHIFT;
    pub(crate) const CHANNEL_SHIFT: u32 = 14;
    pub(crate) const CHANNEL_MASK: usize = 0x7 << CHANNEL_SHIFT;
    pub(crate) const WORKER_SHIFT: u32 = 17;
    pub(crate) const WORKER_MASK: usize = 0xFF << WORKER_SHIFT;
    pub(crate) const REF_SHIFT: u32 = 25;
    pub(crate) const POLLS_SHIFT: u32 = 48;
    pub(crate) const POLL_ONE: usize = 1 << POLLS_SHIFT;
    /// The poll count's top bit: 2^15 polls to carry out of the word.
    pub(crate) const POLLS_CARRY: usize = 1 << 63;
    /// What a poll start replaces: the causes, the channels and the worker.
    pub(crate) const POLL_START_CLEARS: usize = CAUSE_MASK | CHANNEL_MASK | WORKER_MASK;
}

/// What a wake adds to the CAS that marks its task notified: with the observatory, its
/// source's cause bit (see [`obs`]); without it, nothing (a zero-sized value whose bits are a
/// constant 0, so the transitions compile to what they were).
#[cfg(feature = "observatory")]
pub(crate) use crate::rt::observe::WakeCause;

/// What a wake adds to the CAS that marks its task notified: nothing without the observatory.
#[cfg(not(feature = "observatory"))]
#[derive(Clone, Copy)]
pub(crate) struct WakeCause;

#[cfg(not(feature = "observatory"))]
impl WakeCause {
    #[inline(always)]
    pub(crate) fn bit(self, _state: usize) -> usize {
        0
    }
}

/// What a poll start adds to its CAS: with the observatory, the polling worker's field (see
/// [`obs`]); without it, nothing.
#[derive(Clone, Copy)]
pub(crate) struct PollerBits(#[cfg(feature = "observatory")] pub(crate) usize);

impl PollerBits {
    /// Nothing to add (no observatory).
    #[cfg(not(feature = "observatory"))]
    pub(crate) const NONE: PollerBits = PollerBits();

    /// `next` (a task just taken from its queue: running) with the poller's bits: one more
    /// poll, by this worker, causes and channels cleared.
    #[inline(always)]
    fn apply(self, next: usize) -> usize {
        #[cfg(feature = "observatory")]
        return ((next & !obs::POLL_START_CLEARS) | self.0).wrapping_add(obs::POLL_ONE);
        #[cfg(not(feature = "observatory"))]
        return next;
    }
}
/// Mask of the flag bits.
#[cfg(test)]
const FLAGS: usize = (1 << 8) - 1;

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
        (self.0 & REF_MASK) / REF_ONE
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
        // With the observatory, the first poll is marked as if self-woken (see `obs`).
        #[cfg(feature = "observatory")]
        let first = 1 << obs::CAUSE_SHIFT;
        #[cfg(not(feature = "observatory"))]
        let first = 0;
        State(AtomicUsize::new(
            SCHEDULED | JOIN_INTEREST | (refs * REF_ONE) | first,
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

    /// A runner took the task from a queue: `SCHEDULED → RUNNING`. Returns what to do and the
    /// state it replaced (with the observatory, the poll start counts from it what woke the
    /// task: `poller` is its part of the CAS).
    #[inline]
    pub(crate) fn transition_to_running(&self, poller: PollerBits) -> (StartPoll, Snapshot) {
        self.update(|s| {
            // A queued task is normally idle. It can be running or complete only when runtime
            // shutdown claimed it while this queue entry was in flight; then skip it.
            if s.is_complete() || s.is_running() {
                return (None, (StartPoll::Skip, s));
            }
            let next = (s.0 & !SCHEDULED) | RUNNING;
            if s.is_cancelled() {
                (Some(next), (StartPoll::Cancel, s))
            } else {
                (Some(poller.apply(next)), (StartPoll::Poll, s))
            }
        })
    }

    /// A poll returned `Pending` (and the runner linked the task into the owned-task list,
    /// which this records with `LINKED`). `channels`: the observatory's channel bits the poll
    /// noted (see [`obs`]; always 0 without it).
    #[inline]
    pub(crate) fn transition_to_idle(&self, channels: usize) -> AfterPoll {
        self.update(|s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return (None, AfterPoll::Cancel);
            }
            let next = (s.0 & !RUNNING) | LINKED | channels;
            if s.is_scheduled() {
                // Stay SCHEDULED: the runner's reference becomes the queue's reference.
                (Some(next), AfterPoll::Reschedule)
            } else {
                (Some(next), AfterPoll::Idle)
            }
        })
    }

    /// The observatory's self-wake: the task is running on the calling thread (mid-poll, so
    /// nobody else can complete it or end its poll), so marking it notified is one `or` — its
    /// runner requeues it when the poll returns — with the self-wake's cause bit (bit 0 of the
    /// causes: `WakeSource::SelfWake`). What the CAS of `transition_to_notified_by_*` would do
    /// for a running task, without its loop.
    #[cfg(feature = "observatory")]
    #[inline]
    pub(crate) fn notify_self(&self) {
        self.0.fetch_or(SCHEDULED | 1 << obs::CAUSE_SHIFT, AcqRel);
    }

    /// The observatory carries the poll count's top bit out of the word (see [`obs`]); called
    /// by the poll start that saw it set, while it holds `RUNNING` (no other poll start can add
    /// to the count meanwhile).
    #[cfg(feature = "observatory")]
    #[inline]
    pub(crate) fn carry_polls(&self) {
        self.0.fetch_and(!obs::POLLS_CARRY, AcqRel);
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
    /// when the task must be scheduled; otherwise the caller drops it. `cause`: the
    /// observatory's note of who woke it (nothing without the feature). Returns the state the
    /// wake found, too.
    #[inline]
    pub(crate) fn transition_to_notified_by_val(&self, cause: WakeCause) -> (WakeAction, Snapshot) {
        self.update(|s| {
            let bit = cause.bit(s.0);
            if s.is_complete() || (s.is_scheduled() && s.0 & bit == bit) {
                (None, (WakeAction::None, s))
            } else if s.is_running() || s.is_scheduled() {
                // (Scheduled here only with the observatory: a new cause bit to leave.)
                (Some(s.0 | SCHEDULED | bit), (WakeAction::None, s))
            } else {
                (Some(s.0 | SCHEDULED | bit), (WakeAction::Schedule, s))
            }
        })
    }

    /// A borrowed waker is waking the task: scheduling it needs a new reference for the queue.
    /// `cause` and the result as for [`transition_to_notified_by_val`](Self::transition_to_notified_by_val).
    #[inline]
    pub(crate) fn transition_to_notified_by_ref(&self, cause: WakeCause) -> (WakeAction, Snapshot) {
        self.update(|s| {
            let bit = cause.bit(s.0);
            if s.is_complete() || (s.is_scheduled() && s.0 & bit == bit) {
                (None, (WakeAction::None, s))
            } else if s.is_running() || s.is_scheduled() {
                (Some(s.0 | SCHEDULED | bit), (WakeAction::None, s))
            } else {
                assert!(!too_many_refs(s.0), "task reference count overflow");
                (
                    Some((s.0 | SCHEDULED | bit) + REF_ONE),
                    (WakeAction::Schedule, s),
                )
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
        if too_many_refs(prev) {
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

    /// Test helper: overwrites the word (the observatory's tests set a poll count).
    #[cfg(all(test, feature = "observatory"))]
    pub(crate) fn store(&self, state: usize) {
        self.0.store(state, std::sync::atomic::Ordering::Release);
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

    /// A poll start's CAS on no worker.
    fn poller() -> PollerBits {
        #[cfg(feature = "observatory")]
        return PollerBits(0);
        #[cfg(not(feature = "observatory"))]
        return PollerBits::NONE;
    }

    /// A wake by a plain thread.
    fn outside() -> WakeCause {
        #[cfg(feature = "observatory")]
        return WakeCause::fixed(crate::rt::observe::WakeSource::Outside);
        #[cfg(not(feature = "observatory"))]
        return WakeCause;
    }

    fn run(s: &State) -> StartPoll {
        s.transition_to_running(poller()).0
    }

    fn idle(s: &State) -> AfterPoll {
        s.transition_to_idle(0)
    }

    fn wake_by_ref(s: &State) -> WakeAction {
        s.transition_to_notified_by_ref(outside()).0
    }

    fn wake_by_val(s: &State) -> WakeAction {
        s.transition_to_notified_by_val(outside()).0
    }

    #[test]
    fn spawn_run_park_wake_complete() {
        let s = State::new(3);
        assert!(matches!(run(&s), StartPoll::Poll));
        assert_eq!(s.flags(), RUNNING | JOIN_INTEREST);
        assert!(matches!(idle(&s), AfterPoll::Idle));
        assert!(matches!(wake_by_ref(&s), WakeAction::Schedule));
        assert_eq!(s.load().ref_count(), 4);
        assert!(matches!(wake_by_ref(&s), WakeAction::None));
        assert!(matches!(run(&s), StartPoll::Poll));
        let prev = s.transition_to_complete();
        assert!(prev.has_join_interest());
        assert!(s.load().is_complete() && !s.load().is_running());
    }

    #[test]
    fn wake_while_running_reschedules() {
        let s = State::new(3);
        assert!(matches!(run(&s), StartPoll::Poll));
        assert!(matches!(wake_by_val(&s), WakeAction::None));
        assert!(matches!(idle(&s), AfterPoll::Reschedule));
        assert!(s.load().is_scheduled());
    }

    #[test]
    fn completion_clears_scheduled() {
        let s = State::new(3);
        assert!(matches!(run(&s), StartPoll::Poll));
        // Woken during its final poll: SCHEDULED is set, but the task completes.
        assert!(matches!(wake_by_ref(&s), WakeAction::None));
        s.transition_to_complete();
        assert!(!s.load().is_scheduled(), "{:?}", s.load());
        assert!(s.load().is_complete());
    }

    #[test]
    fn abort_idle_task_schedules_it() {
        let s = State::new(3);
        assert!(matches!(run(&s), StartPoll::Poll));
        assert!(matches!(idle(&s), AfterPoll::Idle));
        assert!(matches!(s.transition_to_aborted(), WakeAction::Schedule));
        assert!(matches!(s.transition_to_aborted(), WakeAction::None));
        assert!(matches!(run(&s), StartPoll::Cancel));
    }

    #[test]
    fn join_waker_cannot_be_set_after_complete() {
        let s = State::new(3);
        assert!(s.set_join_waker().is_ok());
        assert!(s.unset_join_waker().is_ok());
        assert!(matches!(run(&s), StartPoll::Poll));
        s.transition_to_complete();
        assert!(s.set_join_waker().is_err());
    }
}
