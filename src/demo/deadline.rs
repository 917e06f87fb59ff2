//! Deadlines for a connection's I/O without a timer operation per request.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::rt::{sleep_until, Sleep};

/// One timer per connection for all its deadlines. Re-arming a runtime timer for every request
/// would cost a heap insertion each time; instead the timer keeps its (possibly earlier)
/// deadline and, when it fires before the deadline asked for, is moved once. A busy connection
/// re-arms about once per idle timeout, not once per request.
#[derive(Default)]
pub(crate) struct DeadlineTimer {
    sleep: Option<Sleep>,
}

impl DeadlineTimer {
    /// Ready once `deadline` has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let sleep = self.sleep.get_or_insert_with(|| sleep_until(deadline));
        if sleep.deadline() > deadline {
            sleep.reset(deadline);
        }
        loop {
            match Pin::new(&mut *sleep).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => return Poll::Ready(()),
                Poll::Ready(()) => sleep.reset(deadline),
            }
        }
    }
}

/// Runs an I/O future, failing with `TimedOut` if `deadline` passes first.
pub(crate) async fn until<T>(
    timer: &mut DeadlineTimer,
    deadline: Instant,
    io: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let mut io = pin!(io);
    poll_fn(|cx| {
        if let Poll::Ready(result) = io.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        timer
            .poll_deadline(cx, deadline)
            .map(|()| Err(io::ErrorKind::TimedOut.into()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::{pending, ready};
    use std::time::Duration;

    fn timed_out(result: io::Result<()>) -> bool {
        matches!(result, Err(e) if e.kind() == io::ErrorKind::TimedOut)
    }

    #[test]
    fn deadlines_move_both_ways_and_never_fire_early() {
        let rt = crate::rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut timer = DeadlineTimer::default();
            // Ready I/O wins, even past its deadline.
            let past = Instant::now() - Duration::from_millis(1);
            assert!(until(&mut timer, past, ready(Ok(()))).await.is_ok());

            for ms in [20, 30] {
                let deadline = Instant::now() + Duration::from_millis(ms);
                assert!(timed_out(until(&mut timer, deadline, pending()).await));
                assert!(Instant::now() >= deadline, "fired early");
            }

            // Armed far away, then asked for an earlier deadline: it moves down.
            let far = Instant::now() + Duration::from_secs(60);
            let near = Instant::now() + Duration::from_millis(10);
            std::future::poll_fn(|cx| {
                assert!(timer.poll_deadline(cx, far).is_pending());
                Poll::Ready(())
            })
            .await;
            assert!(timed_out(until(&mut timer, near, pending()).await));
            assert!(Instant::now() < far);
        });
    }
}
