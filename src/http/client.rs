//! The client: configuration, redirects, retries on stale connections, timeouts.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use url::{Position, Url};

use crate::http::conn::{proto_fmt, Conn, ExchangeLimits, RawResponse};
use crate::http::decode;
use crate::http::dns::Resolver;
use crate::http::error::{Error, ErrorKind};
use crate::http::pool::{Checkout, Pool, PoolConfig, PoolKey};
use crate::http::proto::{request::write_head, HeadLimits};
use crate::http::stream::{Stream, TlsStream};
use crate::http::tls;
use crate::http::{Headers, Response};
use crate::rt::{self, net::TcpStream};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
}

impl Method {
    /// The method name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
        }
    }

    /// Safe to send twice (RFC 9110 §9.2.2): eligible for a retry on a fresh connection.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configures a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let client = scraipe::http::Client::builder()
///     .user_agent("my-crawler/1.0")
///     .timeout(Duration::from_secs(5))
///     .max_redirects(3)
///     .build()
///     .unwrap();
/// # let _ = client;
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    user_agent: String,
    default_headers: Headers,
    connect_timeout: Duration,
    read_timeout: Duration,
    timeout: Duration,
    max_redirects: usize,
    max_body: usize,
    max_header_bytes: usize,
    max_headers: usize,
    max_per_host: usize,
    max_total: usize,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    extra_roots: Vec<CertificateDer<'static>>,
    builtin_roots: bool,
    decompress: bool,
    dns_ttl: Duration,
    /// Problems met while configuring, reported by `build`.
    errors: Vec<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

/// The soft `RLIMIT_NOFILE`, or 1024 if unknown.
fn fd_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0
        && rl.rlim_cur != libc::RLIM_INFINITY
    {
        rl.rlim_cur as usize
    } else {
        1024
    }
}

impl ClientBuilder {
    /// Defaults: 10 s total timeout (as Scraipe), 10 s connect, 30 s without progress,
    /// 10 redirects, 64 MiB bodies, 64 KiB / 256 header lines, 256 connections per host and
    /// three quarters of the file-descriptor limit in total, 90 s idle timeout, gzip/deflate on.
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            user_agent: format!("scraipe/{}", env!("CARGO_PKG_VERSION")),
            default_headers: Headers::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_redirects: 10,
            max_body: 64 << 20,
            max_header_bytes: 64 << 10,
            max_headers: 256,
            max_per_host: 256,
            max_total: (fd_limit() * 3 / 4).clamp(16, 16384),
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(90),
            extra_roots: Vec::new(),
            builtin_roots: true,
            decompress: true,
            dns_ttl: Duration::from_secs(60),
            errors: Vec::new(),
        }
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// A header sent with every request (a request's own header of the same name wins).
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.default_headers.insert(name, value);
        self
    }

    /// Limit on establishing a connection (TCP and TLS handshake), per address tried.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Give up when no byte arrives for this long.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// Deadline for the whole request, redirects included.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Redirects followed before failing (0 returns 3xx responses as they are).
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    /// Largest body accepted, checked on the wire and again after decompression.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Largest response head (status line and headers).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(64);
        self
    }

    /// Most header lines in a response.
    pub fn max_headers(mut self, n: usize) -> Self {
        self.max_headers = n.max(1);
        self
    }

    /// Most connections open to one (scheme, host, port); more requests wait.
    pub fn max_connections_per_host(mut self, n: usize) -> Self {
        self.max_per_host = n.max(1);
        self
    }

    /// Most connections open in total; at the limit, idle ones are closed to make room.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_total = n.max(1);
        self
    }

    /// Most idle connections kept per host.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// Idle connections older than this are closed instead of reused.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Trusts the certificates in a PEM bundle as roots, beside the built-in webpki roots.
    /// A bundle that cannot be parsed makes [`build`](ClientBuilder::build) fail.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        match tls::parse_pem_certs(pem) {
            Ok(certs) => self.extra_roots.extend(certs),
            Err(e) => self.errors.push(e.message().to_string()),
        }
        self
    }

    /// Whether to trust the built-in webpki roots (default true).
    pub fn builtin_roots(mut self, enabled: bool) -> Self {
        self.builtin_roots = enabled;
        self
    }

    /// Ask for and decode gzip/deflate bodies (default true).
    pub fn decompress(mut self, enabled: bool) -> Self {
        self.decompress = enabled;
        self
    }

    /// How long resolved addresses are cached (0 disables the cache).
    pub fn dns_cache_ttl(mut self, d: Duration) -> Self {
        self.dns_ttl = d;
        self
    }

    /// Builds the client. Fails if a root certificate could not be used.
    pub fn build(mut self) -> Result<Client, Error> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(Error::new(ErrorKind::Tls, e));
        }
        let tls = tls::client_config(&self.extra_roots, self.builtin_roots)?;
        let pool = Pool::new(
            self.max_total,
            PoolConfig {
                max_per_host: self.max_per_host,
                max_idle_per_host: self.max_idle_per_host,
                idle_timeout: self.idle_timeout,
            },
        );
        Ok(Client {
            inner: Arc::new(Inner {
                resolver: Resolver::new(self.dns_ttl, 10_000),
                config: self,
                tls,
                pool,
            }),
        })
    }
}

struct Inner {
    config: ClientBuilder,
    tls: Arc<rustls::ClientConfig>,
    pool: Arc<Pool>,
    resolver: Resolver,
}

/// An HTTP/1.1 client with a keep-alive pool. Cheap to clone (clones share the pool);
/// `Send + Sync`. Requests run on the scraipe runtime of the task that awaits them.
///
/// ```no_run
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let client = scraipe::http::Client::new();
/// let page = rt.block_on(client.get("https://example.com/")).unwrap();
/// println!("{} {}", page.status(), page.text());
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with default settings.
    pub fn new() -> Client {
        ClientBuilder::new()
            .build()
            .expect("the default TLS configuration is valid")
    }

    /// A builder to configure one.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Starts a request; `.await` it directly or add headers and a body first.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            url: url.to_string(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::Get, url)
    }

    /// `HEAD url`.
    pub fn head(&self, url: &str) -> RequestBuilder {
        self.request(Method::Head, url)
    }

    /// `POST url` (add a body with [`RequestBuilder::body`]).
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(&self, url: &str) -> RequestBuilder {
        self.request(Method::Put, url)
    }

    /// Connections currently open, and how many of them are idle in the pool.
    pub fn pool_stats(&self) -> PoolStats {
        let (open, idle, hosts) = self.inner.pool.stats();
        PoolStats { open, idle, hosts }
    }

    async fn execute(
        &self,
        method: Method,
        url: String,
        headers: Headers,
        body: Vec<u8>,
    ) -> Result<Response, Error> {
        let parsed = parse_url(&url).map_err(|e| e.at(&url))?;
        let total = self.inner.config.timeout;
        let deadline = Instant::now()
            .checked_add(total)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        match rt::timeout_at(
            deadline,
            self.follow(method, parsed, headers, body, deadline),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the request did not complete within {}", proto_fmt(total)),
            )
            .at(&url)),
        }
    }

    /// Sends the request, following redirects.
    async fn follow(
        &self,
        mut method: Method,
        mut url: Url,
        mut headers: Headers,
        mut body: Vec<u8>,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let max = self.inner.config.max_redirects;
        let mut hops = 0;
        loop {
            let response = self
                .send(method, &url, &headers, &body, deadline)
                .await
                .map_err(|e| e.at(url.as_str()))?;
            let status = response.status();
            if max == 0 || !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(location) = response.headers().get("location") else {
                return Ok(response);
            };
            if hops == max {
                return Err(Error::new(
                    ErrorKind::Redirect,
                    format!("stopped after {max} redirects"),
                )
                .at(url.as_str()));
            }
            hops += 1;
            let next = url.join(location.trim()).map_err(|e| {
                Error::new(
                    ErrorKind::Redirect,
                    format!("invalid Location {location:?}: {e}"),
                )
                .at(url.as_str())
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(Error::new(
                    ErrorKind::Redirect,
                    format!("redirect to unsupported scheme {:?}", next.scheme()),
                )
                .at(url.as_str()));
            }
            // 301/302/303 turn into GET without a body (as browsers do); 307/308 keep both.
            if matches!(status, 301..=303) && method != Method::Head {
                method = Method::Get;
                body.clear();
                headers.remove("content-length");
                headers.remove("content-type");
            }
            if next.origin() != url.origin() {
                // Credentials are for the origin they were given to.
                headers.remove("authorization");
                headers.remove("cookie");
                headers.remove("proxy-authorization");
            }
            url = next;
        }
    }

    /// One request/response on a pooled or new connection, retried once on a fresh connection
    /// if a reused one failed before any response byte arrived (idempotent methods only).
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &Headers,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, Error> {
        let config = &self.inner.config;
        let key = pool_key(url)?;
        let request = self.request_head(method, url, headers, body);
        let limits = ExchangeLimits {
            head: HeadLimits {
                max_bytes: config.max_header_bytes,
                max_headers: config.max_headers,
            },
            max_body: config.max_body,
            read_timeout: config.read_timeout,
            deadline,
            total: config.timeout,
        };
        let mut fresh = false;
        loop {
            let (mut conn, reused) = match self.inner.pool.checkout(&key, fresh).await {
                Checkout::Reused(conn) => (conn, true),
                Checkout::Connect(slot) => (
                    Conn::new(self.connect(url, &key, deadline).await?, slot),
                    false,
                ),
            };
            match conn
                .exchange(&request, body, method == Method::Head, &limits)
                .await
            {
                Ok((raw, reusable)) => {
                    if reusable {
                        self.inner.pool.checkin(conn);
                    }
                    return self.finish(raw, url);
                }
                Err(e)
                    if reused
                        && !conn.got_response_bytes
                        && method.is_idempotent()
                        && !fresh
                        && !e.is_timeout() =>
                {
                    log::debug!("retrying {url} on a fresh connection after: {e}");
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn request_head(&self, method: Method, url: &Url, headers: &Headers, body: &[u8]) -> Vec<u8> {
        let config = &self.inner.config;
        let mut all = Headers::with_capacity(6 + config.default_headers.len() + headers.len());
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        all.append("Host", host);
        if !headers.contains("user-agent") && !config.default_headers.contains("user-agent") {
            all.append("User-Agent", config.user_agent.clone());
        }
        if !headers.contains("accept") && !config.default_headers.contains("accept") {
            all.append("Accept", "*/*");
        }
        if config.decompress
            && !headers.contains("accept-encoding")
            && !config.default_headers.contains("accept-encoding")
        {
            all.append("Accept-Encoding", "gzip, deflate");
        }
        for (n, v) in config.default_headers.iter() {
            if !headers.contains(n) {
                all.append(n, v);
            }
        }
        for (n, v) in headers.iter() {
            if !n.eq_ignore_ascii_case("host") && !n.eq_ignore_ascii_case("content-length") {
                all.append(n, v);
            }
        }
        if !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
            all.append("Content-Length", body.len().to_string());
        }
        let target = &url[Position::BeforePath..Position::AfterQuery];
        let target = if target.is_empty() { "/" } else { target };
        let mut out = Vec::with_capacity(256);
        write_head(&mut out, method.as_str(), target, &all);
        out
    }

    /// Resolves, connects (each address in turn) and, for https, completes the TLS handshake.
    async fn connect(&self, url: &Url, key: &PoolKey, deadline: Instant) -> Result<Stream, Error> {
        let config = &self.inner.config;
        let addrs = self.inner.resolver.resolve(&key.host, key.port).await?;
        let mut last_error = None;
        for addr in addrs {
            let attempt_deadline = (Instant::now() + config.connect_timeout).min(deadline);
            match rt::timeout_at(attempt_deadline, self.connect_one(addr, url, key)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "connecting to {addr} took longer than {}",
                            proto_fmt(config.connect_timeout)
                        ),
                    ))
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::new(ErrorKind::Connect, "no address to connect to")))
    }

    async fn connect_one(
        &self,
        addr: SocketAddr,
        url: &Url,
        key: &PoolKey,
    ) -> Result<Stream, Error> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Connect,
                format!("could not connect to {addr}: {e}"),
                e,
            )
        })?;
        // Requests are written in one piece; Nagle would only add latency.
        let _ = tcp.set_nodelay(true);
        if !key.https {
            return Ok(Stream::Plain(tcp));
        }
        let host = url.host_str().unwrap_or("");
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!("{host:?} is not a valid TLS server name: {e}"),
            )
        })?;
        let tls = TlsStream::connect(tcp, self.inner.tls.clone(), name)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Tls, e.to_string(), e))?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    fn finish(&self, raw: RawResponse, url: &Url) -> Result<Response, Error> {
        let RawResponse {
            head,
            body,
            transfer_codings,
        } = raw;
        let max = self.inner.config.max_body;
        let mut body = decode::decode_content(body, &transfer_codings, max)?;
        let mut headers = head.headers;
        if self.inner.config.decompress {
            let codings = decode::content_codings(headers.get_all("content-encoding"));
            let known = codings
                .iter()
                .all(|c| matches!(c.as_str(), "gzip" | "x-gzip" | "deflate" | "identity"));
            if !codings.is_empty() && known {
                body = decode::decode_content(body, &codings, max)?;
                // The body no longer matches these headers.
                headers.remove("content-encoding");
                headers.remove("content-length");
            }
        }
        Ok(Response::new(
            head.status,
            head.minor_version,
            head.reason,
            headers,
            url.clone(),
            body,
        ))
    }
}

/// Open connections of a [`Client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (busy or idle).
    pub open: usize,
    /// Of those, idle in the pool.
    pub idle: usize,
    /// Hosts with at least one connection or waiter.
    pub hosts: usize,
}

fn parse_url(url: &str) -> Result<Url, Error> {
    let parsed =
        Url::parse(url.trim()).map_err(|e| Error::new(ErrorKind::InvalidUrl, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::new(
            ErrorKind::InvalidUrl,
            format!(
                "unsupported scheme {:?} (only http and https)",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::new(ErrorKind::InvalidUrl, "the URL has no host"));
    }
    Ok(parsed)
}

fn pool_key(url: &Url) -> Result<PoolKey, Error> {
    let host = url
        .host_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "the URL has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "no port"))?;
    Ok(PoolKey {
        https: url.scheme() == "https",
        host: host.to_string(),
        port,
    })
}

/// A request being built. Await it (it implements `IntoFuture`) or call [`send`](RequestBuilder::send).
#[must_use = "a request does nothing until awaited"]
pub struct RequestBuilder {
    client: Client,
    method: Method,
    url: String,
    headers: Headers,
    body: Vec<u8>,
}

impl RequestBuilder {
    /// Adds a header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the whole response.
    pub async fn send(self) -> Result<Response, Error> {
        self.client
            .execute(self.method, self.url, self.headers, self.body)
            .await
    }
}

impl IntoFuture for RequestBuilder {
    type Output = Result<Response, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
