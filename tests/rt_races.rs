//! Race loops for the runtime's shutdown and wake-up protocols.
//!
//! Each test repeats a race many times. Run plainly they check for hangs, panics and wrong
//! results; run under AddressSanitizer (`.ci/sanitize`) they also catch a use-after-free that
//! happens to stay silent in a plain build. `SCRAIPE_RACE_ITERS` sets the iteration count
//! (default: a few thousand, so `cargo test` stays fast).

use std::sync::Barrier;

use scraipe::rt::{sync::oneshot, Builder, JoinHandle, Runtime};

fn iterations(default: usize) -> usize {
    std::env::var("SCRAIPE_RACE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A plain thread wakes a parked task (a `oneshot` send) while the runtime is dropped. Before
/// tasks held an `Arc` to their runtime, the sender could win the SCHEDULED bit, be preempted,
/// and resume to `schedule` into a runtime that `drop` had already freed.
#[test]
fn wake_from_plain_thread_races_runtime_drop() {
    for _ in 0..iterations(2_000) {
        let rt = Builder::new_current_thread().build().unwrap();
        let (tx, rx) = oneshot::channel::<u32>();
        let task = rt.spawn(rx);
        // Poll the task once so it parks on the channel with its waker stored there.
        rt.tick();
        send_racing_drop(rt, tx, task);
    }
}

/// Releases a plain thread's `send` and `drop(rt)` at the same instant, then checks the task
/// either received the value before shutdown or was cancelled by it.
fn send_racing_drop(
    rt: Runtime,
    tx: oneshot::Sender<u32>,
    task: JoinHandle<Result<u32, oneshot::RecvError>>,
) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            let _ = tx.send(7);
        });
        barrier.wait();
        drop(rt);
    });
    match task.join() {
        Ok(v) => assert_eq!(v, Ok(7)),
        Err(e) => assert!(e.is_cancelled()),
    }
}

/// Same race against a pool runtime whose worker may be running the task.
#[test]
fn wake_from_plain_thread_races_pool_drop() {
    for _ in 0..iterations(2_000) / 10 {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let (tx, rx) = oneshot::channel::<u32>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let task = rt.spawn(async move {
            let _ = ready_tx.send(());
            rx.await
        });
        let _ = ready_rx.blocking_recv();
        send_racing_drop(rt, tx, task);
    }
}

/// A timer and a listener are registered from a plain thread (inside `Handle::enter`) while the
/// runtime shuts down. Whichever wins, nothing may be stranded: once the runtime is gone, polling
/// the timer again must panic ("shut down") and accepting must fail — never stay pending
/// forever on a heap or reactor that nobody will drive again.
#[test]
fn registration_racing_shutdown_is_refused_or_torn_down() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    let mut cx = Context::from_waker(Waker::noop());
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..iterations(2_000) / 10 {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let handle = rt.handle().clone();
        let barrier = Barrier::new(2);
        let (mut sleep, listener) = std::thread::scope(|s| {
            let registering = s.spawn(|| {
                let _enter = handle.enter();
                barrier.wait();
                let mut sleep = Box::pin(scraipe::rt::sleep(Duration::from_secs(3600)));
                let mut cx = Context::from_waker(Waker::noop());
                // Registers, or panics because shutdown already closed the heap.
                let _ = catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(&mut cx)));
                let listener =
                    scraipe::rt::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).ok();
                (sleep, listener)
            });
            barrier.wait();
            drop(rt);
            registering.join().unwrap()
        });
        let again = catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(&mut cx)));
        assert!(
            again.is_err(),
            "a timer registered during shutdown was left in a dead heap"
        );
        if let Some(listener) = listener {
            let accept = std::pin::pin!(listener.accept());
            match accept.poll(&mut cx) {
                Poll::Ready(Err(_)) => {}
                Poll::Ready(Ok(_)) => panic!("accepted a connection nobody made"),
                Poll::Pending => panic!("a listener registered during shutdown hangs"),
            }
        }
    }
    std::panic::set_hook(quiet);
}
