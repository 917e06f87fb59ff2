//! robots.txt per origin: fetched once (concurrent checks of one origin wait for the same
//! fetch), kept in memory and in the store for 24 h, answered as Google documents: 2xx → the
//! rules; 4xx (but 429) → allow everything; 429, 5xx or unreachable → disallow everything for
//! [`UNAVAILABLE_TTL`], then try again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::clock::now_ms;
use super::robots::{Robots, MAX_ROBOTS_BYTES};
use super::shared_gate::SharedGate;
use super::store::{RobotsRecord, Store};
use crate::http::{Client, ErrorKind};
use crate::politeness::HostLimiter;
use crate::rt::sync::Semaphore;

/// How long a robots.txt answer is kept.
pub const ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an unreachable (or 5xx) robots.txt blocks its origin before we ask again.
pub const UNAVAILABLE_TTL: Duration = Duration::from_secs(10 * 60);

/// What robots.txt says for an origin.
#[derive(Debug)]
pub struct RobotsAnswer {
    /// The rules for our agent.
    pub robots: Robots,
    /// Why everything is disallowed for now (robots.txt unreachable or 5xx), if so.
    pub unavailable: Option<String>,
    expires_ms: i64,
}

#[derive(Default)]
struct Entry {
    answer: Option<Arc<RobotsAnswer>>,
    fetching: Option<Arc<Semaphore>>,
}

/// The cache. Cheap to share behind an `Arc`.
pub struct RobotsCache {
    store: Arc<dyn Store>,
    client: Client,
    gate: HostLimiter,
    shared_gate: Option<SharedGate>,
    agent: String,
    entries: Mutex<HashMap<String, Entry>>,
}

impl RobotsCache {
    /// `agent` is our product token (see [`super::robots::product_token`]).
    pub fn new(store: Arc<dyn Store>, client: Client, gate: HostLimiter, agent: String) -> Self {
        RobotsCache {
            store,
            client,
            gate,
            shared_gate: None,
            agent,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Also takes a slot of `gate` for each robots.txt fetch (workers sharing a store).
    pub fn with_shared_gate(mut self, gate: Option<SharedGate>) -> Self {
        self.shared_gate = gate;
        self
    }

    fn fresh(&self, origin: &str, now: i64) -> Option<Arc<RobotsAnswer>> {
        let entries = self.entries.lock();
        entries
            .get(origin)
            .and_then(|e| e.answer.clone())
            .filter(|a| a.expires_ms > now)
    }

    /// The answer for `origin` (`scheme://host:port`); `host_key` is its politeness key.
    pub async fn get(&self, origin: &str, host_key: &str) -> Arc<RobotsAnswer> {
        if let Some(a) = self.fresh(origin, now_ms()) {
            return a;
        }
        let lock = {
            let mut entries = self.entries.lock();
            let entry = entries.entry(origin.to_string()).or_default();
            entry
                .fetching
                .get_or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let _one_fetch = lock.acquire().await;
        // Someone may have fetched it while we waited.
        if let Some(a) = self.fresh(origin, now_ms()) {
            return a;
        }
        let store = self.store.clone();
        let key = origin.to_string();
        let cached = crate::rt::spawn_blocking(move || store.robots_get(&key))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .filter(|r| r.expires_ms > now_ms());
        let record = match cached {
            Some(r) => r,
            None => {
                let r = self.fetch(origin, host_key).await;
                if let Err(e) = self.store.robots_put(r.clone()) {
                    log::warn!("cannot cache robots.txt of {origin}: {e}");
                }
                r
            }
        };
        let answer = Arc::new(self.interpret(&record));
        let mut entries = self.entries.lock();
        let entry = entries.entry(origin.to_string()).or_default();
        entry.answer = Some(answer.clone());
        entry.fetching = None;
        answer
    }

    fn interpret(&self, r: &RobotsRecord) -> RobotsAnswer {
        let (robots, unavailable) = match r.status {
            Some(s) if (200..300).contains(&s) => (Robots::parse(&r.body, &self.agent), None),
            Some(s) if (400..500).contains(&s) && s != 429 => (Robots::allow_all(), None),
            Some(s) => (
                Robots::disallow_all(),
                Some(format!(
                    "robots.txt answered HTTP {s}: the site is treated as disallowed for now"
                )),
            ),
            None => (
                Robots::disallow_all(),
                Some(format!(
                    "robots.txt unreachable ({}): the site is treated as disallowed for now",
                    r.body
                )),
            ),
        };
        RobotsAnswer {
            robots,
            unavailable,
            expires_ms: r.expires_ms,
        }
    }

    async fn fetch(&self, origin: &str, host_key: &str) -> RobotsRecord {
        let now = now_ms();
        let url = format!("{origin}/robots.txt");
        let response = {
            let _permit = self.gate.acquire(host_key).await;
            let _shared = match &self.shared_gate {
                Some(g) => Some(g.acquire(host_key, Duration::ZERO).await),
                None => None,
            };
            self.client.get(&url).await
        };
        let (status, body, ttl) = match response {
            Ok(resp) => {
                let status = resp.status();
                let ok = resp.is_success();
                let mut text = if ok { resp.text() } else { String::new() };
                if text.len() > MAX_ROBOTS_BYTES {
                    let mut end = MAX_ROBOTS_BYTES;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                let ttl = if status >= 500 || status == 429 {
                    UNAVAILABLE_TTL
                } else {
                    ROBOTS_TTL
                };
                (Some(status), text, ttl)
            }
            // Too many redirects: Google treats it as "no robots.txt".
            Err(e) if e.kind() == ErrorKind::Redirect => (Some(404), String::new(), ROBOTS_TTL),
            Err(e) => (None, e.to_string(), UNAVAILABLE_TTL),
        };
        RobotsRecord {
            origin: origin.to_string(),
            fetched_ms: now,
            expires_ms: now + ttl.as_millis() as i64,
            status,
            body,
        }
    }
}
