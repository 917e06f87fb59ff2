//! The shop on the demo HTTP/1.1 server: routing on `Host`, conditional GETs, robots.txt, and
//! the counters tests check a crawler against.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::page;
use super::Shop;
use crate::demo::http::{parse_imf_fixdate, Method};
use crate::demo::server::{Running, ServerOptions};
use crate::demo::service::{Body, Reply, Service, PLAIN};
use crate::rt::Handle;

/// The most products one server counts requests for (4 bytes each).
const MAX_PRODUCTS: u64 = 100_000_000;

/// How the shop is served.
///
/// ```
/// use std::time::Duration;
/// let options = scraipe::demo::shop::ShopServerOptions {
///     latency: Duration::from_millis(20),
///     ..Default::default()
/// };
/// assert_eq!(options.server.max_head_bytes, 16 * 1024);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ShopServerOptions {
    /// Every response waits this long before it is sent (default none): real sites take tens
    /// of milliseconds, and requests to one host only overlap, and show up in
    /// [`ShopStats::max_in_flight_per_host`], when answering takes time.
    pub latency: Duration,
    /// Connection settings (idle timeout, head limit).
    pub server: ServerOptions,
}

/// What the shop has seen so far.
#[derive(Debug, Clone, Default)]
pub struct ShopStats {
    /// Requests answered (any host, any path, any status).
    pub requests: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// Requests for `/robots.txt` (404s included).
    pub robots_requests: u64,
    /// Requests for a path the host's robots.txt disallows (a compliant crawler keeps it 0).
    pub disallowed_requests: u64,
    /// The most requests in flight at once on one host (from the parsed head until the
    /// response is queued), over the server's life.
    pub max_in_flight_per_host: usize,
    /// GET and HEAD requests per product URL (`http://shop-{i}.localhost:{port}/product/{j}`,
    /// the port the server listens on), 304s included; URLs never requested are absent.
    pub product_requests_per_url: HashMap<String, u64>,
}

/// The shop served over HTTP/1.1 on a runtime; dropping it (or [`stop`](ShopServer::stop))
/// closes the listener and every connection.
///
/// ```
/// use scraipe::demo::shop::{Shop, ShopOptions, ShopServer};
/// let rt = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
/// let shop = Shop::new(ShopOptions { hosts: 10, ..Default::default() });
/// let server = ShopServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), shop)?;
/// let client = scraipe::http::Client::new();
/// let url = format!("http://shop-4.localhost:{}/product/0", server.port());
/// let response = rt.block_on(client.get(&url)).unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(server.stats().product_requests_per_url[&url], 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ShopServer {
    running: Running<ShopService>,
}

impl std::fmt::Debug for ShopServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopServer")
            .field("local_addr", &self.local_addr())
            .field("shop", self.shop())
            .finish()
    }
}

impl ShopServer {
    /// Binds `addr` (port 0 picks a free one; use a loopback address) and serves `shop` on
    /// `handle`'s runtime with default [`ShopServerOptions`].
    pub fn start(handle: &Handle, addr: SocketAddr, shop: Shop) -> io::Result<ShopServer> {
        ShopServer::start_with(handle, addr, shop, ShopServerOptions::default())
    }

    /// Like [`start`](ShopServer::start) with explicit options. Fails with `InvalidInput`
    /// beyond 100 million products.
    pub fn start_with(
        handle: &Handle,
        addr: SocketAddr,
        shop: Shop,
        options: ShopServerOptions,
    ) -> io::Result<ShopServer> {
        let o = shop.options();
        let products = (o.hosts as u64).saturating_mul(o.products_per_host as u64);
        if products > MAX_PRODUCTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the shop has {products} products; at most {MAX_PRODUCTS} are served"),
            ));
        }
        let counters = Arc::new(Counters {
            requests: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            robots: AtomicU64::new(0),
            disallowed: AtomicU64::new(0),
            max_in_flight: AtomicUsize::new(0),
            in_flight: (0..o.hosts).map(|_| AtomicU32::new(0)).collect(),
            product_hits: (0..products).map(|_| AtomicU32::new(0)).collect(),
        });
        let service = ShopService {
            shop,
            counters,
            latency: options.latency,
        };
        Ok(ShopServer {
            running: Running::start(handle, addr, service, options.server)?,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// The port, for [`Shop::urls`].
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The shop being served.
    pub fn shop(&self) -> &Shop {
        &self.running.service().shop
    }

    /// The counters so far (a snapshot).
    pub fn stats(&self) -> ShopStats {
        let service = self.running.service();
        let c = &service.counters;
        let per_host = service.shop.options().products_per_host.max(1);
        let port = self.port();
        let product_requests_per_url = c
            .product_hits
            .iter()
            .enumerate()
            .filter_map(|(global, hits)| {
                let hits = hits.load(Relaxed);
                (hits > 0).then(|| {
                    let (i, j) = (global / per_host, global % per_host);
                    (
                        format!("http://shop-{i}.localhost:{port}/product/{j}"),
                        u64::from(hits),
                    )
                })
            })
            .collect();
        ShopStats {
            requests: c.requests.load(Relaxed),
            not_modified: c.not_modified.load(Relaxed),
            robots_requests: c.robots.load(Relaxed),
            disallowed_requests: c.disallowed.load(Relaxed),
            max_in_flight_per_host: c.max_in_flight.load(Relaxed),
            product_requests_per_url,
        }
    }

    /// Requests for one product URL so far (cheaper than [`stats`](ShopServer::stats) for a
    /// single URL); 0 for anything that is not a product URL of this shop.
    pub fn product_requests(&self, url: &str) -> u64 {
        let shop = self.shop();
        let Some((authority, path)) = super::split_url(url) else {
            return 0;
        };
        shop.host_index(authority)
            .and_then(|h| shop.product(h, path.split(['?', '#']).next().unwrap_or("")))
            .and_then(|id| {
                self.running
                    .service()
                    .counters
                    .product_hits
                    .get(id.global as usize)
            })
            .map_or(0, |hits| u64::from(hits.load(Relaxed)))
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.running.open_connections()
    }

    /// Stops accepting, closes every connection and waits until that is done. Idempotent; the
    /// stats stay readable.
    pub fn stop(&mut self) {
        self.running.stop();
    }
}

struct Counters {
    requests: AtomicU64,
    not_modified: AtomicU64,
    robots: AtomicU64,
    disallowed: AtomicU64,
    max_in_flight: AtomicUsize,
    /// Per host: requests between head and queued response.
    in_flight: Box<[AtomicU32]>,
    /// Per product (global index): GET/HEAD requests.
    product_hits: Box<[AtomicU32]>,
}

pub(crate) struct ShopService {
    shop: Shop,
    counters: Arc<Counters>,
    latency: Duration,
}

/// What the shop keeps of a request head.
pub(crate) struct ShopRequest {
    /// The host index, for a host of this shop.
    host: Option<usize>,
    /// Path and query.
    path: String,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    _in_flight: Option<InFlight>,
}

/// Counts a request in flight on its host until dropped.
struct InFlight {
    counters: Arc<Counters>,
    host: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counters.in_flight[self.host].fetch_sub(1, Relaxed);
    }
}

impl Service for ShopService {
    type Request = ShopRequest;

    /// A crawler sends one request at a time per connection and keeps many connections
    /// open (one per host): small idle connections matter more than pipelining.
    const READ_BUFFER: usize = 1024;

    fn request(
        &self,
        _method: Method,
        target: &str,
        headers: &[httparse::Header<'_>],
    ) -> ShopRequest {
        let mut host_header = None;
        let mut if_none_match = None;
        let mut if_modified_since = None;
        for h in headers {
            let value = || String::from_utf8_lossy(h.value).trim().to_string();
            if h.name.eq_ignore_ascii_case("host") {
                host_header = Some(value());
            } else if h.name.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value());
            } else if h.name.eq_ignore_ascii_case("if-modified-since") {
                if_modified_since = Some(value());
            }
        }
        // An absolute-form target names the host itself (RFC 9112 §3.2.2).
        let (authority, path) = match super::split_url(target) {
            Some((authority, path)) => (Some(authority.to_string()), path),
            None => (host_header, target),
        };
        let host = authority.and_then(|a| self.shop.host_index(&a));
        let in_flight = host.map(|host| {
            let now = self.counters.in_flight[host].fetch_add(1, Relaxed) + 1;
            self.counters.max_in_flight.fetch_max(now as usize, Relaxed);
            InFlight {
                counters: self.counters.clone(),
                host,
            }
        });
        ShopRequest {
            host,
            path: path.split('#').next().unwrap_or("").to_string(),
            if_none_match,
            if_modified_since,
            _in_flight: in_flight,
        }
    }

    fn reply(&self, method: Method, request: &ShopRequest) -> Reply {
        let c = &self.counters;
        c.requests.fetch_add(1, Relaxed);
        let mut reply = self.answer(method, request);
        reply.delay = self.latency;
        reply
    }
}

impl ShopService {
    fn answer(&self, method: Method, request: &ShopRequest) -> Reply {
        let c = &self.counters;
        if method == Method::Other {
            return Reply::error(405);
        }
        let Some(host) = request.host else {
            return Reply::error(404);
        };
        let path = request.path.as_str();
        let route = path.split('?').next().unwrap_or("");
        let robots = self.shop.robots(host);
        if route == "/robots.txt" {
            c.robots.fetch_add(1, Relaxed);
            return match robots {
                Some(r) => Reply::with_type(200, PLAIN, Body::Owned(r.text(host).into_bytes())),
                None => Reply::error(404),
            };
        }
        if robots.as_ref().is_some_and(|r| r.disallows(path)) {
            c.disallowed.fetch_add(1, Relaxed);
        }
        if route == "/" {
            let products = self.shop.options().products_per_host;
            return Reply::html(200, Body::Owned(page::index_page(host, products)));
        }
        let Some(id) = self.shop.product(host, route) else {
            return Reply::error(404);
        };
        if let Some(hits) = c.product_hits.get(id.global as usize) {
            hits.fetch_add(1, Relaxed);
        }
        let version = self.shop.version(id, self.shop.epoch());
        let body = page::product_page(host, id.j, &version.product, &version.state);
        let (send_etag, send_last_modified) = validators(self.shop.options().seed, host);
        let etag = send_etag.then(|| fnv1a(&body));
        let last_modified =
            send_last_modified.then(|| self.shop.last_modified(version.state.changed_at));
        let mut reply = if not_modified(request, etag, last_modified) {
            c.not_modified.fetch_add(1, Relaxed);
            // A 304 carries the validators (and Date) of the representation, no content.
            Reply::with_type(304, "", Body::Static(b""))
        } else {
            Reply::html(200, Body::Owned(body))
        };
        reply.etag = etag;
        reply.last_modified = last_modified;
        reply
    }
}

/// Which validators host `host` sends: (ETag, Last-Modified). 60 % both, 20 % only an ETag,
/// 20 % only Last-Modified.
pub(crate) fn validators(seed: u64, host: usize) -> (bool, bool) {
    let mut rng = crate::demo::text::Rng::new(seed ^ 0x7661_6c69, host as u64);
    match rng.below(10) {
        0 | 1 => (true, false),
        2 | 3 => (false, true),
        _ => (true, true),
    }
}

/// RFC 9110 §13.2.2: `If-None-Match` when present (and the host has entity tags), else
/// `If-Modified-Since` (when the host sends Last-Modified).
fn not_modified(request: &ShopRequest, etag: Option<u64>, last_modified: Option<u64>) -> bool {
    if let (Some(list), Some(tag)) = (&request.if_none_match, etag) {
        let ours = format!("\"{tag:016x}\"");
        return list.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == ours
        });
    }
    match (&request.if_modified_since, last_modified) {
        (Some(since), Some(modified)) => parse_imf_fixdate(since).is_some_and(|s| modified <= s),
        _ => false,
    }
}

/// FNV-1a, 64 bits: a stable content hash for strong ETags (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
