//! `scraipe observe ADDR`: a top-like table of a running program's runtime, read from its
//! observatory endpoint (`/snapshot.json`, see `scraipe::rt::observe::ObserveServer`).

use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::ObserveArgs;

pub fn run(args: ObserveArgs) -> Result<(), String> {
    // The first fetch must work (a wrong address is an error); after that, a failed refresh
    // (the program restarting, a busy endpoint) is shown and retried, as `top` would.
    let mut snap = fetch(&args.addr)?;
    loop {
        let table = render(&snap, args.rows);
        if !args.once && std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H"); // clear the screen, cursor home
        }
        outln!("{}", table.strip_suffix('\n').unwrap_or(&table));
        if args.once {
            return Ok(());
        }
        loop {
            std::thread::sleep(Duration::from_secs_f64(args.interval));
            match fetch(&args.addr) {
                Ok(next) => {
                    snap = next;
                    break;
                }
                Err(e) => eprintln!("{e} (retrying; Ctrl-C to stop)"),
            }
        }
    }
}

fn fetch(addr: &str) -> Result<Value, String> {
    let targets: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .collect();
    if targets.is_empty() {
        return Err(format!("{addr:?} resolves to nothing"));
    }
    fetch_from(addr, &targets)
}

/// `GET /snapshot.json` from the first of `targets` that accepts a connection.
fn fetch_from(addr: &str, targets: &[std::net::SocketAddr]) -> Result<Value, String> {
    // Every address the name resolves to, in order (`localhost` may give ::1 first while the
    // endpoint listens on 127.0.0.1).
    let mut last_error = None;
    let mut s = None;
    for target in targets {
        match TcpStream::connect_timeout(target, Duration::from_secs(2)) {
            Ok(conn) => {
                s = Some(conn);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut s = s.ok_or_else(|| {
        let e = last_error.map_or_else(String::new, |e| e.to_string());
        format!("cannot reach the observatory at {addr}: {e}")
    })?;
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
///
/// Every cell is made a `String` before it is padded: `serde_json::Value`'s `Display` writes
/// JSON and ignores width and alignment, so formatting the values directly lost the columns.
pub fn render(snap: &Value, rows: usize) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let workers = snap["workers"].as_array().unwrap_or(&empty);
    let tasks = snap["tasks"].as_array().unwrap_or(&empty);
    out.push_str(&format!(
        "{} workers, {} live tasks, injector {}\n\n",
        workers.len(),
        tasks.len(),
        num(&snap["injector_depth"])
    ));
    out.push_str("WORKER     POLLS   STEALS    PARKS  QUEUE  POLLING\n");
    for w in workers {
        let polling = match &w["polling"] {
            Value::Null => "-".to_string(),
            p => format!("task {} ({})", num(&p["task"]), text(&p["spawned_at"])),
        };
        out.push_str(&format!(
            "{:>6} {:>9} {:>8} {:>8} {:>6}  {polling}\n",
            num(&w["index"]),
            num(&w["polls"]),
            num(&w["steals"]),
            num(&w["parks"]),
            num(&w["queue_depth"])
        ));
    }
    let mut by_polls: Vec<&Value> = tasks.iter().collect();
    by_polls.sort_by_key(|t| std::cmp::Reverse(t["polls"].as_u64().unwrap_or(0)));
    out.push_str(&format!(
        "\n{:>8}  {:<9} {:>8} {:>7}  {:<16}  {:<WAITS$}  SPAWNED AT\n",
        "TASK", "STATUS", "POLLS", "WAKES", "WOKEN BY", "WAITS ON"
    ));
    for t in by_polls.iter().take(rows) {
        let wakes: u64 = t["wakes"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let woken_by = match &t["woken_by"] {
            Value::Null => "-".to_string(),
            by => match by["worker"].as_u64() {
                Some(w) => format!("task {} (w{w})", num(&by["task"])),
                None => format!("task {}", num(&by["task"])),
            },
        };
        let waits = t["waits_on"]
            .as_array()
            .map(|w| w.iter().map(waits_on).collect::<Vec<_>>().join(", "))
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "-".to_string());
        let flag = if t["no_waker"] == true {
            "  << NO WAKER"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:>8}  {:<9} {:>8} {:>7}  {:<16}  {:<WAITS$}  {}{flag}\n",
            num(&t["id"]),
            text(&t["status"]),
            num(&t["polls"]),
            wakes,
            woken_by,
            clip(&waits, WAITS),
            text(&t["spawned_at"]),
        ));
    }
    if tasks.len() > rows {
        out.push_str(&format!("  … {} more\n", tasks.len() - rows));
    }
    out
}

/// The width of the WAITS ON column.
const WAITS: usize = 32;

/// A number cell ("?" when the field is missing or not a number).
fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => "?".to_string(),
    }
}

/// A text cell ("?" when the field is missing or not a string).
fn text(v: &Value) -> String {
    v.as_str().unwrap_or("?").to_string()
}

/// `s` cut to `width` characters, with "…" when something was cut.
fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

/// One entry of a task's `waits_on`, as the live view's JSON gives it: "socket 12 read",
/// "timer in 9.8 s", "timer 3 ms late", "oneshot".
fn waits_on(w: &Value) -> String {
    if let Some(kind) = w["channel"].as_str() {
        return kind.to_string();
    }
    if let Some(ms) = w["timer_in_ms"].as_f64() {
        return match ms {
            ms if ms < 0.0 => format!("timer {} late", duration(-ms)),
            ms => format!("timer in {}", duration(ms)),
        };
    }
    if !w["socket"].is_null() {
        return format!("socket {} {}", num(&w["socket"]), text(&w["direction"]));
    }
    w.to_string()
}

/// Milliseconds as "850 ms", "9.8 s" or "12 min".
fn duration(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else {
        format!("{:.0} min", ms / 60e3)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fetch_tries_every_address_a_name_resolves_to() {
        // A port nobody listens on (bound, then closed), then a one-shot endpoint.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = live.accept().unwrap();
            // Read the whole request head first: closing with unread input would reset the
            // connection under the client's read.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let body = r#"{"workers": [], "tasks": []}"#;
            write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        });
        let snap = fetch_from("test", &[dead, live_addr]).unwrap();
        assert_eq!(snap["tasks"], json!([]));
        server.join().unwrap();
        let e = fetch_from("test", &[dead]).unwrap_err();
        assert!(e.starts_with("cannot reach the observatory at test"), "{e}");
    }

    fn snapshot() -> Value {
        json!({
            "workers": [
                {"index": 0, "polls": 7236, "steals": 505, "parks": 584, "queue_depth": 0,
                 "polling": {"task": 9541, "spawned_at": "src/a.rs:101"}},
                {"index": 1, "polls": 12, "steals": 0, "parks": 3, "queue_depth": 2,
                 "polling": null},
            ],
            "injector_depth": 4,
            "tasks": [
                {"id": 7, "status": "idle", "polls": 3, "spawned_at": "src/b.rs:5",
                 "wakes": {"self": 1, "reactor": 1}, "woken_by": null, "no_waker": false,
                 "waits_on": [{"socket": 12, "direction": "read", "reactor": 1},
                              {"timer_in_ms": 9812.5, "heap": 0}]},
                {"id": 12345, "status": "scheduled", "polls": 40, "spawned_at": "src/c.rs:9",
                 "wakes": {"other_worker": 39}, "woken_by": {"task": 7, "worker": 1},
                 "no_waker": false, "waits_on": [{"channel": "oneshot"}]},
                {"id": 9, "status": "idle", "polls": 1, "spawned_at": "src/d.rs:1",
                 "wakes": {}, "woken_by": {"task": 3, "worker": null}, "no_waker": true,
                 "waits_on": [{"timer_in_ms": -3.2, "heap": 1}]},
            ],
        })
    }

    /// The columns line up under their headings (they did not: `Value` ignores padding).
    #[test]
    fn the_table_keeps_its_columns() {
        let table = render(&snapshot(), 20);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "2 workers, 3 live tasks, injector 4");
        let head = lines[2];
        let polls_end = head.find("POLLS").unwrap() + "POLLS".len();
        for row in &lines[3..5] {
            // Right-aligned numbers end where their heading ends.
            assert!(row.as_bytes()[polls_end - 1].is_ascii_digit(), "{row}");
            assert_eq!(row.as_bytes()[polls_end], b' ', "{row}");
        }
        assert!(
            lines[3].ends_with("  task 9541 (src/a.rs:101)"),
            "{}",
            lines[3]
        );
        assert!(lines[4].ends_with("  -"), "{}", lines[4]);

        let head = lines[6];
        let at = head.find("SPAWNED AT").unwrap();
        let woken = head.find("WOKEN BY").unwrap();
        let waits = head.find("WAITS ON").unwrap();
        let rows = &lines[7..10];
        // Busiest first; every row's spawn site starts under its heading.
        assert!(rows[0].trim_start().starts_with("12345"), "{table}");
        for row in rows {
            assert!(row[at..].starts_with("src/"), "{row}");
        }
        assert_eq!(&rows[0][woken..woken + 12], "task 7 (w1) ");
        assert_eq!(&rows[0][waits..waits + 8], "oneshot ");
        assert!(
            rows[1][waits..].starts_with("socket 12 read, timer in 9.8 s"),
            "{}",
            rows[1]
        );
        assert!(
            rows[2][waits..].starts_with("timer 3 ms late"),
            "{}",
            rows[2]
        );
        assert!(rows[2][woken..].starts_with("task 3 "), "{}", rows[2]);
        assert!(rows[2].ends_with("src/d.rs:1  << NO WAKER"), "{}", rows[2]);
        assert!(
            rows[1].contains("    2  "),
            "the wakes are summed: {}",
            rows[1]
        );
    }

    #[test]
    fn rows_beyond_the_limit_are_counted_and_long_cells_clipped() {
        let table = render(&snapshot(), 1);
        assert!(table.ends_with("  … 2 more\n"), "{table}");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(125_000.0), "2 min");
        // A snapshot from some other program: question marks, not a panic.
        let table = render(&json!({"workers": [{}], "tasks": [{}]}), 5);
        assert!(table.contains("?"), "{table}");
    }
}
