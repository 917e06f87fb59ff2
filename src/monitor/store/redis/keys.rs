//! Key names. README ("Redis keys") documents them for users who inspect them with `redis-cli`;
//! keep the two in step.
//!
//! Two families, each under one hash tag so that every script and every multi-key command
//! touches a single Redis Cluster slot:
//!
//! * global keys `{PREFIX}:...` — the watch list, the due schedule, the event stream, counters;
//! * per-host keys `PREFIX:{HOST}:...` (`HOST` = `host:port`) — link state, history, the
//!   robots.txt cache and the politeness slots of that host, so one site's keys sit on one
//!   shard and spread over the cluster with the hosts.

use url::Url;

use crate::monitor::check::host_key;
use crate::monitor::store::LinkId;

/// The consumer group the monitor's own sinks (`--changes`, `--webhook`) read the stream with.
pub const GROUP: &str = "scraipe-monitor";

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (default `scraipe`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    fn global(&self, name: &str) -> String {
        format!("{{{}}}:{name}", self.prefix)
    }

    /// Sorted set: active link id → when it is next due (epoch ms; 0 never checked; a claimed
    /// link carries its lease expiry).
    pub fn due(&self) -> String {
        self.global("due")
    }
    /// Hash: URL → link id.
    pub fn ids(&self) -> String {
        self.global("ids")
    }
    /// Hash: link id → URL.
    pub fn urls(&self) -> String {
        self.global("urls")
    }
    /// Set: active link ids.
    pub fn active(&self) -> String {
        self.global("active")
    }
    /// Hash: deactivated link id → its due score, restored when it comes back.
    pub fn parked(&self) -> String {
        self.global("parked")
    }
    /// String: the last link id handed out.
    pub fn link_seq(&self) -> String {
        self.global("link-seq")
    }
    /// Hash: link id → observed ms of its latest recorded check (replays are ignored).
    pub fn checked(&self) -> String {
        self.global("checked")
    }
    /// Set: link ids whose last check failed.
    pub fn failing(&self) -> String {
        self.global("failing")
    }
    /// Set: link ids whose last check robots.txt refused.
    pub fn disallowed(&self) -> String {
        self.global("disallowed")
    }
    /// Hash: link id → observed ms of its latest event in the stream (no event twice).
    pub fn published(&self) -> String {
        self.global("published")
    }
    /// Stream: change events.
    pub fn events(&self) -> String {
        self.global("events")
    }
    /// String: the last event id (`id` field of each event).
    pub fn event_seq(&self) -> String {
        self.global("event-seq")
    }
    /// Hash: stream entry id → delivery progress (`file`, `webhook`, `file,webhook`).
    pub fn event_progress(&self) -> String {
        self.global("event-progress")
    }
    /// Hash: run settings (`every_ms`, `spread`).
    pub fn settings(&self) -> String {
        self.global("settings")
    }
    /// Hash: `observations` (count), `last_check_ms`.
    pub fn stats(&self) -> String {
        self.global("stats")
    }

    fn host(&self, host: &str, name: &str) -> String {
        format!("{}:{{{host}}}:{name}", self.prefix)
    }
    /// Hash: one link's state (validators, last offer, failures, pending event).
    pub fn link(&self, host: &str, id: LinkId) -> String {
        self.host(host, &format!("link:{id}"))
    }
    /// List: one link's observations (JSON), oldest first.
    pub fn history(&self, host: &str, id: LinkId) -> String {
        self.host(host, &format!("hist:{id}"))
    }
    /// List: change events of a link waiting behind its pending one (rare: a second change
    /// recorded before the first was published).
    pub fn event_queue(&self, host: &str, id: LinkId) -> String {
        self.host(host, &format!("link:{id}:queue"))
    }
    /// Hash: the cached robots.txt of `scheme://host`.
    pub fn robots(&self, host: &str, scheme: &str) -> String {
        self.host(host, &format!("robots:{scheme}"))
    }
    /// Sorted set: politeness slots in use on the host (token → expiry ms).
    pub fn slots(&self, host: &str) -> String {
        self.host(host, "slots")
    }
    /// String: the earliest start of the host's next request (Crawl-delay), ms.
    pub fn next_start(&self, host: &str) -> String {
        self.host(host, "next")
    }
}

/// The `host:port` of a link, its hash tag (the URL itself, lowercased, if it does not parse).
pub fn host_of_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(u) if u.host_str().is_some() => host_key(&u),
        _ => url.to_ascii_lowercase().replace(['{', '}'], ""),
    }
}

/// `(host:port, scheme)` of an origin `scheme://host:port`.
pub fn split_origin(origin: &str) -> (String, String) {
    match Url::parse(origin) {
        Ok(u) if u.host_str().is_some() => (host_key(&u), u.scheme().to_string()),
        _ => (
            origin.to_ascii_lowercase().replace(['{', '}'], ""),
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_share_the_host_tag_and_globals_the_prefix_tag() {
        let k = Keys::new("scraipe");
        let h = host_of_url("http://Shop-3.localhost:8080/product/1");
        assert_eq!(h, "shop-3.localhost:8080");
        assert_eq!(k.link(&h, 7), "scraipe:{shop-3.localhost:8080}:link:7");
        assert_eq!(k.history(&h, 7), "scraipe:{shop-3.localhost:8080}:hist:7");
        assert_eq!(k.slots(&h), "scraipe:{shop-3.localhost:8080}:slots");
        assert_eq!(
            split_origin("https://a.example"),
            ("a.example:443".into(), "https".into())
        );
        assert_eq!(k.due(), "{scraipe}:due");
        assert_eq!(k.events(), "{scraipe}:events");
    }
}
