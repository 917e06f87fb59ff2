//! Small helpers to build the async streams that
//! [`AsyncLinkCollector`](crate::AsyncLinkCollector) returns, without pulling in an async
//! utility crate: [`iter`] (a stream over an iterator) and [`generate`] (an async generator:
//! write a loop that `yield`s with [`Yielder::send`]).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use parking_lot::Mutex;

/// A boxed, sendable stream.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// A stream that yields the items of an iterator. See [`iter`].
#[derive(Debug, Clone)]
pub struct Iter<I> {
    iter: I,
}

/// A stream over an iterator's items.
///
/// ```
/// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
/// let exec = DefaultBackgroundExecutor::new()?;
/// let got: Vec<i32> = exec.wrap_async_iterable(scraipe::stream::iter(1..=3)).collect();
/// assert_eq!(got, [1, 2, 3]);
/// # Ok::<(), scraipe::executor::ExecutorError>(())
/// ```
pub fn iter<I: IntoIterator>(items: I) -> Iter<I::IntoIter> {
    Iter {
        iter: items.into_iter(),
    }
}

impl<I: Iterator + Unpin> Stream for Iter<I> {
    type Item = I::Item;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.iter.next())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

/// The producer side of [`generate`]: hands items to the stream's consumer.
pub struct Yielder<T> {
    slot: Arc<Mutex<VecDeque<T>>>,
}

impl<T> Yielder<T> {
    /// Yields `item` to the consumer. Await it: the generator is paused until the consumer
    /// has taken the item (a lazy generator, like Python's `yield` in an async generator).
    pub fn send(&self, item: T) -> YieldFuture<'_, T> {
        self.slot.lock().push_back(item);
        YieldFuture { slot: &self.slot }
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Yielder")
    }
}

/// The future of [`Yielder::send`]: ready once the consumer took the item.
#[must_use = "await the yield so the generator pauses until the item is taken"]
pub struct YieldFuture<'a, T> {
    slot: &'a Mutex<VecDeque<T>>,
}

impl<T> Future for YieldFuture<'_, T> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // No waker needed: the stream polls the generator again whenever its consumer asks
        // for the next item, which is exactly when the slot has been emptied.
        if self.slot.lock().is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The stream of [`generate`].
pub struct Generate<T, Fut> {
    slot: Arc<Mutex<VecDeque<T>>>,
    producer: Option<Pin<Box<Fut>>>,
}

/// An async generator: `body` receives a [`Yielder`] and yields items with
/// `yielder.send(item).await`; the stream ends when `body` returns. The body only runs while
/// the consumer asks for items.
///
/// ```
/// use std::time::Duration;
/// use scraipe::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
/// use scraipe::stream::generate;
///
/// let pages = generate(|y| async move {
///     for page in 1..=3 {
///         scraipe::rt::sleep(Duration::from_millis(1)).await; // fetch the page...
///         y.send(format!("https://example.com/?page={page}")).await;
///     }
/// });
/// let exec = DefaultBackgroundExecutor::new()?;
/// let links: Vec<String> = exec.wrap_async_iterable(Box::pin(pages)).collect();
/// assert_eq!(links.len(), 3);
/// assert!(links[2].ends_with("page=3"));
/// # Ok::<(), scraipe::executor::ExecutorError>(())
/// ```
pub fn generate<T, F, Fut>(body: F) -> Generate<T, Fut>
where
    F: FnOnce(Yielder<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let slot = Arc::new(Mutex::new(VecDeque::new()));
    let producer = body(Yielder { slot: slot.clone() });
    Generate {
        slot,
        producer: Some(Box::pin(producer)),
    }
}

impl<T, Fut: Future<Output = ()>> Stream for Generate<T, Fut> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.slot.lock().pop_front() {
            return Poll::Ready(Some(item));
        }
        let Some(producer) = self.producer.as_mut() else {
            return Poll::Ready(None);
        };
        let finished = producer.as_mut().poll(cx).is_ready();
        if finished {
            self.producer = None;
        }
        match self.slot.lock().pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<T, Fut> fmt::Debug for Generate<T, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generate")
            .field("finished", &self.producer.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{AsyncExecutorExt, DefaultBackgroundExecutor};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn generator_is_lazy() {
        let produced = Arc::new(AtomicUsize::new(0));
        let p = produced.clone();
        let gen = generate(move |y| async move {
            for i in 0..100 {
                p.fetch_add(1, Ordering::SeqCst);
                y.send(i).await;
            }
        });
        let exec = DefaultBackgroundExecutor::new().unwrap();
        let mut it = exec.wrap_async_iterable(Box::pin(gen));
        assert_eq!(it.next(), Some(0));
        assert_eq!(it.next(), Some(1));
        assert_eq!(
            produced.load(Ordering::SeqCst),
            2,
            "nothing produced ahead of demand"
        );
        assert_eq!(it.count(), 98);
    }

    #[test]
    fn panicking_stream_ends_iteration_with_an_error() {
        let gen = generate(|y| async move {
            y.send(1).await;
            panic!("collector broke");
        });
        let exec = DefaultBackgroundExecutor::new().unwrap();
        let mut it = exec.wrap_async_iterable(Box::pin(gen));
        assert_eq!(it.next(), Some(1));
        assert_eq!(it.next(), None);
        assert!(it.error().unwrap().to_string().contains("collector broke"));
        assert_eq!(it.next(), None);
    }
}
