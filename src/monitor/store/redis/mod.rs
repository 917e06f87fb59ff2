//! [`Store`] on Redis, for several `monitor run` workers on any machines sharing one watch
//! list (issue 13). Key names are in `keys.rs` (and README, "Redis keys"); the Lua scripts in
//! `scripts.rs`.
//!
//! * **Schedule**: the sorted set `{P}:due` scores each active link by when it is next due.
//!   [`Store::claim_due`] takes due links *with a lease* in one script (`ZRANGEBYSCORE` ≤ now,
//!   then each re-scored to now + lease): no other worker sees them until the lease runs out,
//!   which is how the links of a worker that died are taken over. Recording a check re-scores
//!   the link to its next due time (the rules of `schedule.rs`, with the run's `--every`).
//! * **Record**: one script on the host's keys (link state, history, the change decision and
//!   the event as *pending* on the link), then one on the global keys (schedule, counters, the
//!   event appended to the stream once: `{P}:published` remembers the last observation
//!   published per link), then the pending event is cleared. Re-scoring and publishing are
//!   one script call, so no crash leaves a link scheduled for the next window with its event
//!   unpublished. A crash between the host and the global step leaves the link unscheduled
//!   (its lease runs out and another worker checks it again and publishes the pending
//!   event); a crash after the global step leaves only a published event to clear. Both scripts
//!   ignore a record they already applied, so a batch is simply sent again after a reconnect.
//! * **Events**: the stream `{P}:events`; the run's own sinks read it with the consumer group
//!   `scraipe-monitor` (`XREADGROUP`/`XACK`; entries a dead worker read but never acknowledged
//!   are taken over with `XAUTOCLAIM`). Other programs create their own groups.
//! * **Politeness across workers**: [`Store::host_slot_acquire`] takes one of `per_host` slots
//!   of a host (a sorted set of tokens scored by expiry, so a dead worker's slots free
//!   themselves) and keeps `Crawl-delay` between request starts (a key holding the earliest
//!   next start), on the server's clock.
//! * **Threads**: writes (records, acknowledgements, robots.txt, slot releases) go through a
//!   channel to one writer thread that pipelines a batch per round trip; reads run on the
//!   calling thread (the runner calls them on the blocking pool, never on an event loop).

mod conn;
mod keys;
mod scripts;
mod writer;

pub use keys::{Keys, GROUP};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Cmd, Connection, RedisError, Value};

use self::conn::{Conn, Scripts};
use self::keys::{host_of_url, split_origin};
use self::writer::WriteCmd;
use super::writer_thread::WriterThread;
use super::{
    series_by_currency, CheckRecord, DueLink, DueQuery, EventAck, HistoryRow, PendingEvent,
    PriceSeries, RobotsRecord, StatusSummary, Store, StoreError, StoredEvent, WatchListSync,
};
use crate::monitor::change::{ChangeEvent, OfferKey};
use crate::monitor::clock::rfc3339;

/// How long a call keeps reconnecting to an unavailable Redis before it fails (a restart with
/// a large AOF to load takes a while).
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(120);
/// URLs per `SYNC_ADD` script call (keeps each script short: Redis runs one at a time).
const SYNC_CHUNK: usize = 1000;
/// Idle time after which another worker takes over events a worker read but never
/// acknowledged (it died).
const EVENT_TAKEOVER_MS: u64 = 30_000;

/// Options of [`RedisStore::open_with`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Key prefix (default `scraipe`): several monitors can share a database.
    pub prefix: String,
    /// How long calls keep reconnecting (default [`DEFAULT_RETRY_FOR`]).
    pub retry_for: Duration,
    /// Observations kept per link, the oldest dropped first (default 0: all). History lives
    /// in memory: at ~300 bytes per observation, 1,000,000 links every 5 minutes add ~85 GB a
    /// day, so a large watch list wants a cap (and `export` to keep the rest elsewhere).
    pub history_limit: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "scraipe".into(),
            retry_for: DEFAULT_RETRY_FOR,
            history_limit: 0,
        }
    }
}

/// State shared by the store and its writer thread.
pub(crate) struct Shared {
    pub keys: Keys,
    pub scripts: Scripts,
    /// The window and spreading of the run (`set_setting`), for the next due time of a check.
    pub every_ms: AtomicI64,
    pub spread: AtomicBool,
    /// URLs of links this process claimed (records carry only the id).
    pub claimed: Mutex<HashMap<i64, String>>,
    /// Stream entry id of each event handed out by `pending_events`, by event id.
    pub entries: Mutex<HashMap<i64, String>>,
    /// Observations kept per link (0: all).
    pub history_limit: usize,
}

/// The Redis store. `Send + Sync`; share it as `Arc<RedisStore>` (or `Arc<dyn Store>`).
///
/// ```no_run
/// use scraipe::monitor::store::{RedisStore, Store};
/// let store = RedisStore::open("redis://127.0.0.1:6379/0")?;
/// store.sync_watch_list(&["https://shop.example/product/1".to_string()])?;
/// println!("{} active links", store.status(0)?.active_links);
/// # Ok::<(), scraipe::monitor::store::StoreError>(())
/// ```
pub struct RedisStore {
    url: String,
    shared: Arc<Shared>,
    reader: Mutex<Conn>,
    slots: Mutex<Conn>,
    consumer: String,
    group_ready: AtomicBool,
    writer: WriterThread<WriteCmd>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

/// `EVALSHA` of a script with its keys and arguments.
pub(crate) fn evalsha(script: &redis::Script, keys: &[&str], args: &[String]) -> Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(script.get_hash()).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    for a in args {
        c.arg(a.as_str());
    }
    c
}

fn opt(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The field/value pairs of a stream entry or an `XINFO` reply (RESP2 flat array or map).
fn pairs(v: &Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    match v {
        Value::Array(items) => {
            for kv in items.chunks(2) {
                if let [k, v] = kv {
                    if let Some(k) = text(k) {
                        out.insert(k, v.clone());
                    }
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                if let Some(k) = text(k) {
                    out.insert(k, v.clone());
                }
            }
        }
        _ => {}
    }
    out
}

/// A stream entry `[entry-id, [field, value, ...]]` as (entry id, event).
fn stream_entry(v: &Value) -> Option<(String, ChangeEvent, i64)> {
    let Value::Array(parts) = v else { return None };
    let entry = text(parts.first()?)?;
    let fields = pairs(parts.get(1)?);
    let get = |k: &str| fields.get(k).and_then(text).filter(|s| !s.is_empty());
    let observed_ms: i64 = get("observed_ms")?.parse().ok()?;
    let event = ChangeEvent {
        id: get("id")?.parse().ok()?,
        link: get("link")?,
        name: get("name"),
        price: get("price"),
        currency: get("currency"),
        availability: get("availability"),
        previous_price: get("previous_price"),
        previous_currency: get("previous_currency"),
        previous_availability: get("previous_availability"),
        source: get("source"),
        observed_at: get("observed_at").unwrap_or_else(|| rfc3339(observed_ms)),
    };
    Some((entry, event, observed_ms))
}

/// The entries of an `XREADGROUP` / `XAUTOCLAIM` reply.
fn read_entries(v: &Value) -> Vec<(String, ChangeEvent, i64)> {
    // XREADGROUP: [[stream, [entry, ...]]] (or a map stream → entries); XAUTOCLAIM:
    // [cursor, [entry, ...], deleted].
    let lists: Vec<&Value> = match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Some(&pair[1]),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items.iter().map(|(_, e)| e).collect(),
        _ => Vec::new(),
    };
    lists
        .into_iter()
        .filter_map(|l| match l {
            Value::Array(entries) => Some(entries.iter().filter_map(stream_entry)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// One observation as the history list keeps it.
#[derive(serde::Deserialize)]
struct HistRow {
    o: String,
    r: String,
    #[serde(default)]
    s: String,
    #[serde(default)]
    p: String,
    #[serde(default)]
    c: String,
    #[serde(default)]
    a: String,
    #[serde(default)]
    src: String,
    #[serde(default)]
    e: String,
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`, `rediss://` is not supported) with the
    /// default options. Fails when Redis cannot be reached within the retry time.
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        Self::open_with(url, RedisOptions::default())
    }

    /// Connects with `options`.
    pub fn open_with(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let shared = Arc::new(Shared {
            keys: Keys::new(&options.prefix),
            scripts: Scripts::new(),
            every_ms: AtomicI64::new(300_000),
            spread: AtomicBool::new(true),
            claimed: Mutex::new(HashMap::new()),
            entries: Mutex::new(HashMap::new()),
            history_limit: options.history_limit,
        });
        let mut reader = Conn::new(url, options.retry_for)?;
        // Fail early on a wrong address or a server that is not Redis (a short retry only).
        let retry_for = std::mem::replace(&mut reader.retry_for, Duration::from_secs(3));
        let settings: HashMap<String, String> = reader.run(&shared.scripts, "connecting", |c| {
            redis::cmd("HGETALL").arg(shared.keys.settings()).query(c)
        })?;
        reader.retry_for = retry_for;
        if let Some(every) = settings.get("every_ms").and_then(|v| v.parse().ok()) {
            shared.every_ms.store(every, Ordering::Relaxed);
        }
        let writer_conn = Conn::new(url, options.retry_for)?;
        let sh = shared.clone();
        let writer = WriterThread::spawn("scraipe-redis-writer", "the Redis writer", move |rx| {
            writer::run(writer_conn, sh, rx)
        })
        .map_err(|e| StoreError(format!("cannot start the Redis writer: {e}")))?;
        Ok(RedisStore {
            url: url.to_string(),
            shared,
            reader: Mutex::new(reader),
            slots: Mutex::new(Conn::new(url, options.retry_for)?),
            consumer: format!(
                "{}-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
                std::process::id(),
                crate::monitor::now_ms()
            ),
            group_ready: AtomicBool::new(false),
            writer,
        })
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key names.
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// This process's consumer name in the `scraipe-monitor` group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn send(&self, cmd: WriteCmd) -> Result<(), StoreError> {
        self.writer.send(cmd)
    }

    /// Writes everything queued and stops the writer thread (also done on drop).
    pub fn close(&self) {
        self.writer.close();
    }

    fn read<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        self.reader.lock().run(&self.shared.scripts, what, f)
    }

    /// Claims (lease) or peeks at due links, then reads their state.
    fn due(&self, q: &DueQuery, lease_ms: Option<i64>) -> Result<Vec<DueLink>, StoreError> {
        let k = &self.shared.keys;
        let (due, urls) = (k.due(), k.urls());
        let args = [
            q.now_ms.to_string(),
            (q.now_ms + lease_ms.unwrap_or(0)).to_string(),
            q.limit.to_string(),
            if lease_ms.is_some() { "1" } else { "0" }.to_string(),
        ];
        let claim = evalsha(&self.shared.scripts.claim, &[&due, &urls], &args);
        let flat: Vec<String> = self.read("claiming due links", |c| claim.query(c))?;
        let links: Vec<(i64, String)> = flat
            .chunks(2)
            .filter_map(|p| Some((p[0].parse().ok()?, p.get(1)?.clone())))
            .collect();
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, url) in &links {
            pipe.cmd("HMGET").arg(k.link(&host_of_url(url), *id)).arg(&[
                "etag",
                "lm",
                "bh",
                "failures",
                "last_checked",
                "has_offer",
                "price",
                "currency",
                "availability",
                "pending",
            ]);
        }
        let states: Vec<Vec<Option<String>>> =
            self.read("reading link state", |c| pipe.query(c))?;
        let mut out = Vec::with_capacity(links.len());
        let mut claimed = self.shared.claimed.lock();
        for ((id, url), f) in links.into_iter().zip(states) {
            let get = |i: usize| opt(f.get(i).cloned().flatten());
            if let Some(pending) = get(9) {
                // A crash came between recording a change and publishing it: publish it now.
                self.send(WriteCmd::Publish(id, url.clone(), pending))?;
            }
            if lease_ms.is_some() {
                claimed.insert(id, url.clone());
            }
            out.push(DueLink {
                id,
                etag: get(0),
                last_modified: get(1),
                body_hash: get(2),
                failures: get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
                last_checked_ms: get(4).and_then(|v| v.parse().ok()),
                last_offer: (get(5).as_deref() == Some("1")).then(|| OfferKey {
                    price: get(6),
                    currency: get(7),
                    availability: get(8),
                }),
                url,
            });
        }
        Ok(out)
    }

    fn ensure_group(&self) -> Result<(), StoreError> {
        if self.group_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let events = self.shared.keys.events();
        self.read("creating the consumer group", |c| {
            let r: Result<(), RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&events)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query(c);
            match r {
                Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                other => other,
            }
        })?;
        self.group_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// (id, url) of every link, by id.
    fn all_links(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let urls = self.shared.keys.urls();
        let map: HashMap<String, String> = self.read("listing links", |c| {
            redis::cmd("HGETALL").arg(&urls).query(c)
        })?;
        let mut links: Vec<(i64, String)> = map
            .into_iter()
            .filter_map(|(id, url)| Some((id.parse().ok()?, url)))
            .collect();
        links.sort();
        Ok(links)
    }

    /// The history lists of `links`, in chunks of one pipeline each.
    fn histories(
        &self,
        links: &[(i64, String)],
        mut each: impl FnMut(&(i64, String), Vec<HistRow>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let k = &self.shared.keys;
        for chunk in links.chunks(200) {
            let mut pipe = redis::pipe();
            for (id, url) in chunk {
                pipe.cmd("LRANGE")
                    .arg(k.history(&host_of_url(url), *id))
                    .arg(0)
                    .arg(-1);
            }
            let lists: Vec<Vec<String>> = self.read("reading history", |c| pipe.query(c))?;
            for (link, rows) in chunk.iter().zip(lists) {
                let rows = rows
                    .iter()
                    .map(|r| {
                        serde_json::from_str::<HistRow>(r)
                            .map_err(|e| StoreError(format!("unreadable history row {r:?}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                each(link, rows)?;
            }
        }
        Ok(())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for RedisStore {
    fn sync_watch_list(&self, links: &[String]) -> Result<WatchListSync, StoreError> {
        let k = &self.shared.keys;
        let s = &self.shared.scripts;
        let mut out = WatchListSync::default();
        let (ids, urls, active, due, seq, parked) = (
            k.ids(),
            k.urls(),
            k.active(),
            k.due(),
            k.link_seq(),
            k.parked(),
        );
        for chunk in links.chunks(SYNC_CHUNK) {
            let add = evalsha(
                &s.sync_add,
                &[&ids, &urls, &active, &due, &seq, &parked],
                chunk,
            );
            let (added, back): (usize, usize) = self.read("adding links", |c| add.query(c))?;
            out.added += added;
            out.reactivated += back;
        }
        let wanted: std::collections::HashSet<&str> = links.iter().map(String::as_str).collect();
        let all = self.all_links()?;
        let members: Vec<String> = self.read("listing active links", |c| {
            redis::cmd("SMEMBERS").arg(&active).query(c)
        })?;
        let members: std::collections::HashSet<String> = members.into_iter().collect();
        let gone: Vec<String> = all
            .iter()
            .filter(|(id, url)| !wanted.contains(url.as_str()) && members.contains(&id.to_string()))
            .map(|(id, _)| id.to_string())
            .collect();
        for chunk in gone.chunks(SYNC_CHUNK) {
            let remove = evalsha(&s.sync_remove, &[&active, &due, &parked], chunk);
            let n: usize = self.read("deactivating links", |c| remove.query(c))?;
            out.deactivated += n;
        }
        out.active = self.read("counting links", |c| {
            redis::cmd("SCARD").arg(&active).query(c)
        })?;
        Ok(out)
    }

    fn due_links(&self, q: &DueQuery) -> Result<Vec<DueLink>, StoreError> {
        self.due(q, None)
    }

    fn claim_due(&self, q: &DueQuery, lease_ms: i64) -> Result<Vec<DueLink>, StoreError> {
        self.due(q, Some(lease_ms.max(1)))
    }

    fn shared(&self) -> bool {
        true
    }

    fn renew_leases(&self, ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        self.send(WriteCmd::Renew(ids.to_vec(), lease_ms))
    }

    fn release_leases(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.send(WriteCmd::Unlease(ids.to_vec()))
    }

    fn host_slot_acquire(
        &self,
        host: &str,
        limit: usize,
        spacing_ms: i64,
        ttl_ms: i64,
        token: &str,
    ) -> Result<Option<Duration>, StoreError> {
        let k = &self.shared.keys;
        let (slots, next) = (k.slots(host), k.next_start(host));
        let cmd = evalsha(
            &self.shared.scripts.slot_acquire,
            &[&slots, &next],
            &[
                limit.to_string(),
                spacing_ms.max(0).to_string(),
                ttl_ms.max(1).to_string(),
                token.to_string(),
            ],
        );
        let wait: i64 = self
            .slots
            .lock()
            .run(&self.shared.scripts, "taking a host slot", |c| cmd.query(c))?;
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }

    fn host_slot_release(&self, host: &str, token: &str) -> Result<(), StoreError> {
        self.send(WriteCmd::Release(host.to_string(), token.to_string()))
    }

    fn record(&self, record: CheckRecord) -> Result<(), StoreError> {
        self.send(WriteCmd::Record(Box::new(record)))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.writer.ask(WriteCmd::Flush)?
    }

    fn pending_events(&self, after_id: i64, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        self.ensure_group()?;
        let k = &self.shared.keys;
        let (events, progress) = (k.events(), k.event_progress());
        let consumer = self.consumer.clone();
        let mut found: Vec<(String, ChangeEvent, i64)> = Vec::new();
        // Entries a dead worker read but never acknowledged become ours...
        // (They join our pending list, which the first read below returns.)
        let _: Value = self.read("taking over events", |c| {
            redis::cmd("XAUTOCLAIM")
                .arg(&events)
                .arg(GROUP)
                .arg(&consumer)
                .arg(EVENT_TAKEOVER_MS)
                .arg("0")
                .arg("COUNT")
                .arg(limit)
                .query(c)
        })?;
        // ...then ours not yet acknowledged (from the start), then new ones.
        for start in ["0", ">"] {
            let v: Value = self.read("reading events", |c| {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&consumer)
                    .arg("COUNT")
                    .arg(limit * 2 + 16)
                    .arg("STREAMS")
                    .arg(&events)
                    .arg(start)
                    .query(c)
            })?;
            found.extend(
                read_entries(&v)
                    .into_iter()
                    .filter(|(_, e, _)| e.id > after_id),
            );
            if found.len() >= limit {
                break;
            }
        }
        found.sort_by_key(|(_, e, _)| e.id);
        found.dedup_by_key(|(_, e, _)| e.id);
        found.truncate(limit);
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let entry_ids: Vec<&str> = found.iter().map(|(e, _, _)| e.as_str()).collect();
        let marks: Vec<Option<String>> = self.read("reading delivery progress", |c| {
            redis::cmd("HMGET").arg(&progress).arg(&entry_ids).query(c)
        })?;
        let mut entries = self.shared.entries.lock();
        Ok(found
            .into_iter()
            .zip(marks)
            .map(|((entry, event, _), mark)| {
                let mark = mark.unwrap_or_default();
                entries.insert(event.id, entry);
                PendingEvent {
                    id: event.id,
                    payload: serde_json::to_string(&event).unwrap_or_default(),
                    file_done: mark.contains("file"),
                    webhook_done: mark.contains("webhook"),
                }
            })
            .collect())
    }

    fn ack_events(&self, acks: &[EventAck]) -> Result<(), StoreError> {
        let mut entries = self.shared.entries.lock();
        let acks = acks
            .iter()
            .filter_map(|a| {
                // A delivered event leaves the map (it is read again only if not delivered).
                let entry = if a.delivered {
                    entries.remove(&a.id)?
                } else {
                    entries.get(&a.id)?.clone()
                };
                Some((entry, *a))
            })
            .collect();
        self.send(WriteCmd::Ack(acks))
    }

    fn robots_get(&self, origin: &str) -> Result<Option<RobotsRecord>, StoreError> {
        let (host, scheme) = split_origin(origin);
        let key = self.shared.keys.robots(&host, &scheme);
        let m: HashMap<String, String> = self.read("reading robots.txt", |c| {
            redis::cmd("HGETALL").arg(&key).query(c)
        })?;
        let num = |k: &str| m.get(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(fetched_ms), Some(expires_ms)) = (num("fetched_ms"), num("expires_ms")) else {
            return Ok(None);
        };
        Ok(Some(RobotsRecord {
            origin: origin.to_string(),
            fetched_ms,
            expires_ms,
            status: num("status").and_then(|s| u16::try_from(s).ok()),
            body: m.get("body").cloned().unwrap_or_default(),
        }))
    }

    fn robots_put(&self, record: RobotsRecord) -> Result<(), StoreError> {
        self.send(WriteCmd::Robots(record))
    }

    fn history(
        &self,
        link: Option<&str>,
        each: &mut dyn FnMut(HistoryRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let links = match link {
            Some(url) => {
                let ids = self.shared.keys.ids();
                let id: Option<i64> = self.read("finding a link", |c| {
                    redis::cmd("HGET").arg(&ids).arg(url).query(c)
                })?;
                id.map(|id| vec![(id, url.to_string())]).unwrap_or_default()
            }
            None => self.all_links()?,
        };
        self.histories(&links, |(_, url), rows| {
            for r in rows {
                each(HistoryRow {
                    link: url.clone(),
                    observed_at: rfc3339(r.o.parse().unwrap_or(0)),
                    outcome: r.r,
                    http_status: r.s.parse().ok(),
                    price: nonempty(r.p),
                    currency: nonempty(r.c),
                    availability: nonempty(r.a),
                    source: nonempty(r.src),
                    error: nonempty(r.e),
                })?;
            }
            Ok(())
        })
    }

    fn status(&self, now: i64) -> Result<StatusSummary, StoreError> {
        let k = &self.shared.keys;
        let mut pipe = redis::pipe();
        pipe.cmd("SCARD").arg(k.active());
        pipe.cmd("HLEN").arg(k.urls());
        pipe.cmd("ZCOUNT").arg(k.due()).arg("-inf").arg(0);
        pipe.cmd("ZCOUNT").arg(k.due()).arg("-inf").arg(now);
        pipe.cmd("SINTERCARD")
            .arg(2)
            .arg(k.active())
            .arg(k.failing());
        pipe.cmd("SINTERCARD")
            .arg(2)
            .arg(k.active())
            .arg(k.disallowed());
        pipe.cmd("HGET").arg(k.stats()).arg("observations");
        pipe.cmd("XLEN").arg(k.events());
        pipe.cmd("HGET").arg(k.settings()).arg("every_ms");
        pipe.cmd("HGET").arg(k.stats()).arg("last_check_ms");
        pipe.cmd("XREVRANGE")
            .arg(k.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        #[allow(clippy::type_complexity)]
        let (active, all, never, due_now, failing, disallowed, obs, events, every, last, latest): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            Option<u64>,
            u64,
            Option<i64>,
            Option<i64>,
            Value,
        ) = self.read("reading the status", |c| pipe.query(c))?;
        let last_change = match &latest {
            Value::Array(entries) => entries
                .first()
                .and_then(stream_entry)
                .map(|(_, e, ms)| (ms, e.link)),
            _ => None,
        };
        // Undelivered: read by the group but not acknowledged, plus not read yet.
        let events_key = k.events();
        let groups: Value = self.read("reading the consumer groups", |c| {
            match redis::cmd("XINFO").arg("GROUPS").arg(&events_key).query(c) {
                Err(e) if e.code() == Some("ERR") => Ok(Value::Nil),
                other => other,
            }
        })?;
        let mut pending_events = events;
        if let Value::Array(gs) = &groups {
            for g in gs {
                let g = pairs(g);
                if g.get("name").and_then(text).as_deref() == Some(GROUP) {
                    let num = |f: &str| g.get(f).and_then(text).and_then(|v| v.parse::<u64>().ok());
                    pending_events = num("pending").unwrap_or(0) + num("lag").unwrap_or(0);
                }
            }
        }
        Ok(StatusSummary {
            active_links: active,
            inactive_links: all.saturating_sub(active),
            never_checked: never,
            due_now,
            failing,
            disallowed,
            observations: obs.unwrap_or(0),
            events,
            pending_events,
            every_ms: every,
            last_check_ms: last,
            last_change,
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        match key {
            "every_ms" => {
                if let Ok(v) = value.parse() {
                    self.shared.every_ms.store(v, Ordering::Relaxed);
                }
            }
            "spread" => self.shared.spread.store(value != "0", Ordering::Relaxed),
            _ => {}
        }
        self.send(WriteCmd::Setting(key.to_string(), value.to_string()))
    }

    fn price_series(
        &self,
        each: &mut dyn FnMut(PriceSeries) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut links = self.all_links()?;
        links.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let k = &self.shared.keys;
        for chunk in links.chunks(200) {
            let mut pipe = redis::pipe();
            for (id, url) in chunk {
                pipe.cmd("HMGET")
                    .arg(k.link(&host_of_url(url), *id))
                    .arg(&["name", "currency"]);
            }
            let meta: Vec<(Option<String>, Option<String>)> =
                self.read("reading names", |c| pipe.query(c))?;
            let meta: HashMap<i64, (Option<String>, Option<String>)> =
                chunk.iter().map(|(id, _)| *id).zip(meta).collect();
            self.histories(chunk, |(id, url), rows| {
                let points: Vec<(i64, String, String, Option<String>)> = rows
                    .into_iter()
                    .filter(|r| matches!(r.r.as_str(), "ok" | "not_modified") && !r.p.is_empty())
                    .map(|r| (r.o.parse().unwrap_or(0), r.p, r.a, Some(r.c)))
                    .collect();
                let (name, currency) = meta.get(id).cloned().unwrap_or_default();
                series_by_currency(url, opt(name), opt(currency), points, each)
            })?;
        }
        Ok(())
    }

    fn latest_events(&self, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let events = self.shared.keys.events();
        let v: Value = self.read("reading events", |c| {
            redis::cmd("XREVRANGE")
                .arg(&events)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(limit)
                .query(c)
        })?;
        let Value::Array(entries) = v else {
            return Ok(Vec::new());
        };
        Ok(entries
            .iter()
            .filter_map(stream_entry)
            .map(|(_, e, ms)| StoredEvent {
                id: e.id,
                observed_ms: ms,
                payload: serde_json::to_string(&e).unwrap_or_default(),
            })
            .collect())
    }
}
