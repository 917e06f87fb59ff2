//! Name resolution with a small TTL cache, through the blocking pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::http::error::{Error, ErrorKind};

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
