//! A channel for a single value.
//!
//! ```
//! let rt = scraipe::rt::Runtime::new().unwrap();
//! let (tx, rx) = scraipe::rt::sync::oneshot::channel();
//! rt.spawn(async move { tx.send("done").unwrap() });
//! assert_eq!(rt.block_on(rx), Ok("done"));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

struct State<T> {
    value: Option<T>,
    rx_waker: Option<Waker>,
    tx_dropped: bool,
    rx_dropped: bool,
}

/// Sends the value. Dropping it without sending makes the receiver yield [`RecvError`].
pub struct Sender<T> {
    inner: Arc<Mutex<State<T>>>,
}

/// Receives the value: a future yielding `Ok(value)` or `Err(RecvError)` if the sender was
/// dropped without sending.
pub struct Receiver<T> {
    inner: Arc<Mutex<State<T>>>,
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
    /// The sender went away without sending.
    Closed,
}

/// Creates a connected sender/receiver pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(State {
        value: None,
        rx_waker: None,
        tx_dropped: false,
        rx_dropped: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    /// Sends the value; gives it back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut state = self.inner.lock();
            if state.rx_dropped {
                return Err(value);
            }
            state.value = Some(value);
            state.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True when the receiver was dropped (sending would fail).
    pub fn is_closed(&self) -> bool {
        self.inner.lock().rx_dropped
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.inner.lock();
            state.tx_dropped = true;
            state.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the value if it has arrived, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.inner.lock();
        match state.value.take() {
            Some(v) => Ok(v),
            None if state.tx_dropped => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Blocks the calling thread until the value arrives (see [`crate::rt::block_on`]).
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        crate::rt::block_on(self)
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.inner.lock();
        if let Some(v) = state.value.take() {
            return Poll::Ready(Ok(v));
        }
        if state.tx_dropped {
            return Poll::Ready(Err(RecvError(())));
        }
        match &state.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.rx_dropped = true;
        // Drop an unreceived value now rather than when the sender goes.
        let value = state.value.take();
        drop(state);
        drop(value);
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
