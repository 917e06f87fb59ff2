//! The writer thread: takes what the store queued (check records, event acknowledgements,
//! robots.txt answers, settings, slot releases) and writes a batch per round trip with
//! pipelines. A record is three steps (see the module docs of the store): the host script for
//! every record of the batch in one pipeline, then the global script for each, then the
//! clearing of the events just published.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::keys::{host_of_url, split_origin, GROUP};
use super::{evalsha, Shared};
use crate::monitor::clock::rfc3339;
use crate::monitor::schedule::{due_at, phase_of};
use crate::monitor::store::{CheckRecord, EventAck, LinkId, RobotsRecord, StoreError};

/// At most this many commands per batch.
const BATCH: usize = 512;

/// What the writer does.
pub enum WriteCmd {
    Record(Box<CheckRecord>),
    /// (stream entry id, progress) of delivered events.
    Ack(Vec<(String, EventAck)>),
    Robots(RobotsRecord),
    Setting(String, String),
    /// (host, token) of a politeness slot.
    Release(String, String),
    /// A change event left pending on a link by a crash: (id, url, event JSON).
    Publish(LinkId, String, String),
    /// Extend the leases of links in flight: (ids, lease ms).
    Renew(Vec<LinkId>, i64),
    /// Give back the leases of links not checked (a stop).
    Unlease(Vec<LinkId>),
    Flush(Sender<Result<(), StoreError>>),
}

/// A renewal skips links recorded this recently: the renewal was decided before their record
/// arrived and must not push back the due time the record set.
const RENEW_AFTER_RECORD: Duration = Duration::from_secs(1);

/// A pending event as the host script stores it.
#[derive(Clone, serde::Deserialize)]
struct Pending {
    o: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    availability: String,
    #[serde(default)]
    previous_price: String,
    #[serde(default)]
    previous_currency: String,
    #[serde(default)]
    previous_availability: String,
    #[serde(default)]
    source: String,
}

struct Writer {
    conn: Conn,
    shared: Arc<Shared>,
    error: Option<String>,
    /// When each link was last recorded (pruned as renewals pass; consulted by renewals and
    /// by lease releases).
    recorded: HashMap<LinkId, Instant>,
}

/// Runs until every sender is gone, writing what is left first.
pub fn run(conn: Conn, shared: Arc<Shared>, rx: Receiver<WriteCmd>) {
    let mut w = Writer {
        conn,
        shared,
        error: None,
        recorded: HashMap::new(),
    };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        w.apply(batch);
    }
}

fn s(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

impl Writer {
    fn fail(&mut self, e: StoreError) {
        log::error!("monitor store: {e}");
        self.error.get_or_insert(e.0);
    }

    /// The URL of link `id`: `None` for a link the store does not know; an error when Redis
    /// cannot be asked (not "unknown": the record must not be dropped as if it were).
    fn url_of(&mut self, id: LinkId) -> Result<Option<String>, StoreError> {
        if let Some(url) = self.shared.claimed.lock().remove(&id) {
            return Ok(Some(url));
        }
        let urls = self.shared.keys.urls();
        let scripts = &self.shared.scripts;
        self.conn.run(scripts, "finding a link", |c| {
            redis::cmd("HGET")
                .arg(&urls)
                .arg(id)
                .query::<Option<String>>(c)
        })
    }

    fn apply(&mut self, batch: Vec<WriteCmd>) {
        if self.error.is_some() {
            // A write already failed after `retry_for` of reconnecting, and the run has not
            // heard yet (it learns at its next flush, and stops with the error). Trying this
            // batch as well would hold that flush another `retry_for` for every batch queued
            // ahead of it — for as long as Redis stays down.
            let mut flushes = Vec::new();
            let mut dropped = 0;
            for cmd in batch {
                match cmd {
                    WriteCmd::Flush(tx) => flushes.push(tx),
                    _ => dropped += 1,
                }
            }
            if dropped > 0 {
                log::warn!("monitor store: {dropped} writes skipped after a failed one");
            }
            self.answer(flushes);
            return;
        }
        let mut simple = redis::pipe();
        let mut n_simple = 0;
        let mut records = Vec::new();
        let mut publish = Vec::new();
        let mut flushes = Vec::new();
        let k = self.shared.keys.clone();
        for cmd in batch {
            match cmd {
                WriteCmd::Record(r) => {
                    self.recorded.insert(r.link_id, Instant::now());
                    records.push(*r)
                }
                WriteCmd::Unlease(ids) => {
                    // Due now (`XX`: only if still on the watch list; `LT`: never later). A link
                    // whose record came through this writer keeps the due time it set.
                    let ids: Vec<LinkId> = ids
                        .into_iter()
                        .filter(|id| !self.recorded.contains_key(id))
                        .collect();
                    if !ids.is_empty() {
                        let now = crate::monitor::now_ms();
                        let c = simple.cmd("ZADD").arg(k.due()).arg("XX").arg("LT");
                        for id in ids {
                            c.arg(now).arg(id);
                        }
                        c.ignore();
                        n_simple += 1;
                    }
                }
                WriteCmd::Renew(ids, lease_ms) => {
                    let until = crate::monitor::now_ms() + lease_ms;
                    self.recorded
                        .retain(|_, at| at.elapsed() < RENEW_AFTER_RECORD);
                    let ids: Vec<LinkId> = ids
                        .into_iter()
                        .filter(|id| !self.recorded.contains_key(id))
                        .collect();
                    if !ids.is_empty() {
                        let c = simple.cmd("ZADD").arg(k.due()).arg("XX").arg("GT");
                        for id in ids {
                            c.arg(until).arg(id);
                        }
                        c.ignore();
                        n_simple += 1;
                    }
                }
                WriteCmd::Publish(id, url, json) => publish.push((id, url, json)),
                WriteCmd::Flush(tx) => flushes.push(tx),
                WriteCmd::Setting(key, value) => {
                    simple
                        .cmd("HSET")
                        .arg(k.settings())
                        .arg(key)
                        .arg(value)
                        .ignore();
                    n_simple += 1;
                }
                WriteCmd::Release(host, token) => {
                    simple.cmd("ZREM").arg(k.slots(&host)).arg(token).ignore();
                    n_simple += 1;
                }
                WriteCmd::Robots(r) => {
                    let (host, scheme) = split_origin(&r.origin);
                    let key = k.robots(&host, &scheme);
                    simple
                        .cmd("HSET")
                        .arg(&key)
                        .arg("fetched_ms")
                        .arg(r.fetched_ms)
                        .arg("expires_ms")
                        .arg(r.expires_ms)
                        .arg("status")
                        .arg(r.status.map(|s| s.to_string()).unwrap_or_default())
                        .arg("body")
                        .arg(&r.body)
                        .ignore();
                    // Kept a day past its expiry, then Redis forgets it.
                    simple
                        .cmd("PEXPIREAT")
                        .arg(&key)
                        .arg(r.expires_ms + 86_400_000)
                        .ignore();
                    n_simple += 1;
                }
                WriteCmd::Ack(acks) => {
                    for (entry, a) in acks {
                        if a.delivered {
                            simple
                                .cmd("XACK")
                                .arg(k.events())
                                .arg(GROUP)
                                .arg(&entry)
                                .ignore();
                            simple
                                .cmd("HDEL")
                                .arg(k.event_progress())
                                .arg(&entry)
                                .ignore();
                        } else {
                            let mark = match (a.file_done, a.webhook_done) {
                                (true, true) => "file,webhook",
                                (true, false) => "file",
                                (false, true) => "webhook",
                                (false, false) => "",
                            };
                            simple
                                .cmd("HSET")
                                .arg(k.event_progress())
                                .arg(&entry)
                                .arg(mark)
                                .ignore();
                        }
                        n_simple += 1;
                    }
                }
            }
        }
        if n_simple > 0 {
            let scripts = &self.shared.scripts;
            if let Err(e) = self.conn.run(scripts, "writing", |c| simple.exec(c)) {
                self.fail(e);
            }
        }
        if !records.is_empty() {
            if let Err(e) = self.records(records) {
                self.fail(e);
            }
        }
        for (id, url, json) in publish {
            let Some(event) = parse_pending(id, &json) else {
                continue;
            };
            if let Err(e) = self.publish(&[(id, url, event, false)], &mut Vec::new()) {
                self.fail(e);
            }
        }
        self.answer(flushes);
    }

    /// Tells each waiting flush how the writes before it went: the first error since the last
    /// flush, if any.
    fn answer(&mut self, flushes: Vec<Sender<Result<(), StoreError>>>) {
        if flushes.is_empty() {
            return;
        }
        let result = match self.error.take() {
            Some(e) => Err(StoreError(e)),
            None => Ok(()),
        };
        for tx in flushes {
            let _ = tx.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| StoreError(e.0.clone())),
            );
        }
    }

    fn records(&mut self, records: Vec<CheckRecord>) -> Result<(), StoreError> {
        let k = self.shared.keys.clone();
        let every = self.shared.every_ms.load(Ordering::Relaxed).max(0);
        let spread = self.shared.spread.load(Ordering::Relaxed);
        // Step 1: the host scripts, one pipeline.
        let mut items = Vec::with_capacity(records.len());
        for r in records {
            match self.url_of(r.link_id)? {
                Some(url) => items.push((r, url)),
                None => log::warn!("record of unknown link {} dropped", r.link_id),
            }
        }
        let mut pipe = redis::pipe();
        for (r, url) in &items {
            let host = host_of_url(url);
            let (link, hist, queue) = (
                k.link(&host, r.link_id),
                k.history(&host, r.link_id),
                k.event_queue(&host, r.link_id),
            );
            let offer = r.offer.as_ref();
            let v = r.validators.clone().unwrap_or_default();
            let args = vec![
                r.link_id.to_string(),
                url.clone(),
                r.observed_ms.to_string(),
                r.outcome.as_str().to_string(),
                r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                if offer.is_some() { "1" } else { "0" }.to_string(),
                offer.map(|o| s(&o.price)).unwrap_or_default(),
                offer.map(|o| s(&o.currency)).unwrap_or_default(),
                offer
                    .map(|o| o.availability.as_str().to_string())
                    .unwrap_or_default(),
                offer.map(|o| s(&o.name)).unwrap_or_default(),
                offer
                    .map(|o| o.source.as_str().to_string())
                    .unwrap_or_default(),
                if r.validators.is_some() { "1" } else { "0" }.to_string(),
                s(&v.etag),
                s(&v.last_modified),
                s(&v.body_hash),
                s(&r.error),
                r.not_before_ms.map(|t| t.to_string()).unwrap_or_default(),
                self.shared.history_limit.to_string(),
            ];
            pipe.add_command(evalsha(
                &self.shared.scripts.record,
                &[&link, &hist, &queue],
                &args,
            ));
        }
        let scripts = &self.shared.scripts;
        let results: Vec<(i64, String)> = self
            .conn
            .run(scripts, "recording checks", |c| pipe.query(c))?;
        // Step 2: the global scripts (schedule, counters), each with the link's pending event.
        // Re-scoring a link and publishing its event happen in ONE script call: were they two,
        // a worker killed between them would leave the link scheduled for the next window with
        // its event unpublished until then (the three-worker kill -9 test caught exactly that).
        let mut pipe = redis::pipe();
        let mut pending = Vec::new();
        for ((r, url), (applied, event)) in items.iter().zip(results) {
            let parsed = parse_pending(r.link_id, &event);
            if applied == 1 {
                let mut due = due_at(Some(r.observed_ms), every, phase_of(url), spread);
                if let Some(nb) = r.not_before_ms {
                    due = due.max(nb);
                }
                let mut args = match &parsed {
                    Some(p) => event_args(r.link_id, url, p),
                    None => {
                        let mut args = vec![String::new(); 16];
                        args[0] = r.link_id.to_string();
                        args[4] = "0".to_string();
                        args
                    }
                };
                args[1] = r.observed_ms.to_string();
                args[2] = r.outcome.as_str().to_string();
                args[3] = due.to_string();
                pipe.add_command(self.global_cmd(&args));
            }
            if let Some(p) = parsed {
                // Published above when applied; after a replay (applied 0), in step 3.
                pending.push((r.link_id, url.clone(), p, applied == 1));
            }
        }
        if pipe.cmd_iter().next().is_some() {
            let scripts = &self.shared.scripts;
            self.conn
                .run(scripts, "scheduling checks", |c| pipe.exec(c))?;
        }
        // Step 3: publish what step 2 did not, and clear the events from their links.
        let mut next = Vec::new();
        self.publish(&pending, &mut next)?;
        // A second change that waited behind the first (rare): publish it too.
        let mut rounds = 0;
        while !next.is_empty() && rounds < 8 {
            let again = std::mem::take(&mut next);
            self.publish(&again, &mut next)?;
            rounds += 1;
        }
        Ok(())
    }

    fn global_cmd(&self, args: &[String]) -> redis::Cmd {
        let k = &self.shared.keys;
        let keys = [
            k.due(),
            k.active(),
            k.checked(),
            k.failing(),
            k.disallowed(),
            k.stats(),
            k.published(),
            k.events(),
            k.event_seq(),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        evalsha(&self.shared.scripts.global, &keys, args)
    }

    /// Appends pending events to the stream unless step 2 already did (the script checks
    /// again, so a repeat is harmless) and clears them from their links; events that were
    /// queued behind them go to `next`.
    fn publish(
        &mut self,
        events: &[PendingOnLink],
        next: &mut Vec<PendingOnLink>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let k = self.shared.keys.clone();
        let mut pipe = redis::pipe();
        let mut clear = redis::pipe();
        for (id, url, p, published) in events {
            if !published {
                pipe.add_command(self.global_cmd(&event_args(*id, url, p)));
            }
            let host = host_of_url(url);
            clear.add_command(evalsha(
                &self.shared.scripts.clear_pending,
                &[&k.link(&host, *id), &k.event_queue(&host, *id)],
                std::slice::from_ref(&p.o),
            ));
        }
        if pipe.cmd_iter().next().is_some() {
            let scripts = &self.shared.scripts;
            self.conn
                .run(scripts, "publishing events", |c| pipe.exec(c))?;
        }
        let scripts = &self.shared.scripts;
        let after: Vec<String> = self
            .conn
            .run(scripts, "clearing published events", |c| clear.query(c))?;
        for ((id, url, _, _), nxt) in events.iter().zip(after) {
            if let Some(p) = parse_pending(*id, &nxt) {
                next.push((*id, url.clone(), p, false));
            }
        }
        Ok(())
    }
}

/// A link's pending event: (link id, URL, event, already published).
type PendingOnLink = (LinkId, String, Pending, bool);

/// A pending event's JSON as the host script stores it; None for '' or unreadable JSON
/// (logged).
fn parse_pending(id: LinkId, json: &str) -> Option<Pending> {
    if json.is_empty() {
        return None;
    }
    match serde_json::from_str(json) {
        Ok(p) => Some(p),
        Err(err) => {
            log::error!("unreadable pending event of link {id}: {err}");
            None
        }
    }
}

/// The GLOBAL script's arguments that publish `p` (outcome '' = publish only; step 2 fills in
/// the check's fields to schedule it in the same call).
fn event_args(id: LinkId, url: &str, p: &Pending) -> Vec<String> {
    let obs: i64 = p.o.parse().unwrap_or(0);
    vec![
        id.to_string(),
        p.o.clone(),
        String::new(),
        String::new(),
        "1".into(),
        url.to_string(),
        p.name.clone(),
        p.price.clone(),
        p.currency.clone(),
        p.availability.clone(),
        p.previous_price.clone(),
        p.previous_currency.clone(),
        p.previous_availability.clone(),
        p.source.clone(),
        rfc3339(obs),
        p.o.clone(),
    ]
}
