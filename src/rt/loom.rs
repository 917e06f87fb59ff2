//! The synchronisation primitives of the modules that loom checks, from `std`/`parking_lot`
//! normally and from `loom` when built with `RUSTFLAGS="--cfg loom"` (see `.ci/loom` and
//! `loom_models.rs`). Code that imports from here is explored by loom's model checker under
//! every interleaving (within the preemption bound); everything else stays on std.
//!
//! Under `cfg(loom)` these types only work inside `loom::model`, so a loom build runs the
//! `loom_models` tests and nothing else.

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU8, AtomicUsize};

/// loom's `Mutex` with `parking_lot`'s API (no poisoning).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().expect("loom mutex poisoned")
    }
}

#[cfg(loom)]
impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}
