//! [`Store`] on SQLite: one reader connection for queries, one writer thread for every write
//! (see `writer.rs`), WAL so the two never block each other.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::schema;
use super::writer::{self, WriteCmd};
use super::writer_thread::WriterThread;
use super::{
    series_by_currency, CheckRecord, DueLink, DueQuery, EventAck, HistoryRow, PendingEvent,
    PriceSeries, RobotsRecord, StatusSummary, Store, StoreError, StoredEvent, WatchListSync,
};
use crate::llm::{CacheKey, LlmCache};
use crate::monitor::change::{ChangeEvent, OfferKey};
use crate::monitor::clock::{now_ms, rfc3339};

/// The SQLite store. `Send + Sync`; share it as `Arc<SqliteStore>` (or `Arc<dyn Store>`).
///
/// ```
/// use scraipe::monitor::store::{SqliteStore, Store};
/// let dir = std::env::temp_dir().join(format!("scraipe-doc-store-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let store = SqliteStore::open(dir.join("state.sqlite")).unwrap();
/// let sync = store.sync_watch_list(&["https://example.com/p/1".to_string()]).unwrap();
/// assert_eq!(sync.added, 1);
/// assert_eq!(store.status(0).unwrap().active_links, 1);
/// # drop(store); std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct SqliteStore {
    path: PathBuf,
    reader: Mutex<Connection>,
    writer: WriterThread<WriteCmd>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("cannot use the database '{}': {e}", path.display()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to this version.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens an existing database (for `export`, `status`, `report`): a missing file is an
    /// error instead of a new empty database.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(StoreError(format!(
                "no database at '{}' (run `scraipe monitor run --db {}` first)",
                path.display(),
                path.display()
            )));
        }
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<SqliteStore, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).map_err(|e| db_err(path, e))?;
        schema::configure(&conn).map_err(|e| db_err(path, e))?;
        schema::migrate(&mut conn).map_err(|e| db_err(path, e))?;
        let reader = Connection::open_with_flags(path, flags).map_err(|e| db_err(path, e))?;
        schema::configure(&reader).map_err(|e| db_err(path, e))?;
        let writer = WriterThread::spawn("scraipe-db-writer", "the database writer", move |rx| {
            writer::run(conn, rx)
        })
        .map_err(|e| db_err(path, e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            reader: Mutex::new(reader),
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, cmd: WriteCmd) -> Result<(), StoreError> {
        self.writer.send(cmd)
    }

    /// Commits everything and stops the writer thread (also done on drop).
    pub fn close(&self) {
        self.writer.close();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The LLM answer cache in the `llm_cache` table, so `extract = "llm"` pages whose text has
/// not changed cost nothing across runs. Lookups use the reader connection (an indexed
/// primary-key read); answers are written by the writer thread with the next batch. A
/// database error is a miss, never a failed analysis.
impl LlmCache for SqliteStore {
    fn get(&self, key: &CacheKey) -> Option<crate::results::JsonMap> {
        let conn = self.reader.lock();
        let value: String = conn
            .prepare_cached("SELECT value FROM llm_cache WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([key.as_str()], |r| r.get::<_, String>(0))
                    .optional()
            })
            .unwrap_or_else(|e| {
                log::warn!("llm cache lookup failed: {e}");
                None
            })?;
        match serde_json::from_str::<serde_json::Value>(&value) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    fn put(&self, key: &CacheKey, output: &crate::results::JsonMap) {
        let json = serde_json::Value::Object(output.clone()).to_string();
        if let Err(e) = self.send(WriteCmd::LlmCache(key.as_str().to_string(), json, now_ms())) {
            log::warn!("llm cache write failed: {e}");
        }
    }
}

/// The due rule of `schedule.rs` in SQL (`?1` now, `?2` every, `?3` spread).
const DUE_WHERE: &str = "active = 1
    AND (not_before_ms IS NULL OR not_before_ms <= ?1)
    AND (last_checked_ms IS NULL OR (
        last_checked_ms < ?1 AND last_checked_ms + ?2 <= ?1
        AND (?3 = 0 OR ?2 = 0
             OR (last_checked_ms + ?2)
                + ((phase % ?2) - ((last_checked_ms + ?2) % ?2) + ?2) % ?2 <= ?1)))";

fn event_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    let event = ChangeEvent {
        id: row.get("id")?,
        link: row.get("url")?,
        name: row.get("name")?,
        price: row.get("price")?,
        currency: row.get("currency")?,
        availability: row.get("availability")?,
        previous_price: row.get("previous_price")?,
        previous_currency: row.get("previous_currency")?,
        previous_availability: row.get("previous_availability")?,
        source: row.get("source")?,
        observed_at: rfc3339(row.get("observed_ms")?),
    };
    Ok(serde_json::to_string(&event).unwrap_or_default())
}

const EVENT_COLUMNS: &str = "e.id, l.url, e.name, e.price, e.currency, e.availability,
    e.previous_price, e.previous_currency, e.previous_availability, e.source, e.observed_ms,
    e.file_done, e.webhook_done";

impl Store for SqliteStore {
    fn sync_watch_list(&self, links: &[String]) -> Result<WatchListSync, StoreError> {
        self.writer
            .ask(|tx| WriteCmd::Sync(links.to_vec(), now_ms(), tx))?
    }

    fn due_links(&self, q: &DueQuery) -> Result<Vec<DueLink>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, url, etag, last_modified, body_hash, failures, last_checked_ms,
                    has_offer, price, currency, availability
             FROM links WHERE {DUE_WHERE}
             ORDER BY last_checked_ms IS NOT NULL, last_checked_ms, id LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![q.now_ms, q.every_ms.max(0), q.spread, q.limit as i64],
            |r| {
                Ok(DueLink {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    etag: r.get(2)?,
                    last_modified: r.get(3)?,
                    body_hash: r.get(4)?,
                    failures: r.get(5)?,
                    last_checked_ms: r.get(6)?,
                    last_offer: match r.get::<_, bool>(7)? {
                        true => Some(OfferKey {
                            price: r.get(8)?,
                            currency: r.get(9)?,
                            availability: r.get(10)?,
                        }),
                        false => None,
                    },
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record(&self, record: CheckRecord) -> Result<(), StoreError> {
        self.send(WriteCmd::Record(Box::new(record)))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.writer.ask(WriteCmd::Flush)?
    }

    fn pending_events(&self, after_id: i64, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN links l ON l.id = e.link_id
             WHERE e.delivered_ms IS NULL AND e.id > ?1 ORDER BY e.id LIMIT ?2"
        ))?;
        let rows = stmt.query_map([after_id, limit as i64], |r| {
            Ok(PendingEvent {
                id: r.get("id")?,
                payload: event_json(r)?,
                file_done: r.get("file_done")?,
                webhook_done: r.get("webhook_done")?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn ack_events(&self, acks: &[EventAck]) -> Result<(), StoreError> {
        self.send(WriteCmd::Ack(acks.to_vec()))
    }

    fn robots_get(&self, origin: &str) -> Result<Option<RobotsRecord>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT fetched_ms, expires_ms, status, body FROM robots WHERE origin = ?1",
        )?;
        Ok(stmt
            .query_row([origin], |r| {
                Ok(RobotsRecord {
                    origin: origin.to_string(),
                    fetched_ms: r.get(0)?,
                    expires_ms: r.get(1)?,
                    status: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn robots_put(&self, record: RobotsRecord) -> Result<(), StoreError> {
        self.send(WriteCmd::Robots(record))
    }

    fn history(
        &self,
        link: Option<&str>,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT l.url, o.observed_ms, o.outcome, o.http_status, o.price, o.currency,
                    o.availability, o.source, o.error
             FROM observations o JOIN links l ON l.id = o.link_id
             WHERE ?1 IS NULL OR l.url = ?1
             ORDER BY o.link_id, o.observed_ms, o.id",
        )?;
        let mut rows = stmt.query([link])?;
        while let Some(r) = rows.next()? {
            each(HistoryRow {
                link: r.get(0)?,
                observed_at: rfc3339(r.get(1)?),
                outcome: r.get(2)?,
                http_status: r.get(3)?,
                price: r.get(4)?,
                currency: r.get(5)?,
                availability: r.get(6)?,
                source: r.get(7)?,
                error: r.get(8)?,
            })?;
        }
        Ok(())
    }

    fn status(&self, now: i64) -> Result<StatusSummary, StoreError> {
        let conn = self.reader.lock();
        let count = |sql: &str| -> Result<u64, StoreError> {
            Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        let every_ms: Option<i64> = conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'every_ms'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|v| v.parse().ok());
        let due_now = conn.query_row(
            &format!("SELECT COUNT(*) FROM links WHERE {DUE_WHERE}"),
            params![now, every_ms.unwrap_or(300_000), false],
            |r| r.get::<_, i64>(0),
        )? as u64;
        let last_change = conn
            .query_row(
                "SELECT e.observed_ms, l.url FROM events e JOIN links l ON l.id = e.link_id
                 ORDER BY e.id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(StatusSummary {
            active_links: count("SELECT COUNT(*) FROM links WHERE active = 1")?,
            inactive_links: count("SELECT COUNT(*) FROM links WHERE active = 0")?,
            never_checked: count(
                "SELECT COUNT(*) FROM links WHERE active = 1 AND last_checked_ms IS NULL",
            )?,
            due_now,
            failing: count(
                "SELECT COUNT(*) FROM links WHERE active = 1 AND last_outcome = 'failed'",
            )?,
            disallowed: count(
                "SELECT COUNT(*) FROM links WHERE active = 1 AND last_outcome = 'disallowed'",
            )?,
            observations: count("SELECT COUNT(*) FROM observations")?,
            events: count("SELECT COUNT(*) FROM events")?,
            pending_events: count("SELECT COUNT(*) FROM events WHERE delivered_ms IS NULL")?,
            every_ms,
            last_check_ms: conn
                .query_row("SELECT MAX(last_checked_ms) FROM links", [], |r| r.get(0))?,
            last_change,
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.send(WriteCmd::Setting(key.to_string(), value.to_string()))
    }

    fn price_series(
        &self,
        each: &mut dyn FnMut(PriceSeries) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT l.id, l.url, l.name, l.currency, o.observed_ms, o.price, o.availability,
                    o.currency
             FROM observations o JOIN links l ON l.id = o.link_id
             WHERE o.outcome IN ('ok', 'not_modified') AND o.price IS NOT NULL
             ORDER BY l.url, o.observed_ms, o.id",
        )?;
        let mut rows = stmt.query([])?;
        // (id, url, name, the link's currency) and its points so far.
        type Link = (i64, String, Option<String>, Option<String>);
        type Points = Vec<(i64, String, String, Option<String>)>;
        let mut current: Option<(Link, Points)> = None;
        let mut emit = |(link, points): (Link, Vec<_>)| {
            let (_, url, name, currency) = link;
            series_by_currency(&url, name, currency, points, each)
        };
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            if current.as_ref().is_none_or(|((cid, ..), _)| *cid != id) {
                if let Some(done) = current.take() {
                    emit(done)?;
                }
                current = Some(((id, r.get(1)?, r.get(2)?, r.get(3)?), Vec::new()));
            }
            if let Some((_, points)) = current.as_mut() {
                points.push((
                    r.get(4)?,
                    r.get(5)?,
                    r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    r.get(7)?,
                ));
            }
        }
        if let Some(done) = current {
            emit(done)?;
        }
        Ok(())
    }

    fn latest_events(&self, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN links l ON l.id = e.link_id
             ORDER BY e.id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(StoredEvent {
                id: r.get("id")?,
                observed_ms: r.get("observed_ms")?,
                payload: event_json(r)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schedule::{due_at, phase_of};
    use crate::monitor::store::{LinkId, Outcome, Validators};
    use crate::offer::{Availability, Offer, OfferSource};

    fn temp_store(name: &str) -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "scraipe-store-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(dir.join("s.sqlite")).unwrap();
        (store, dir)
    }

    fn offer(price: &str, availability: Availability) -> Offer {
        Offer {
            price: Some(price.into()),
            currency: Some("EUR".into()),
            availability,
            name: Some("Thing".into()),
            source: OfferSource::JsonLd,
        }
    }

    fn ok(id: LinkId, at: i64, o: Offer) -> CheckRecord {
        CheckRecord {
            link_id: id,
            observed_ms: at,
            outcome: Outcome::Ok,
            http_status: Some(200),
            offer: Some(o),
            validators: Some(Validators::default()),
            error: None,
            not_before_ms: None,
        }
    }

    #[test]
    fn llm_answers_survive_a_reopen() {
        let (store, dir) = temp_store("llmcache");
        let key = CacheKey::new("m", "i", Some("{}"), "page text");
        assert!(LlmCache::get(&store, &key).is_none());
        let answer = serde_json::json!({"price": "12.50", "currency": "EUR"});
        store.put(&key, answer.as_object().unwrap());
        store.close();
        let store = SqliteStore::open(dir.join("s.sqlite")).unwrap();
        assert_eq!(LlmCache::get(&store, &key).as_ref(), answer.as_object());
        assert!(LlmCache::get(&store, &CacheKey::new("m", "i", None, "x")).is_none());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sql_and_rust_agree_on_what_is_due() {
        let (store, dir) = temp_store("due");
        let urls: Vec<String> = (0..60).map(|i| format!("https://h{i}.example/p")).collect();
        store.sync_watch_list(&urls).unwrap();
        let ids: Vec<(LinkId, String)> = {
            let c = store.reader.lock();
            let mut st = c.prepare("SELECT id, url FROM links ORDER BY id").unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // Checked at assorted times (a third never).
        let mut last = std::collections::HashMap::new();
        for (i, (id, _)) in ids.iter().enumerate() {
            if i % 3 != 0 {
                let at = 1_000_000 + (i as i64 * 7919) % 10_000;
                store
                    .record(ok(*id, at, offer("1", Availability::InStock)))
                    .unwrap();
                last.insert(*id, at);
            }
        }
        store.flush().unwrap();
        for every in [0i64, 1000, 4000, 30_000] {
            for spread in [false, true] {
                for now in [1_000_000i64, 1_004_000, 1_009_000, 1_013_500, 1_050_000] {
                    let q = DueQuery {
                        now_ms: now,
                        every_ms: every,
                        spread,
                        limit: 1000,
                    };
                    let mut got: Vec<LinkId> =
                        store.due_links(&q).unwrap().iter().map(|l| l.id).collect();
                    got.sort();
                    let want: Vec<LinkId> = ids
                        .iter()
                        .filter(|(id, url)| {
                            due_at(last.get(id).copied(), every, phase_of(url), spread) <= now
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    assert_eq!(got, want, "every {every} spread {spread} now {now}");
                }
            }
        }
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn events_follow_changes_only_and_replays_never_duplicate_them() {
        let (store, dir) = temp_store("events");
        store
            .sync_watch_list(&["https://a.example/1".into()])
            .unwrap();
        let id = store
            .due_links(&DueQuery {
                now_ms: 1,
                every_ms: 0,
                spread: false,
                limit: 1,
            })
            .unwrap()[0]
            .id;
        store
            .record(ok(id, 10, offer("9.99", Availability::InStock)))
            .unwrap();
        store
            .record(ok(id, 20, offer("9.99", Availability::InStock)))
            .unwrap();
        let mut same = ok(id, 25, offer("0", Availability::InStock));
        same.offer = None; // same body: the store copies the last offer
        store.record(same).unwrap();
        let mut failed = ok(id, 27, offer("0", Availability::InStock));
        failed.outcome = Outcome::Failed;
        failed.offer = None;
        failed.error = Some("HTTP 500".into());
        store.record(failed).unwrap();
        store
            .record(ok(id, 30, offer("9.99", Availability::OutOfStock)))
            .unwrap();
        store.flush().unwrap();
        let events = store.pending_events(0, 10).unwrap();
        assert_eq!(
            events.len(),
            2,
            "first sighting and the availability change"
        );
        let second: crate::monitor::change::ChangeEvent =
            serde_json::from_str(&events[1].payload).unwrap();
        assert_eq!(second.previous_availability.as_deref(), Some("in_stock"));
        assert_eq!(second.availability.as_deref(), Some("out_of_stock"));
        assert_eq!(second.observed_at, "1970-01-01T00:00:00.030Z");
        // Replaying an event insert for the same observation adds nothing (UNIQUE).
        {
            let c = store.reader.lock();
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO events (link_id, observation_id, observed_ms)
                     SELECT link_id, observation_id, observed_ms FROM events",
                    [],
                )
                .unwrap();
            assert_eq!(n, 0);
        }
        let mut rows = Vec::new();
        store
            .history(None, &mut |r| {
                rows.push((r.outcome, r.price));
                Ok(())
            })
            .unwrap();
        assert_eq!(rows[2], ("ok".to_string(), Some("9.99".to_string())));
        assert_eq!(rows[3], ("failed".to_string(), None));
        // Acknowledged events leave the outbox.
        store
            .ack_events(&[EventAck {
                id: events[0].id,
                file_done: true,
                webhook_done: true,
                delivered: true,
            }])
            .unwrap();
        store.flush().unwrap();
        assert_eq!(store.pending_events(0, 10).unwrap().len(), 1);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Measures the database size per observation (1,000 links × 10 checks, realistic
    /// URLs, prices and a mix of outcomes) and keeps it from growing unnoticed.
    #[test]
    fn database_size_per_observation_stays_small() {
        let (store, dir) = temp_store("size");
        let urls: Vec<String> = (0..1000)
            .map(|i| format!("http://shop-{i}.localhost:8080/product/{}", i % 3))
            .collect();
        store.sync_watch_list(&urls).unwrap();
        let links = store
            .due_links(&DueQuery {
                now_ms: 1,
                every_ms: 0,
                spread: false,
                limit: 2000,
            })
            .unwrap();
        let t0 = 1_764_000_000_000i64;
        for round in 0..10i64 {
            for (i, l) in links.iter().enumerate() {
                let at = t0 + round * 300_000 + i as i64;
                let mut r = ok(
                    l.id,
                    at,
                    offer(
                        &format!("{}.{:02}", 10 + i % 90, round % 3),
                        Availability::InStock,
                    ),
                );
                r.validators = Some(Validators {
                    etag: Some(format!("\"{:016x}\"", i * 7 + round as usize)),
                    last_modified: None,
                    body_hash: Some("ab".repeat(32)),
                });
                if round > 0 && i % 10 != 0 {
                    // 90 % of later checks are 304s.
                    r.outcome = Outcome::NotModified;
                    r.http_status = Some(304);
                    r.offer = None;
                    r.validators = None;
                }
                store.record(r).unwrap();
            }
        }
        store.flush().unwrap();
        store.close();
        let conn = Connection::open(dir.join("s.sqlite")).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(conn);
        let bytes = std::fs::metadata(dir.join("s.sqlite")).unwrap().len();
        let per_obs = bytes as f64 / 10_000.0;
        eprintln!("database: {bytes} bytes for 1,000 links × 10 observations ({per_obs:.0} bytes per observation)");
        assert!(per_obs < 250.0, "{per_obs} bytes per observation");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
