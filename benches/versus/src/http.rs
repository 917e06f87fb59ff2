//! HTTP/1.1 GET throughput and memory: our client against reqwest and hyper, on our demo server
//! and on nginx (when installed), with wrk's figure as a reference point (a C load generator
//! that parses far less of each response than a client library must: not a ceiling; a client
//! can beat it).
//!
//! Every client runs in its own child process pinned to CPU 0 (`taskset`); servers are pinned to
//! CPU 1. Client CPU time is the child's own user+sys time (getrusage), so it measures exactly
//! the client's cost per request.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::memory::{child_json, rss};
use crate::report::{Better, Row};
use crate::stats::Runs;
use crate::Settings;

/// A server in a child process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub name: &'static str,
    _dir: Option<TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pinned(cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if crate::have("taskset") {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts our demo server (one worker thread) pinned to CPU 1.
pub fn start_demo_server() -> Result<Server, String> {
    start_demo_server_with(&[])
}

/// Like `start_demo_server`; `["plain", "5000"]` serves 5,000 pages without slow or failing ones.
pub fn start_demo_server_with(extra: &[&str]) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = pinned("1", exe)
        .args(["--child", "serve"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| format!("server printed {line:?}"))?;
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "scraipe serve-demo",
        _dir: None,
    })
}

/// Child-process entry: serve the demo site until stdin closes (`serve [plain N]`).
pub fn child_serve(args: &[String]) {
    let rt = scraipe::rt::Builder::new()
        .worker_threads(1)
        .thread_name("demo-server")
        .build()
        .unwrap();
    let site = match args {
        [mode, n, ..] if mode == "plain" => {
            scraipe::demo::DemoSite::plain(n.parse().unwrap_or(5000), 1)
        }
        _ => scraipe::demo::DemoSite::new(100, 1),
    };
    site.generate_all();

    let server = rt
        .block_on(async {
            scraipe::demo::DemoServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), site)
        })
        .expect("demo server starts");
    println!("{}", server.local_addr().port());
    std::io::stdout().flush().unwrap();
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    drop(server);
}

/// Starts nginx (one worker, pinned to CPU 1) serving /bytes/1024 and /bytes/102400.
pub fn start_nginx() -> Result<Server, String> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        return Err("nginx not installed".into());
    };
    let dir = std::env::temp_dir().join(format!("versus-nginx-{}", std::process::id()));
    let www = dir.join("www/bytes");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
    for n in [1024usize, 102_400] {
        let body: Vec<u8> = (0..n)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz \n"[i % 28])
            .collect();
        std::fs::write(www.join(n.to_string()), body).map_err(|e| e.to_string())?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let conf = format!(
        "worker_processes 1;\nworker_cpu_affinity 10;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 16384; }}\n\
         http {{ access_log off; default_type text/html; keepalive_requests 10000000; keepalive_timeout 60s;\n\
           client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen 127.0.0.1:{port}; root {d}/www; location / {{ }} }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
    // nginx's workers run as `nobody`: let them read the files.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status();
    let child = Command::new(nginx)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nginx did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "nginx",
        _dir: Some(TempDir(dir)),
    })
}

use crate::stats::process_cpu as cpu_seconds;

/// Child-process entry: `http-client <ours|reqwest|hyper> <workers> <url> <seconds> <concurrency>`:
/// `concurrency` tasks GET `url` in a loop until `seconds` have passed.
/// Prints `{"rps", "cpu10k", "ok", "failed", "secs"}`.
pub fn child_client(args: &[String]) {
    let (client, workers, url, secs, conc) = (
        args[0].as_str(),
        args[1].parse::<usize>().unwrap(),
        args[2].clone(),
        args[3].parse::<f64>().unwrap(),
        args[4].parse::<usize>().unwrap(),
    );
    let until = Arc::new(Instant::now() + Duration::from_secs_f64(secs));
    let remaining = until;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    crate::runtime::observe_from_env();
    let (elapsed, cpu) = match client {
        "ours" => {
            let rt = scraipe::rt::Builder::new()
                .worker_threads(workers)
                .build()
                .unwrap();
            let c = scraipe::http::Client::builder()
                .max_connections_per_host(conc)
                .build()
                .unwrap();
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            rt.block_on(async {
                let mut set = scraipe::rt::JoinSet::new();
                for _ in 0..conc {
                    let (c, url, remaining, ok, failed) = (
                        c.clone(),
                        url.clone(),
                        remaining.clone(),
                        ok.clone(),
                        failed.clone(),
                    );
                    set.spawn(async move {
                        while take(&remaining) {
                            match c.get(&url).await {
                                Ok(r) if r.status() == 200 && !r.body().is_empty() => {
                                    ok.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    });
                }
                while set.join_next().await.is_some() {}
            });
            (start.elapsed(), cpu_seconds() - cpu0)
        }
        "reqwest" => {
            let rt = tokio_rt(workers);
            let c = reqwest::Client::builder()
                .pool_max_idle_per_host(conc)
                .build()
                .unwrap();
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            rt.block_on(async {
                let tasks: Vec<_> = (0..conc)
                    .map(|_| {
                        let (c, url, remaining, ok, failed) = (
                            c.clone(),
                            url.clone(),
                            remaining.clone(),
                            ok.clone(),
                            failed.clone(),
                        );
                        tokio::spawn(async move {
                            while take(&remaining) {
                                let mut good = false;
                                if let Ok(r) = c.get(&url).send().await {
                                    let status = r.status().as_u16();
                                    if let Ok(b) = r.bytes().await {
                                        good = status == 200 && !b.is_empty();
                                    }
                                }
                                let n = if good { &ok } else { &failed };
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            (start.elapsed(), cpu_seconds() - cpu0)
        }
        _ => {
            use http_body_util::BodyExt;
            let rt = tokio_rt(workers);
            let uri: hyper::Uri = url.parse().unwrap();
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            rt.block_on(async {
                let c = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .pool_max_idle_per_host(conc)
                .build::<_, http_body_util::Empty<hyper::body::Bytes>>(hyper_connector());
                let tasks: Vec<_> = (0..conc)
                    .map(|_| {
                        let (c, uri, remaining, ok, failed) = (
                            c.clone(),
                            uri.clone(),
                            remaining.clone(),
                            ok.clone(),
                            failed.clone(),
                        );
                        tokio::spawn(async move {
                            while take(&remaining) {
                                let mut good = false;
                                if let Ok(r) = c.get(uri.clone()).await {
                                    let status = r.status().as_u16();
                                    if let Ok(b) = r.into_body().collect().await {
                                        good = status == 200 && !b.to_bytes().is_empty();
                                    }
                                }
                                let n = if good { &ok } else { &failed };
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            (start.elapsed(), cpu_seconds() - cpu0)
        }
    };
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "rps": ok as f64 / elapsed.as_secs_f64(),
            "cpu10k": cpu / ok.max(1) as f64 * 10_000.0,
            "ok": ok,
            "failed": failed.load(Ordering::Relaxed),
            "secs": elapsed.as_secs_f64(),
        })
    );
}

/// Whether a client task should send another request: until the run's deadline.
fn take(until: &Instant) -> bool {
    Instant::now() < *until
}

/// hyper-util's connector with `TCP_NODELAY`, as our client and reqwest set it.
fn hyper_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    let mut c = hyper_util::client::legacy::connect::HttpConnector::new();
    c.set_nodelay(true);
    c
}

pub fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap()
    }
}

/// wrk's requests/s on `url` (pinned to CPU 0): a reference point, not a ceiling.
fn wrk(url: &str, secs: u32) -> Result<f64, String> {
    let out = pinned("0", "wrk")
        .args(["-t1", "-c64", &format!("-d{secs}s"), url])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse::<f64>())
        })
        .ok_or_else(|| format!("wrk printed {text:?}"))?
        .map_err(|e| e.to_string())
}

/// Seconds each HTTP client run lasts (every run ≥ 2 s).
pub fn run_secs(settings: &Settings) -> f64 {
    if settings.quick {
        2.0
    } else {
        3.0
    }
}

/// Runs per HTTP cell: 3 with `--quick`, 5 full (each run lasts seconds), never more than
/// `--runs`.
pub fn http_runs(settings: &Settings) -> usize {
    settings.slow_runs()
}

pub fn run(settings: &Settings, rows: &mut Vec<Row>) {
    let mut servers = Vec::new();
    match start_demo_server() {
        Ok(s) => servers.push(s),
        Err(e) => eprintln!("  demo server failed to start: {e}"),
    }
    match start_nginx() {
        Ok(s) => servers.push(s),
        Err(e) => eprintln!("  nginx rows skipped: {e}"),
    }
    let conc = 64;
    let secs = run_secs(settings);
    // Two client workers pinned to one core only show scheduling overhead; the full run has them.
    let worker_counts: &[usize] = if settings.quick { &[1] } else { &[1, 2] };
    for server in &servers {
        for size in [1024usize, 102_400] {
            let url = format!("{}/bytes/{size}", server.base);
            let label = if size == 1024 { "1 KiB" } else { "100 KiB" };
            for &workers in worker_counts {
                let mut rps: [Runs; 3] = Default::default();
                let mut cpu: [Runs; 3] = Default::default();
                for _ in 0..http_runs(settings) {
                    for (i, client) in ["ours", "reqwest", "hyper"].iter().enumerate() {
                        let args = [
                            "http-client".to_string(),
                            client.to_string(),
                            workers.to_string(),
                            url.clone(),
                            secs.to_string(),
                            conc.to_string(),
                        ];
                        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                        match child_json(&refs, Some("0")) {
                            Ok(v) if v["failed"].as_u64() == Some(0) => {
                                rps[i].push(v["rps"].as_f64().unwrap_or(f64::NAN));
                                cpu[i].push(v["cpu10k"].as_f64().unwrap_or(f64::NAN));
                            }
                            Ok(v) => eprintln!(
                                "  {client}: run discarded, {} requests failed ({} ok)",
                                v["failed"], v["ok"]
                            ),
                            Err(e) => eprintln!("  {client} failed: {e}"),
                        }
                    }
                }
                let bench = format!(
                    "GET {label}, {} ({workers}w client, {secs:.0} s runs)",
                    server.name
                );
                let [ours_rps, reqwest_rps, hyper_rps] = rps;
                let [ours_cpu, reqwest_cpu, hyper_cpu] = cpu;
                for (rival, theirs) in [
                    ("reqwest (tcp_nodelay by default)", reqwest_rps),
                    (
                        "hyper-util legacy Client (HttpConnector set_nodelay(true))",
                        hyper_rps,
                    ),
                ] {
                    let row = Row::new(
                        "http",
                        bench.clone(),
                        "req/s",
                        ours_rps.clone(),
                        rival,
                        Some(theirs),
                        Better::Higher,
                    );
                    row.log();
                    rows.push(row);
                }
                for (rival, theirs) in [("reqwest", reqwest_cpu), ("hyper", hyper_cpu)] {
                    rows.push(Row::new(
                        "http",
                        format!("{bench}, client CPU"),
                        "CPU s/10k req",
                        ours_cpu.clone(),
                        rival,
                        Some(theirs),
                        Better::Lower,
                    ));
                }
                if workers == 1 && crate::have("wrk") {
                    let mut w = Runs::default();
                    for _ in 0..http_runs(settings) {
                        if let Ok(v) = wrk(&url, secs.round() as u32) {
                            w.push(v);
                        }
                    }
                    if !w.is_empty() {
                        let row = Row::new(
                            "http",
                            bench.clone(),
                            "req/s",
                            ours_rps.clone(),
                            "wrk -t1 -c64 (reference, not a ceiling: C load generator)",
                            Some(w),
                            Better::Higher,
                        );
                        row.log();
                        rows.push(row);
                    }
                }
            }
        }
    }
}

/// Child-process entry: `mem-inflight <ours|reqwest|hyper> <url> <n>`: n concurrent GETs that
/// the server holds for seconds; prints `{"per_request", "ok"}` from the peak RSS.
pub fn child_mem_inflight(args: &[String]) {
    let (client, url, n) = (
        args[0].as_str(),
        args[1].clone(),
        args[2].parse::<usize>().unwrap(),
    );
    let ok = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = |before: usize| {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss().saturating_sub(before), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    match client {
        "ours" => {
            let rt = scraipe::rt::Builder::new()
                .worker_threads(2)
                .build()
                .unwrap();
            let c = scraipe::http::Client::builder()
                .max_connections_per_host(n * 2)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let s = sampler(rss());
            rt.block_on(async {
                let mut set = scraipe::rt::JoinSet::new();
                for _ in 0..n {
                    let (c, url, ok) = (c.clone(), url.clone(), ok.clone());
                    set.spawn(async move {
                        if c.get(&url).await.is_ok_and(|r| r.status() == 200) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                while set.join_next().await.is_some() {}
            });
            done.store(true, Ordering::Relaxed);
            s.join().unwrap();
        }
        "reqwest" => {
            let rt = tokio_rt(2);
            let c = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let s = sampler(rss());
            rt.block_on(async {
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let (c, url, ok) = (c.clone(), url.clone(), ok.clone());
                        tokio::spawn(async move {
                            if let Ok(r) = c.get(&url).send().await {
                                if r.status() == 200 && r.bytes().await.is_ok() {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            done.store(true, Ordering::Relaxed);
            s.join().unwrap();
        }
        _ => {
            use http_body_util::BodyExt;
            let rt = tokio_rt(2);
            let uri: hyper::Uri = url.parse().unwrap();
            let s = sampler(rss());
            rt.block_on(async {
                let c = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build::<_, http_body_util::Empty<hyper::body::Bytes>>(hyper_connector());
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let (c, uri, ok) = (c.clone(), uri.clone(), ok.clone());
                        tokio::spawn(async move {
                            if let Ok(r) = c.get(uri).await {
                                if r.status() == 200 && r.into_body().collect().await.is_ok() {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            done.store(true, Ordering::Relaxed);
            s.join().unwrap();
        }
    }
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({"per_request": peak.load(Ordering::Relaxed) as f64 / n as f64, "ok": ok})
    );
}

pub fn memory_in_flight(settings: &Settings, rows: &mut Vec<Row>) {
    let Ok(server) = start_demo_server() else {
        return;
    };
    let n = 5_000;
    let url = format!("{}/delay/4000", server.base);
    let runs = settings.slow_runs();
    let mut per: [Runs; 3] = Default::default();
    for _ in 0..runs {
        for (i, client) in ["ours", "reqwest", "hyper"].iter().enumerate() {
            let args = [
                "mem-inflight".to_string(),
                client.to_string(),
                url.clone(),
                n.to_string(),
            ];
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            match child_json(&refs, Some("0")) {
                Ok(v) if v["ok"].as_u64() == Some(n as u64) => {
                    per[i].push(v["per_request"].as_f64().unwrap_or(f64::NAN))
                }
                Ok(v) => eprintln!("  {client}: only {} of {n} requests succeeded", v["ok"]),
                Err(e) => eprintln!("  {client} failed: {e}"),
            }
        }
    }
    eprintln!(
        "  memory per in-flight request: ours {:.0} B, reqwest {:.0} B, hyper {:.0} B",
        per[0].median(),
        per[1].median(),
        per[2].median()
    );
    let [ours, reqwest, hyper] = per;
    for (rival, theirs) in [("reqwest", reqwest), ("hyper", hyper)] {
        rows.push(Row {
            group: "memory",
            bench: format!("RSS per in-flight request ({n} concurrent GETs held 4 s)"),
            unit: "bytes",
            ours: ours.clone(),
            rival: rival.into(),
            theirs: Some(theirs),
            better: Better::Lower,
            note: String::new(),
            cpu: None,
        });
    }
}
