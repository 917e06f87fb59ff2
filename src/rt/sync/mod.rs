//! Synchronisation for tasks: a [`oneshot`] channel, an unbounded [`mpsc`] channel, and an async
//! [`Semaphore`] for bounded concurrency. All of them work across runtimes and from plain
//! threads (through [`crate::rt::block_on`]).

pub mod mpsc;
pub mod oneshot;
mod semaphore;

pub use semaphore::{AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
