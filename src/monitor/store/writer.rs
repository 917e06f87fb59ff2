//! The one writer: a thread that owns the write connection and applies commands from a channel,
//! committing every [`BATCH_ROWS`] commands, [`BATCH_MS`] after the first uncommitted one, or as
//! soon as the channel has been quiet for [`IDLE_COMMIT_MS`], whichever comes first. Event
//! loops only ever `send` (no SQLite call on a reactor thread). Under load, batching turns
//! thousands of observations per second into a few commits; when checks trickle in, each is
//! committed within milliseconds, so a `kill -9` loses little more than the checks in flight.
//! (A WAL commit with `synchronous=NORMAL` writes but does not fsync, so commits are cheap.)
//!
//! Each record is applied inside a savepoint, so a failing record never leaves half of itself
//! (an observation without its link update or event) in the batch.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::{CheckRecord, EventAck, LinkId, Outcome, RobotsRecord, StoreError, WatchListSync};
use crate::monitor::change::{is_change, OfferKey};
use crate::monitor::schedule::phase_of;

/// Commit after this many commands...
pub const BATCH_ROWS: usize = 1000;
/// ...or this long after the first uncommitted one...
pub const BATCH_MS: u64 = 100;
/// ...or when no command came for this long.
pub const IDLE_COMMIT_MS: u64 = 2;

/// What the writer does.
pub enum WriteCmd {
    Record(Box<CheckRecord>),
    Ack(Vec<EventAck>),
    Robots(RobotsRecord),
    Setting(String, String),
    /// An LLM answer for the cache: key, JSON, time.
    LlmCache(String, String, i64),
    Sync(Vec<String>, i64, Sender<Result<WatchListSync, StoreError>>),
    Flush(Sender<Result<(), StoreError>>),
}

struct Writer {
    conn: Connection,
    in_tx: bool,
    rows: usize,
    first_uncommitted: Instant,
    /// The first error since the last flush, reported to the next flush caller.
    error: Option<String>,
}

/// Runs until every sender is gone, then commits and returns.
pub fn run(conn: Connection, rx: Receiver<WriteCmd>) {
    let mut w = Writer {
        conn,
        in_tx: false,
        rows: 0,
        first_uncommitted: Instant::now(),
        error: None,
    };
    loop {
        let cmd = if w.in_tx {
            let deadline = w.first_uncommitted + Duration::from_millis(BATCH_MS);
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(IDLE_COMMIT_MS));
            match rx.recv_timeout(wait) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    w.commit();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(cmd) => cmd,
                Err(_) => break,
            }
        };
        w.apply(cmd);
    }
    w.commit();
}

impl Writer {
    fn begin(&mut self) {
        if !self.in_tx {
            match self.conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => {
                    self.in_tx = true;
                    self.rows = 0;
                    self.first_uncommitted = Instant::now();
                }
                Err(e) => self.fail(format!("cannot start a transaction: {e}")),
            }
        }
    }

    fn commit(&mut self) {
        if self.in_tx {
            self.in_tx = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                self.fail(format!("cannot commit: {e}"));
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    fn fail(&mut self, message: String) {
        log::error!("monitor store: {message}");
        self.error.get_or_insert(message);
    }

    /// Runs `f` in a savepoint of the open batch.
    fn in_savepoint(&mut self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) {
        self.begin();
        if !self.in_tx {
            return;
        }
        let result = self
            .conn
            .execute_batch("SAVEPOINT one")
            .and_then(|()| f(&self.conn));
        match result {
            Ok(()) => {
                if let Err(e) = self.conn.execute_batch("RELEASE one") {
                    self.fail(format!("{what}: {e}"));
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO one; RELEASE one");
                self.fail(format!("{what}: {e}"));
            }
        }
        self.rows += 1;
        if self.rows >= BATCH_ROWS {
            self.commit();
        }
    }

    fn apply(&mut self, cmd: WriteCmd) {
        match cmd {
            WriteCmd::Record(r) => self.in_savepoint("recording a check", |c| record(c, &r)),
            WriteCmd::Ack(acks) => self.in_savepoint("acknowledging events", |c| ack(c, &acks)),
            WriteCmd::Robots(r) => self.in_savepoint("caching robots.txt", |c| {
                c.prepare_cached(
                    "INSERT INTO robots (origin, fetched_ms, expires_ms, status, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(origin) DO UPDATE SET fetched_ms = ?2, expires_ms = ?3,
                         status = ?4, body = ?5",
                )?
                .execute(params![
                    r.origin,
                    r.fetched_ms,
                    r.expires_ms,
                    r.status,
                    r.body
                ])?;
                Ok(())
            }),
            WriteCmd::Setting(k, v) => self.in_savepoint("saving a setting", |c| {
                c.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = ?2",
                    params![k, v],
                )?;
                Ok(())
            }),
            WriteCmd::LlmCache(k, v, at) => self.in_savepoint("caching an LLM answer", |c| {
                c.execute(
                    "INSERT INTO llm_cache (key, value, created_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET value = ?2, created_ms = ?3",
                    params![k, v, at],
                )?;
                Ok(())
            }),
            WriteCmd::Sync(links, now, reply) => {
                self.commit();
                let result = sync(&mut self.conn, &links, now).map_err(StoreError::from);
                let _ = reply.send(result);
            }
            WriteCmd::Flush(reply) => {
                self.commit();
                let result = match self.error.take() {
                    Some(e) => Err(StoreError(e)),
                    None => Ok(()),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// The link's last successful offer and what else a record needs.
struct LinkRow {
    key: Option<OfferKey>,
    name: Option<String>,
    source: Option<String>,
}

fn link_row(c: &Connection, id: LinkId) -> rusqlite::Result<Option<LinkRow>> {
    c.prepare_cached(
        "SELECT has_offer, price, currency, availability, name, source FROM links WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let has: bool = r.get(0)?;
        Ok(LinkRow {
            key: has
                .then(|| -> rusqlite::Result<OfferKey> {
                    Ok(OfferKey {
                        price: r.get(1)?,
                        currency: r.get(2)?,
                        availability: r.get(3)?,
                    })
                })
                .transpose()?,
            name: r.get(4)?,
            source: r.get(5)?,
        })
    })
    .optional()
}

fn insert_observation(
    c: &Connection,
    r: &CheckRecord,
    key: Option<&OfferKey>,
    source: Option<&str>,
) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO observations
             (link_id, observed_ms, outcome, http_status, price, currency, availability, source, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        r.link_id,
        r.observed_ms,
        r.outcome.as_str(),
        r.http_status,
        key.and_then(|k| k.price.as_deref()),
        key.and_then(|k| k.currency.as_deref()),
        key.and_then(|k| k.availability.as_deref()),
        source,
        r.error,
    ])?;
    Ok(c.last_insert_rowid())
}

fn record(c: &Connection, r: &CheckRecord) -> rusqlite::Result<()> {
    let Some(link) = link_row(c, r.link_id)? else {
        return Ok(()); // not ours (another database?): nothing to attach it to
    };
    match (r.outcome, &r.offer) {
        (Outcome::Ok, Some(offer)) => {
            let key = OfferKey {
                price: offer.price.clone(),
                currency: offer.currency.clone(),
                availability: Some(offer.availability.as_str().to_string()),
            };
            let source = offer.source.as_str();
            let obs = insert_observation(c, r, Some(&key), Some(source))?;
            let changed = is_change(link.key.as_ref(), &key);
            if changed {
                let prev = link.key.clone().unwrap_or_default();
                // The UNIQUE observation_id makes a replayed record unable to add a second event.
                c.prepare_cached(
                    "INSERT OR IGNORE INTO events (link_id, observation_id, observed_ms, name,
                         price, currency, availability, previous_price, previous_currency,
                         previous_availability, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    r.link_id,
                    obs,
                    r.observed_ms,
                    offer.name.as_deref().or(link.name.as_deref()),
                    key.price,
                    key.currency,
                    key.availability,
                    prev.price,
                    prev.currency,
                    prev.availability,
                    source,
                ])?;
            }
            let v = r.validators.clone().unwrap_or_default();
            c.prepare_cached(
                "UPDATE links SET last_checked_ms = ?2, last_outcome = 'ok', not_before_ms = NULL,
                     failures = 0, last_error = NULL, has_offer = 1, price = ?3, currency = ?4,
                     availability = ?5, name = COALESCE(?6, name), source = ?7,
                     last_change_ms = CASE WHEN ?8 THEN ?2 ELSE last_change_ms END,
                     etag = ?9, last_modified = ?10, body_hash = ?11
                 WHERE id = ?1",
            )?
            .execute(params![
                r.link_id,
                r.observed_ms,
                key.price,
                key.currency,
                key.availability,
                offer.name,
                source,
                changed,
                v.etag,
                v.last_modified,
                v.body_hash,
            ])?;
        }
        (Outcome::Ok | Outcome::NotModified, _) => {
            insert_observation(c, r, link.key.as_ref(), link.source.as_deref())?;
            // Same body, maybe new validators (a server may rotate its ETag).
            let v = r.validators.as_ref();
            c.prepare_cached(
                "UPDATE links SET last_checked_ms = ?2, last_outcome = ?3, not_before_ms = NULL,
                     failures = 0, last_error = NULL,
                     etag = CASE WHEN ?4 THEN ?5 ELSE etag END,
                     last_modified = CASE WHEN ?4 THEN ?6 ELSE last_modified END
                 WHERE id = ?1",
            )?
            .execute(params![
                r.link_id,
                r.observed_ms,
                r.outcome.as_str(),
                v.is_some(),
                v.and_then(|v| v.etag.as_deref()),
                v.and_then(|v| v.last_modified.as_deref()),
            ])?;
        }
        (Outcome::Failed | Outcome::Disallowed, _) => {
            insert_observation(c, r, None, None)?;
            let failed = r.outcome == Outcome::Failed;
            c.prepare_cached(
                "UPDATE links SET last_checked_ms = ?2, last_outcome = ?3, not_before_ms = ?4,
                     failures = CASE WHEN ?5 THEN failures + 1 ELSE 0 END, last_error = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                r.link_id,
                r.observed_ms,
                r.outcome.as_str(),
                r.not_before_ms,
                failed,
                r.error,
            ])?;
        }
    }
    Ok(())
}

fn ack(c: &Connection, acks: &[EventAck]) -> rusqlite::Result<()> {
    let now = crate::monitor::clock::now_ms();
    let mut stmt = c.prepare_cached(
        "UPDATE events SET file_done = MAX(file_done, ?2), webhook_done = MAX(webhook_done, ?3),
             delivered_ms = CASE WHEN ?4 THEN COALESCE(delivered_ms, ?5) ELSE delivered_ms END
         WHERE id = ?1",
    )?;
    for a in acks {
        stmt.execute(params![a.id, a.file_done, a.webhook_done, a.delivered, now])?;
    }
    Ok(())
}

fn sync(conn: &mut Connection, links: &[String], now: i64) -> rusqlite::Result<WatchListSync> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = WatchListSync::default();
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS input (url TEXT PRIMARY KEY); DELETE FROM temp.input;",
    )?;
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO links (url, phase, added_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(url) DO NOTHING",
        )?;
        let mut input = tx.prepare_cached("INSERT OR IGNORE INTO temp.input (url) VALUES (?1)")?;
        for url in links {
            out.added += add.execute(params![url, phase_of(url), now])?;
            input.execute([url])?;
        }
    }
    out.deactivated = tx.execute(
        "UPDATE links SET active = 0 WHERE active = 1 AND url NOT IN (SELECT url FROM temp.input)",
        [],
    )?;
    out.reactivated = tx.execute(
        "UPDATE links SET active = 1 WHERE active = 0 AND url IN (SELECT url FROM temp.input)",
        [],
    )?;
    out.active = tx.query_row("SELECT COUNT(*) FROM links WHERE active = 1", [], |r| {
        r.get::<_, i64>(0)
    })? as usize;
    tx.execute_batch("DELETE FROM temp.input")?;
    tx.commit()?;
    Ok(out)
}
