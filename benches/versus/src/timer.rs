//! Timers, with their CPU cost.
//!
//! * Lateness of 500 (quick) / 1,000 sequential `sleep_until(now + 1 ms)` on an otherwise idle runtime: ours
//!   wakes its worker `timer_spin_window` (100 µs) early and spins to the deadline; tokio's timer
//!   wheel has a documented 1 ms granularity, so it fires up to ~1 ms late by design. Also ours
//!   with `timer_spin_window(0)` + `spin_before_park(0)` (no spin), and the OS floor: a bare
//!   timerfd + epoll_wait loop on a plain thread, no runtime.
//! * Timer-heavy idle load (issue 16): 1,000 tasks each sleeping 1–50 ms (pseudo-random) in a
//!   loop for 1 s on 2 workers: CPU time per timer fired and mean lateness.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::{Better, Row};
use crate::stats::{process_cpu, Latencies, Runs};
use crate::Settings;

/// Sequential sleeps per run: 500 with `--quick`, 1,000 full.
fn sleeps(settings: &Settings) -> usize {
    if settings.quick {
        500
    } else {
        1_000
    }
}
const LOAD_TASKS: u64 = 1_000;
const LOAD_FOR: Duration = Duration::from_secs(1);

fn ours(spin: bool) -> scraipe::rt::Runtime {
    let b = scraipe::rt::Builder::new().worker_threads(2);
    let b = if spin {
        b
    } else {
        b.spin_before_park(Duration::ZERO)
            .timer_spin_window(Duration::ZERO)
    };
    b.build().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn late_us(deadline: Instant) -> f64 {
    Instant::now().duration_since(deadline).as_nanos() as f64 / 1000.0
}

/// (lateness samples µs, CPU µs per sleep) of 1,000 sequential 1 ms sleeps.
fn sleeps_ours(rt: &scraipe::rt::Runtime, n: usize) -> (Vec<f64>, f64) {
    let c = process_cpu();
    let v = rt
        .block_on(rt.spawn(async move {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let deadline = Instant::now() + Duration::from_millis(1);
                scraipe::rt::sleep_until(deadline).await;
                v.push(late_us(deadline));
            }
            v
        }))
        .unwrap();
    (v, (process_cpu() - c) * 1e6 / n as f64)
}

fn sleeps_tokio(rt: &tokio::runtime::Runtime, n: usize) -> (Vec<f64>, f64) {
    let c = process_cpu();
    let v = rt
        .block_on(rt.spawn(async move {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let deadline = Instant::now() + Duration::from_millis(1);
                tokio::time::sleep_until(deadline.into()).await;
                v.push(late_us(deadline));
            }
            v
        }))
        .unwrap();
    (v, (process_cpu() - c) * 1e6 / n as f64)
}

/// The OS floor: a plain thread arms a timerfd for 1 ms and sleeps in epoll_wait on it.
fn sleeps_timerfd(n: usize) -> Result<(Vec<f64>, f64), String> {
    // SAFETY: plain system calls on descriptors we own; every struct passed is initialised.
    unsafe {
        let tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC);
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if tfd < 0 || ep < 0 {
            return Err("timerfd/epoll unavailable".into());
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, tfd, &mut ev);
        let c = process_cpu();
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let deadline = Instant::now() + Duration::from_millis(1);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1_000_000,
                },
            };
            libc::timerfd_settime(tfd, 0, &spec, std::ptr::null_mut());
            let mut out = [libc::epoll_event { events: 0, u64: 0 }];
            while libc::epoll_wait(ep, out.as_mut_ptr(), 1, -1) != 1 {}
            let mut expirations = 0u64;
            libc::read(tfd, (&mut expirations as *mut u64).cast(), 8);
            v.push(late_us(deadline));
        }
        let cpu = (process_cpu() - c) * 1e6 / n as f64;
        libc::close(ep);
        libc::close(tfd);
        Ok((v, cpu))
    }
}

/// xorshift: the same pseudo-random 1–50 ms sequence for both runtimes.
fn next_ms(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    1 + *state % 50
}

#[derive(Default)]
struct LoadStats {
    fired: AtomicU64,
    late_ns: AtomicU64,
}

/// (CPU µs per timer fired, mean lateness µs) of the timer-heavy idle load.
fn load_result(stats: &LoadStats, cpu_s: f64) -> (f64, f64) {
    let fired = stats.fired.load(Relaxed).max(1) as f64;
    (
        cpu_s * 1e6 / fired,
        stats.late_ns.load(Relaxed) as f64 / fired / 1000.0,
    )
}

fn load_ours(rt: &scraipe::rt::Runtime, tasks: u64) -> (f64, f64) {
    let stats = Arc::new(LoadStats::default());
    let until = Instant::now() + LOAD_FOR;
    let c = process_cpu();
    rt.block_on(async {
        let mut set = scraipe::rt::JoinSet::new();
        for i in 0..tasks {
            let stats = stats.clone();
            set.spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
                while Instant::now() < until {
                    let deadline = Instant::now() + Duration::from_millis(next_ms(&mut seed));
                    scraipe::rt::sleep_until(deadline).await;
                    stats
                        .late_ns
                        .fetch_add(deadline.elapsed().as_nanos() as u64, Relaxed);
                    stats.fired.fetch_add(1, Relaxed);
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
    let r = load_result(&stats, process_cpu() - c);
    if std::env::var_os("VERSUS_DEBUG").is_some() {
        for w in rt.handle().metrics().workers {
            eprintln!(
                "  polls {} steals {} parks {} wakeups {} timers {} unparks {}",
                w.polls, w.steals, w.parks, w.wakeups, w.timers_fired, w.unpark_requests
            );
        }
    }
    r
}

fn load_tokio(rt: &tokio::runtime::Runtime, tasks: u64) -> (f64, f64) {
    let stats = Arc::new(LoadStats::default());
    let until = Instant::now() + LOAD_FOR;
    let c = process_cpu();
    rt.block_on(async {
        let tasks: Vec<_> = (0..tasks)
            .map(|i| {
                let stats = stats.clone();
                tokio::spawn(async move {
                    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
                    while Instant::now() < until {
                        let deadline = Instant::now() + Duration::from_millis(next_ms(&mut seed));
                        tokio::time::sleep_until(deadline.into()).await;
                        stats
                            .late_ns
                            .fetch_add(deadline.elapsed().as_nanos() as u64, Relaxed);
                        stats.fired.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    load_result(&stats, process_cpu() - c)
}

/// One run of the timer-heavy idle load on one side only, for profilers: `versus --child
/// timer-load <ours|ours-nospin|tokio> [tasks]`. Prints CPU µs per timer fired and mean
/// lateness µs.
pub fn child_load(side: &str, tasks: Option<u64>) {
    let tasks = tasks.unwrap_or(LOAD_TASKS);
    let (cpu, late) = match side {
        "ours" => load_ours(&ours(true), tasks),
        "ours-nospin" => load_ours(&ours(false), tasks),
        "tokio" => load_tokio(&tokio_rt(), tasks),
        other => panic!("timer-load: unknown side {other:?} (ours, ours-nospin, tokio)"),
    };
    println!("{side}: {cpu:.2} µs CPU per timer fired, mean lateness {late:.0} µs");
}

const TOKIO_LABEL: &str = "tokio multi_thread 2w (timer granularity 1 ms, documented)";

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    let (od, on, t) = (ours(true), ours(false), tokio_rt());
    let (mut ld, mut ln, mut lt, mut lf) = Default::default();
    let mut floor_err = None;
    for _ in 0..settings.runs {
        let n = sleeps(settings);
        let (v, c) = sleeps_ours(&od, n);
        Latencies::add_run(&mut ld, v, c);
        let (v, c) = sleeps_ours(&on, n);
        Latencies::add_run(&mut ln, v, c);
        let (v, c) = sleeps_tokio(&t, n);
        Latencies::add_run(&mut lt, v, c);
        match sleeps_timerfd(n) {
            Ok((v, c)) => Latencies::add_run(&mut lf, v, c),
            Err(e) => floor_err = Some(e),
        }
    }
    let pairs: [(&str, &Latencies, &str, Option<&Latencies>); 3] = [
        (
            "1 ms sleep lateness, 2w, ours spins the last 100 µs (timer_spin_window) / tokio parks",
            &ld,
            TOKIO_LABEL,
            Some(&lt),
        ),
        (
            "1 ms sleep lateness, 2w, ours timer_spin_window(0) + spin_before_park(0): nobody spins",
            &ln,
            TOKIO_LABEL,
            Some(&lt),
        ),
        (
            "1 ms sleep lateness, ours without spin vs the OS floor (plain thread: timerfd + epoll_wait)",
            &ln,
            "bare timerfd + epoll_wait, no runtime",
            floor_err.is_none().then_some(&lf),
        ),
    ];
    for (bench, o, rival, theirs) in pairs {
        for (stat, ours_runs, theirs_runs) in [
            ("median", o.median.clone(), theirs.map(|t| t.median.clone())),
            ("p99 (all samples)", o.p99(), theirs.map(Latencies::p99)),
        ] {
            let row = Row::new(
                "timer",
                format!("{bench}, {stat}"),
                "µs",
                ours_runs,
                rival,
                theirs_runs,
                Better::Lower,
            )
            .cpu(o.cpu.clone(), theirs.map(|t| t.cpu.clone()))
            .note(floor_err.clone().unwrap_or_default());
            row.log();
            rows.push(row);
        }
    }

    // Timer-heavy idle load.
    let mut cpu: [Runs; 3] = Default::default();
    let mut late: [Runs; 3] = Default::default();
    for _ in 0..settings.runs {
        for (i, (c, l)) in [
            load_ours(&od, LOAD_TASKS),
            load_ours(&on, LOAD_TASKS),
            load_tokio(&t, LOAD_TASKS),
        ]
        .into_iter()
        .enumerate()
        {
            cpu[i].push(c);
            late[i].push(l);
        }
    }
    let what = "1,000 tasks sleep 1–50 ms in a loop for 1 s, 2w";
    for (i, variant) in [
        (0usize, "default config"),
        (1, "ours timer_spin_window(0) + spin_before_park(0)"),
    ] {
        for (stat, unit, runs) in [
            ("CPU per timer fired", "µs", &cpu),
            ("mean lateness", "µs", &late),
        ] {
            let row = Row::new(
                "timer",
                format!("{what}, {variant}: {stat}"),
                unit,
                runs[i].clone(),
                TOKIO_LABEL,
                Some(runs[2].clone()),
                Better::Lower,
            );
            row.log();
            rows.push(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_never_fire_early_on_any_side() {
        let (o, t) = (ours(false), tokio_rt());
        for (v, cpu) in [
            sleeps_ours(&o, 20),
            sleeps_tokio(&t, 20),
            sleeps_timerfd(20).unwrap(),
        ] {
            assert_eq!(v.len(), 20);
            assert!(v.iter().all(|late| *late >= 0.0), "{v:?}");
            assert!(cpu >= 0.0);
        }
    }

    #[test]
    fn pseudo_random_sleeps_stay_within_1_to_50_ms() {
        let mut seed = 0x9E37_79B9_7F4A_7C15 ^ 1;
        let v: Vec<u64> = (0..10_000).map(|_| next_ms(&mut seed)).collect();
        assert!(v.iter().all(|ms| (1..=50).contains(ms)));
        assert!(v.contains(&1) && v.contains(&50));
    }
}
