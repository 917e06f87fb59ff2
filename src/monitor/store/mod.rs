//! The monitor's state, behind one trait of *operations* (not SQL), so another backend (a Redis
//! store is planned) can replace SQLite without touching the scheduler, the checks or the CLI.
//!
//! Contract every implementation keeps:
//!
//! * Writes ([`Store::record`], [`Store::ack_events`], [`Store::robots_put`]) may be queued and
//!   batched; they are durable once [`Store::flush`] returns. A crash loses at most what was
//!   queued, never part of a record.
//! * Recording an observation and the change event it causes happen atomically, and an event is
//!   stored at most once per observation.
//! * Change detection compares (price, currency, availability) with the link's last
//!   *successful* observation (the first one is a change from nothing).

pub mod redis;
mod schema;
mod sqlite;
mod writer;
mod writer_thread;

pub use self::redis::{RedisOptions, RedisStore};
pub use sqlite::SqliteStore;

use std::fmt;
use std::time::Duration;

use crate::monitor::change::OfferKey;
use crate::offer::Offer;

/// A link's row id.
pub type LinkId = i64;

/// An error from the store, with a message for the user.
#[derive(Debug)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(format!("database error: {e}"))
    }
}

/// The result of a check, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The page was downloaded (or its body was unchanged) and an offer is known.
    Ok,
    /// The server answered 304 Not Modified.
    NotModified,
    /// Network error, HTTP error status, or no offer on the page.
    Failed,
    /// robots.txt forbids the link; it was not fetched.
    Disallowed,
}

impl Outcome {
    /// `ok`, `not_modified`, `failed` or `disallowed` (as stored and exported).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotModified => "not_modified",
            Outcome::Failed => "failed",
            Outcome::Disallowed => "disallowed",
        }
    }
}

/// A link the scheduler found due, with what the check needs from its past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueLink {
    /// Row id.
    pub id: LinkId,
    /// The URL.
    pub url: String,
    /// Validator from the last 200 with an offer.
    pub etag: Option<String>,
    /// Validator from the last 200 with an offer.
    pub last_modified: Option<String>,
    /// Hash (hex) of the last body that yielded an offer (and the rules it was read with).
    pub body_hash: Option<String>,
    /// Consecutive failed checks.
    pub failures: u32,
    /// When it was last checked (epoch ms).
    pub last_checked_ms: Option<i64>,
    /// The last successful observation's (price, currency, availability), for progress
    /// counters (the store itself decides what is a change).
    pub last_offer: Option<OfferKey>,
}

/// Which links to hand out.
#[derive(Debug, Clone, Copy)]
pub struct DueQuery {
    /// "Now" (epoch ms). `--once` passes the run's start for every query.
    pub now_ms: i64,
    /// The window (`--every`) in ms.
    pub every_ms: i64,
    /// Spread checks by phase (continuous mode).
    pub spread: bool,
    /// At most this many, never-checked links first, then the longest unchecked.
    pub limit: usize,
}

/// What one check found, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// The link.
    pub link_id: LinkId,
    /// When (epoch ms).
    pub observed_ms: i64,
    /// The outcome.
    pub outcome: Outcome,
    /// The final HTTP status, if a response came.
    pub http_status: Option<u16>,
    /// A freshly extracted offer (`Ok` only). `Ok`/`NotModified` without one mean "the same as
    /// the last successful observation", whose offer the store copies.
    pub offer: Option<Offer>,
    /// New validators and body hash to keep (set on a 200 with an offer).
    pub validators: Option<Validators>,
    /// The error, for `Failed` (and the reason for `Disallowed`).
    pub error: Option<String>,
    /// Do not check again before this (backoff, `Retry-After`), epoch ms.
    pub not_before_ms: Option<i64>,
}

/// What a later conditional GET sends back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validators {
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// Hex SHA-256 of the body (and the rules).
    pub body_hash: Option<String>,
}

/// A change event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// Outbox id (increasing).
    pub id: i64,
    /// The event as one JSON object.
    pub payload: String,
    /// Already appended to the changes file.
    pub file_done: bool,
    /// Already accepted by the webhook.
    pub webhook_done: bool,
}

/// Progress on delivering one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventAck {
    /// Outbox id.
    pub id: i64,
    /// Appended to the changes file.
    pub file_done: bool,
    /// Accepted by the webhook.
    pub webhook_done: bool,
    /// Every sink of this run has it: it leaves the outbox.
    pub delivered: bool,
}

/// A cached robots.txt answer for one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotsRecord {
    /// `scheme://host:port`.
    pub origin: String,
    /// When fetched (epoch ms).
    pub fetched_ms: i64,
    /// Fetch again after this (epoch ms).
    pub expires_ms: i64,
    /// HTTP status (None: unreachable).
    pub status: Option<u16>,
    /// The file's text (empty unless 2xx).
    pub body: String,
}

/// What [`Store::sync_watch_list`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchListSync {
    /// New links.
    pub added: usize,
    /// Inactive links in the input again.
    pub reactivated: usize,
    /// Active links missing from the input (history kept).
    pub deactivated: usize,
    /// Active links now.
    pub active: usize,
}

/// One row of the history (export).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryRow {
    /// The URL.
    pub link: String,
    /// RFC 3339 UTC.
    pub observed_at: String,
    /// `ok`, `not_modified`, `failed`, `disallowed`.
    pub outcome: String,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// Price (exact decimal text).
    pub price: Option<String>,
    /// ISO 4217.
    pub currency: Option<String>,
    /// Availability.
    pub availability: Option<String>,
    /// Where the offer was found.
    pub source: Option<String>,
    /// The error.
    pub error: Option<String>,
}

/// The numbers `scraipe monitor status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusSummary {
    /// Links on the watch list.
    pub active_links: u64,
    /// Deactivated links (history kept).
    pub inactive_links: u64,
    /// Active links never checked.
    pub never_checked: u64,
    /// Active links due now (by the last run's `--every`).
    pub due_now: u64,
    /// Active links whose last check failed.
    pub failing: u64,
    /// Active links whose last check was refused by robots.txt.
    pub disallowed: u64,
    /// Observations stored.
    pub observations: u64,
    /// Change events stored.
    pub events: u64,
    /// Events not yet delivered to every sink.
    pub pending_events: u64,
    /// The last run's `--every`, ms.
    pub every_ms: Option<i64>,
    /// The latest check (epoch ms).
    pub last_check_ms: Option<i64>,
    /// The latest change: (epoch ms, link).
    pub last_change: Option<(i64, String)>,
}

/// One product's price history, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriceSeries {
    /// The URL.
    pub link: String,
    /// The last known name.
    pub name: Option<String>,
    /// The currency of these points (a link whose currency changed has one series per run
    /// of the same currency).
    pub currency: Option<String>,
    /// (epoch ms, price, availability) of each successful observation, oldest first.
    pub points: Vec<(i64, String, String)>,
}

/// Hands `points` (epoch ms, price, availability, the observation's currency) of one link to
/// `each` as one series per run of the same currency, oldest first, so a chart's currency is
/// true of every point on it (a shop that switched from EUR to USD gets two). A point without a
/// currency stays in the run it is in; a link whose points name none gets `fallback` (the
/// link's last known currency).
pub(crate) fn series_by_currency(
    link: &str,
    name: Option<String>,
    fallback: Option<String>,
    points: Vec<(i64, String, String, Option<String>)>,
    each: &mut dyn FnMut(PriceSeries) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut run: Option<PriceSeries> = None;
    for (at, price, availability, currency) in points {
        let currency = currency.filter(|c| !c.is_empty());
        if let Some(series) = run.as_mut() {
            if currency.is_none() || currency == series.currency {
                series.points.push((at, price, availability));
                continue;
            }
            if series.currency.is_none() {
                series.currency = currency;
                series.points.push((at, price, availability));
                continue;
            }
        }
        if let Some(done) = run.take() {
            each(done)?;
        }
        run = Some(PriceSeries {
            link: link.to_string(),
            name: name.clone(),
            currency,
            points: vec![(at, price, availability)],
        });
    }
    match run {
        Some(mut last) => {
            if last.currency.is_none() {
                last.currency = fallback;
            }
            each(last)
        }
        None => Ok(()),
    }
}

/// A stored change event, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Outbox id.
    pub id: i64,
    /// When observed (epoch ms).
    pub observed_ms: i64,
    /// The event JSON.
    pub payload: String,
}

/// The monitor's state. See the module docs for the contract.
pub trait Store: Send + Sync {
    /// Makes `links` the active watch list: adds new ones, reactivates returning ones and
    /// deactivates the others (their history stays).
    fn sync_watch_list(&self, links: &[String]) -> Result<WatchListSync, StoreError>;
    /// Active links due per `query`, never-checked first, then the longest unchecked.
    fn due_links(&self, query: &DueQuery) -> Result<Vec<DueLink>, StoreError>;
    /// Queues one check's result (durable after [`flush`](Store::flush)).
    fn record(&self, record: CheckRecord) -> Result<(), StoreError>;
    /// Makes every queued write durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Undelivered events with an id above `after_id`, oldest first (page with the last id).
    fn pending_events(&self, after_id: i64, limit: usize) -> Result<Vec<PendingEvent>, StoreError>;
    /// Queues delivery progress.
    fn ack_events(&self, acks: &[EventAck]) -> Result<(), StoreError>;
    /// The cached robots.txt of an origin.
    fn robots_get(&self, origin: &str) -> Result<Option<RobotsRecord>, StoreError>;
    /// Caches a robots.txt answer (queued).
    fn robots_put(&self, record: RobotsRecord) -> Result<(), StoreError>;
    /// Every observation (of one link, or all), by link then time.
    fn history(
        &self,
        link: Option<&str>,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Counts for `status`, as of `now_ms`.
    fn status(&self, now_ms: i64) -> Result<StatusSummary, StoreError>;
    /// Remembers a run setting (the last `--every`, for `status`).
    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The price history of every link with at least one successful observation.
    fn price_series(
        &self,
        each: &mut dyn FnMut(PriceSeries) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// The latest events, newest first.
    fn latest_events(&self, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    // --- Work sharing (issue 13). The defaults suit a store one process uses alone. ---

    /// Like [`due_links`](Store::due_links), but each link returned is *leased* to the caller
    /// for `lease_ms`: no other caller gets it until the lease runs out or the check is
    /// recorded. Default: `due_links` (one process per store; the runner never hands out a
    /// link in flight).
    fn claim_due(&self, query: &DueQuery, lease_ms: i64) -> Result<Vec<DueLink>, StoreError> {
        let _ = lease_ms;
        self.due_links(query)
    }
    /// Extends the leases of links this caller claimed and has not recorded yet, to
    /// `lease_ms` from now (queued; non-blocking). Default: nothing to do.
    fn renew_leases(&self, ids: &[LinkId], lease_ms: i64) -> Result<(), StoreError> {
        let _ = (ids, lease_ms);
        Ok(())
    }
    /// Gives back the leases of links claimed and not checked (a stop): they are due again
    /// at once (queued; non-blocking; a link recorded meanwhile keeps its due time). Default:
    /// nothing to do.
    fn release_leases(&self, ids: &[LinkId]) -> Result<(), StoreError> {
        let _ = ids;
        Ok(())
    }
    /// Whether several processes share this store, so per-host politeness must be coordinated
    /// through [`host_slot_acquire`](Store::host_slot_acquire). Default: false.
    fn shared(&self) -> bool {
        false
    }
    /// Takes one of `limit` request slots on `host` for `token`, at least `spacing_ms` after
    /// the previous slot's start, held at most `ttl_ms` (a dead holder's slot frees itself).
    /// `None`: granted; `Some(wait)`: ask again after `wait`. Blocking: call it off the event
    /// loops. Default: always granted (the process's own limiter is enough).
    fn host_slot_acquire(
        &self,
        host: &str,
        limit: usize,
        spacing_ms: i64,
        ttl_ms: i64,
        token: &str,
    ) -> Result<Option<Duration>, StoreError> {
        let _ = (host, limit, spacing_ms, ttl_ms, token);
        Ok(None)
    }
    /// Gives a slot back (queued; non-blocking).
    fn host_slot_release(&self, host: &str, token: &str) -> Result<(), StoreError> {
        let _ = (host, token);
        Ok(())
    }
}
