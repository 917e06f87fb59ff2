//! Running async scrapers and analyzers from synchronous code: Scraipe's executors.
//!
//! * [`AsyncExecutor`] is the object-safe core an executor implements: spawn a boxed future,
//!   spawn a blocking closure, report in-flight work, shut down. It is always used behind an
//!   `Arc<dyn AsyncExecutor>`.
//! * [`AsyncExecutorExt`] (implemented for every executor, `dyn` included) adds the generic API
//!   that Python Scraipe's `IAsyncExecutor` has: [`submit`](AsyncExecutorExt::submit),
//!   [`run`](AsyncExecutorExt::run), [`run_multiple`](AsyncExecutorExt::run_multiple),
//!   [`wrap_async_iterable`](AsyncExecutorExt::wrap_async_iterable), plus
//!   [`block_on`](AsyncExecutorExt::block_on) for futures that borrow and
//!   [`spawn_blocking`](AsyncExecutorExt::spawn_blocking) for CPU work.
//! * [`DefaultBackgroundExecutor`] (one event loop on one background thread) and
//!   [`EventLoopPoolExecutor`] (a work-stealing pool of event loops) are the two executors.
//! * [`AsyncManager`] holds the process-wide executor the synchronous trait methods use.
//!
//! Nothing submitted is ever lost without a trace: a task that panics, times out or is
//! cancelled (its executor shut down under it) reports a [`TaskError`] instead of its output.
//!
//! ```
//! use std::time::Duration;
//! use scraipe::executor::{AsyncExecutorExt, EventLoopPoolExecutor, TaskError};
//!
//! let exec = EventLoopPoolExecutor::new(2)?;
//! assert_eq!(exec.run(async { 6 * 7 }), Ok(42));
//!
//! let futures = (0..4u64).map(|i| async move {
//!     scraipe::rt::sleep(Duration::from_millis(10 * (4 - i))).await;
//!     if i == 1 {
//!         panic!("task {i} failed");
//!     }
//!     i
//! });
//! let mut rows: Vec<_> = exec.run_multiple(futures, 4, Some(Duration::from_secs(5))).collect();
//! rows.sort_by_key(|(index, _)| *index);
//! assert_eq!(rows[0], (0, Ok(0)));
//! assert!(matches!(&rows[1].1, Err(TaskError::Panicked(m)) if m == "task 1 failed"));
//! assert_eq!(rows.len(), 4);
//! # Ok::<(), scraipe::executor::ExecutorError>(())
//! ```

mod manager;
mod runtime_executor;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::iter::Fuse;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::rt::sync::{mpsc, oneshot};
use crate::rt::{Handle, JoinHandle};

pub use manager::AsyncManager;
pub use runtime_executor::{DefaultBackgroundExecutor, EventLoopPoolExecutor};

/// A boxed, sendable future: what [`AsyncExecutor::spawn_boxed`] takes.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Python Scraipe's default per-task timeout in `run_multiple` (60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a task produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task panicked; the panic message.
    Panicked(String),
    /// The task ran past its timeout and was dropped.
    TimedOut(Duration),
    /// The task was aborted, or its executor shut down before it finished.
    Cancelled,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(m) => write!(f, "task panicked: {m}"),
            TaskError::TimedOut(d) => {
                write!(f, "task timed out after {:.3} seconds", d.as_secs_f64())
            }
            TaskError::Cancelled => {
                f.write_str("task was cancelled (aborted, or its executor shut down)")
            }
        }
    }
}

impl std::error::Error for TaskError {}

/// An executor could not be created or configured.
#[derive(Debug)]
pub enum ExecutorError {
    /// A pool needs at least one event loop.
    InvalidPoolSize(usize),
    /// The runtime's threads could not be started.
    Start(std::io::Error),
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecutorError::InvalidPoolSize(n) => {
                write!(
                    f,
                    "invalid pool size {n}: an executor needs at least one event loop"
                )
            }
            ExecutorError::Start(e) => write!(f, "could not start the executor's runtime: {e}"),
        }
    }
}

impl std::error::Error for ExecutorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecutorError::Start(e) => Some(e),
            ExecutorError::InvalidPoolSize(_) => None,
        }
    }
}

/// The object-safe core of an executor. Implement it to plug your own into
/// [`AsyncManager::set_executor`]; use the methods of [`AsyncExecutorExt`] to run work.
///
/// Contract:
/// * `spawn_boxed` runs the future on the runtime behind [`handle`](AsyncExecutor::handle);
///   after shutdown it drops the future at once (its join handle reports cancellation).
/// * `spawn_blocking_boxed` runs the closure on a thread where blocking is fine, never on an
///   event loop.
/// * `in_flight` counts spawned work not yet finished or dropped.
/// * `shutdown` waits up to `timeout` for in-flight work, then stops the runtime; work still
///   running then is cancelled.
pub trait AsyncExecutor: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// The runtime that runs this executor's futures (entered by
    /// [`AsyncExecutorExt::block_on`], so timers and sockets created there use it).
    fn handle(&self) -> Handle;
    /// Spawns a future on the executor's event loop(s).
    fn spawn_boxed(&self, future: BoxFuture<'static, ()>) -> JoinHandle<()>;
    /// Runs a closure on the executor's blocking pool.
    fn spawn_blocking_boxed(&self, f: Box<dyn FnOnce() + Send + 'static>) -> JoinHandle<()>;
    /// Spawned work (futures and blocking closures) not yet finished.
    fn in_flight(&self) -> usize;
    /// Lets in-flight work finish for at most `timeout`, then stops the runtime.
    fn shutdown(&self, timeout: Duration);
    /// True once [`shutdown`](AsyncExecutor::shutdown) has run.
    fn is_shutdown(&self) -> bool;
}

/// A handle to a task started with [`AsyncExecutorExt::submit`] or
/// [`AsyncExecutorExt::spawn_blocking`]. Await it, or [`join`](TaskHandle::join) it from
/// synchronous code. Dropping it detaches the task (it keeps running).
#[must_use = "dropping a TaskHandle detaches the task; join or await it to get the output"]
pub struct TaskHandle<T> {
    rx: oneshot::Receiver<Result<T, TaskError>>,
    task: JoinHandle<()>,
}

impl<T> TaskHandle<T> {
    /// Blocks until the task finishes. Works from any thread, including from inside a task of
    /// the same executor (the worker keeps running other tasks meanwhile).
    pub fn join(self) -> Result<T, TaskError>
    where
        T: Send + 'static,
    {
        crate::rt::block_on(self)
    }

    /// Requests cancellation; the handle then yields [`TaskError::Cancelled`] unless the task
    /// had already finished.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// True once the task has finished (output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(out)) => Poll::Ready(out),
            Poll::Ready(Err(_)) => Poll::Ready(Err(TaskError::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Sends the task's outcome exactly once: the real one, or `Cancelled` if the task is dropped
/// before finishing (aborted, or its runtime shut down).
struct Report<T> {
    tx: Option<oneshot::Sender<Result<T, TaskError>>>,
}

impl<T> Report<T> {
    fn send(mut self, out: Result<T, TaskError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(out);
        }
    }
}

impl<T> Drop for Report<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(TaskError::Cancelled));
        }
    }
}

/// Like [`Report`], for one slot of [`RunMultiple`].
struct SlotReport<T> {
    tx: Option<mpsc::UnboundedSender<(usize, Result<T, TaskError>)>>,
    index: usize,
}

impl<T> SlotReport<T> {
    fn send(mut self, out: Result<T, TaskError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.index, out));
        }
    }
}

impl<T> Drop for SlotReport<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.index, Err(TaskError::Cancelled)));
        }
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    // Dropping an arbitrary payload can itself panic; leaking it is the lesser evil.
    std::mem::forget(payload);
    message
}

/// Runs `future`, turning a panic in any of its polls into [`TaskError::Panicked`], so a
/// panic never unwinds into the event loop (or into a `block_on` driving a worker).
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, TaskError> {
    let mut future = pin!(future);
    std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(TaskError::Panicked(panic_message(payload)))),
        }
    })
    .await
}

/// [`catch_panic`] plus an optional timeout, measured from the first poll.
pub(crate) async fn guarded<F: Future>(
    future: F,
    timeout: Option<Duration>,
) -> Result<F::Output, TaskError> {
    match timeout {
        None => catch_panic(future).await,
        Some(limit) => match crate::rt::timeout(limit, catch_panic(future)).await {
            Ok(out) => out,
            Err(_) => Err(TaskError::TimedOut(limit)),
        },
    }
}

/// The generic half of the executor API, available on every [`AsyncExecutor`] (and on
/// `dyn AsyncExecutor`, so on what [`AsyncManager::get_executor`] returns).
pub trait AsyncExecutorExt: AsyncExecutor {
    /// Starts `future` on the executor and returns a handle to its outcome.
    ///
    /// ```
    /// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
    /// let exec = DefaultBackgroundExecutor::new()?;
    /// let task = exec.submit(async { "done" });
    /// assert_eq!(task.join(), Ok("done"));
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    #[cfg_attr(feature = "observatory", track_caller)]
    fn submit<F>(&self, future: F) -> TaskHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::rt::spawn_site!();
        let (tx, rx) = oneshot::channel();
        let report = Report { tx: Some(tx) };
        let task = self.spawn_boxed(Box::pin(async move {
            let report = report;
            let out = catch_panic(future).await;
            report.send(out);
        }));
        TaskHandle { rx, task }
    }

    /// Runs `future` on the executor and blocks until it finishes.
    ///
    /// Works from a plain thread and from inside a task of this very executor — even one with
    /// a single event loop: the waiting worker keeps running its other tasks (the nested sync
    /// bridge Python Scraipe cannot offer).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scraipe::executor::{AsyncExecutor, AsyncExecutorExt, DefaultBackgroundExecutor};
    /// let exec: Arc<dyn AsyncExecutor> = Arc::new(DefaultBackgroundExecutor::new()?);
    /// let inner = exec.clone();
    /// // A task on the single event loop blocks on more work for that same loop.
    /// let nested = exec.run(async move { inner.run(async { 20 }).unwrap() + 1 });
    /// assert_eq!(nested, Ok(21));
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    fn run<F>(&self, future: F) -> Result<F::Output, TaskError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit(future).join()
    }

    /// Runs a future that may borrow from the caller: it is polled on the calling thread with
    /// this executor's runtime entered (its timers and sockets live there), and other tasks it
    /// spawns run on the executor. A panic becomes [`TaskError::Panicked`].
    ///
    /// ```
    /// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
    /// let exec = DefaultBackgroundExecutor::new()?;
    /// let words = vec!["a", "b"];
    /// let n = exec.block_on(async { words.len() });
    /// assert_eq!(n, Ok(2));
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    #[cfg_attr(feature = "observatory", track_caller)]
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, TaskError> {
        if self.is_shutdown() {
            return Err(TaskError::Cancelled);
        }
        // The sentinel task below is listed at the caller's line (feature `observatory`).
        crate::rt::spawn_site!();
        // A sentinel task makes this call count as in-flight work (so a graceful shutdown
        // waits for it), and ends the wait with `Cancelled` if the runtime is shut down under
        // us: the future's timers and sockets would never fire again.
        let (release, released) = oneshot::channel::<()>();
        let mut sentinel = self.spawn_boxed(Box::pin(async move {
            let _ = released.await;
        }));
        let handle = self.handle();
        let out = handle.block_on(async {
            let mut future = pin!(catch_panic(future));
            std::future::poll_fn(|cx| {
                // Shutdown wakes timers and sockets with "shut down" (a timer would panic if
                // re-armed): report cancellation instead of polling into that.
                if handle.is_shutdown() {
                    return Poll::Ready(Err(TaskError::Cancelled));
                }
                if let Poll::Ready(out) = future.as_mut().poll(cx) {
                    return Poll::Ready(out);
                }
                match Pin::new(&mut sentinel).poll(cx) {
                    Poll::Ready(_) => Poll::Ready(Err(TaskError::Cancelled)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        });
        drop(release);
        out
    }

    /// Runs a closure on the executor's blocking pool (for CPU-heavy or blocking work).
    ///
    /// ```
    /// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
    /// let exec = DefaultBackgroundExecutor::new()?;
    /// let sum = exec.spawn_blocking(|| (1..=100u32).sum::<u32>()).join();
    /// assert_eq!(sum, Ok(5050));
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    #[cfg_attr(feature = "observatory", track_caller)]
    fn spawn_blocking<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        crate::rt::spawn_site!();
        let (tx, rx) = oneshot::channel();
        let report = Report { tx: Some(tx) };
        let task = self.spawn_blocking_boxed(Box::new(move || {
            let out = catch_unwind(AssertUnwindSafe(f))
                .map_err(|payload| TaskError::Panicked(panic_message(payload)));
            report.send(out);
        }));
        TaskHandle { rx, task }
    }

    /// Runs many futures, at most `max_workers` at a time, each limited to `timeout` (from when
    /// it starts), and yields `(index, outcome)` in completion order, `index` being the
    /// future's position in `futures`.
    ///
    /// Lazy: futures are taken from `futures` only as slots free up, so a long iterator is
    /// never materialised. Every future taken yields exactly one row: its output, or a
    /// [`TaskError`] when it panicked, timed out or was cancelled. A `max_workers` of 0 is
    /// treated as 1. Dropping the iterator early aborts the futures still running.
    ///
    /// ```
    /// use std::time::Duration;
    /// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor, TaskError};
    /// let exec = DefaultBackgroundExecutor::new()?;
    /// let futures = [0u64, 1000].into_iter().map(|ms| async move {
    ///     scraipe::rt::sleep(Duration::from_millis(ms)).await;
    ///     ms
    /// });
    /// let rows: Vec<_> = exec.run_multiple(futures, 2, Some(Duration::from_millis(50))).collect();
    /// assert_eq!(rows[0], (0, Ok(0)));
    /// assert_eq!(rows[1], (1, Err(TaskError::TimedOut(Duration::from_millis(50)))));
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    #[cfg_attr(feature = "observatory", track_caller)]
    fn run_multiple<I, F>(
        &self,
        futures: I,
        max_workers: usize,
        timeout: Option<Duration>,
    ) -> RunMultiple<&Self, I::IntoIter, F::Output>
    where
        I: IntoIterator<Item = F>,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        RunMultiple::new(self, futures, max_workers, timeout)
    }

    /// Turns an async stream into a blocking iterator: each `next()` drives the stream on the
    /// calling thread (runtime entered) until it yields. If polling the stream panics, the
    /// iterator ends and [`WrapAsyncIterable::error`] tells why.
    ///
    /// ```
    /// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
    /// let exec = DefaultBackgroundExecutor::new()?;
    /// let links = scraipe::stream::iter(vec!["a".to_string(), "b".to_string()]);
    /// let got: Vec<String> = exec.wrap_async_iterable(links).collect();
    /// assert_eq!(got, ["a", "b"]);
    /// # Ok::<(), scraipe::executor::ExecutorError>(())
    /// ```
    fn wrap_async_iterable<S>(&self, stream: S) -> WrapAsyncIterable<&Self, S>
    where
        S: Stream + Unpin,
    {
        WrapAsyncIterable::new(self, stream)
    }
}

impl<E: AsyncExecutor + ?Sized> AsyncExecutorExt for E {}

/// The iterator of [`AsyncExecutorExt::run_multiple`]. `X` is how it holds the executor: a
/// reference, or an `Arc` (see [`RunMultiple::new`]) for an iterator that owns it.
pub struct RunMultiple<X, I, T>
where
    X: Deref,
    X::Target: AsyncExecutor,
{
    exec: X,
    source: Fuse<I>,
    next_index: usize,
    max_workers: usize,
    timeout: Option<Duration>,
    tx: mpsc::UnboundedSender<(usize, Result<T, TaskError>)>,
    rx: mpsc::UnboundedReceiver<(usize, Result<T, TaskError>)>,
    running: HashMap<usize, JoinHandle<()>>,
    /// Where the pool was made: its tasks are spawned later, from `next`, and are listed at
    /// this line rather than inside the executor (feature `observatory`).
    #[cfg(feature = "observatory")]
    site: &'static std::panic::Location<'static>,
}

impl<X, I, F> RunMultiple<X, I, F::Output>
where
    X: Deref,
    X::Target: AsyncExecutor,
    I: Iterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Same as [`AsyncExecutorExt::run_multiple`], holding the executor through `exec` (pass an
    /// `Arc<dyn AsyncExecutor>` for an iterator with no borrow).
    #[cfg_attr(feature = "observatory", track_caller)]
    pub fn new(
        exec: X,
        futures: impl IntoIterator<IntoIter = I>,
        max_workers: usize,
        timeout: Option<Duration>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded();
        RunMultiple {
            exec,
            source: futures.into_iter().fuse(),
            next_index: 0,
            max_workers: max_workers.max(1),
            timeout,
            tx,
            rx,
            running: HashMap::new(),
            #[cfg(feature = "observatory")]
            site: std::panic::Location::caller(),
        }
    }

    fn start(&mut self, future: F) {
        let index = self.next_index;
        self.next_index += 1;
        let report = SlotReport {
            tx: Some(self.tx.clone()),
            index,
        };
        let timeout = self.timeout;
        #[cfg(feature = "observatory")]
        let _site = crate::rt::observe::SpawnSite::enter(self.site);
        let task = self.exec.spawn_boxed(Box::pin(async move {
            let report = report;
            let out = guarded(future, timeout).await;
            report.send(out);
        }));
        self.running.insert(index, task);
    }
}

impl<X, I, F> Iterator for RunMultiple<X, I, F::Output>
where
    X: Deref,
    X::Target: AsyncExecutor,
    I: Iterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Item = (usize, Result<F::Output, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.running.len() < self.max_workers {
            match self.source.next() {
                Some(future) => self.start(future),
                None => break,
            }
        }
        if self.running.is_empty() {
            return None;
        }
        // Every started task reports exactly once (its guard reports cancellation if it is
        // dropped unfinished), and we hold a sender, so this always gets a row.
        let (index, out) = crate::rt::block_on(self.rx.recv())?;
        self.running.remove(&index);
        Some((index, out))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.source.size_hint();
        let running = self.running.len();
        (lo + running, hi.map(|h| h + running))
    }
}

impl<X, I, T> Drop for RunMultiple<X, I, T>
where
    X: Deref,
    X::Target: AsyncExecutor,
{
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

impl<X, I, T> fmt::Debug for RunMultiple<X, I, T>
where
    X: Deref,
    X::Target: AsyncExecutor,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunMultiple")
            .field("executor", &self.exec.name())
            .field("started", &self.next_index)
            .field("running", &self.running.len())
            .field("max_workers", &self.max_workers)
            .finish()
    }
}

/// The iterator of [`AsyncExecutorExt::wrap_async_iterable`].
pub struct WrapAsyncIterable<X, S> {
    exec: X,
    stream: S,
    done: bool,
    error: Option<TaskError>,
}

impl<X, S> WrapAsyncIterable<X, S>
where
    X: Deref,
    X::Target: AsyncExecutor,
    S: Stream + Unpin,
{
    /// Same as [`AsyncExecutorExt::wrap_async_iterable`], holding the executor through `exec`.
    pub fn new(exec: X, stream: S) -> Self {
        WrapAsyncIterable {
            exec,
            stream,
            done: false,
            error: None,
        }
    }

    /// Why the iteration stopped early (the stream panicked, or the executor was shut down);
    /// `None` while running and after a normal end.
    pub fn error(&self) -> Option<&TaskError> {
        self.error.as_ref()
    }
}

impl<X, S> Iterator for WrapAsyncIterable<X, S>
where
    X: Deref,
    X::Target: AsyncExecutor,
    S: Stream + Unpin,
{
    type Item = S::Item;

    fn next(&mut self) -> Option<S::Item> {
        if self.done {
            return None;
        }
        let stream = &mut self.stream;
        let next = self.exec.block_on(std::future::poll_fn(|cx| {
            Pin::new(&mut *stream).poll_next(cx)
        }));
        match next {
            Ok(Some(item)) => Some(item),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                log::error!("async iterable stopped: {e}");
                self.done = true;
                self.error = Some(e);
                None
            }
        }
    }
}

impl<X, S> fmt::Debug for WrapAsyncIterable<X, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapAsyncIterable")
            .field("done", &self.done)
            .field("error", &self.error)
            .finish()
    }
}
