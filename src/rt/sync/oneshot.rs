//! A channel for a single value, lock-free.
//!
//! ```
//! let rt = scraipe::rt::Runtime::new().unwrap();
//! let (tx, rx) = scraipe::rt::sync::oneshot::channel();
//! rt.spawn(async move { tx.send("done").unwrap() });
//! assert_eq!(rt.block_on(rx), Ok("done"));
//! ```
//!
//! # Protocol
//!
//! One atomic byte says who may touch which slot:
//!
//! * `VALUE_SENT` — the value slot is written and now belongs to the receiver.
//! * `RX_WAKER` — the waker slot holds the receiver's waker and belongs to the sender side
//!   (read-only). While it is clear, the receiver may (re)write the slot.
//! * `TX_CLOSED` — the sender went away without sending.
//! * `RX_CLOSED` — the receiver went away; a value sent now comes back to the sender.
//!
//! The sender writes the value, then sets `VALUE_SENT`; if `RX_WAKER` was set at that moment
//! it wakes the receiver. The receiver can only clear `RX_WAKER` (to change its waker) by a
//! compare-exchange that fails once `VALUE_SENT` or `TX_CLOSED` is set, so the sender never reads
//! a waker while it is being replaced.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::rt::loom::AtomicU8;

const VALUE_SENT: u8 = 1;
const RX_WAKER: u8 = 2;
const TX_CLOSED: u8 = 4;
const RX_CLOSED: u8 = 8;

struct Inner<T> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the state byte hands each slot to exactly one side at a time (see the module docs),
// and only `T` values cross threads, which requires `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Inner<T> {}

/// Sends the value. Dropping it without sending makes the receiver yield [`RecvError`].
pub struct Sender<T> {
    inner: Option<Arc<Inner<T>>>,
}

/// Receives the value: a future yielding `Ok(value)` or `Err(RecvError)` if the sender was
/// dropped without sending.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// The sender went away without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot sender dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing sent yet.
    Empty,
    /// The sender went away without sending (or the value was already received).
    Closed,
}

/// Creates a connected sender/receiver pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicU8::new(0),
        value: UnsafeCell::new(None),
        waker: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    /// Sends the value; gives it back if the receiver is gone.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let inner = self.inner.take().expect("a sender sends once");
        // SAFETY: before VALUE_SENT the value slot belongs to the sender.
        unsafe { *inner.value.get() = Some(value) };
        let prev = inner.state.fetch_or(VALUE_SENT, AcqRel);
        if prev & RX_CLOSED != 0 {
            // The receiver is gone and will not read the slot: take the value back.
            // SAFETY: RX_CLOSED means the receiver no longer touches the value slot.
            let value = unsafe { (*inner.value.get()).take() };
            return Err(value.expect("just written"));
        }
        if prev & RX_WAKER != 0 {
            // SAFETY: RX_WAKER was set when VALUE_SENT was published, so the receiver can no
            // longer rewrite the waker slot.
            if let Some(w) = unsafe { &*inner.waker.get() } {
                w.wake_by_ref();
            }
        }
        Ok(())
    }

    /// True when the receiver was dropped (sending would fail).
    pub fn is_closed(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|i| i.state.load(Acquire) & RX_CLOSED != 0)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let prev = inner.state.fetch_or(TX_CLOSED, AcqRel);
        if prev & RX_WAKER != 0 && prev & VALUE_SENT == 0 {
            // SAFETY: as in `send`: with RX_WAKER set and TX_CLOSED now published, the receiver
            // can no longer rewrite the slot.
            if let Some(w) = unsafe { &*inner.waker.get() } {
                w.wake_by_ref();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the value if it has arrived, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let state = self.inner.state.load(Acquire);
        if state & VALUE_SENT != 0 {
            // SAFETY: after VALUE_SENT the value slot belongs to the receiver.
            return unsafe { (*self.inner.value.get()).take() }.ok_or(TryRecvError::Closed);
        }
        if state & TX_CLOSED != 0 {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Blocks the calling thread until the value arrives (see [`crate::rt::block_on`]).
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        crate::rt::block_on(self)
    }

    fn ready(&self, state: u8) -> Poll<Result<T, RecvError>> {
        if state & VALUE_SENT != 0 {
            // SAFETY: after VALUE_SENT the value slot belongs to the receiver.
            match unsafe { (*self.inner.value.get()).take() } {
                Some(v) => Poll::Ready(Ok(v)),
                None => panic!("oneshot::Receiver polled after it returned its value"),
            }
        } else {
            Poll::Ready(Err(RecvError(())))
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &self.inner;
        let mut state = inner.state.load(Acquire);
        if state & (VALUE_SENT | TX_CLOSED) != 0 {
            return self.ready(state);
        }
        #[cfg(feature = "observatory")]
        crate::rt::observe::note_channel_wait(crate::rt::observe::Channel::Oneshot);
        if state & RX_WAKER != 0 {
            // SAFETY: with RX_WAKER set the slot is only read, by either side.
            let same = unsafe { &*inner.waker.get() }
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            if same {
                return Poll::Pending;
            }
            // Take the slot back to replace the waker; fails if the sender just finished.
            match inner
                .state
                .compare_exchange(state, state & !RX_WAKER, AcqRel, Acquire)
            {
                Ok(_) => state &= !RX_WAKER,
                Err(actual) => return self.ready(actual),
            }
        }
        // SAFETY: RX_WAKER is clear, so the slot belongs to the receiver.
        unsafe { *inner.waker.get() = Some(cx.waker().clone()) };
        match inner
            .state
            .compare_exchange(state, state | RX_WAKER, AcqRel, Acquire)
        {
            Ok(_) => Poll::Pending,
            Err(actual) => self.ready(actual),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let prev = self.inner.state.fetch_or(RX_CLOSED, AcqRel);
        if prev & VALUE_SENT != 0 {
            // Drop an unreceived value now rather than when the last reference goes.
            // SAFETY: after VALUE_SENT the value slot belongs to the receiver.
            drop(unsafe { (*self.inner.value.get()).take() });
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Sender")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Receiver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_dropped_exactly_once_in_every_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        #[derive(Debug)]
        struct D;
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        // receiver dropped before send: value comes back
        let (tx, rx) = channel::<D>();
        drop(rx);
        let back = tx.send(D).unwrap_err();
        drop(back);
        // sent, never received
        let (tx, rx) = channel::<D>();
        tx.send(D).unwrap();
        drop(rx);
        // sent and received
        let (tx, mut rx) = channel::<D>();
        tx.send(D).unwrap();
        drop(rx.try_recv().unwrap());
        assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn racing_send_and_poll_from_threads() {
        let rt = crate::rt::Builder::new().worker_threads(2).build().unwrap();
        for i in 0..2000u32 {
            let (tx, rx) = channel();
            let h = rt.spawn(rx);
            std::thread::spawn(move || tx.send(i).unwrap());
            assert_eq!(h.join().unwrap(), Ok(i));
        }
    }
}
