//! The process-wide executor behind the synchronous API.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{AsyncExecutor, DefaultBackgroundExecutor, EventLoopPoolExecutor, ExecutorError};

static CURRENT: Mutex<Option<Arc<dyn AsyncExecutor>>> = Mutex::new(None);

/// Python Scraipe's `AsyncManager`: the process-wide executor that the synchronous methods of
/// async components ([`Scraper::scrape`](crate::Scraper::scrape) on an
/// [`AsyncScraper`](crate::AsyncScraper), ...) run on.
///
/// It starts as a [`DefaultBackgroundExecutor`], created on first use. Switching executors
/// while work is in flight loses nothing: callers that already hold the old executor keep
/// using it, and it shuts down only after its last user let go and its in-flight work
/// finished.
///
/// ```
/// use scraipe::executor::{AsyncExecutorExt, AsyncManager};
///
/// AsyncManager::enable_multithreading(2)?;
/// assert_eq!(AsyncManager::get_executor().name(), "scraipe-pool");
/// assert_eq!(AsyncManager::get_executor().run(async { 5 }), Ok(5));
///
/// AsyncManager::disable_multithreading()?;
/// assert_eq!(AsyncManager::get_executor().name(), "scraipe-bg");
/// # Ok::<(), scraipe::executor::ExecutorError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AsyncManager;

impl AsyncManager {
    /// The current executor; creates the default one on first use, or again if the current
    /// one was shut down.
    ///
    /// # Panics
    /// If no executor exists and the default one cannot start its thread (the OS refused to
    /// create one). [`AsyncManager::try_get_executor`] reports that as an error instead.
    pub fn get_executor() -> Arc<dyn AsyncExecutor> {
        match Self::try_get_executor() {
            Ok(exec) => exec,
            Err(e) => panic!("scraipe: no executor available: {e}"),
        }
    }

    /// Like [`get_executor`](AsyncManager::get_executor), reporting a failure to start the
    /// default executor as an error.
    pub fn try_get_executor() -> Result<Arc<dyn AsyncExecutor>, ExecutorError> {
        let mut current = CURRENT.lock();
        if let Some(exec) = current.as_ref() {
            if !exec.is_shutdown() {
                return Ok(exec.clone());
            }
        }
        let fresh: Arc<dyn AsyncExecutor> = Arc::new(DefaultBackgroundExecutor::new()?);
        // A shut-down executor being replaced is dropped after the lock is released.
        let old = current.replace(fresh.clone());
        drop(current);
        drop(old);
        Ok(fresh)
    }

    /// Makes `executor` the current one. The previous executor is retired: whoever still
    /// holds it finishes their work on it, then it shuts down.
    pub fn set_executor(executor: Arc<dyn AsyncExecutor>) {
        let old = CURRENT.lock().replace(executor);
        if let Some(old) = &old {
            log::debug!("AsyncManager: retiring executor {}", old.name());
        }
        drop(old);
    }

    /// Switches to an [`EventLoopPoolExecutor`] with `pool_size` event loops (Python's default
    /// is 3).
    pub fn enable_multithreading(pool_size: usize) -> Result<(), ExecutorError> {
        let pool = EventLoopPoolExecutor::new(pool_size)?;
        Self::set_executor(Arc::new(pool));
        Ok(())
    }

    /// Switches back to a [`DefaultBackgroundExecutor`].
    pub fn disable_multithreading() -> Result<(), ExecutorError> {
        let bg = DefaultBackgroundExecutor::new()?;
        Self::set_executor(Arc::new(bg));
        Ok(())
    }
}
