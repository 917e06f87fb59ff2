//! The runtime on its own: a TCP echo server and 100 concurrent clients, no HTTP.
//!
//! `cargo run --example echo_server`

use std::time::{Duration, Instant};

use scraipe::rt::net::{TcpListener, TcpStream};
use scraipe::rt::{self, JoinSet, Runtime};

fn main() -> std::io::Result<()> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let started = Instant::now();
    let echoed = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
        let addr = listener.local_addr()?;
        // The server: one task per connection, echoing until the client closes.
        rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                rt::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // The clients: each sends a line and waits for it to come back, with a deadline.
        let mut clients = JoinSet::new();
        for i in 0..100 {
            clients.spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                let line = format!("hello from client {i}\n");
                stream.write_all(line.as_bytes()).await?;
                let mut back = vec![0u8; line.len()];
                rt::timeout(Duration::from_secs(5), stream.read_exact(&mut back)).await??;
                Ok::<bool, std::io::Error>(back == line.as_bytes())
            });
        }
        let mut ok = 0;
        while let Some(result) = clients.join_next().await {
            if matches!(result, Ok(Ok(true))) {
                ok += 1;
            }
        }
        Ok::<usize, std::io::Error>(ok)
    })?;
    println!(
        "{echoed}/100 clients got their line back in {:?}",
        started.elapsed()
    );
    let m = runtime.handle().metrics();
    println!(
        "polls per worker: {:?}, steals: {}",
        m.workers.iter().map(|w| w.polls).collect::<Vec<_>>(),
        m.total_steals()
    );
    Ok(())
}
