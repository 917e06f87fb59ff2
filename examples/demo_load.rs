//! A quick throughput check of the demo server (a hand tool, not a test or a benchmark suite).
//!
//! ```text
//! # server and client in one process, each runtime on its own pinned CPU (default 64 keep-alive
//! # connections for 5 s on /bytes/1024):
//! cargo run --release --example demo_load
//! cargo run --release --example demo_load -- --conns 64 --secs 5 --path /page/0 --server-threads 1
//!
//! # just the server (for wrk or another client), or just the client:
//! taskset -c 0 cargo run --release --example demo_load -- serve --port 8080 --threads 1
//! taskset -c 1 wrk -t1 -c64 -d5s http://127.0.0.1:8080/bytes/1024
//! cargo run --release --example demo_load -- load --addr 127.0.0.1:8080 --client-cpu 1
//! ```
//!
//! The client is our runtime's `TcpStream`: each connection sends a request, reads the whole
//! response (httparse for the head, then `Content-Length` bytes), and repeats until the time is
//! up.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scraipe::demo::{serve_forever, DemoServer, DemoSite};
use scraipe::rt::net::TcpStream;
use scraipe::rt::{Builder, JoinSet, Runtime};

struct Args {
    mode: String,
    addr: Option<SocketAddr>,
    port: u16,
    pages: usize,
    conns: usize,
    secs: f64,
    path: String,
    server_threads: usize,
    client_threads: usize,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: "both".into(),
        addr: None,
        port: 8080,
        pages: 1000,
        conns: 64,
        secs: 5.0,
        path: "/bytes/1024".into(),
        server_threads: 1,
        client_threads: 1,
        server_cpu: Some(0),
        client_cpu: Some(1),
    };
    let mut it = std::env::args().skip(1).peekable();
    if let Some(mode) = it.next_if(|a| !a.starts_with("--")) {
        args.mode = mode;
    }
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => args.addr = Some(value.parse().map_err(|e| bad(&e))?),
            "--port" => args.port = value.parse().map_err(|e| bad(&e))?,
            "--pages" => args.pages = value.parse().map_err(|e| bad(&e))?,
            "--conns" => args.conns = value.parse().map_err(|e| bad(&e))?,
            "--secs" => args.secs = value.parse().map_err(|e| bad(&e))?,
            "--path" => args.path = value,
            "--threads" | "--server-threads" => {
                args.server_threads = value.parse().map_err(|e| bad(&e))?
            }
            "--client-threads" => args.client_threads = value.parse().map_err(|e| bad(&e))?,
            "--server-cpu" => args.server_cpu = cpu(&value).map_err(|e| bad(&e))?,
            "--client-cpu" => args.client_cpu = cpu(&value).map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// A CPU number, or `none` for no pinning.
fn cpu(value: &str) -> Result<Option<usize>, std::num::ParseIntError> {
    if value == "none" {
        Ok(None)
    } else {
        value.parse().map(Some)
    }
}

fn runtime(threads: usize, cpu: Option<usize>, name: &str) -> io::Result<Runtime> {
    let mut builder = Builder::new().worker_threads(threads).thread_name(name);
    if let Some(cpu) = cpu {
        builder = builder.pin_workers_to(vec![cpu]);
    }
    builder.build()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo_load: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.mode.as_str() {
        "serve" => serve_forever(args.port, args.pages, args.server_threads),
        "load" => match args.addr {
            Some(addr) => load(&args, addr).map(|_| ()),
            None => Err(io::Error::other("load needs --addr")),
        },
        "both" => both(&args),
        other => Err(io::Error::other(format!(
            "unknown mode {other} (serve, load or both)"
        ))),
    };
    if let Err(e) = result {
        eprintln!("demo_load: {e}");
        std::process::exit(1);
    }
}

fn both(args: &Args) -> io::Result<()> {
    let server_rt = runtime(args.server_threads, args.server_cpu, "demo-server")?;
    let site = DemoSite::new(args.pages, 0);
    site.generate_all();
    let server = DemoServer::start(server_rt.handle(), "127.0.0.1:0".parse().unwrap(), site)?;
    let cpu_time = || process_cpu_seconds();
    let before = cpu_time();
    let requests = load(args, server.local_addr())?;
    let cpu = cpu_time() - before;
    println!(
        "server: {} requests on {} connections; process CPU {:.2} s ({:.1} µs per request, client + server)",
        server.requests_served(),
        server.connections_accepted(),
        cpu,
        cpu * 1e6 / requests.max(1) as f64
    );
    Ok(())
}

/// Runs the client; returns the number of responses received.
fn load(args: &Args, addr: SocketAddr) -> io::Result<u64> {
    let client_rt = runtime(args.client_threads, args.client_cpu, "demo-client")?;
    let request: Arc<[u8]> = format!("GET {} HTTP/1.1\r\nHost: {addr}\r\n\r\n", args.path)
        .into_bytes()
        .into();
    let duration = Duration::from_secs_f64(args.secs);
    let conns = args.conns;
    let (count, bytes, elapsed) = client_rt.block_on(async move {
        let started = Instant::now();
        let deadline = started + duration;
        let mut set = JoinSet::new();
        for _ in 0..conns {
            set.spawn(hammer(addr, request.clone(), deadline));
        }
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(done) = set.join_next().await {
            match done {
                Ok(Ok((c, b))) => {
                    count += c;
                    bytes += b;
                }
                Ok(Err(e)) => eprintln!("connection failed: {e}"),
                Err(e) => eprintln!("client task failed: {e}"),
            }
        }
        (count, bytes, started.elapsed())
    });
    let secs = elapsed.as_secs_f64();
    println!(
        "{count} responses in {secs:.2} s: {:.0} req/s, {:.1} MB/s body+head, {conns} connections, path {}",
        count as f64 / secs,
        bytes as f64 / secs / 1e6,
        args.path
    );
    Ok(count)
}

/// One keep-alive connection: request, whole response, repeat until `deadline`.
async fn hammer(addr: SocketAddr, request: Arc<[u8]>, deadline: Instant) -> io::Result<(u64, u64)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut count, mut bytes) = (0u64, 0u64);
    while Instant::now() < deadline {
        stream.write_all(&request).await?;
        let mut filled = 0;
        let total = loop {
            if filled == buf.len() {
                return Err(io::Error::other("response head larger than 64 KiB"));
            }
            let n = stream.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf[..filled]) {
                Ok(httparse::Status::Complete(head)) => {
                    let length = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                        .ok_or_else(|| io::Error::other("no Content-Length"))?;
                    break head + length;
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(io::Error::other(format!("bad response: {e}"))),
            }
        };
        // The rest of the body: read and drop.
        let mut left = total.saturating_sub(filled);
        while left > 0 {
            let n = stream.read(&mut buf[..left.min(64 * 1024)]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        count += 1;
        bytes += total as u64;
    }
    Ok((count, bytes))
}

/// User + system CPU time of this process so far, in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain data; getrusage fills it for RUSAGE_SELF.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
