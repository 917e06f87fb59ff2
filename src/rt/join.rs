//! Waiting for many tasks: [`join_all`] (all outputs, in spawn order) and [`JoinSet`] (outputs
//! in completion order, as they arrive).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use super::{Handle, JoinError, JoinHandle};

/// Waits for every handle; outputs come back in the order of the handles.
///
/// ```
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let handles: Vec<_> = (0..4).map(|i| rt.spawn(async move { i * i })).collect();
/// let squares: Vec<i32> = rt
///     .block_on(scraipe::rt::join_all(handles))
///     .into_iter()
///     .map(Result::unwrap)
///     .collect();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// ```
pub async fn join_all<T, I>(handles: I) -> Vec<Result<T, JoinError>>
where
    I: IntoIterator<Item = JoinHandle<T>>,
{
    let handles: Vec<_> = handles.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
    // The tasks run concurrently whatever the order we await them in.
    for h in handles {
        out.push(h.await);
    }
    out
}

/// A set of tasks whose outputs are collected in completion order.
///
/// Dropping the set aborts the tasks still in it.
///
/// ```
/// use std::time::Duration;
/// use scraipe::rt::{sleep, JoinSet, Runtime};
/// let rt = Runtime::new().unwrap();
/// let order = rt.block_on(async {
///     let mut set = JoinSet::new();
///     for ms in [30u64, 10, 20] {
///         set.spawn(async move {
///             sleep(Duration::from_millis(ms)).await;
///             ms
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(done) = set.join_next().await {
///         order.push(done.unwrap());
///     }
///     order
/// });
/// assert_eq!(order, [10, 20, 30]);
/// ```
pub struct JoinSet<T> {
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    len: usize,
    ready: Arc<ReadyQueue>,
}

struct Slot<T> {
    handle: JoinHandle<T>,
    waker: Waker,
}

/// Indices of handles whose tasks may have finished, and the waker of whoever awaits the set.
struct ReadyQueue {
    inner: Mutex<(VecDeque<usize>, Option<Waker>)>,
}

struct SlotWaker {
    index: usize,
    ready: Arc<ReadyQueue>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let waker = {
            let mut q = self.ready.inner.lock();
            q.0.push_back(self.index);
            q.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: Arc::new(ReadyQueue {
                inner: Mutex::new((VecDeque::new(), None)),
            }),
        }
    }

    /// Number of tasks not yet returned by `join_next`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no task is left.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an already spawned task.
    pub fn insert(&mut self, handle: JoinHandle<T>) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let waker = Waker::from(Arc::new(SlotWaker {
            index,
            ready: self.ready.clone(),
        }));
        self.slots[index] = Some(Slot { handle, waker });
        self.len += 1;
        self.ready.inner.lock().0.push_back(index);
    }

    /// Aborts every task in the set (they still come out of `join_next`, as cancelled unless they
    /// had already finished).
    pub fn abort_all(&self) {
        for slot in self.slots.iter().flatten() {
            slot.handle.abort();
        }
    }

    /// Waits for the next task to finish; `None` when the set is empty.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Poll form of [`join_next`](JoinSet::join_next).
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        loop {
            let next = {
                let mut q = self.ready.inner.lock();
                match q.0.pop_front() {
                    Some(i) => Some(i),
                    None => {
                        q.1 = Some(cx.waker().clone());
                        None
                    }
                }
            };
            let Some(index) = next else {
                return Poll::Pending;
            };
            let Some(slot) = self.slots.get_mut(index).and_then(|s| s.as_mut()) else {
                continue; // a stale wake-up for a slot already emptied
            };
            let mut slot_cx = Context::from_waker(&slot.waker);
            if let Poll::Ready(out) = Pin::new(&mut slot.handle).poll(&mut slot_cx) {
                self.slots[index] = None;
                self.free.push(index);
                self.len -= 1;
                return Poll::Ready(Some(out));
            }
        }
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns a task on the current runtime and adds it to the set.
    ///
    /// # Panics
    /// Outside a runtime; use [`JoinSet::spawn_on`] there.
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(super::spawn(future));
    }

    /// Spawns a task on the given runtime and adds it to the set.
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.spawn(future));
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> std::fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish()
    }
}
