//! The client: configuration, redirects, retries on stale connections, timeouts.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName};
use url::{Position, Url};

use crate::http::conn::{proto_fmt, Conn, ExchangeLimits, RawResponse};
use crate::http::connect::{self, SocksTarget};
use crate::http::cookies::CookieJar;
use crate::http::decode;
use crate::http::dns::{DnsConfig, Resolver};
use crate::http::error::{Error, ErrorKind};
use crate::http::headers::check_request_header;
use crate::http::pool::{Checkout, Pool, PoolConfig, PoolKey};
use crate::http::proto::{request::write_head, HeadLimits};
use crate::http::proxy::{self, Proxies, Proxy, ProxyKind};
use crate::http::retry::{is_retryable_status, RetryPolicy};
use crate::http::stream::{Stream, TlsStream};
use crate::http::tls;
use crate::http::{Headers, Response};
use crate::rt::{self, net::TcpStream};

/// Decides whether the client may connect to an address (see [`ClientBuilder::address_filter`]).
type AddressFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// The default `max_body`: see [`ClientBuilder::new`].
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

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
    dns_negative_ttl: Duration,
    dns_timeout: Duration,
    dns_overrides: HashMap<String, Vec<SocketAddr>>,
    retry: RetryPolicy,
    cookie_store: bool,
    proxy: Option<Proxy>,
    no_proxy: bool,
    proxy_from_env: bool,
    address_filter: Option<AddressFilter>,
    /// Problems met while configuring, reported by `build`.
    errors: Vec<(ErrorKind, String)>,
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
            .field("max_body", &self.max_body)
            .field("retry", &self.retry)
            .field("cookie_store", &self.cookie_store)
            .field("proxy", &self.proxy)
            .field("no_proxy", &self.no_proxy)
            .field("proxy_from_env", &self.proxy_from_env)
            .field("address_filter", &self.address_filter.is_some())
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
    /// Defaults: 10 s total timeout (as Scraipe), 10 s connect per address, 30 s without
    /// progress, 10 redirects, 16 MiB bodies ([`DEFAULT_MAX_BODY`]: far above any real HTML
    /// page, and 64 such bodies in flight still fit in 1 GiB), 64 KiB / 256 header lines, 256
    /// connections per host and three quarters of the file-descriptor limit in total, 90 s
    /// idle timeout, decompression on, no retries, no cookie jar, proxies from the environment
    /// (as curl), DNS answers kept 60 s and failures 5 s, 5 s per lookup.
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            user_agent: format!("scraipe/{}", env!("CARGO_PKG_VERSION")),
            default_headers: Headers::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_redirects: 10,
            max_body: DEFAULT_MAX_BODY,
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
            dns_negative_ttl: Duration::from_secs(5),
            dns_timeout: Duration::from_secs(5),
            dns_overrides: HashMap::new(),
            retry: RetryPolicy::none(),
            cookie_store: false,
            proxy: None,
            no_proxy: false,
            proxy_from_env: true,
            address_filter: None,
            errors: Vec::new(),
        }
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// A header sent with every request (a request's own header of the same name wins).
    /// An invalid name or value, or a header the client writes itself (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, ...), makes [`build`](ClientBuilder::build) fail.
    /// `Authorization`, `Cookie` and `Proxy-Authorization` defaults are not sent after a
    /// redirect to another origin.
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match check_request_header(&name, &value) {
            Ok(()) => self.default_headers.insert(name, value),
            Err(e) => self.errors.push((ErrorKind::InvalidRequest, e)),
        }
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
    ///
    /// A server may also present one of these certificates as its own, as a site with a
    /// self-signed certificate does — even one marked as a CA (`openssl req -x509` does so by
    /// default), which webpki alone refuses; its name and dates are still checked.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        match tls::parse_pem_certs(pem) {
            Ok(certs) => self.extra_roots.extend(certs),
            Err(e) => self.errors.push((e.kind(), e.message().to_string())),
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

    /// How long a failed lookup is remembered (default 5 s; 0 disables), so thousands of
    /// links to a dead domain cost one lookup.
    pub fn dns_negative_ttl(mut self, d: Duration) -> Self {
        self.dns_negative_ttl = d;
        self
    }

    /// How long one name lookup may take (default 5 s).
    pub fn dns_timeout(mut self, d: Duration) -> Self {
        self.dns_timeout = d;
        self
    }

    /// Answers `host` with these addresses instead of asking DNS (as curl's `--resolve`).
    /// An address with port 0 takes the URL's port.
    pub fn resolve(mut self, host: &str, addrs: &[SocketAddr]) -> Self {
        self.dns_overrides
            .insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }

    /// Retries transient failures with this policy (default: [`RetryPolicy::none`]; each
    /// request may set its own with [`RequestBuilder::retry_policy`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Keeps cookies (RFC 6265) in a jar of this client, shared by its clones: `Set-Cookie`
    /// is stored from every response (redirects included) and `Cookie` sent where it applies,
    /// unless a request sets its own `Cookie` header. Off by default.
    pub fn cookie_store(mut self, enabled: bool) -> Self {
        self.cookie_store = enabled;
        self
    }

    /// Sends every request through this HTTP proxy (except the hosts of its
    /// [`Proxy::no_proxy`] list); replaces proxies from the environment.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self.no_proxy = false;
        self
    }

    /// Connects directly: no proxy, whatever the environment or [`proxy`](Self::proxy) say.
    pub fn no_proxy(mut self) -> Self {
        self.no_proxy = true;
        self.proxy = None;
        self
    }

    /// Whether to use the proxies of the environment when no [`proxy`](Self::proxy) is set
    /// (default true, as curl and reqwest): `http_proxy` for `http://` URLs (lower case only,
    /// as curl: `HTTP_PROXY` can be set by a CGI request), `https_proxy`/`HTTPS_PROXY` for
    /// `https://`, `all_proxy`/`ALL_PROXY` for both, and `no_proxy`/`NO_PROXY` for hosts
    /// reached directly (nothing is bypassed unless listed, not even `localhost`). Read when
    /// the client is built; an unusable value makes [`build`](Self::build) fail.
    pub fn proxy_from_env(mut self, enabled: bool) -> Self {
        self.proxy_from_env = enabled;
        self
    }

    /// Refuses to connect to addresses for which `allow` returns false, checked on every
    /// address actually connected to: after DNS, on every redirect hop (and for a proxy, the
    /// proxy's addresses). A host whose addresses are all refused fails with
    /// [`ErrorKind::Blocked`]. For services that fetch user-supplied URLs:
    ///
    /// ```
    /// use std::net::IpAddr;
    /// let client = scraipe::http::Client::builder()
    ///     .address_filter(|ip: IpAddr| match ip {
    ///         IpAddr::V4(v4) => !(v4.is_private() || v4.is_loopback() || v4.is_link_local()),
    ///         IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified()),
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = client;
    /// ```
    pub fn address_filter(
        mut self,
        allow: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.address_filter = Some(Arc::new(allow));
        self
    }

    /// Builds the client. Fails if a root certificate or a default header could not be
    /// used, or a proxy from the environment is unusable.
    pub fn build(mut self) -> Result<Client, Error> {
        if let Some((kind, message)) = self.errors.drain(..).next() {
            return Err(Error::new(kind, message));
        }
        let proxies = if self.no_proxy {
            Proxies::default()
        } else if let Some(p) = &self.proxy {
            Proxies::all(p.clone())
        } else if self.proxy_from_env {
            Proxies::from_env()?
        } else {
            Proxies::default()
        };
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
                resolver: Resolver::new(DnsConfig {
                    ttl: self.dns_ttl,
                    negative_ttl: self.dns_negative_ttl,
                    timeout: self.dns_timeout,
                    max_entries: 65_536,
                    overrides: std::mem::take(&mut self.dns_overrides),
                    lookup: crate::http::dns::system_lookup,
                }),
                cookies: self.cookie_store.then(CookieJar::new),
                proxies,
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
    cookies: Option<CookieJar>,
    proxies: Proxies,
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
            timeout: None,
            retry: None,
            error: None,
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

    async fn execute(self, request: RequestBuilder) -> Result<Response, Error> {
        let RequestBuilder {
            method,
            url,
            mut headers,
            body,
            timeout,
            retry,
            error,
            ..
        } = request;
        if let Some(e) = error {
            return Err(e.at(&url));
        }
        let mut parsed = parse_url(&url).map_err(|e| e.at(&url))?;
        // Credentials in the URL become Basic authorization and leave the URL, so they show
        // in no `Response::url()`, error or log line.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            if !headers.contains("authorization") {
                let user = proxy::percent_decode(parsed.username());
                let pass = proxy::percent_decode(parsed.password().unwrap_or(""));
                headers.append("Authorization", proxy::basic_auth(&user, &pass));
            }
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        let total = timeout.unwrap_or(self.inner.config.timeout);
        let deadline = Instant::now()
            .checked_add(total)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        let retry = retry.unwrap_or(self.inner.config.retry);
        match rt::timeout_at(
            deadline,
            self.follow(method, parsed, headers, body, deadline, total, retry),
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
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        mut method: Method,
        mut url: Url,
        mut headers: Headers,
        mut body: Vec<u8>,
        deadline: Instant,
        total: Duration,
        retry: RetryPolicy,
    ) -> Result<Response, Error> {
        let max = self.inner.config.max_redirects;
        let mut hops = 0;
        // Set once a redirect left the first origin: from then on no credentials are sent,
        // neither the request's nor the client's default ones.
        let mut foreign = false;
        loop {
            let request = Request {
                method,
                url: &url,
                headers: &headers,
                body: &body,
                deadline,
                total,
                foreign,
            };
            let response = self
                .send_retrying(&request, retry)
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
            let mut next = url.join(location.trim()).map_err(|e| {
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
            // Credentials in a Location are not followed into the next URL (nor shown).
            let _ = next.set_username("");
            let _ = next.set_password(None);
            // 301/302/303 turn into GET without a body (as browsers do); 307/308 keep both.
            if matches!(status, 301..=303) && method != Method::Head {
                method = Method::Get;
                body.clear();
                headers.remove("content-type");
            }
            if next.origin() != url.origin() {
                // Credentials are for the origin they were given to.
                headers.remove("authorization");
                headers.remove("cookie");
                headers.remove("proxy-authorization");
                foreign = true;
            }
            url = next;
        }
    }

    /// [`send`](Self::send) under the retry policy: transient errors and 429/502/503/504 are
    /// tried again (idempotent methods only) while the deadline leaves room for the wait.
    async fn send_retrying(
        &self,
        request: &Request<'_>,
        policy: RetryPolicy,
    ) -> Result<Response, Error> {
        let mut retries = 0;
        loop {
            let result = self.send(request).await;
            if retries >= policy.max_retries() || !request.method.is_idempotent() {
                return result;
            }
            let retry_after = match &result {
                Ok(r) if is_retryable_status(r.status()) => r.header("retry-after"),
                Err(e) if e.is_transient() => None,
                _ => return result,
            };
            retries += 1;
            let Some(wait) = policy.wait(retries, retry_after, SystemTime::now()) else {
                return result;
            };
            if Instant::now() + wait >= request.deadline {
                return result;
            }
            match &result {
                Ok(r) => log::debug!(
                    "{} answered {}: retry {retries} in {wait:?}",
                    request.url,
                    r.status()
                ),
                Err(e) => log::debug!("{e}: retry {retries} of {} in {wait:?}", request.url),
            }
            drop(result);
            rt::sleep(wait).await;
        }
    }

    /// One request/response on a pooled or new connection, retried once on a fresh connection
    /// if a reused one failed before any response byte arrived (idempotent methods only).
    async fn send(&self, request: &Request<'_>) -> Result<Response, Error> {
        let config = &self.inner.config;
        let url = request.url;
        let https = url.scheme() == "https";
        let host = url
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "the URL has no host"))?;
        let proxy = self.inner.proxies.for_url(https, host);
        let key = pool_key(url, proxy)?;
        let cookie = self.inner.cookies.as_ref().and_then(|jar| {
            if request.headers.contains("cookie") {
                None
            } else {
                jar.header_for(url)
            }
        });
        let absolute_form = proxy.filter(|p| !https && p.is_http());
        let head = self.request_head(request, cookie.as_deref(), absolute_form);
        let limits = ExchangeLimits {
            head: HeadLimits {
                max_bytes: config.max_header_bytes,
                max_headers: config.max_headers,
            },
            max_body: config.max_body,
            read_timeout: config.read_timeout,
            deadline: request.deadline,
            total: request.total,
        };
        let method = request.method;
        let mut fresh = false;
        loop {
            let (mut conn, reused) = match self.inner.pool.checkout(&key, fresh).await {
                Checkout::Reused(conn) => (conn, true),
                Checkout::Connect(slot) => (
                    Conn::new(
                        self.connect(url, &key, proxy, request.deadline).await?,
                        slot,
                    ),
                    false,
                ),
            };
            match conn
                .exchange(&head, request.body, method == Method::Head, &limits)
                .await
            {
                Ok((raw, reusable)) => {
                    if reusable {
                        self.inner.pool.checkin(conn);
                    } else {
                        drop(conn);
                    }
                    if let Some(jar) = &self.inner.cookies {
                        jar.store(url, raw.head.headers.get_all("set-cookie"));
                    }
                    return self.finish(raw, url).await;
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
                // Broken before any response byte (reset, closed): another try may succeed.
                Err(e) if !conn.got_response_bytes && !e.is_timeout() => {
                    return Err(match e.kind() {
                        ErrorKind::Io | ErrorKind::Incomplete => e.transient(),
                        _ => e,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The request head. `proxy` is set for `http://` requests sent through a proxy: the
    /// target is then in absolute form, with the proxy's credentials.
    fn request_head(
        &self,
        request: &Request<'_>,
        cookie: Option<&str>,
        proxy: Option<&Proxy>,
    ) -> Vec<u8> {
        let config = &self.inner.config;
        let (url, headers, body) = (request.url, request.headers, request.body);
        let mut all = Headers::with_capacity(7 + config.default_headers.len() + headers.len());
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
            all.append("Accept-Encoding", decode::ACCEPT_ENCODING);
        }
        for (n, v) in config.default_headers.iter() {
            if headers.contains(n) || (request.foreign && is_credential(n)) {
                continue;
            }
            all.append(n, v);
        }
        for (n, v) in headers.iter() {
            if !n.eq_ignore_ascii_case("host") {
                all.append(n, v);
            }
        }
        if let Some(cookie) = cookie {
            all.append("Cookie", cookie);
        }
        if let Some(auth) = proxy.and_then(Proxy::authorization) {
            if !headers.contains("proxy-authorization") {
                all.append("Proxy-Authorization", auth);
            }
        }
        let method = request.method;
        if !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
            all.append("Content-Length", body.len().to_string());
        }
        let target = if proxy.is_some() {
            &url[..Position::AfterQuery]
        } else {
            &url[Position::BeforePath..Position::AfterQuery]
        };
        let target = if target.is_empty() { "/" } else { target };
        let mut out = Vec::with_capacity(256);
        write_head(&mut out, method.as_str(), target, &all);
        out
    }

    /// Resolves, connects (Happy Eyeballs over the addresses that pass the filter), tunnels
    /// through the proxy for https, and completes the TLS handshake.
    async fn connect(
        &self,
        url: &Url,
        key: &PoolKey,
        proxy: Option<&Proxy>,
        deadline: Instant,
    ) -> Result<Stream, Error> {
        let config = &self.inner.config;
        let (host, port) = match proxy {
            Some(p) => (p.host(), p.port()),
            None => (key.host.as_str(), key.port),
        };
        let mut tcp = async {
            let addrs = self.allowed_addrs(host, port).await?;
            connect::happy_eyeballs(addrs, config.connect_timeout, deadline).await
        }
        .await
        // A proxy from the environment is easy to forget: say that it is the proxy that failed.
        .map_err(|e| match proxy {
            Some(p) => e.context(format_args!("proxy {p}")),
            None => e,
        })?;
        match proxy.map(|p| (p, p.kind())) {
            Some((p, ProxyKind::Socks5 { remote_dns })) => {
                let target = if remote_dns {
                    SocksTarget::Name(&key.host, key.port)
                } else {
                    // Resolved here, so the address filter sees the target too.
                    let addrs = self.allowed_addrs(&key.host, key.port).await?;
                    SocksTarget::Addr(addrs[0])
                };
                tcp = connect::socks5(tcp, target, p.credentials())
                    .await
                    .map_err(|e| e.context(format_args!("proxy {p}")))?;
            }
            Some((p, ProxyKind::Http)) if key.https => {
                let authority = format!("{}:{}", key.host, key.port);
                tcp = connect::tunnel(tcp, &authority, p.authorization(), &config.user_agent)
                    .await
                    .map_err(|e| e.context(format_args!("proxy {p}")))?;
            }
            _ => {}
        }
        if !key.https {
            return Ok(Stream::Plain(tcp));
        }
        self.tls_handshake(tcp, url).await
    }

    /// The addresses of `host` that the address filter lets us connect to.
    async fn allowed_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        let mut addrs = self.inner.resolver.resolve(host, port).await?;
        if let Some(allow) = &self.inner.config.address_filter {
            let before = addrs.len();
            addrs.retain(|a| allow(a.ip()));
            if addrs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Blocked,
                    format!(
                        "the address filter refuses {} of {host}",
                        if before == 1 {
                            "the address"
                        } else {
                            "every address"
                        }
                    ),
                ));
            }
        }
        Ok(addrs)
    }

    async fn tls_handshake(&self, tcp: TcpStream, url: &Url) -> Result<Stream, Error> {
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

    async fn finish(&self, raw: RawResponse, url: &Url) -> Result<Response, Error> {
        let RawResponse {
            head,
            body,
            transfer_codings,
        } = raw;
        let max = self.inner.config.max_body;
        let mut headers = head.headers;
        let mut codings = transfer_codings;
        let mut content_decoded = false;
        if self.inner.config.decompress {
            let content = decode::content_codings(headers.get_all("content-encoding"));
            if !content.is_empty() && content.iter().all(|c| decode::is_supported(c)) {
                // Applied in header order, so transfer codings (outermost) come last.
                let mut all = content;
                all.append(&mut codings);
                codings = all;
                content_decoded = true;
            }
        }
        // A body-less response (HEAD, 204, 304, an empty 200) keeps its Content-Encoding
        // header but has nothing to decode.
        let body = if body.is_empty() || codings.iter().all(|c| c == "identity") {
            body
        } else {
            decode::decode_off_reactor(body, codings, max).await?
        };
        if content_decoded {
            // The body no longer matches these headers.
            headers.remove("content-encoding");
            headers.remove("content-length");
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

/// One hop of a request, as `send` needs it.
struct Request<'a> {
    method: Method,
    url: &'a Url,
    headers: &'a Headers,
    body: &'a [u8],
    deadline: Instant,
    /// The total timeout the deadline came from (for messages).
    total: Duration,
    /// A redirect left the original origin: send no default credentials.
    foreign: bool,
}

fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
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

fn pool_key(url: &Url, proxy: Option<&Proxy>) -> Result<PoolKey, Error> {
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
        via: proxy.map(|p| format!("{}:{}", p.host(), p.port()).into_boxed_str()),
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
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    /// The first invalid header given, reported when the request is sent.
    error: Option<Error>,
}

impl RequestBuilder {
    /// Adds a header (repeatable). An invalid name or value (CR, LF, NUL...), or a header the
    /// client writes itself (`Content-Length`, `Transfer-Encoding`, `Connection`...), makes
    /// the request fail with [`ErrorKind::InvalidRequest`] without sending anything.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match check_request_header(&name, &value) {
            Ok(()) => self.headers.append(name, value),
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(Error::new(ErrorKind::InvalidRequest, e));
                }
            }
        }
        self
    }

    /// Sets the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The whole deadline of this request, redirects and retries included (instead of the
    /// client's [`timeout`](ClientBuilder::timeout)).
    pub fn timeout(mut self, total: Duration) -> Self {
        self.timeout = Some(total);
        self
    }

    /// Retries for this request (instead of the client's policy).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Asks for the body only if it changed since the response that had this `ETag`: an
    /// unchanged resource answers `304 Not Modified` ([`Response::is_not_modified`]).
    ///
    /// ```no_run
    /// # let rt = scraipe::rt::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let client = scraipe::http::Client::new();
    /// let first = client.get("https://example.com/feed").await.unwrap();
    /// let etag = first.etag().unwrap_or_default().to_string();
    /// let again = client.get("https://example.com/feed").if_none_match(&etag).await.unwrap();
    /// if again.is_not_modified() { /* keep what we have */ }
    /// # });
    /// ```
    pub fn if_none_match(self, etag: &str) -> Self {
        self.header("If-None-Match", etag)
    }

    /// Asks for the body only if it changed after this HTTP date (a `Last-Modified` value).
    pub fn if_modified_since(self, http_date: &str) -> Self {
        self.header("If-Modified-Since", http_date)
    }

    /// Sends the request and reads the whole response.
    pub async fn send(self) -> Result<Response, Error> {
        self.client.clone().execute(self).await
    }
}

impl IntoFuture for RequestBuilder {
    type Output = Result<Response, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
