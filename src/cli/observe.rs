//! `scraipe observe ADDR`: a top-like table of a running program's runtime, read from its
//! observatory endpoint (`/snapshot.json`, see `scraipe::rt::observe::ObserveServer`).

use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::ObserveArgs;

pub fn run(args: ObserveArgs) -> Result<(), String> {
    loop {
        let snap = fetch(&args.addr)?;
        let table = render(&snap, args.rows);
        if !args.once && std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H"); // clear the screen, cursor home
        }
        print!("{table}");
        let _ = std::io::stdout().flush();
        if args.once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

fn fetch(addr: &str) -> Result<Value, String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr:?} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("cannot reach the observatory at {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /snapshot.json HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot query {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("cannot read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr} did not answer HTTP"))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or("");
        return Err(format!("{addr} answered {status:?}"));
    }
    serde_json::from_str(body).map_err(|e| format!("{addr} sent no snapshot JSON: {e}"))
}

/// The table: one line per worker, then the busiest tasks.
pub fn render(snap: &Value, rows: usize) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let workers = snap["workers"].as_array().unwrap_or(&empty);
    let tasks = snap["tasks"].as_array().unwrap_or(&empty);
    out.push_str(&format!(
        "{} workers, {} live tasks, injector {}\n\n",
        workers.len(),
        tasks.len(),
        snap["injector_depth"]
    ));
    out.push_str("WORKER     POLLS   STEALS    PARKS  QUEUE  POLLING\n");
    for w in workers {
        let polling = match &w["polling"] {
            Value::Null => "-".to_string(),
            p => format!(
                "task {} ({})",
                p["task"],
                p["spawned_at"].as_str().unwrap_or("?")
            ),
        };
        out.push_str(&format!(
            "{:>6} {:>9} {:>8} {:>8} {:>6}  {polling}\n",
            w["index"], w["polls"], w["steals"], w["parks"], w["queue_depth"]
        ));
    }
    let mut by_polls: Vec<&Value> = tasks.iter().collect();
    by_polls.sort_by_key(|t| std::cmp::Reverse(t["polls"].as_u64().unwrap_or(0)));
    out.push_str("\n    TASK  STATUS       POLLS   WAKES  WAITS ON              SPAWNED AT\n");
    for t in by_polls.iter().take(rows) {
        let wakes: u64 = t["wakes"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let waits = t["waits_on"].to_string();
        let flag = if t["no_waker"] == true {
            "  << NO WAKER"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:>8}  {:<9} {:>8} {:>7}  {:<20.20}  {}{flag}\n",
            t["id"],
            t["status"].as_str().unwrap_or("?"),
            t["polls"],
            wakes,
            waits,
            t["spawned_at"].as_str().unwrap_or("?"),
        ));
    }
    if tasks.len() > rows {
        out.push_str(&format!("  … {} more\n", tasks.len() - rows));
    }
    out
}

/// `--observe ADDR` (`demo`, `monitor run`): serves the live view of the runtime that `handle`
/// gives, with the scheduler trace recording, on its own thread until dropped.
#[cfg(feature = "observatory")]
pub(super) fn start(
    addr: Option<std::net::SocketAddr>,
    handle: impl FnOnce() -> scraipe::rt::Handle,
) -> Result<Option<scraipe::rt::observe::ObserveServer>, String> {
    use scraipe::rt::observe;
    let Some(addr) = addr else { return Ok(None) };
    observe::set_tracing(true);
    let server = observe::ObserveServer::start(&handle(), addr)
        .map_err(|e| format!("cannot serve the observatory on {addr}: {e}"))?;
    println!(
        "observatory: http://{0}/ (scraipe observe {0})",
        server.local_addr()
    );
    Ok(Some(server))
}

/// Stands in for the server in builds without the observatory (never constructed).
#[cfg(not(feature = "observatory"))]
pub(super) struct NoObservatory;

/// Without the `observatory` feature, `--observe` is refused with what is missing.
#[cfg(not(feature = "observatory"))]
pub(super) fn start(
    addr: Option<std::net::SocketAddr>,
    _handle: impl FnOnce() -> scraipe::rt::Handle,
) -> Result<Option<NoObservatory>, String> {
    match addr {
        None => Ok(None),
        Some(_) => Err("--observe needs scraipe built with `--features observatory`".into()),
    }
}
