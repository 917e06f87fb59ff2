//! Lateness of sequential 1 ms sleeps in one task (2 workers by default): median, p99, and how
//! many fired more than 500 µs late. `cargo run --release --example sleep_tail -- [workers] [n]`
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let workers = *args.first().unwrap_or(&2);
    let n = *args.get(1).unwrap_or(&2000);
    let rt = scraipe::rt::Builder::new()
        .worker_threads(workers)
        .build()
        .unwrap();
    let mut v = rt
        .block_on(rt.spawn(async move {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let deadline = Instant::now() + Duration::from_millis(1);
                scraipe::rt::sleep_until(deadline).await;
                v.push(deadline.elapsed().as_nanos() as f64 / 1000.0);
            }
            v
        }))
        .unwrap();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let slow = v.iter().filter(|&&x| x > 500.0).count();
    println!(
        "workers {workers}: median {:.1} µs p99 {:.1} µs, {slow} of {n} > 500 µs late",
        v[n / 2],
        v[n * 99 / 100]
    );
}
