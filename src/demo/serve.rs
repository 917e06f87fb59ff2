//! `scraipe serve-demo`: serve the site until told to stop.
//!
//! [`serve_forever`] stops on Ctrl-C (SIGINT) or SIGTERM: a `sigaction` handler sets a flag
//! that the main thread checks every 50 ms, then the server closes its connections and the
//! function prints a summary and returns. The handler is installed with `SA_RESETHAND`, so a
//! second Ctrl-C kills the process the usual way if the first did not end it.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::server::{DemoServer, ServerOptions};
use super::shop::{Shop, ShopServer, ShopServerOptions, ShopStats};
use super::site::DemoSite;
use crate::rt::Builder;

/// What to serve and how.
///
/// ```
/// let options = scraipe::demo::ServeOptions { pages: 500, ..Default::default() };
/// assert_eq!(options.addr.port(), 8080);
/// assert!(options.addr.ip().is_loopback());
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Number of pages (default 1,000).
    pub pages: usize,
    /// Seed of the generated text (default 0).
    pub seed: u64,
    /// Runtime worker threads (default 1; 0 serves on the calling thread).
    pub threads: usize,
    /// Server settings.
    pub server: ServerOptions,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            pages: 1000,
            seed: 0,
            threads: 1,
            server: ServerOptions::default(),
        }
    }
}

/// Totals of a [`serve_until`] run.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeReport {
    /// The address that was served.
    pub addr: SocketAddr,
    /// Responses sent.
    pub requests: u64,
    /// Connections accepted.
    pub connections: u64,
    /// How long the server ran.
    pub elapsed: Duration,
}

/// Serves `options` until `stop()` returns true (checked every 50 ms), announcing the URL on
/// stdout first. `on_ready` gets the bound address once the server is accepting (useful with
/// port 0); it runs on the calling thread, so with `threads: 0` (nobody else drives the
/// runtime yet) it must not wait for a response.
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use scraipe::demo::{serve_until, ServeOptions};
///
/// let done = AtomicBool::new(false);
/// let options = ServeOptions { addr: "127.0.0.1:0".parse().unwrap(), pages: 10, ..Default::default() };
/// let report = serve_until(
///     &options,
///     |addr| {
///         let mut client = std::net::TcpStream::connect(addr).unwrap();
///         client.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
///         let mut response = String::new();
///         client.read_to_string(&mut response).unwrap();
///         assert!(response.ends_with("ok\n"));
///         done.store(true, Ordering::SeqCst);
///     },
///     || done.load(Ordering::SeqCst),
/// )?;
/// assert_eq!((report.requests, report.connections), (1, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_until(
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
    stop: impl Fn() -> bool,
) -> io::Result<ServeReport> {
    let runtime = Builder::new()
        .worker_threads(options.threads)
        .thread_name("demo-server")
        .build()?;
    let site = DemoSite::new(options.pages, options.seed);
    let mut server =
        DemoServer::start_with(runtime.handle(), options.addr, site, options.server.clone())?;
    let started = Instant::now();
    println!(
        "serving the demo site ({} pages, seed {}) at {}/ on {} worker thread(s)",
        server.site().pages(),
        options.seed,
        server.base_url(),
        options.threads
    );
    let _ = io::stdout().flush();
    on_ready(server.local_addr());
    // `block_on` drives a runtime without worker threads on this thread, and just waits on one
    // with workers; either way the server runs until `stop` says so.
    runtime.block_on(async {
        while !stop() {
            crate::rt::sleep(Duration::from_millis(50)).await;
        }
    });
    server.stop();
    Ok(ServeReport {
        addr: server.local_addr(),
        requests: server.requests_served(),
        connections: server.connections_accepted(),
        elapsed: started.elapsed(),
    })
}

/// `scraipe serve-demo`: serves `pages` pages on `127.0.0.1:port` with `threads` worker
/// threads until Ctrl-C or SIGTERM, then prints what it served.
pub fn serve_forever(port: u16, pages: usize, threads: usize) -> io::Result<()> {
    let options = ServeOptions {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        pages,
        threads,
        ..ServeOptions::default()
    };
    install_stop_handlers()?;
    let report = serve_until(
        &options,
        |_| println!("press Ctrl-C to stop"),
        || STOP.load(Ordering::Relaxed),
    )?;
    println!(
        "stopped after {:.1} s: {} requests on {} connections",
        report.elapsed.as_secs_f64(),
        report.requests,
        report.connections
    );
    Ok(())
}

/// `scraipe serve-demo --shop`: serves `shop` on `addr` with `threads` worker threads (0: on
/// the calling thread) until Ctrl-C or SIGTERM. `on_ready` runs once the server accepts (to
/// print where, or write the URL list for the port actually bound); an error from it stops the
/// server and is returned. Returns the shop's counters at the end.
pub fn serve_shop_forever(
    addr: SocketAddr,
    shop: Shop,
    options: ShopServerOptions,
    threads: usize,
    on_ready: impl FnOnce(&ShopServer) -> io::Result<()>,
) -> io::Result<ShopStats> {
    install_stop_handlers()?;
    let runtime = Builder::new()
        .worker_threads(threads)
        .thread_name("demo-shop")
        .build()?;
    let mut server = ShopServer::start_with(runtime.handle(), addr, shop, options)?;
    on_ready(&server)?;
    let _ = io::stdout().flush();
    runtime.block_on(async {
        while !STOP.load(Ordering::Relaxed) {
            crate::rt::sleep(Duration::from_millis(50)).await;
        }
    });
    server.stop();
    Ok(server.stats())
}

/// Set by the signal handler.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn install_stop_handlers() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is plain data, zero-initialised is a valid empty value;
        // `sigemptyset` initialises its mask. The handler only stores to an atomic, which is
        // async-signal-safe, and has the `extern "C" fn(c_int)` signature `sa_sigaction` expects
        // without SA_SIGINFO.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
