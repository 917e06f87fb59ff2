//! Runtime timers, TCP, blocking pool, synchronisation primitives and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scraipe::rt::net::{TcpListener, TcpStream};
use scraipe::rt::sync::{mpsc, oneshot, Semaphore};
use scraipe::rt::{self, Builder, JoinSet, Runtime};

fn pool(n: usize) -> Runtime {
    Builder::new().worker_threads(n).build().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One timer pending at a time, 1 ms away: the case the default timer policy keeps precise
/// (early wake-up and spin; see `Builder::precise_timers` for when it does not).
#[test]
fn timers_never_fire_early_and_are_precise_when_idle() {
    let rt = pool(1);
    let lateness = rt.block_on(async {
        rt::spawn(async {
            let mut late = Vec::new();
            for _ in 0..300 {
                let deadline = Instant::now() + Duration::from_millis(1);
                rt::sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "timer fired early");
                late.push(now - deadline);
            }
            late
        })
        .await
        .unwrap()
    });
    let mut sorted = lateness;
    sorted.sort();
    let (p50, p90) = (percentile(&sorted, 0.5), percentile(&sorted, 0.9));
    eprintln!(
        "timer lateness: p50 {p50:?} p90 {p90:?} max {:?}",
        sorted.last().unwrap()
    );
    // The target is "within 200 µs"; on a shared 2-core machine other tests run beside this one,
    // so hold the median to it and give the tail some room.
    assert!(p50 < Duration::from_micros(200), "median lateness {p50:?}");
    assert!(p90 < Duration::from_millis(2), "p90 lateness {p90:?}");
}

#[test]
fn many_timers_fire_in_deadline_order() {
    // One worker: timers of one heap fire in deadline order, and the tasks they wake run in that
    // order even when several fire in the same round (wake-ups from timers queue FIFO).
    let rt = pool(1);
    let order = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        let start = Instant::now();
        for ms in (1..=40u64).rev() {
            let tx = tx.clone();
            // Deadlines fixed now, not when each task first runs; every fourth pair shares one.
            let deadline = start + Duration::from_millis(20 + (ms / 2) * 2);
            rt::spawn(async move {
                rt::sleep_until(deadline).await;
                tx.send(ms).unwrap();
            });
        }
        // Hold the only worker past every deadline, so all 40 timers fire in one round.
        rt::spawn(async { std::thread::sleep(Duration::from_millis(120)) });
        drop(tx);
        let mut order = Vec::new();
        while let Some(ms) = rx.recv().await {
            order.push(ms);
        }
        order
    });
    // Equal deadlines may come out either way round; otherwise deadline order.
    let keys: Vec<u64> = order.iter().map(|ms| ms / 2).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "woken out of deadline order: {order:?}");
    assert_eq!(order.len(), 40);
}

#[test]
fn timeout_and_interval() {
    let rt = pool(1);
    rt.block_on(async {
        let slow = rt::timeout(
            Duration::from_millis(10),
            rt::sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(slow.is_err());
        assert_eq!(slow.unwrap_err().to_string(), "deadline has elapsed");
        let fast = rt::timeout(Duration::from_secs(60), async { 3 }).await;
        assert_eq!(fast, Ok(3));

        let start = Instant::now();
        let mut every = rt::interval(Duration::from_millis(5));
        let first = every.tick().await;
        for _ in 0..4 {
            every.tick().await;
        }
        let elapsed = start.elapsed();
        assert!(first <= start + Duration::from_millis(1));
        assert!(
            elapsed >= Duration::from_millis(20),
            "4 periods of 5 ms took {elapsed:?}"
        );
    });
}

#[test]
fn dropped_sleeps_do_not_pile_up() {
    let rt = pool(1);
    rt.block_on(async {
        // 5,000 timeouts that are cancelled long before their deadline.
        for _ in 0..5000 {
            let r = rt::timeout(Duration::from_secs(3600), async { 1 }).await;
            assert_eq!(r, Ok(1));
            let mut s = rt::sleep(Duration::from_secs(3600));
            // Poll once so it registers, then drop it.
            let _ = rt::timeout(Duration::ZERO, &mut s).await;
        }
    });
}

#[test]
#[should_panic(expected = "outside a scraipe runtime")]
fn sleep_outside_runtime_panics_clearly() {
    rt::block_on(rt::sleep(Duration::from_millis(1)));
}

#[test]
fn idle_runtime_burns_no_cpu() {
    let rt = Builder::new()
        .worker_threads(2)
        .thread_name("idlecpu")
        .build()
        .unwrap();
    // Give it things to wait on: a far timer, a listening socket, a parked task.
    let _parked = rt.spawn(async {
        let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _ = rt::timeout(Duration::from_secs(3600), l.accept()).await;
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = worker_cpu_ticks("idlecpu");
    std::thread::sleep(Duration::from_millis(1500));
    let after = worker_cpu_ticks("idlecpu");
    let ticks_per_sec = 100; // USER_HZ
    let used_ms = (after - before) * 1000 / ticks_per_sec;
    eprintln!("idle workers used {used_ms} ms of CPU in 1.5 s");
    assert!(used_ms <= 20, "idle runtime used {used_ms} ms CPU in 1.5 s");
}

/// utime+stime (clock ticks) of this process's threads whose name starts with `prefix`.
fn worker_cpu_ticks(prefix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = entry.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split(' ').collect();
        // fields[11], [12] are utime, stime (14th and 15th of the full line).
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    total
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        rt::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

#[test]
fn tcp_echo_thousand_concurrent_connections() {
    let rt = pool(2);
    let ok = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        rt::spawn(echo_server(listener));
        let mut clients = JoinSet::new();
        for i in 0..1000u32 {
            clients.spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let msg: Vec<u8> = (0..1024u32).map(|j| (i + j) as u8).collect();
                stream.write_all(&msg).await?;
                let mut back = vec![0u8; msg.len()];
                stream.read_exact(&mut back).await?;
                Ok::<bool, std::io::Error>(back == msg)
            });
        }
        let mut ok = 0;
        while let Some(r) = clients.join_next().await {
            if r.unwrap().unwrap() {
                ok += 1;
            }
        }
        ok
    });
    assert_eq!(ok, 1000);
}

#[test]
fn tcp_ipv6_and_addresses() {
    let rt = pool(1);
    rt.block_on(async {
        let listener = TcpListener::bind("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let server = rt::spawn(async move {
            let (s, peer) = listener.accept().await.unwrap();
            assert!(peer.is_ipv6());
            s.write_all(b"hi6").await.unwrap();
        });
        let c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert!(c.local_addr().unwrap().is_ipv6());
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi6");
        server.await.unwrap();
    });
}

#[test]
fn tcp_connect_refused_is_an_error() {
    let rt = pool(1);
    // Bind then drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let err = rt.block_on(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn tcp_shutdown_write_gives_peer_eof_and_futures_io_works() {
    use futures_io::{AsyncRead, AsyncWrite};
    let rt = pool(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n =
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut s).poll_read(cx, &mut buf))
                        .await
                        .unwrap();
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let data = vec![42u8; 100_000];
        let mut off = 0;
        while off < data.len() {
            off +=
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut c).poll_write(cx, &data[off..]))
                    .await
                    .unwrap();
        }
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut c).poll_close(cx))
            .await
            .unwrap();
        assert_eq!(server.await.unwrap(), data);
    });
}

#[test]
fn spawn_blocking_is_bounded_and_threads_retire() {
    let rt = Builder::new()
        .worker_threads(1)
        .max_blocking_threads(2)
        .blocking_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (running, peak) = (running.clone(), peak.clone());
            rt.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outs, [0, 1, 2, 3, 4, 5]);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    let deadline = Instant::now() + Duration::from_secs(3);
    while rt.handle().metrics().blocking_threads > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        rt.handle().metrics().blocking_threads,
        0,
        "idle blocking threads retired"
    );
    // A panic in a blocking job is reported, not propagated.
    let err = rt
        .spawn_blocking(|| panic!("cpu job failed"))
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("cpu job failed"));
}

#[test]
fn dns_lookup_through_blocking_pool() {
    let rt = pool(1);
    let addrs = rt
        .block_on(rt::net::lookup_host("localhost", 8080))
        .unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.port() == 8080 && a.ip().is_loopback()));
    let v6 = rt.block_on(rt::net::lookup_host("[::1]", 1)).unwrap();
    assert_eq!(v6, vec!["[::1]:1".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn semaphore_bounds_concurrency_fifo() {
    let rt = pool(2);
    let sem = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..50 {
            let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
            set.spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                rt::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while set.join_next().await.is_some() {}
    });
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(sem.available_permits(), 3);
    // Cancelled waiters give their place back; close fails waiters.
    let one = Arc::new(Semaphore::new(1));
    rt.block_on(async {
        let held = one.try_acquire().unwrap();
        let waiter = rt::timeout(Duration::from_millis(5), one.acquire()).await;
        assert!(waiter.is_err());
        assert_eq!(one.waiting(), 0);
        drop(held);
        assert_eq!(one.available_permits(), 1);
        let o2 = one.clone();
        let p = one.clone().acquire_owned().await.unwrap();
        let blocked = rt::spawn(async move { o2.acquire().await.is_err() });
        rt::sleep(Duration::from_millis(2)).await;
        one.close();
        assert!(blocked.await.unwrap());
        drop(p);
    });
}

#[test]
fn oneshot_and_mpsc_edge_cases() {
    let rt = pool(1);
    let (tx, rx) = oneshot::channel::<u8>();
    drop(tx);
    assert!(rt.block_on(rx).is_err());
    let (tx, rx) = oneshot::channel::<u8>();
    drop(rx);
    assert_eq!(tx.send(1), Err(1));
    let (tx, mut rx) = oneshot::channel::<u8>();
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
    tx.send(4).unwrap();
    assert_eq!(rx.try_recv(), Ok(4));

    let (tx, mut rx) = mpsc::unbounded::<u32>();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    tx.send(p * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in producers {
        p.join().unwrap();
    }
    let mut got = Vec::new();
    while let Some(v) = rx.blocking_recv() {
        got.push(v);
    }
    got.sort();
    assert_eq!(got, (0..4000).collect::<Vec<_>>());
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_with_tasks_parked_on_io_timers_and_channels() {
    let rt = pool(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut handles = Vec::new();
    let mut keep = Vec::new();
    for i in 0..30 {
        let flag = DropFlag(dropped.clone());
        let started = started.clone();
        let (tx, rx) = oneshot::channel::<()>();
        keep.push(tx);
        handles.push(rt.spawn(async move {
            let _flag = flag;
            started.fetch_add(1, Ordering::SeqCst);
            match i % 3 {
                0 => rt::sleep(Duration::from_secs(3600)).await,
                1 => {
                    let s = TcpStream::connect(addr).await.unwrap();
                    let mut b = [0u8; 1];
                    let _ = s.read(&mut b).await; // the server never writes
                }
                _ => {
                    let _ = rx.await;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.load(Ordering::SeqCst) < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    rt.shutdown_timeout(Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        30,
        "every future was dropped"
    );
    for h in handles {
        assert!(h.join().unwrap_err().is_cancelled());
    }
    drop(listener);
}

#[test]
fn shutdown_is_bounded_with_a_task_that_never_yields() {
    let rt = pool(1);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let busy = rt.spawn(async move {
        while !s.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    assert!(t0.elapsed() < Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    // The busy task finishes its poll; its worker then exits on its own.
    assert!(busy.join().is_ok());
}

/// A task spawned by a task that then gets stuck sits in the stuck worker's deque, never
/// polled, so it is in no owned-task list (tasks link themselves at their first park).
/// Shutdown must still cancel it promptly — by draining that deque — not leave its handle
/// waiting until the stuck task returns. Its future is dropped exactly once.
#[test]
fn shutdown_cancels_tasks_queued_behind_a_stuck_task() {
    let rt = pool(1);
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    struct CountDrop(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (queued_tx, queued_rx) = std::sync::mpsc::channel();
    let (s, d) = (stop.clone(), dropped.clone());
    let busy = rt.spawn(async move {
        let guard = CountDrop(d);
        let queued = rt::spawn(async move {
            let _guard = guard;
            7
        });
        queued_tx.send(queued).unwrap();
        while !s.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let queued = queued_rx.recv().unwrap();
    let t0 = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    // Joined on a helper thread so a regression fails (times out) instead of hanging.
    let (res_tx, res_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || res_tx.send(queued.join()));
    let joined = res_rx.recv_timeout(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let err = joined
        .expect("the queued task's handle was not told within 2 s")
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(busy.join().is_ok());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn spawn_after_shutdown_is_cancelled() {
    let rt = pool(1);
    let handle = rt.handle().clone();
    drop(rt);
    assert!(handle.is_shutdown());
    assert!(handle.spawn(async { 1 }).join().unwrap_err().is_cancelled());
}

#[test]
fn blocked_in_block_on_during_shutdown_finishes_with_panic_error() {
    let rt = pool(1);
    let (_tx, rx) = oneshot::channel::<()>();
    let (in_tx, in_rx) = oneshot::channel::<()>();
    let h = rt.spawn(async move {
        in_tx.send(()).unwrap();
        let _ = rt::block_on(rx);
    });
    in_rx.blocking_recv().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    rt.shutdown_timeout(Duration::from_secs(2));
    let err = h.join().unwrap_err();
    assert!(err.is_panic() || err.is_cancelled(), "{err:?}");
}

#[test]
fn blocking_jobs_run_inside_their_runtime() {
    let rt = pool(1);
    let h = rt.handle().clone();
    let inner = rt
        .spawn_blocking(move || {
            assert!(scraipe::rt::Handle::current() == h);
            // Spawning and timers work from a blocking job.
            let t = rt::spawn(async {
                rt::sleep(Duration::from_millis(1)).await;
                5
            });
            rt::block_on(t).unwrap()
        })
        .join()
        .unwrap();
    assert_eq!(inner, 5);
}

#[test]
fn shutdown_from_a_blocking_job_does_not_wait_for_itself() {
    let rt = pool(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let slot = Arc::new(parking_lot::Mutex::new(Some(rt)));
    let s = slot.clone();
    let handle = slot.lock().as_ref().unwrap().handle().clone();
    handle.spawn_blocking(move || {
        let rt = s.lock().take().unwrap();
        let t0 = Instant::now();
        rt.shutdown_timeout(Duration::from_secs(5));
        tx.send(t0.elapsed()).unwrap();
    });
    let took = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn sleeping_on_a_runtime_that_shuts_down_panics_instead_of_hanging() {
    let rt = pool(1);
    let handle = rt.handle().clone();
    let waiter = std::thread::spawn(move || {
        let _enter = handle.enter();
        rt::block_on(rt::sleep(Duration::from_secs(3600)));
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    let result = waiter.join();
    let message = result.unwrap_err();
    let message = message
        .downcast_ref::<&str>()
        .copied()
        .map(str::to_string)
        .or_else(|| message.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(message.contains("has shut down"), "{message}");
}

#[test]
fn two_tasks_accepting_on_one_listener_both_get_connections() {
    let rt = pool(1);
    rt.block_on(async {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let addr = listener.local_addr().unwrap();
        let (l1, l2) = (listener.clone(), listener.clone());
        let a = rt::spawn(async move { l1.accept().await.is_ok() });
        rt::sleep(Duration::from_millis(20)).await;
        let b = rt::spawn(async move { l2.accept().await.is_ok() });
        rt::sleep(Duration::from_millis(20)).await;
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        // Both waiters were registered; neither wake-up may be lost.
        let both = rt::timeout(Duration::from_secs(5), async {
            (a.await.unwrap(), b.await.unwrap())
        })
        .await;
        assert_eq!(both, Ok((true, true)));
    });
}

#[test]
fn a_task_on_an_always_ready_socket_yields_to_others() {
    let rt = pool(1);
    rt.block_on(rt.spawn(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = TcpStream::connect(addr).await.unwrap();
        let (reader, _) = listener.accept().await.unwrap();
        // Queue far more bytes than the reader consumes per poll budget.
        let data = vec![7u8; 100_000];
        writer.write_all(&data).await.unwrap();
        rt::sleep(Duration::from_millis(20)).await;
        let reader_done = Arc::new(AtomicBool::new(false));
        let done = reader_done.clone();
        let r = rt::spawn(async move {
            let mut byte = [0u8; 1];
            let mut n = 0;
            // One byte at a time: every read succeeds at once, so without a budget this loop
            // would never give the worker back until the data ran out.
            while n < 50_000 {
                n += reader.read(&mut byte).await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let other = rt::spawn(async move { reader_done.load(Ordering::SeqCst) });
        let reader_had_finished = other.await.unwrap();
        r.await.unwrap();
        assert!(
            !reader_had_finished,
            "the other task only ran after the reader drained the socket"
        );
    }))
    .unwrap();
}

/// A waker that records when it was first woken.
struct WokenAt(std::sync::Mutex<Option<Instant>>);

impl std::task::Wake for WokenAt {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.lock().unwrap().get_or_insert_with(Instant::now);
    }
}

/// A task registers a timer and a listener on its worker's driver, then blocks that worker for
/// 400 ms. An idle sibling must turn the blocked worker's driver: the timer's and the socket's
/// wakers fire within a few milliseconds, not when the blocked worker comes back.
#[test]
fn blocked_worker_timers_and_sockets_are_served_by_an_idle_sibling() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let rt = pool(2);
    let (timer_late, socket_late) = rt.block_on(async {
        rt::spawn(async {
            let timer_woken = Arc::new(WokenAt(std::sync::Mutex::new(None)));
            let socket_woken = Arc::new(WokenAt(std::sync::Mutex::new(None)));
            let mut sleep = Box::pin(rt::sleep(Duration::from_millis(2)));
            let deadline = sleep.deadline();
            let waker = Waker::from(timer_woken.clone());
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut accept = Box::pin(listener.accept());
            let waker = Waker::from(socket_woken.clone());
            assert!(accept
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            let connector = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let at = Instant::now();
                let stream = std::net::TcpStream::connect(addr).unwrap();
                (at, stream)
            });
            // Block this worker: its driver is now unattended.
            std::thread::sleep(Duration::from_millis(400));
            let (connected_at, _stream) = connector.join().unwrap();
            let timer_at = timer_woken.0.lock().unwrap().expect("timer never fired");
            let socket_at = socket_woken.0.lock().unwrap().expect("socket never woken");
            (
                timer_at - deadline,
                socket_at.saturating_duration_since(connected_at),
            )
        })
        .await
        .unwrap()
    });
    eprintln!("on a blocked worker: timer {timer_late:?} late, socket woken after {socket_late:?}");
    // The sibling looks every STALL (1 ms); leave room for a loaded 2-core machine.
    assert!(
        timer_late < Duration::from_millis(50),
        "timer {timer_late:?} late"
    );
    assert!(
        socket_late < Duration::from_millis(50),
        "socket {socket_late:?} late"
    );
}

/// Both workers are asleep; a timer wakes one of them, and the task it wakes blocks that worker
/// after registering a short timer there. The other worker went to sleep with no time bound
/// (everybody slept), so the waking worker must rouse it: otherwise nobody turns the blocked
/// worker's driver and the timer waits for the block to end.
#[test]
fn a_worker_woken_by_its_own_timer_that_then_blocks_still_gets_help() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let rt = pool(2);
    let late = rt.block_on(async {
        rt::spawn(async {
            // Let both workers fall asleep; this task wakes from its own worker's timerfd.
            rt::sleep(Duration::from_millis(50)).await;
            let woken = Arc::new(WokenAt(std::sync::Mutex::new(None)));
            let mut sleep = Box::pin(rt::sleep(Duration::from_millis(2)));
            let deadline = sleep.deadline();
            let waker = Waker::from(woken.clone());
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            std::thread::sleep(Duration::from_millis(400));
            let at = woken.0.lock().unwrap().expect("timer never fired");
            at - deadline
        })
        .await
        .unwrap()
    });
    eprintln!("timer on a worker that blocked after waking: {late:?} late");
    assert!(late < Duration::from_millis(50), "timer {late:?} late");
}

/// A registered timer holds its driver: an `Interval` made and first ticked inside a runtime
/// keeps ticking when a plain thread, outside any runtime context, drives it with the free
/// `block_on` — each re-registration goes to the driver the interval already holds instead of
/// asking the thread-local context (which would find no runtime and panic).
#[test]
fn a_registered_interval_keeps_its_driver_outside_the_runtime() {
    let rt = pool(1);
    let mut every = rt.block_on(async {
        let mut every = rt::interval(Duration::from_millis(2));
        every.tick().await;
        every.tick().await;
        every
    });
    let t0 = Instant::now();
    std::thread::spawn(move || {
        for _ in 0..3 {
            rt::block_on(every.tick());
        }
    })
    .join()
    .expect("ticking outside the runtime panicked");
    assert!(
        t0.elapsed() >= Duration::from_millis(4),
        "{:?}",
        t0.elapsed()
    );
    drop(rt);
}

/// A wake that meets the closed injector during shutdown must not run the woken task's
/// destructors on the waking thread: that thread may hold a lock the destructor needs (here the
/// very mutex the waker was called under). A parked task is in the owned-task list, and
/// shutdown's own step cancels it on the shutting-down thread.
#[test]
fn a_wake_during_shutdown_does_not_run_destructors_on_the_waking_thread() {
    use std::sync::Mutex;
    use std::task::{Poll, Waker};
    struct Parked {
        slot: Arc<Mutex<Option<Waker>>>,
    }
    impl std::future::Future for Parked {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
            *self.slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    impl Drop for Parked {
        fn drop(&mut self) {
            // Takes the lock the waking thread holds while it wakes.
            self.slot.lock().unwrap().take();
        }
    }
    let rt = pool(2);
    let slot = Arc::new(Mutex::new(None::<Waker>));
    let parked = rt.spawn(Parked { slot: slot.clone() });
    while slot.lock().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    // A stuck worker keeps shutdown in its wait (step 3) while the wake arrives.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let stuck = rt.spawn(async move {
        started_tx.send(()).unwrap();
        while !s.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    started_rx.recv().unwrap();
    let handle = rt.handle().clone();
    let shutter = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_millis(400)));
    while !handle.is_shutdown() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waking = slot.clone();
    std::thread::spawn(move || {
        let guard = waking.lock().unwrap();
        if let Some(w) = guard.as_ref() {
            w.wake_by_ref();
        }
        drop(guard);
        done_tx.send(()).unwrap();
    });
    let woke = done_rx.recv_timeout(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    woke.expect("the waking thread deadlocked in the task's destructor");
    shutter.join().unwrap();
    assert!(parked.join().unwrap_err().is_cancelled());
    stuck.join().unwrap();
}

/// Tasks fired by one timer wake-up wake no sibling at once (issue 16: the batch is usually
/// shorter than a sibling's wake-up). If the first of them blocks, the others must still run
/// soon: a sibling steals them (it sleeps bounded while a worker is awake, or is roused).
#[test]
fn a_timer_batch_whose_first_task_blocks_is_not_stranded() {
    let rt = pool(2);
    let (first, second_late) = rt.block_on(async {
        rt::spawn(async {
            let deadline = Instant::now() + Duration::from_millis(40);
            let blocked = Arc::new(AtomicBool::new(false));
            let child = |blocked: Arc<AtomicBool>| async move {
                rt::sleep_until(deadline).await;
                if !blocked.swap(true, Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(300));
                    None
                } else {
                    Some(deadline.elapsed())
                }
            };
            // One after the other, so both usually register on this worker's heap and are
            // fired by one wake-up.
            let a = rt::spawn(child(blocked.clone()));
            rt::sleep(Duration::from_millis(2)).await;
            let b = rt::spawn(child(blocked));
            let (a, b) = (a.await.unwrap(), b.await.unwrap());
            (
                a.is_none(),
                a.or(b).expect("one task blocked, the other did not"),
            )
        })
        .await
        .unwrap()
    });
    eprintln!("first blocked: {first}; the other ran {second_late:?} after the deadline");
    assert!(
        second_late < Duration::from_millis(100),
        "the second timer task ran {second_late:?} late"
    );
}

/// A registered sleep answers from its entry, not the clock: polled again after its deadline
/// but before its driver fired it (the task blocks its only worker past the deadline), it is
/// still pending, and the driver's next turn completes it — no wake-up lost, never early.
#[test]
fn a_sleep_polled_late_but_not_yet_fired_still_completes() {
    let rt = pool(1);
    let polls = rt.block_on(async {
        rt::spawn(async {
            let deadline = Instant::now() + Duration::from_millis(2);
            let mut sleep = std::pin::pin!(rt::sleep_until(deadline));
            let mut polls = Vec::new();
            std::future::poll_fn(|cx| {
                let ready = sleep.as_mut().poll(cx).is_ready();
                polls.push(ready);
                if polls.len() == 1 {
                    // Registered; now block the worker past the deadline, so nobody fires it.
                    std::thread::sleep(Duration::from_millis(5));
                    assert!(Instant::now() >= deadline);
                    let again = sleep.as_mut().poll(cx).is_ready();
                    polls.push(again);
                }
                if ready {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            assert!(Instant::now() >= deadline);
            polls
        })
        .await
        .unwrap()
    });
    assert_eq!(
        polls,
        [false, false, true],
        "first poll, late re-poll, poll after firing"
    );
}

/// Runs `tasks` tasks sleeping 1–5 ms in a loop until `end`; the first one to wake after
/// `block_at` blocks its worker (with `std::thread::sleep`) for `block_for`. Returns, for every
/// timer, (deadline, when its task ran again).
fn timer_loop_with_one_block(
    rt: &Runtime,
    tasks: u64,
    end: Instant,
    block_at: Instant,
    block_for: Duration,
) -> Vec<(Instant, Instant)> {
    let blocked = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let blocked = blocked.clone();
            rt.spawn(async move {
                let mut fires = Vec::new();
                let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while Instant::now() < end {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let deadline = Instant::now() + Duration::from_micros(1_000 + x % 4_000);
                    rt::sleep_until(deadline).await;
                    let now = Instant::now();
                    fires.push((deadline, now));
                    if now >= block_at && !blocked.swap(true, Ordering::SeqCst) {
                        std::thread::sleep(block_for);
                    }
                }
                fires
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// Each worker's count `f` from `before` to `after`.
fn per_worker(
    before: &rt::RuntimeMetrics,
    after: &rt::RuntimeMetrics,
    f: fn(&rt::WorkerStats) -> u64,
) -> Vec<u64> {
    after
        .workers
        .iter()
        .zip(&before.workers)
        .map(|(a, b)| f(a) - f(b))
        .collect()
}

/// Each worker's wake-ups from its driver that came without an eventfd request: its timers (a
/// sibling handing it part of a long batch is an eventfd request, and counted apart).
fn timer_wakeups(before: &rt::RuntimeMetrics, after: &rt::RuntimeMetrics) -> Vec<u64> {
    per_worker(before, after, |w| w.wakeups)
        .iter()
        .zip(per_worker(before, after, |w| w.unpark_requests))
        .map(|(w, u)| w.saturating_sub(u))
        .collect()
}

/// `tasks` sleeping loops for `window` with nothing blocked: the fires, how long the window
/// really took, and each worker's timer wake-ups over it.
fn timer_window(
    rt: &rt::Runtime,
    tasks: u64,
    window: Duration,
) -> (Vec<(Instant, Instant)>, Duration, Vec<u64>) {
    let before = rt.handle().metrics();
    let start = Instant::now();
    let end = start + window;
    let fires = timer_loop_with_one_block(
        rt,
        tasks,
        end,
        end + Duration::from_secs(60),
        Duration::ZERO,
    );
    let elapsed = start.elapsed();
    (
        fires,
        elapsed,
        timer_wakeups(&before, &rt.handle().metrics()),
    )
}

/// One grid's worth of timer wake-ups in all over `elapsed` (ticks every 500 µs), not one grid
/// per worker: at most 1.4 wake-ups per tick.
fn assert_one_grid(timer_wakeups: &[u64], elapsed: Duration) {
    let ticks = elapsed.as_micros() as u64 / 500;
    let total: u64 = timer_wakeups.iter().sum();
    assert!(
        total * 10 <= ticks * 14,
        "{total} timer wake-ups for {ticks} grid ticks: {timer_wakeups:?}"
    );
}

/// With many timers pending, one worker ticks for the runtime and its siblings sleep without a
/// timer of their own (issue 16: one thread pays the timer wake-ups). The sibling's dead man's
/// switch still covers the ticker: when the task the ticker runs blocks for 300 ms, timers keep
/// firing — the sibling wakes, turns the blocked worker's driver and steals its queue.
#[test]
fn one_worker_ticks_for_many_timers_and_a_blocked_ticker_is_covered() {
    let rt = pool(2);
    // Quiet phase: no blocking. Count each worker's wake-ups from its driver. On a machine
    // whose CPUs are saturated by other work the ticker gets preempted for more than `STALL`
    // and the role moves to its sibling (by design), which blurs the split; so up to five
    // attempts, and the split must show in one. (With two busy loops saturating both CPUs of
    // the 2-CPU test machine, four runs of three attempts each: two passed at the first, one
    // at the second, one not in three.) Every attempt must show one worker's worth of wake-ups
    // in all: ~2,000 per second on the 500 µs grid, not one grid per worker.
    let mut split = Vec::new();
    for attempt in 1..=5 {
        let (fires, elapsed, timer_wakeups) = timer_window(&rt, 300, Duration::from_millis(400));
        eprintln!(
            "attempt {attempt}: {} timers in {elapsed:?}, wake-ups without an eventfd request \
             per worker {timer_wakeups:?}",
            fires.len()
        );
        assert!(fires.len() > 10_000, "only {} timers fired", fires.len());
        assert_one_grid(&timer_wakeups, elapsed);
        let (most, least) = (
            *timer_wakeups.iter().max().unwrap(),
            *timer_wakeups.iter().min().unwrap(),
        );
        split = timer_wakeups;
        // Before the ticker, each worker woke on its own lane of the grid: as often as the other.
        if least * 5 < most {
            break;
        }
    }
    let (most, least) = (*split.iter().max().unwrap(), *split.iter().min().unwrap());
    assert!(
        least * 5 < most,
        "both workers wake for timers: {split:?} wake-ups"
    );

    // Now the task on the ticker blocks for 300 ms.
    let start = Instant::now();
    let block_at = start + Duration::from_millis(100);
    let fires = timer_loop_with_one_block(
        &rt,
        300,
        start + Duration::from_millis(600),
        block_at,
        Duration::from_millis(300),
    );
    // Timers due well inside the blocked window (leaving 20 ms for the block to start).
    let window: Vec<Duration> = fires
        .iter()
        .filter(|(d, _)| {
            *d > block_at + Duration::from_millis(20) && *d < block_at + Duration::from_millis(280)
        })
        .map(|(d, at)| *at - *d)
        .collect();
    let on_time = window
        .iter()
        .filter(|l| **l < Duration::from_millis(20))
        .count();
    eprintln!(
        "while the ticker blocked: {} timers due, {on_time} ran within 20 ms",
        window.len()
    );
    assert!(
        window.len() > 2_000,
        "only {} timers due while blocked",
        window.len()
    );
    assert!(
        on_time * 10 >= window.len() * 9,
        "{on_time} of {} timers ran within 20 ms while the ticker blocked",
        window.len()
    );
}

/// After a timer-heavy phase the runtime goes quiet: the ticker gives up its role when no timer
/// is left, its spare clock and the siblings' watches end at most one sleep each, and nothing
/// keeps waking (an idle runtime burns no CPU, whatever ran before).
#[test]
fn after_a_timer_heavy_phase_the_runtime_goes_quiet() {
    let rt = pool(2);
    let end = Instant::now() + Duration::from_millis(200);
    let fires =
        timer_loop_with_one_block(&rt, 200, end, end + Duration::from_secs(60), Duration::ZERO);
    assert!(fires.len() > 5_000, "only {} timers fired", fires.len());
    // The loops end by `end + 5 ms`; leave the leftovers time to expire.
    std::thread::sleep(Duration::from_millis(50));
    let before = rt.handle().metrics();
    std::thread::sleep(Duration::from_millis(500));
    let wakeups = per_worker(&before, &rt.handle().metrics(), |w| w.wakeups);
    eprintln!("wake-ups per worker in 500 ms of idleness: {wakeups:?}");
    assert!(
        wakeups.iter().sum::<u64>() <= 4,
        "an idle runtime keeps waking: {wakeups:?}"
    );
}

/// A sleep that is already due at its first poll completes there, and still keeps the driver
/// it was given: an `Interval` whose ticks were due when polled inside the runtime can be
/// ticked later from a thread outside it. (Found under load by
/// `a_registered_interval_keeps_its_driver_outside_the_runtime`, which this makes
/// deterministic: the due path used to drop the driver.)
#[test]
fn a_sleep_due_at_its_first_poll_keeps_its_driver() {
    let rt = pool(1);
    let mut every = rt.block_on(async {
        let mut every = rt::interval(Duration::from_millis(1));
        every.tick().await;
        std::thread::sleep(Duration::from_millis(5));
        // Due before it is polled: completes in its first poll.
        every.tick().await;
        every
    });
    std::thread::spawn(move || {
        rt::block_on(every.tick());
    })
    .join()
    .expect("ticking outside the runtime panicked");
    drop(rt);
}

/// Four workers on a timer-heavy load: still one grid's worth of timer wake-ups in all, not
/// one per worker, and the timers fire on time (every relying sibling's watch is pushed, every
/// relying sibling's due timers are fired by the ticker).
#[test]
fn four_workers_share_one_ticker() {
    let rt = pool(4);
    let (fires, elapsed, timer_wakeups) = timer_window(&rt, 300, Duration::from_millis(300));
    let mut late: Vec<Duration> = fires.iter().map(|(d, at)| *at - *d).collect();
    late.sort();
    let median = late[late.len() / 2];
    eprintln!(
        "{} timers in {elapsed:?}, median {median:?} late, wake-ups without an eventfd request \
         per worker {timer_wakeups:?}",
        fires.len()
    );
    assert!(fires.len() > 10_000, "only {} timers fired", fires.len());
    assert!(
        median < Duration::from_millis(1),
        "median lateness {median:?}"
    );
    assert_one_grid(&timer_wakeups, elapsed);
}
