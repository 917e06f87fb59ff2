//! The two executors, both a scraipe [`Runtime`] underneath: one event loop on one background
//! thread, or a work-stealing pool of them.
//!
//! Retirement: when the last `Arc` to an executor goes (for example after
//! [`AsyncManager`](super::AsyncManager) switched to another one and everybody who was still
//! using the old one is done), the executor lets its in-flight work finish on a background
//! thread and only then shuts its runtime down. Switching executors under load loses nothing.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{AsyncExecutor, BoxFuture, ExecutorError};
use crate::rt::{Builder, Handle, JoinHandle, Runtime};

/// How long a retiring runtime waits for its worker threads once its work is done.
const THREAD_EXIT_GRACE: Duration = Duration::from_secs(5);

/// Counts in-flight work and lets a shutdown wait for it to reach zero.
struct Tracker {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Tracker {
    /// Waits until nothing is in flight or `deadline` passes; true if idle.
    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut count = self.count.lock();
        while *count > 0 {
            match deadline {
                Some(d) => {
                    if self.idle.wait_until(&mut count, d).timed_out() {
                        return *count == 0;
                    }
                }
                None => self.idle.wait(&mut count),
            }
        }
        true
    }
}

/// One unit of in-flight work; dropping it (work finished, panicked or dropped) releases it.
struct InFlight(Arc<Tracker>);

impl InFlight {
    fn new(tracker: &Arc<Tracker>) -> InFlight {
        *tracker.count.lock() += 1;
        InFlight(tracker.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut count = self.0.count.lock();
        *count -= 1;
        if *count == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// The shared implementation of both executors.
struct RuntimeExecutor {
    name: &'static str,
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    tracker: Arc<Tracker>,
}

impl RuntimeExecutor {
    fn new(name: &'static str, workers: usize) -> Result<RuntimeExecutor, ExecutorError> {
        if workers == 0 {
            return Err(ExecutorError::InvalidPoolSize(0));
        }
        let runtime = Builder::new()
            .worker_threads(workers)
            .thread_name(name)
            .build()
            .map_err(ExecutorError::Start)?;
        let handle = runtime.handle().clone();
        Ok(RuntimeExecutor {
            name,
            runtime: Mutex::new(Some(runtime)),
            handle,
            tracker: Arc::new(Tracker {
                count: Mutex::new(0),
                idle: Condvar::new(),
            }),
        })
    }

    fn on_own_worker(&self) -> bool {
        Handle::try_current().is_some_and(|h| h == self.handle)
    }

    fn spawn_boxed(&self, future: BoxFuture<'static, ()>) -> JoinHandle<()> {
        let guard = InFlight::new(&self.tracker);
        self.handle.spawn(async move {
            let _guard = guard;
            future.await
        })
    }

    fn spawn_blocking_boxed(&self, f: Box<dyn FnOnce() + Send + 'static>) -> JoinHandle<()> {
        let guard = InFlight::new(&self.tracker);
        // Blocking-pool threads have no runtime context of their own: enter ours, so the
        // closure can spawn tasks and create timers and sockets on this executor.
        let handle = self.handle.clone();
        self.handle.spawn_blocking(move || {
            let _guard = guard;
            let _enter = handle.enter();
            f()
        })
    }

    fn in_flight(&self) -> usize {
        *self.tracker.count.lock()
    }

    fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        // From inside one of our own tasks the count includes the caller: do not wait for it.
        if !self.on_own_worker() {
            self.tracker.wait_idle(Some(deadline));
        }
        let runtime = self.runtime.lock().take();
        if let Some(runtime) = runtime {
            log::debug!("{}: shutting down", self.name);
            runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }

    fn is_shutdown(&self) -> bool {
        self.handle.is_shutdown()
    }
}

impl Drop for RuntimeExecutor {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.get_mut().take() else {
            return;
        };
        if self.in_flight() == 0 && !self.on_own_worker() {
            runtime.shutdown_timeout(THREAD_EXIT_GRACE);
            return;
        }
        // Retire in the background: let the work finish, then stop the runtime.
        let tracker = self.tracker.clone();
        let name = self.name;
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-retire"))
            .spawn(move || {
                tracker.wait_idle(None);
                log::debug!("{name}: retired executor idle, shutting down");
                runtime.shutdown_timeout(THREAD_EXIT_GRACE);
            });
        if let Err(e) = spawned {
            // The closure, and with it the runtime, was dropped: in-flight work is cancelled.
            log::error!(
                "{name}: could not start the retire thread ({e}); in-flight work was cancelled"
            );
        }
    }
}

/// Python Scraipe's default executor: one event loop on one dedicated background thread (a
/// scraipe runtime with a single worker), plus a blocking pool for CPU work.
///
/// ```
/// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
/// let exec = DefaultBackgroundExecutor::new()?;
/// assert_eq!(exec.run(async { 1 + 1 }), Ok(2));
/// # Ok::<(), scraipe::executor::ExecutorError>(())
/// ```
pub struct DefaultBackgroundExecutor {
    inner: RuntimeExecutor,
}

impl DefaultBackgroundExecutor {
    /// Starts the background event loop.
    pub fn new() -> Result<DefaultBackgroundExecutor, ExecutorError> {
        Ok(DefaultBackgroundExecutor {
            inner: RuntimeExecutor::new("scraipe-bg", 1)?,
        })
    }
}

impl fmt::Debug for DefaultBackgroundExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultBackgroundExecutor")
            .field("in_flight", &self.inner.in_flight())
            .field("shutdown", &self.inner.is_shutdown())
            .finish()
    }
}

/// A pool of `pool_size` event loops, each on its own thread, balanced by work stealing (Python
/// Scraipe balances by counting pending tasks per loop; stealing also rebalances work that is
/// already queued).
///
/// ```
/// use scraipe::executor::{AsyncExecutorExt, EventLoopPoolExecutor};
/// let exec = EventLoopPoolExecutor::new(3)?;
/// assert_eq!(exec.pool_size(), 3);
/// assert_eq!(exec.run(async { "pooled" }), Ok("pooled"));
/// assert!(EventLoopPoolExecutor::new(0).is_err());
/// # Ok::<(), scraipe::executor::ExecutorError>(())
/// ```
pub struct EventLoopPoolExecutor {
    inner: RuntimeExecutor,
    pool_size: usize,
}

impl EventLoopPoolExecutor {
    /// Starts `pool_size` event loops (at least one).
    pub fn new(pool_size: usize) -> Result<EventLoopPoolExecutor, ExecutorError> {
        if pool_size == 0 {
            return Err(ExecutorError::InvalidPoolSize(pool_size));
        }
        Ok(EventLoopPoolExecutor {
            inner: RuntimeExecutor::new("scraipe-pool", pool_size)?,
            pool_size,
        })
    }

    /// Number of event loops.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }
}

impl fmt::Debug for EventLoopPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoopPoolExecutor")
            .field("pool_size", &self.pool_size)
            .field("in_flight", &self.inner.in_flight())
            .field("shutdown", &self.inner.is_shutdown())
            .finish()
    }
}

macro_rules! delegate_executor {
    ($ty:ty) => {
        impl AsyncExecutor for $ty {
            fn name(&self) -> &str {
                self.inner.name
            }
            fn handle(&self) -> Handle {
                self.inner.handle.clone()
            }
            fn spawn_boxed(&self, future: BoxFuture<'static, ()>) -> JoinHandle<()> {
                self.inner.spawn_boxed(future)
            }
            fn spawn_blocking_boxed(
                &self,
                f: Box<dyn FnOnce() + Send + 'static>,
            ) -> JoinHandle<()> {
                self.inner.spawn_blocking_boxed(f)
            }
            fn in_flight(&self) -> usize {
                self.inner.in_flight()
            }
            fn shutdown(&self, timeout: Duration) {
                self.inner.shutdown(timeout)
            }
            fn is_shutdown(&self) -> bool {
                self.inner.is_shutdown()
            }
        }
    };
}

delegate_executor!(DefaultBackgroundExecutor);
delegate_executor!(EventLoopPoolExecutor);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{AsyncExecutorExt, TaskError};

    #[test]
    fn in_flight_counts_and_shutdown_waits_for_work() {
        let exec = DefaultBackgroundExecutor::new().unwrap();
        let task = exec.submit(async {
            crate::rt::sleep(Duration::from_millis(50)).await;
            7
        });
        assert_eq!(exec.in_flight(), 1);
        exec.shutdown(Duration::from_secs(5));
        assert!(exec.is_shutdown());
        assert_eq!(task.join(), Ok(7), "shutdown let the in-flight task finish");
        assert_eq!(exec.in_flight(), 0);
        // After shutdown, work is refused with a cancellation, not lost silently or hung.
        assert_eq!(exec.run(async { 1 }), Err(TaskError::Cancelled));
        assert_eq!(exec.block_on(async { 1 }), Err(TaskError::Cancelled));
        assert_eq!(exec.spawn_blocking(|| 1).join(), Err(TaskError::Cancelled));
    }

    #[test]
    fn shutdown_timeout_cancels_stuck_work() {
        let exec = EventLoopPoolExecutor::new(2).unwrap();
        let task = exec.submit(std::future::pending::<()>());
        exec.shutdown(Duration::from_millis(20));
        assert_eq!(task.join(), Err(TaskError::Cancelled));
    }

    #[test]
    fn shutdown_wakes_callers_blocked_in_block_on() {
        let exec = Arc::new(EventLoopPoolExecutor::new(1).unwrap());
        let e = exec.clone();
        let blocked = std::thread::spawn(move || {
            e.block_on(async {
                crate::rt::sleep(Duration::from_secs(3600)).await;
            })
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            exec.in_flight(),
            1,
            "a block_on caller counts as in-flight work"
        );
        let started = Instant::now();
        exec.shutdown(Duration::from_millis(50));
        assert_eq!(blocked.join().unwrap(), Err(TaskError::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn graceful_shutdown_waits_for_block_on_callers() {
        let exec = Arc::new(DefaultBackgroundExecutor::new().unwrap());
        let e = exec.clone();
        let caller = std::thread::spawn(move || {
            e.block_on(async {
                crate::rt::sleep(Duration::from_millis(60)).await;
                "done"
            })
        });
        std::thread::sleep(Duration::from_millis(10));
        exec.shutdown(Duration::from_secs(5));
        assert_eq!(caller.join().unwrap(), Ok("done"));
    }

    #[test]
    fn dropping_a_busy_executor_retires_it_after_its_work() {
        let exec = EventLoopPoolExecutor::new(1).unwrap();
        let handle = exec.handle();
        let task = exec.submit(async {
            crate::rt::sleep(Duration::from_millis(60)).await;
            "finished"
        });
        drop(exec);
        assert!(
            !handle.is_shutdown(),
            "a busy executor is not shut down on drop"
        );
        assert_eq!(task.join(), Ok("finished"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !handle.is_shutdown() {
            assert!(
                Instant::now() < deadline,
                "the retired runtime was never shut down"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn blocking_closures_run_inside_the_executors_runtime() {
        let exec = DefaultBackgroundExecutor::new().unwrap();
        let handle = exec.handle();
        let out = exec
            .spawn_blocking(move || {
                assert_eq!(Handle::try_current(), Some(handle));
                crate::rt::spawn(async {
                    crate::rt::sleep(Duration::from_millis(1)).await;
                    5
                })
                .join()
            })
            .join();
        assert_eq!(out, Ok(Ok(5)));
    }

    #[test]
    fn zero_pool_size_is_an_error() {
        let err = EventLoopPoolExecutor::new(0).unwrap_err();
        assert!(matches!(err, ExecutorError::InvalidPoolSize(0)));
        assert!(err.to_string().contains("at least one"));
    }
}
