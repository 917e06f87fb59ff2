//! The observatory's readers racing a busy runtime (feature `observatory`).
//!
//! Everything a reader touches — the task table (each task's identity word and its `Ext`,
//! installed by whichever thread wakes the task first and freed with the task), the reactors'
//! waiter lists and the timer queues ("waits on"), the blocking pool's job list, the trace
//! rings, the live view's endpoint — is read here from other threads while two workers spawn,
//! wake (every source: self, same worker, other worker, reactor, timer, outside thread),
//! abort and complete tasks as fast as they can. The plain suite checks what the readers see;
//! `.ci/sanitize` runs this file under AddressSanitizer, where a reader that followed a freed
//! task or `Ext` would be a use-after-free report.
//!
//! And the lost-waker check must stay a fact under load: no task of this workload ever loses
//! its waker, so neither one snapshot's `no_waker` nor `lost_wakers` may ever name one.
//!
//! Its own test binary (own process): it switches the trace and timing on for the whole
//! process. Run with `cargo test --features observatory --test observatory_stress`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scraipe::rt::net::{TcpListener, TcpStream};
use scraipe::rt::observe::{self, ObserveServer, TaskStatus};
use scraipe::rt::sync::{mpsc, oneshot};
use scraipe::rt::{Builder, Handle, JoinSet};

#[path = "support/trace_check.rs"]
mod trace_check;

/// How long the workload runs (a bound, not a tuning knob: a slower machine just does less).
const RUN: Duration = Duration::from_millis(1500);

/// One round of every kind of wake; returns when all of its tasks are done.
async fn round(handle: Handle, echo: SocketAddr, n: u64) {
    let mut set = JoinSet::new();
    // Cross-task wakes over oneshot (ping_pong's shape): an `Ext` per woken task, installed by
    // the waking thread, on either worker.
    for _ in 0..20 {
        set.spawn(async {
            let (tx1, rx1) = oneshot::channel::<u64>();
            let (tx2, rx2) = oneshot::channel::<u64>();
            let inner = scraipe::rt::spawn(async move {
                let v = rx1.await.unwrap();
                tx2.send(v + 1).unwrap();
            });
            tx1.send(1).unwrap();
            assert_eq!(rx2.await.unwrap(), 2);
            inner.await.unwrap();
        });
    }
    // Self-wakes.
    set.spawn(async {
        for _ in 0..50 {
            scraipe::rt::yield_now().await;
        }
    });
    // Timer wakes.
    for i in 0..4 {
        set.spawn(async move {
            scraipe::rt::sleep(Duration::from_micros(200 * (i + 1))).await;
        });
    }
    // Reactor wakes: a request and its echo over loopback.
    set.spawn(async move {
        let s = TcpStream::connect(echo).await.unwrap();
        let msg = n.to_le_bytes();
        s.write_all(&msg).await.unwrap();
        let mut back = [0u8; 8];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    });
    // Wakes from an outside thread (the blocking pool) through mpsc.
    let (tx, mut rx) = mpsc::unbounded::<u64>();
    set.spawn(async move {
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        assert_eq!(sum, 10);
    });
    let job = handle.spawn_blocking(move || {
        for v in 1..=4 {
            tx.send(v).unwrap();
        }
    });
    // Aborted mid-wait: its `Ext`, if it has one, is freed by the cancelling thread.
    let doomed = handle.spawn(async {
        let (_keep, rx) = oneshot::channel::<()>();
        let _ = rx.await;
    });
    scraipe::rt::yield_now().await;
    doomed.abort();
    assert!(doomed.await.is_err());
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    job.await.unwrap();
}

/// Serves each connection: echoes what it reads until the peer closes.
async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        scraipe::rt::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn http_get(addr: SocketAddr, target: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{target}: {out:.200}");
    out
}

#[test]
fn readers_racing_a_busy_runtime_see_consistent_tasks_and_no_lost_waker() {
    observe::set_tracing(true);
    observe::set_timing(true);
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let handle = rt.handle();
    let listener = {
        let _in_rt = handle.enter();
        TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap()
    };
    let echo = listener.local_addr().unwrap();
    rt.spawn(echo_server(listener));
    let server = ObserveServer::start(handle, "127.0.0.1:0".parse().unwrap()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    // Several drivers, so both workers are busy and steal from each other.
    let drivers: Vec<_> = (0..3)
        .map(|d| {
            let (handle, stop, rounds) = (handle.clone(), stop.clone(), rounds.clone());
            rt.spawn(async move {
                let mut n = d * 1_000_000;
                while !stop.load(Relaxed) {
                    round(handle.clone(), echo, n).await;
                    n += 1;
                    rounds.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();

    // Readers: the task table (checked), the lost-waker check, the trace export, the endpoint.
    let table = {
        let (handle, stop) = (handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut snapshots, mut seen) = (0u64, 0usize);
            while !stop.load(Relaxed) {
                let snap = handle.observe_snapshot();
                let mut ids = HashSet::new();
                for t in &snap.tasks {
                    assert!(ids.insert(t.id), "task id {} listed twice", t.id);
                    assert!(t.id > 0);
                    assert!(t.location.file().ends_with(".rs"), "{}", t.spawned_at());
                    // A source counts at most once per poll, and the first poll has no
                    // cause: no source counts more than polls − 1, in one consistent row.
                    // (Their sum may: a poll woken by two sources counts once for each.)
                    let w = &t.wakes;
                    let most = [
                        w.self_wake,
                        w.same_worker,
                        w.other_worker,
                        w.reactor,
                        w.timer,
                        w.outside,
                    ]
                    .into_iter()
                    .max()
                    .unwrap();
                    assert!(
                        most <= t.polls.saturating_sub(1),
                        "task {} at {}: {:?} over {} polls",
                        t.id,
                        t.spawned_at(),
                        t.wakes,
                        t.polls
                    );
                    if let Some(w) = t.last_worker {
                        assert!(w < 2, "{w}");
                    }
                    assert!(
                        !t.no_waker,
                        "task {} at {} has no waker in a workload that never drops one: {t:?}",
                        t.id,
                        t.spawned_at()
                    );
                    if t.status == TaskStatus::Idle && !t.blocking {
                        assert!(t.refs >= 2, "{t:?}");
                    }
                }
                seen += snap.tasks.len();
                snapshots += 1;
            }
            (snapshots, seen)
        })
    };
    let lost = {
        let (handle, stop) = (handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Relaxed) {
                let lost = handle.lost_wakers(Duration::from_millis(1));
                assert!(lost.is_empty(), "lost wakers reported: {lost:?}");
                checks += 1;
            }
            checks
        })
    };
    let exports = {
        let (stop, addr) = (stop.clone(), server.local_addr());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                let json = observe::trace_json(Some(Duration::from_millis(50)));
                trace_check::check_structure(&trace_check::events(&json));
                let page = http_get(addr, "/snapshot.json");
                let body = page.split_once("\r\n\r\n").unwrap().1;
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                assert!(v["tasks"].is_array(), "{body:.200}");
                n += 1;
            }
            n
        })
    };

    let started = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Relaxed);
    let (snapshots, seen) = table.join().unwrap();
    let checks = lost.join().unwrap();
    let exports_done = exports.join().unwrap();
    for d in drivers {
        d.join().unwrap();
    }
    let rounds = rounds.load(Relaxed);
    eprintln!(
        "{rounds} rounds in {:?}; {snapshots} snapshots ({seen} task rows), {checks} lost-waker checks, {exports_done} trace exports + endpoint reads",
        started.elapsed()
    );
    // The readers really raced the workload (and a stuck runtime would fail here, not hang:
    // the drivers stop at the next round).
    assert!(rounds >= 3, "{rounds} rounds");
    assert!(snapshots >= 3 && checks >= 3 && exports_done >= 1);
    assert!(seen > 0, "no snapshot saw a task");
    drop(server);
    observe::set_tracing(false);
    observe::set_timing(false);
}
