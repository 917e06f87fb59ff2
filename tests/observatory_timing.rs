//! Timing with `TimingSampling::OneIn(1)`: every poll timed, every wake stamped. A process of
//! its own, because the sampling is per process (`tests/observatory.rs` runs the default).

#![cfg(feature = "observatory")]

use std::time::Duration;

use scraipe::rt::observe;
use scraipe::rt::sync::oneshot;
use scraipe::rt::{Builder, Runtime};

fn timed_runtime() -> Runtime {
    observe::set_timing_sampling(observe::TimingSampling::OneIn(1));
    observe::set_timing(true);
    Builder::new().worker_threads(1).build().unwrap()
}

/// A self-wake (yield) is timed from the end of the poll that woke itself to the next poll.
#[test]
fn every_poll_and_self_wake_is_timed_one_in_1() {
    let rt = timed_runtime();
    rt.spawn(async {
        for _ in 0..5 {
            scraipe::rt::yield_now().await;
        }
    })
    .join()
    .unwrap();
    let t = &rt.handle().observe_timing()[0];
    assert_eq!(t.sampling, observe::TimingSampling::OneIn(1));
    assert!(t.wake_to_poll.count() >= 5, "{t:?}");
    assert!(t.poll.count() >= 6, "{t:?}");
}

/// A 5 ms poll lands in the poll histogram, and the timer's and the channel's wakes in the
/// wake→poll one; busy time covers the 5 ms.
#[test]
fn a_long_poll_and_timer_and_channel_wakes_are_timed_one_in_1() {
    let rt = timed_runtime();
    let (tx, rx) = oneshot::channel::<()>();
    let (parked_tx, parked_rx) = std::sync::mpsc::channel();
    let h = rt.spawn(async move {
        scraipe::rt::sleep(Duration::from_millis(20)).await;
        parked_tx.send(()).unwrap();
        rx.await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
    });
    // Timer wake → poll 2 (parks on the channel), channel wake → poll 3. (Sent before the
    // park or after: a wake either way, or the value is there at poll 2.)
    parked_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    tx.send(()).unwrap();
    h.join().unwrap();
    let t = &rt.handle().observe_timing()[0];
    assert!(t.poll.max().unwrap() >= Duration::from_millis(5), "{t:?}");
    assert!(
        t.wake_to_poll.count() >= 2,
        "timer and channel wakes: {t:?}"
    );
    assert!(t.timer_lateness.count() >= 1, "{t:?}");
}
