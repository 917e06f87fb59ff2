//! The live view: a tiny HTTP/1.1 endpoint on its own std thread — not a runtime task, so it
//! answers while every worker is stuck.
//!
//! * `GET /` — a self-contained HTML page (no external URLs): worker lanes, the task table,
//!   warnings, a link that downloads the trace for Perfetto.
//! * `GET /snapshot.json` — workers (counters, the task each is polling) and the task table.
//! * `GET /trace.json?last=2s` — the flight recorder as Chrome trace JSON (`last` takes `ms`
//!   or `s`; without it, everything recorded).
//!
//! Each connection is answered on a short-lived thread of its own (at most 8 at once), so an
//! idle client or a long trace export never holds up a snapshot; a request head is capped at
//! 16 KiB (431 past it) and must arrive within 5 s.
//!
//! Loopback addresses are the intended use; the endpoint exposes task names and timings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::snapshot::{Snapshot, TaskStatus};
use super::task::WaitsOn;
use crate::rt::scheduler::Shared;
use crate::rt::Handle;

/// A running live-view endpoint; dropping it stops the thread.
pub struct ObserveServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ObserveServer {
    /// Serves the live view of `handle`'s runtime on `addr` (port 0 picks a free one).
    pub fn start(handle: &Handle, addr: SocketAddr) -> std::io::Result<ObserveServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::downgrade(&handle.shared);
        let flag = stop.clone();
        // Workers publish what they poll (`polling`) only while someone reads it.
        let reader = super::watchdog::SlotReader::new();
        let thread = std::thread::Builder::new()
            .name("scraipe-observe".into())
            .spawn(move || {
                let _reader = reader;
                let open = Arc::new(AtomicUsize::new(0));
                for conn in listener.incoming() {
                    if flag.load(SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    // Each connection on a thread of its own, so an idle or slow client (a
                    // browser's preconnect) or a long trace export never holds up a snapshot.
                    if open.fetch_add(1, SeqCst) >= MAX_CONNECTIONS {
                        open.fetch_sub(1, SeqCst);
                        let _ = refuse(conn);
                        continue;
                    }
                    let (shared, done) = (shared.clone(), open.clone());
                    let spawned = std::thread::Builder::new()
                        .name("scraipe-observe-conn".into())
                        .spawn(move || {
                            let _ = answer(conn, &shared);
                            done.fetch_sub(1, SeqCst);
                        });
                    if spawned.is_err() {
                        open.fetch_sub(1, SeqCst);
                    }
                }
            })?;
        Ok(ObserveServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ObserveServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        // Unblock `accept`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connections served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 8;
/// The most bytes of request line and headers read from one client.
const MAX_REQUEST_HEAD: u64 = 16 * 1024;
/// How long a client has to send its request head, in all.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

fn refuse(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_write_timeout(Some(Duration::from_secs(1)))?;
    conn.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 17\r\n\
          connection: close\r\n\r\ntoo many clients\n",
    )
}

/// A stream whose reads share one deadline (a client dripping a byte at a time cannot hold a
/// connection thread forever).
struct Deadline {
    conn: TcpStream,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.conn.set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}

fn answer(conn: TcpStream, shared: &Weak<Shared>) -> std::io::Result<()> {
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let head = Deadline {
        conn: conn.try_clone()?,
        until: Instant::now() + REQUEST_DEADLINE,
    };
    let mut reader = BufReader::new(head.take(MAX_REQUEST_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers (up to the blank line); bodies are not expected.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    if reader.get_ref().limit() == 0 {
        let mut conn = conn;
        conn.write_all(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
              connection: close\r\n\r\n",
        )?;
        // Close gently: unread input at close would reset the connection and could destroy
        // the answer before the client reads it. Discard a bounded amount first.
        conn.shutdown(std::net::Shutdown::Write)?;
        let rest = Deadline {
            conn,
            until: Instant::now() + Duration::from_secs(1),
        };
        return std::io::copy(&mut rest.take(1 << 20), &mut std::io::sink()).map(drop);
    }
    if !line.ends_with('\n') {
        return Err(std::io::ErrorKind::UnexpectedEof.into()); // the client went away
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, kind, body) = match (method, path) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", PAGE.to_string()),
        ("GET", "/snapshot.json") => match shared.upgrade() {
            Some(shared) => (
                "200 OK",
                "application/json",
                snapshot_json(&shared).to_string(),
            ),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "runtime gone\n".into(),
            ),
        },
        ("GET", "/trace.json") => match parse_last(query) {
            Ok(last) => ("200 OK", "application/json", super::trace::trace_json(last)),
            Err(e) => ("400 Bad Request", "text/plain", format!("{e}\n")),
        },
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body.as_bytes())
}

/// `last=2s` / `last=500ms` from a query string.
fn parse_last(query: &str) -> Result<Option<Duration>, String> {
    let Some(v) = query.split('&').find_map(|kv| kv.strip_prefix("last=")) else {
        return Ok(None);
    };
    let (num, unit) = match v.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (v.strip_suffix('s').unwrap_or(v), 1.0),
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * unit <= 86_400.0 => {
            Ok(Some(Duration::from_secs_f64(n * unit)))
        }
        _ => Err(format!("bad last={v:?}: use e.g. last=2s or last=500ms")),
    }
}

/// How far apart the two snapshots are that must agree before a task is flagged lost.
const CONFIRM_GAP: Duration = Duration::from_millis(10);

/// The JSON the live view and `scraipe observe` read.
pub(crate) fn snapshot_json(shared: &Shared) -> Value {
    let snap = Snapshot::take(shared);
    // "No waker" is reported only when two snapshots agree (see `snapshot`: one alone can
    // catch a waker in the middle of being handed over): with a candidate in this one, take a
    // second a moment later and keep the tasks both flag, not polled in between.
    let lost: std::collections::HashSet<u64> = if snap.tasks.iter().any(|t| t.no_waker) {
        std::thread::sleep(CONFIRM_GAP);
        let second = Snapshot::take(shared);
        snap.tasks
            .iter()
            .filter(|t| {
                t.no_waker
                    && second
                        .task(t.id)
                        .is_some_and(|s| s.no_waker && s.polls == t.polls)
            })
            .map(|t| t.id)
            .collect()
    } else {
        Default::default()
    };
    let workers: Vec<Value> = shared
        .remotes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let m = r.metrics.snapshot(r.stealer.len(), 0);
            let polling = r.obs_slot.current();
            let timing = super::timing::is_timing().then(|| {
                let t = r.obs_slot.timing.snapshot(&r.driver.timers.lateness);
                let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
                json!({
                    "busy_ms": t.busy.as_secs_f64() * 1e3,
                    "sampling": match t.sampling {
                        super::TimingSampling::Adaptive => "adaptive".to_string(),
                        super::TimingSampling::OneIn(n) => format!("1 in {n}"),
                    },
                    "timed_polls": t.poll.count(),
                    "poll_p50_ms": ms(t.poll.quantile(0.5)),
                    "poll_p99_ms": ms(t.poll.quantile(0.99)),
                    "wake_to_poll_p50_ms": ms(t.wake_to_poll.quantile(0.5)),
                    "wake_to_poll_p99_ms": ms(t.wake_to_poll.quantile(0.99)),
                    "timer_late_p99_ms": ms(t.timer_lateness.quantile(0.99)),
                })
            });
            json!({
                "index": i,
                "polls": m.polls,
                "steals": m.steals,
                "parks": m.parks,
                "io_events": m.io_events,
                "timers_fired": m.timers_fired,
                "queue_depth": r.stealer.len(),
                "polling": polling.map(|(id, loc)| json!({
                    "task": id, "spawned_at": format!("{}:{}", loc.file(), loc.line())})),
                "timing": timing,
            })
        })
        .collect();
    let tasks: Vec<Value> = snap
        .tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "spawned_at": t.spawned_at(),
                "status": match t.status {
                    TaskStatus::Idle => "idle",
                    TaskStatus::Scheduled if t.blocking => "queued",
                    TaskStatus::Scheduled => "scheduled",
                    TaskStatus::Running => "running",
                },
                "blocking": t.blocking,
                "polls": t.polls,
                "wakes": {
                    "self": t.wakes.self_wake, "same_worker": t.wakes.same_worker,
                    "other_worker": t.wakes.other_worker, "reactor": t.wakes.reactor,
                    "timer": t.wakes.timer, "outside": t.wakes.outside,
                },
                "last_worker": t.last_worker,
                "woken_by": t.woken_by.map(|(task, worker)| json!({"task": task, "worker": worker})),
                "waits_on": t.waits_on.iter().map(|w| match w {
                    WaitsOn::Socket { worker, token, direction } =>
                        json!({"socket": token, "direction": direction, "reactor": worker}),
                    WaitsOn::Timer { worker, deadline } => json!({"timer_in_ms":
                        deadline.saturating_duration_since(std::time::Instant::now()).as_secs_f64() * 1e3,
                        "heap": worker}),
                    WaitsOn::Channel { kind } => json!({"channel": kind}),
                }).collect::<Vec<_>>(),
                "no_waker": lost.contains(&t.id),
            })
        })
        .collect();
    json!({
        "workers": workers,
        "tasks": tasks,
        "injector_depth": shared.injector.len(),
        "tracing": super::trace::is_tracing(),
    })
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>scraipe observatory</title>
<style>
body{font:13px monospace;margin:1em;background:#fafafa}
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee}.lane{display:inline-block;width:220px;margin:4px;padding:6px;border:1px solid #888;background:#fff}
.warn{color:#b00;font-weight:bold}.busy{background:#ffe9b3}
</style></head><body>
<h1>scraipe observatory</h1>
<p><a href="/trace.json?last=2s" download="scraipe-trace.json">download the last 2 s of trace</a>
(open it in Perfetto: ui.perfetto.dev → Open trace file) · refreshes every second</p>
<div id="lanes"></div><div id="warnings"></div>
<table id="tasks"><thead><tr><th>id</th><th>spawned at</th><th>status</th><th>polls</th>
<th>wakes self/same/other/reactor/timer/outside</th><th>woken by</th><th>last worker</th><th>waits on</th></tr></thead><tbody></tbody></table>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]))}
function dur(ms){return ms<1000?ms.toFixed(0)+' ms':ms<120000?(ms/1000).toFixed(1)+' s':(ms/60000).toFixed(0)+' min'}
function waits(w){return w.channel!==undefined?w.channel:w.timer_in_ms!==undefined?(w.timer_in_ms<0?'timer '+dur(-w.timer_in_ms)+' late':'timer in '+dur(w.timer_in_ms))+' (worker '+w.heap+')':w.socket!==undefined?'socket '+w.socket+' '+w.direction+' (worker '+w.reactor+')':JSON.stringify(w)}
function by(b){return b?'task '+b.task+(b.worker!==null?' (worker '+b.worker+')':''):''}
async function tick(){
  try{
    const s=await (await fetch('/snapshot.json',{cache:'no-store'})).json();
    document.getElementById('lanes').innerHTML=s.workers.map(w=>
      `<div class="lane ${w.polling?'busy':''}"><b>worker ${w.index}</b><br>polls ${w.polls} · steals ${w.steals} · parks ${w.parks}<br>queue ${w.queue_depth}<br>`+
      (w.polling?`polling task ${w.polling.task}<br>${esc(w.polling.spawned_at)}`:'idle')+`</div>`).join('');
    const lost=s.tasks.filter(t=>t.no_waker);
    document.getElementById('warnings').innerHTML=lost.map(t=>
      `<p class="warn">task ${t.id} (${esc(t.spawned_at)}) is idle and no waker refers to it: it can never run again</p>`).join('');
    document.querySelector('#tasks tbody').innerHTML=s.tasks.map(t=>{const w=t.wakes;return `<tr><td>${t.id}</td><td>${esc(t.spawned_at)}</td><td>${t.status}</td><td>${t.polls}</td>`+
      `<td>${w.self}/${w.same_worker}/${w.other_worker}/${w.reactor}/${w.timer}/${w.outside}</td><td>${esc(by(t.woken_by))}</td><td>${t.last_worker??''}</td><td>${esc(t.waits_on.map(waits).join(', '))}</td></tr>`}).join('');
  }catch(e){document.getElementById('warnings').innerHTML='<p class="warn">'+esc(e)+'</p>'}
}
tick();setInterval(tick,1000);
</script></body></html>
"#;
