//! The one place the monitor's HTTP client is built, so client features (retry policies,
//! proxies, cookie stores) are switched on here and nowhere else.

use std::time::Duration;

use crate::http::{Client, Proxy, RetryPolicy};

/// The longest `Retry-After` waited out inside a check; a server asking for more gets its
/// answer recorded at once, and the host and link are held back that long instead (see
/// `check.rs`), so a slow host never holds a check slot for minutes.
pub const MAX_RETRY_AFTER_IN_CHECK: Duration = Duration::from_secs(2);

/// How the monitor's client is configured.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request deadline.
    pub timeout: Duration,
    /// `User-Agent` (also the robots.txt product token); the client's default if `None`.
    pub user_agent: Option<String>,
    /// Extra trusted roots, PEM.
    pub ca_certs: Vec<Vec<u8>>,
    /// Proxy URL (`http://`, `socks5://`, ...); without one the environment's proxies apply.
    pub proxy: Option<String>,
    /// Retries of transient failures (connection failures, 429/502/503/504) per request.
    pub retries: u32,
    /// Connections per host (the politeness limit).
    pub per_host: usize,
    /// Connections in total.
    pub concurrency: usize,
}

/// The default User-Agent of the monitor.
pub fn default_user_agent() -> String {
    format!("scraipe/{}", env!("CARGO_PKG_VERSION"))
}

/// Builds the client, or says why it cannot.
pub fn build_client(o: &ClientOptions) -> Result<Client, String> {
    let mut b = Client::builder()
        .timeout(o.timeout)
        .user_agent(o.user_agent.clone().unwrap_or_else(default_user_agent))
        .max_connections_per_host(o.per_host.max(1))
        // Product pages are small; a 16 MiB cap keeps one odd page from costing much memory.
        .max_body_size(16 << 20)
        .max_idle_per_host(o.per_host.max(1))
        // A site is visited once per window: connections idle until the next one are dead
        // weight (50,000 hosts would mean 50,000 idle sockets). Cap the pool near the
        // concurrency; at the cap the oldest idle connection is closed.
        .max_connections((o.concurrency * 2).max(64))
        .idle_timeout(Duration::from_secs(30))
        .retry_policy(RetryPolicy::new(o.retries).max_retry_after(MAX_RETRY_AFTER_IN_CHECK));
    if let Some(url) = &o.proxy {
        let proxy = Proxy::parse(url).map_err(|e| format!("unusable proxy {url:?}: {e}"))?;
        b = b.proxy(proxy);
    }
    for pem in &o.ca_certs {
        b = b.add_root_certificate_pem(pem);
    }
    b.build()
        .map_err(|e| format!("cannot configure the HTTP client: {}", e.message()))
}
