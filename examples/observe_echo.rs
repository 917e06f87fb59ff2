//! The executor observatory on one echo round trip: a client thread writes "hello", a server
//! task reads and echoes it. Prints the task table while the server waits, then writes the
//! scheduler trace (Chrome trace-event JSON) to the file given as the first argument (default
//! `echo.trace.json`) — open it in Perfetto (ui.perfetto.dev → Open trace file).
//!
//! ```sh
//! cargo run --features observatory --example observe_echo -- echo.trace.json
//! ```

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use scraipe::rt::net::TcpListener;
use scraipe::rt::observe;
use scraipe::rt::Builder;

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "echo.trace.json".into());
    observe::set_tracing(true);
    let rt = Builder::new().worker_threads(2).build()?;
    let listener =
        rt.block_on(async { TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))) })?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await
    });
    let mut client = std::net::TcpStream::connect(addr)?;
    std::thread::sleep(Duration::from_millis(20));
    for t in rt.handle().observe_snapshot().tasks {
        println!(
            "task {} spawned at {} polled {}x, waits on {:?}",
            t.id,
            t.spawned_at(),
            t.polls,
            t.waits_on
        );
    }
    client.write_all(b"hello")?;
    let mut back = [0u8; 5];
    client.read_exact(&mut back)?;
    server.join().expect("server task")?;
    std::fs::write(&path, observe::trace_json(None))?;
    println!(
        "echoed {:?}; trace written to {path}",
        std::str::from_utf8(&back).unwrap_or("?")
    );
    Ok(())
}
