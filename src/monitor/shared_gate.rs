//! Politeness across processes: when several workers share a store ([`Store::shared`]), each
//! request also takes one of the host's `per_host` slots *in the store* (and keeps its
//! `Crawl-delay` from the previous start by any worker), so adding workers never hits a site
//! harder. The process's own [`HostLimiter`](crate::politeness::HostLimiter) still comes first,
//! so waiting for a shared slot never holds more than the local limit of tasks per host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::store::Store;

/// The first wait before asking the store again for a busy host's slot (doubling).
const MIN_POLL: Duration = Duration::from_millis(5);
/// The longest single wait before asking the store again.
const MAX_POLL: Duration = Duration::from_millis(250);

/// Slots on hosts, held in a shared store.
#[derive(Clone)]
pub struct SharedGate {
    store: Arc<dyn Store>,
    per_host: usize,
    ttl: Duration,
    prefix: String,
    counter: Arc<AtomicU64>,
}

/// A held slot; given back on drop.
pub struct SharedPermit {
    store: Arc<dyn Store>,
    host: String,
    token: String,
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        if let Err(e) = self.store.host_slot_release(&self.host, &self.token) {
            log::warn!("cannot give back a slot on {}: {e}", self.host);
        }
    }
}

impl SharedGate {
    /// `per_host` slots per host; a slot is held at most `ttl` (longer than a request may
    /// take), so the slots of a worker that died free themselves.
    pub fn new(store: Arc<dyn Store>, per_host: usize, ttl: Duration) -> SharedGate {
        SharedGate {
            store,
            per_host: per_host.max(1),
            ttl,
            prefix: format!("{}-{}", std::process::id(), super::now_ms()),
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Waits for a slot on `host` (`host:port`), `spacing` after the last start there.
    pub async fn acquire(&self, host: &str, spacing: Duration) -> SharedPermit {
        let token = format!(
            "{}-{}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        // Waiting tasks poll the store; backing off keeps a busy host from flooding it.
        let mut backoff = MIN_POLL;
        loop {
            let (store, h, t) = (self.store.clone(), host.to_string(), token.clone());
            let (limit, spacing_ms, ttl_ms) = (
                self.per_host,
                spacing.as_millis() as i64,
                self.ttl.as_millis() as i64,
            );
            let answer = crate::rt::spawn_blocking(move || {
                store.host_slot_acquire(&h, limit, spacing_ms, ttl_ms, &t)
            })
            .await;
            let wait = match answer {
                Ok(Ok(None)) => {
                    return SharedPermit {
                        store: self.store.clone(),
                        host: host.to_string(),
                        token,
                    }
                }
                Ok(Ok(Some(wait))) => wait,
                Ok(Err(e)) => {
                    log::warn!("cannot take a slot on {host}: {e}");
                    Duration::from_millis(500)
                }
                Err(e) => {
                    log::warn!("cannot take a slot on {host}: {e}");
                    Duration::from_millis(500)
                }
            };
            crate::rt::sleep(wait.max(backoff).min(MAX_POLL)).await;
            backoff = (backoff * 2).min(MAX_POLL);
        }
    }
}
