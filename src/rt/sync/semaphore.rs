//! An async counting semaphore with FIFO fairness: the task that waited longest gets the next
//! permit, so a steady stream of newcomers cannot starve an early waiter.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::rt::loom::{AtomicU8, Mutex};

/// Limits how many tasks do something at once.
///
/// ```
/// use std::sync::Arc;
/// use scraipe::rt::{sync::Semaphore, Runtime};
/// let rt = Runtime::new().unwrap();
/// let limit = Arc::new(Semaphore::new(2));
/// let handles: Vec<_> = (0..8)
///     .map(|_| {
///         let limit = limit.clone();
///         rt.spawn(async move {
///             let _permit = limit.acquire().await.unwrap();
///             // at most two tasks are here at any moment
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(limit.available_permits(), 2);
/// ```
pub struct Semaphore {
    state: Mutex<State>,
}

struct State {
    permits: usize,
    waiters: VecDeque<Arc<Waiter>>,
    closed: bool,
}

/// A queued `acquire`. `outcome` is set (under the semaphore lock) before the waker is taken, and
/// the acquiring future stores its waker only after re-reading `outcome` under the waker lock,
/// so a grant or close is never missed.
struct Waiter {
    outcome: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const CLOSED: u8 = 2;

/// The semaphore was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireError(());

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

/// A permit borrowed from a [`Semaphore`]; released on drop.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

/// A permit holding an `Arc` of its semaphore; released on drop.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: Mutex::new(State {
                permits,
                waiters: VecDeque::new(),
                closed: false,
            }),
        }
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        self.state.lock().permits
    }

    /// Tasks waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiters.len()
    }

    /// Adds permits, waking waiters in FIFO order.
    pub fn add_permits(&self, n: usize) {
        self.release(n)
    }

    /// Closes the semaphore: current and future `acquire`s fail. Permits already held stay valid.
    pub fn close(&self) {
        let waiters: Vec<_> = {
            let mut state = self.state.lock();
            state.closed = true;
            state.waiters.drain(..).collect()
        };
        for w in waiters {
            w.outcome.store(CLOSED, Release);
            if let Some(waker) = w.waker.lock().take() {
                waker.wake();
            }
        }
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Takes a permit if one is free and nobody is queued before us.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = self.state.lock();
        if !state.closed && state.permits > 0 && state.waiters.is_empty() {
            state.permits -= 1;
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }

    /// Like [`try_acquire`](Semaphore::try_acquire), returning a permit that owns an `Arc` of the
    /// semaphore.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        let permit = self.try_acquire()?;
        std::mem::forget(permit);
        Some(OwnedSemaphorePermit { sem: self.clone() })
    }

    /// Waits for a permit.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        AcquireFuture {
            sem: self,
            waiter: None,
        }
        .await?;
        Ok(SemaphorePermit { sem: self })
    }

    /// Waits for a permit that owns an `Arc` of the semaphore (can move into a spawned task).
    pub async fn acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        AcquireFuture {
            sem: &self,
            waiter: None,
        }
        .await?;
        Ok(OwnedSemaphorePermit { sem: self })
    }

    fn release(&self, n: usize) {
        let mut wake = Vec::new();
        {
            let mut state = self.state.lock();
            state.permits += n;
            while state.permits > 0 {
                let Some(waiter) = state.waiters.pop_front() else {
                    break;
                };
                state.permits -= 1;
                waiter.outcome.store(GRANTED, Release);
                let taken = waiter.waker.lock().take();
                wake.extend(taken);
            }
        }
        for w in wake {
            w.wake();
        }
    }
}

struct AcquireFuture<'a> {
    sem: &'a Semaphore,
    waiter: Option<Arc<Waiter>>,
}

impl Future for AcquireFuture<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(waiter) = &self.waiter {
            let mut slot = waiter.waker.lock();
            let outcome = waiter.outcome.load(Acquire);
            if outcome == WAITING {
                #[cfg(feature = "observatory")]
                crate::rt::observe::note_channel_wait(crate::rt::observe::Channel::Semaphore);
                match &*slot {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            drop(slot);
            self.waiter = None;
            return Poll::Ready(if outcome == GRANTED {
                Ok(())
            } else {
                Err(AcquireError(()))
            });
        }
        let mut state = self.sem.state.lock();
        if state.closed {
            return Poll::Ready(Err(AcquireError(())));
        }
        if state.permits > 0 && state.waiters.is_empty() {
            state.permits -= 1;
            return Poll::Ready(Ok(()));
        }
        #[cfg(feature = "observatory")]
        crate::rt::observe::note_channel_wait(crate::rt::observe::Channel::Semaphore);
        let waiter = Arc::new(Waiter {
            outcome: AtomicU8::new(WAITING),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        state.waiters.push_back(waiter.clone());
        drop(state);
        self.waiter = Some(waiter);
        Poll::Pending
    }
}

impl Drop for AcquireFuture<'_> {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        let mut state = self.sem.state.lock();
        if waiter.outcome.load(Acquire) == GRANTED {
            // Granted after our last poll: pass the permit on.
            drop(state);
            self.sem.release(1);
        } else if let Some(pos) = state.waiters.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
            state.waiters.remove(pos);
        }
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(1);
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Semaphore")
            .field("permits", &state.permits)
            .field("waiting", &state.waiters.len())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedSemaphorePermit")
    }
}
