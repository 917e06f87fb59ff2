//! Timer lateness: 1,000 sequential 1 ms sleeps on an idle runtime; how late each wakes.

use std::time::{Duration, Instant};

use crate::report::{Better, Row};
use crate::stats::{percentile, Runs};
use crate::Settings;

const SLEEPS: usize = 1_000;

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    let ours = scraipe::rt::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap();
    let theirs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut om, mut op, mut tm, mut tp) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    for _ in 0..settings.runs {
        let mut late: Vec<f64> = ours
            .block_on(ours.spawn(async {
                let mut v = Vec::with_capacity(SLEEPS);
                for _ in 0..SLEEPS {
                    let deadline = Instant::now() + Duration::from_millis(1);
                    scraipe::rt::sleep_until(deadline).await;
                    v.push(Instant::now().duration_since(deadline).as_nanos() as f64 / 1000.0);
                }
                v
            }))
            .unwrap();
        om.push(percentile(&mut late, 0.5));
        op.push(percentile(&mut late, 0.99));
        let mut late: Vec<f64> = theirs
            .block_on(theirs.spawn(async {
                let mut v = Vec::with_capacity(SLEEPS);
                for _ in 0..SLEEPS {
                    let deadline = Instant::now() + Duration::from_millis(1);
                    tokio::time::sleep_until(deadline.into()).await;
                    v.push(Instant::now().duration_since(deadline).as_nanos() as f64 / 1000.0);
                }
                v
            }))
            .unwrap();
        tm.push(percentile(&mut late, 0.5));
        tp.push(percentile(&mut late, 0.99));
    }
    eprintln!(
        "  timer: ours median {:.1} µs p99 {:.1} µs; tokio median {:.1} µs p99 {:.1} µs",
        om.median(),
        op.median(),
        tm.median(),
        tp.median()
    );
    for (bench, ours, theirs) in [
        ("1 ms sleep lateness, median", om, tm),
        ("1 ms sleep lateness, p99", op, tp),
    ] {
        rows.push(Row {
            group: "timer",
            bench: bench.into(),
            unit: "µs",
            ours,
            rival: "tokio".into(),
            theirs: Some(theirs),
            better: Better::Lower,
            note: String::new(),
        });
    }
}
