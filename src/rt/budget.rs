//! Cooperative budget: how many socket operations a task may perform in one poll before it
//! must yield.
//!
//! A task whose sockets are always ready (a fast peer, a deep kernel buffer) would otherwise
//! never return `Pending` and starve every other task on its worker. The worker starts each
//! task poll with a fresh budget (`start`, in `worker.rs`'s `run_task`); every readiness check
//! (`Registration::poll_ready`) takes one unit (`consume`); once it is spent the check wakes
//! the task and reports `Pending`, so the task goes to the back of the queue. Code outside a
//! task poll (a plain thread, the future a `block_on` waits for) is unconstrained.

use std::cell::Cell;

/// Operations a task may perform on ready sockets in one poll before it must yield.
const BUDGET_PER_POLL: u32 = 128;
/// "No budget in force": code outside a task poll (a `block_on` future, a plain thread).
const UNCONSTRAINED: u32 = u32::MAX;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(UNCONSTRAINED) };
}

/// Starts a task poll with a fresh budget; returns the previous value to restore afterwards
/// (a task may block_on, and the worker then polls other tasks inside it).
pub(crate) fn start() -> u32 {
    BUDGET.with(|b| b.replace(BUDGET_PER_POLL))
}

pub(crate) fn restore(prev: u32) {
    BUDGET.with(|b| b.set(prev));
}

/// Units of the current poll's budget spent so far; `None` outside a task poll.
#[cfg(feature = "observatory")]
pub(crate) fn used() -> Option<u32> {
    BUDGET.with(|b| match b.get() {
        UNCONSTRAINED => None,
        left => Some(BUDGET_PER_POLL.saturating_sub(left)),
    })
}

/// Takes one unit of the current task's budget; false when it is spent.
pub(crate) fn consume() -> bool {
    BUDGET.with(|b| match b.get() {
        UNCONSTRAINED => true,
        0 => false,
        n => {
            b.set(n - 1);
            true
        }
    })
}
