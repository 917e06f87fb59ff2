//! Name resolution with a small TTL cache, through the blocking pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::http::error::{Error, ErrorKind};

/// Whether `host` is `localhost` or a name under `.localhost` (any case, optional trailing dot).
///
/// RFC 6761 §6.3 lets resolvers answer these with loopback without asking DNS, and curl and
/// browsers do. We do too: the system resolver here (glibc with /etc/hosts) knows `localhost`
/// but not `shop-7.localhost`, and many distinct loopback host names are how the demo shop and
/// tests model thousands of sites on one machine.
pub(crate) fn is_localhost_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let lower = host.to_ascii_lowercase();
    lower == "localhost" || lower.ends_with(".localhost")
}

/// The loopback addresses, IPv4 first (servers bound to `127.0.0.1` are the common case).
fn loopback_addrs(port: u16) -> Vec<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    vec![
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
    ]
}

/// (host, port) → (when resolved, addresses).
type Cache = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

pub(crate) struct Resolver {
    cache: Mutex<Cache>,
    ttl: Duration,
    max_entries: usize,
}

impl Resolver {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Resolver {
        Resolver {
            cache: Mutex::new(HashMap::new()),
            ttl,
            max_entries,
        }
    }

    /// Every address of `host`, IP literals without a lookup, others from the cache when fresh.
    pub(crate) async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        if let Some(ip) = crate::rt::net::ip_literal(host) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if is_localhost_name(host) {
            return Ok(loopback_addrs(port));
        }
        let key = (host.to_ascii_lowercase(), port);
        if !self.ttl.is_zero() {
            if let Some((at, addrs)) = self.cache.lock().get(&key) {
                if at.elapsed() < self.ttl {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = crate::rt::net::lookup_host(host, port).await.map_err(|e| {
            Error::with_source(ErrorKind::Dns, format!("could not resolve {host}: {e}"), e)
        })?;
        if addrs.is_empty() {
            return Err(Error::new(
                ErrorKind::Dns,
                format!("{host} has no addresses"),
            ));
        }
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock();
            if cache.len() >= self.max_entries {
                let ttl = self.ttl;
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= self.max_entries {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names_are_loopback() {
        for name in [
            "localhost",
            "LOCALHOST.",
            "shop-7.localhost",
            "a.b.Localhost.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in [
            "localhost.com",
            "mylocalhost",
            "example.org",
            "localhost.example",
        ] {
            assert!(!is_localhost_name(name), "{name}");
        }
        let addrs = loopback_addrs(8080);
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
    }
}
