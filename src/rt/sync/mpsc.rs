//! An unbounded multi-producer, single-consumer channel.
//!
//! ```
//! let rt = scraipe::rt::Runtime::new().unwrap();
//! let (tx, mut rx) = scraipe::rt::sync::mpsc::unbounded();
//! for i in 0..3 {
//!     let tx = tx.clone();
//!     rt.spawn(async move { tx.send(i).unwrap() });
//! }
//! drop(tx);
//! let mut got = rt.block_on(async move {
//!     let mut got = Vec::new();
//!     while let Some(v) = rx.recv().await {
//!         got.push(v);
//!     }
//!     got
//! });
//! got.sort();
//! assert_eq!(got, [0, 1, 2]);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::AcqRel;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

struct Chan<T> {
    state: Mutex<State<T>>,
    senders: AtomicUsize,
}

struct State<T> {
    queue: VecDeque<T>,
    rx_waker: Option<Waker>,
    rx_closed: bool,
    tx_closed: bool,
}

/// The sending side; clone it for more producers.
pub struct UnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving side.
pub struct UnboundedReceiver<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("channel receiver dropped")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Creates an unbounded channel.
pub fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            rx_waker: None,
            rx_closed: false,
            tx_closed: false,
        }),
        senders: AtomicUsize::new(1),
    });
    (
        UnboundedSender { chan: chan.clone() },
        UnboundedReceiver { chan },
    )
}

impl<T> UnboundedSender<T> {
    /// Queues a value; fails only when the receiver was dropped.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let waker = {
            let mut state = self.chan.state.lock();
            if state.rx_closed {
                return Err(SendError(value));
            }
            state.queue.push_back(value);
            state.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True when the receiver was dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.state.lock().rx_closed
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, AcqRel);
        UnboundedSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, AcqRel) == 1 {
            let waker = {
                let mut state = self.chan.state.lock();
                state.tx_closed = true;
                state.rx_waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> UnboundedReceiver<T> {
    /// Waits for the next value; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](UnboundedReceiver::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.chan.state.lock();
        if let Some(v) = state.queue.pop_front() {
            return Poll::Ready(Some(v));
        }
        if state.tx_closed {
            return Poll::Ready(None);
        }
        #[cfg(feature = "observatory")]
        crate::rt::observe::note_channel_wait(crate::rt::observe::Channel::Mpsc);
        match &state.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes a value if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.chan.state.lock().queue.pop_front()
    }

    /// Blocks the calling thread for the next value (see [`crate::rt::block_on`]).
    pub fn blocking_recv(&mut self) -> Option<T> {
        crate::rt::block_on(self.recv())
    }

    /// Number of queued values.
    pub fn len(&self) -> usize {
        self.chan.state.lock().queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for UnboundedReceiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.chan.state.lock();
            state.rx_closed = true;
            std::mem::take(&mut state.queue)
        };
        drop(queued);
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnboundedSender")
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnboundedReceiver")
    }
}
