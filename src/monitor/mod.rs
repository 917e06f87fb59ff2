//! The price monitor: a watch list of product pages checked every few minutes, continuously,
//! with what changed delivered as events.
//!
//! * [`store`] — the state behind the [`Store`](store::Store) trait (links, observations, the
//!   event outbox, the robots.txt cache), implemented on SQLite by
//!   [`SqliteStore`](store::SqliteStore), and on Redis by [`RedisStore`](store::RedisStore)
//!   for several workers sharing one watch list.
//! * [`shared_gate`] — per-host politeness across the workers of a shared store.
//! * [`schedule`] — when a link is due: `every`, phases that spread checks over the window,
//!   exponential backoff of failing links.
//! * [`robots`] — robots.txt parsing and matching; `robots_cache` fetches and keeps it.
//! * [`check`] — one check: robots, politeness, conditional GET, body hash, extraction.
//! * [`change`] — change detection and the [`ChangeEvent`](change::ChangeEvent).
//! * [`events`] — delivering events to the changes file and the webhook.
//! * [`runner`] — the [`Monitor`] builder and its run loop.
//! * [`export`], [`report`] — the history as CSV/JSONL, and as one HTML page.

//!
//! Times in the store are integer milliseconds since the Unix epoch (UTC); users see
//! RFC 3339 text ([`rfc3339`]). Prices are exact decimal text, never floats.

pub mod change;
pub mod check;
pub mod client;
mod clock;
pub mod events;
pub mod export;
pub mod report;
pub mod robots;
pub mod robots_cache;
pub mod runner;
pub mod schedule;
pub mod shared_gate;
pub mod store;

pub use clock::{now_ms, parse_http_date, rfc3339};
pub use runner::{Monitor, MonitorBuilder, Progress, RunSummary};
