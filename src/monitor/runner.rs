//! The [`Monitor`]: a builder a Rust program embeds, and the run loop.
//!
//! The loop runs on scraipe's runtime. It claims due links from the store in batches (never a
//! link already in flight), runs at most `concurrency` checks at once, each behind the per-host
//! gate (`per_host` at once, robots.txt `Crawl-delay` and `Retry-After` spacing; a host held
//! back by a long `Retry-After` turns its checks into "held back" records at once), hands
//! results to the store's writer, and delivers change events from the outbox about once a
//! second.
//! `once` checks what is due at the start and returns; otherwise it runs until `stop_when`
//! says so, then gives in-flight checks a short grace, abandons the rest (they are redone next
//! time), delivers what it can and flushes.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::change::{is_change, OfferKey};
use super::check::Checker;
use super::client::{build_client, ClientOptions};
use super::clock::now_ms;
use super::events::{blocking, Deliverer, DeliveryReport, Sinks};
use super::robots::product_token;
use super::robots_cache::RobotsCache;
use super::shared_gate::SharedGate;
use super::store::{CheckRecord, DueLink, DueQuery, LinkId, Outcome, Store};
use crate::llm::LlmAnalyzer;
use crate::offer::Rules;
use crate::politeness::HostLimiter;
use crate::rt::sync::Semaphore;
use crate::rt::JoinSet;

/// How long in-flight checks may finish after a stop request before they are abandoned.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

type StopFn = Arc<dyn Fn() -> bool + Send + Sync>;
type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Counters of a run, for a status line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Checks done.
    pub checked: u64,
    /// Of which unchanged (304, or the same body, or the same offer).
    pub unchanged: u64,
    /// Of which changed (a new offer, the first one included).
    pub changed: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which disallowed by robots.txt.
    pub disallowed: u64,
    /// Of the unchanged, answered 304.
    pub not_modified: u64,
    /// Of the unchanged, a 200 whose body hash was the last one (extraction skipped).
    pub same_body: u64,
    /// Checks running now.
    pub in_flight: u64,
    /// Checks per second since the start.
    pub per_sec: f64,
}

#[derive(Default)]
struct Counters {
    checked: AtomicU64,
    unchanged: AtomicU64,
    changed: AtomicU64,
    failed: AtomicU64,
    disallowed: AtomicU64,
    not_modified: AtomicU64,
    same_body: AtomicU64,
}

impl Counters {
    fn count(&self, link: &DueLink, r: &CheckRecord) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        let bucket = match (r.outcome, &r.offer) {
            (Outcome::Ok, Some(offer)) => {
                let key = OfferKey {
                    price: offer.price.clone(),
                    currency: offer.currency.clone(),
                    availability: Some(offer.availability.as_str().to_string()),
                };
                if is_change(link.last_offer.as_ref(), &key) {
                    &self.changed
                } else {
                    &self.unchanged
                }
            }
            (Outcome::NotModified, _) => {
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                &self.unchanged
            }
            (Outcome::Ok, None) => {
                self.same_body.fetch_add(1, Ordering::Relaxed);
                &self.unchanged
            }
            (Outcome::Failed, _) => &self.failed,
            (Outcome::Disallowed, _) => &self.disallowed,
        };
        bucket.fetch_add(1, Ordering::Relaxed);
    }

    /// Back to zero: each run reports its own counts.
    fn reset(&self) {
        for c in [
            &self.checked,
            &self.unchanged,
            &self.changed,
            &self.failed,
            &self.disallowed,
            &self.not_modified,
            &self.same_body,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn snapshot(&self, in_flight: usize, started: Instant) -> Progress {
        let checked = self.checked.load(Ordering::Relaxed);
        Progress {
            checked,
            unchanged: self.unchanged.load(Ordering::Relaxed),
            changed: self.changed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            disallowed: self.disallowed.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            same_body: self.same_body.load(Ordering::Relaxed),
            in_flight: in_flight as u64,
            per_sec: checked as f64 / started.elapsed().as_secs_f64().max(1e-3),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunSummary {
    /// The counters at the end.
    pub progress: Progress,
    /// Events delivered to every sink during the run.
    pub events_delivered: u64,
    /// Events still in the outbox at the end (e.g. the webhook was down).
    pub events_waiting: u64,
    /// Checks abandoned at a stop (redone next time).
    pub abandoned: u64,
    /// How long the run took.
    pub elapsed: Duration,
}

/// Configures a [`Monitor`].
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use scraipe::monitor::{Monitor, store::{SqliteStore, Store}};
///
/// let store = Arc::new(SqliteStore::open("prices.sqlite")?);
/// store.sync_watch_list(&["https://shop.example/product/1".to_string()])?;
/// let monitor = Monitor::builder(store)
///     .every(Duration::from_secs(300))
///     .once(true)
///     .changes_to(Box::new(std::io::stdout()))
///     .build()?;
/// let summary = monitor.run()?;
/// println!("{} checked, {} changed", summary.progress.checked, summary.progress.changed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MonitorBuilder {
    store: Arc<dyn Store>,
    every: Duration,
    once: bool,
    concurrency: usize,
    per_host: usize,
    timeout: Duration,
    retries: u32,
    user_agent: Option<String>,
    ca_certs: Vec<Vec<u8>>,
    proxy: Option<String>,
    ignore_robots: bool,
    rules: Arc<Rules>,
    changes: Option<Box<dyn Write + Send>>,
    webhook: Option<String>,
    stop: Option<StopFn>,
    progress: Option<ProgressFn>,
    threads: Option<usize>,
    lease: Duration,
    llm: Option<Arc<LlmAnalyzer>>,
}

impl MonitorBuilder {
    /// The LLM analyzer for `extract = "llm"` rules (required when the rules have one). Build
    /// it with [`offer_schema`](crate::offer::offer_schema) and
    /// [`OFFER_INSTRUCTION`](crate::offer::OFFER_INSTRUCTION), and give it the store as its
    /// cache when the store is a [`SqliteStore`](super::store::SqliteStore), so answers
    /// survive the run.
    pub fn llm(mut self, analyzer: Arc<LlmAnalyzer>) -> Self {
        self.llm = Some(analyzer);
        self
    }
    /// With a store several workers share ([`Store::shared`]): how long a claimed link stays
    /// this worker's before another may take it (default 60 s; renewed while the check waits
    /// or runs, so it only runs out when this worker dies).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }
    /// The window: a link is due when its last check is older (default 5 min; zero: always).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }
    /// Check what is due now and return, instead of running until stopped.
    pub fn once(mut self, once: bool) -> Self {
        self.once = once;
        self
    }
    /// Checks in flight at once (default 64).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Requests in flight at once per host (default 2).
    pub fn per_host(mut self, n: usize) -> Self {
        self.per_host = n.max(1);
        self
    }
    /// Whole-request deadline (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Retries of transient failures (connection errors, 429/502/503/504) per request
    /// (default 1).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
    /// The `User-Agent`; its product token selects the robots.txt group.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }
    /// Trusts the certificates of a PEM bundle as well.
    pub fn ca_cert_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_certs.push(pem);
        self
    }
    /// A proxy URL (`http://`, `socks5://`, `socks5h://`); without one, the
    /// environment's proxies apply (as curl).
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }
    /// Skip robots.txt entirely.
    pub fn ignore_robots(mut self, ignore: bool) -> Self {
        self.ignore_robots = ignore;
        self
    }
    /// Extraction rules.
    pub fn rules(mut self, rules: Arc<Rules>) -> Self {
        self.rules = rules;
        self
    }
    /// Where change events are appended as JSON lines (none by default).
    pub fn changes_to(mut self, out: Box<dyn Write + Send>) -> Self {
        self.changes = Some(out);
        self
    }
    /// POST each change event to this URL.
    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook = Some(url.into());
        self
    }
    /// Polled a few times a second; the run stops when it returns true.
    pub fn stop_when(mut self, stop: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.stop = Some(Arc::new(stop));
        self
    }
    /// Called about five times a second with the counters.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
    /// Runtime worker threads (default: one per CPU).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Builds the monitor: the client, the runtime. Fails on an unusable setting.
    pub fn build(self) -> Result<Monitor, String> {
        if self.rules.uses_llm() && self.llm.is_none() {
            return Err(
                "the rules have extract = \"llm\" entries but the monitor has no LLM analyzer"
                    .into(),
            );
        }
        let client = build_client(&ClientOptions {
            timeout: self.timeout,
            user_agent: self.user_agent.clone(),
            ca_certs: self.ca_certs.clone(),
            proxy: self.proxy.clone(),
            retries: self.retries,
            per_host: self.per_host,
            concurrency: self.concurrency,
        })?;
        let mut rt = crate::rt::Builder::new().thread_name("scraipe-monitor");
        if let Some(n) = self.threads {
            rt = rt.worker_threads(n);
        }
        let runtime = rt
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let gate = HostLimiter::new(self.per_host);
        // Workers sharing the store also share each host's slots (issue 13).
        let shared_gate = self.store.shared().then(|| {
            SharedGate::new(
                self.store.clone(),
                self.per_host,
                // Held over one request and the client's retries of it.
                self.timeout * (self.retries + 1) + Duration::from_secs(5),
            )
        });
        let agent = product_token(
            &self
                .user_agent
                .clone()
                .unwrap_or_else(super::client::default_user_agent),
        );
        let robots = (!self.ignore_robots).then(|| {
            Arc::new(
                RobotsCache::new(self.store.clone(), client.clone(), gate.clone(), agent)
                    .with_shared_gate(shared_gate.clone()),
            )
        });
        let checker = Checker {
            client: client.clone(),
            // A new model re-extracts pages too.
            rules_fingerprint: format!(
                "{:?}{}",
                self.rules,
                self.llm.as_ref().map_or("", |l| l.model())
            )
            .into_bytes(),
            rules: self.rules,
            robots,
            gate,
            shared_gate,
            every: self.every,
            llm: self.llm,
        };
        let deliverer = Deliverer::new(
            Sinks {
                changes: self.changes,
                webhook: self.webhook,
            },
            client,
        );
        Ok(Monitor {
            runtime,
            inner: Arc::new(Inner {
                store: self.store,
                checker,
                deliverer,
                every: self.every,
                once: self.once,
                concurrency: self.concurrency,
                stop: self.stop.unwrap_or_else(|| Arc::new(|| false)),
                progress: self.progress,
                counters: Counters::default(),
                lease: self.lease,
            }),
        })
    }
}

struct Inner {
    store: Arc<dyn Store>,
    checker: Checker,
    deliverer: Deliverer,
    every: Duration,
    once: bool,
    concurrency: usize,
    stop: StopFn,
    progress: Option<ProgressFn>,
    counters: Counters,
    lease: Duration,
}

/// The price monitor. Build one with [`Monitor::builder`], then [`run`](Monitor::run) it.
pub struct Monitor {
    runtime: crate::rt::Runtime,
    inner: Arc<Inner>,
}

impl Monitor {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn Store>) -> MonitorBuilder {
        MonitorBuilder {
            store,
            every: Duration::from_secs(300),
            once: false,
            concurrency: 64,
            per_host: 2,
            timeout: Duration::from_secs(10),
            retries: 1,
            user_agent: None,
            ca_certs: Vec::new(),
            proxy: None,
            ignore_robots: false,
            rules: Arc::new(Rules::default()),
            changes: None,
            webhook: None,
            stop: None,
            progress: None,
            threads: None,
            lease: Duration::from_secs(60),
            llm: None,
        }
    }

    /// The handle of the monitor's own runtime (e.g. for the executor observatory).
    pub fn handle(&self) -> crate::rt::Handle {
        self.runtime.handle().clone()
    }

    /// Runs (see the module docs) and returns what happened in this run. May be called again
    /// (each `once` run checks what is due then). Errors are store errors (the database or
    /// the changes file cannot be written).
    pub fn run(&self) -> Result<RunSummary, String> {
        let inner = self.inner.clone();
        self.runtime
            .block_on(drive(inner))
            .map_err(|e| e.to_string())
    }
}

/// A link's place in the in-flight set, given up on drop.
struct InFlight {
    set: Arc<Mutex<HashSet<LinkId>>>,
    id: LinkId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

/// A non-blocking look at the set: every task that has finished is taken out.
fn reap(tasks: &mut JoinSet<()>) {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    while let std::task::Poll::Ready(Some(_)) = tasks.poll_join_next(&mut cx) {}
}

async fn drive(inner: Arc<Inner>) -> Result<RunSummary, super::store::StoreError> {
    let started = Instant::now();
    let start_ms = now_ms();
    inner.counters.reset();
    log::info!(
        "monitor run: every {:?}, {}, {} checks at once",
        inner.every,
        if inner.once { "once" } else { "until stopped" },
        inner.concurrency
    );
    let every_ms = inner.every.as_millis() as i64;
    let store = inner.store.clone();
    store.set_setting("every_ms", &every_ms.to_string())?;
    // For a store that computes the next due time when a check is recorded (Redis).
    store.set_setting("spread", if inner.once { "0" } else { "1" })?;
    let lease_ms = inner.lease.as_millis() as i64;
    let renew_every = (inner.lease / 3).max(Duration::from_millis(100));
    let mut next_renewal = Instant::now() + renew_every;
    let in_flight: Arc<Mutex<HashSet<LinkId>>> = Arc::new(Mutex::new(HashSet::new()));
    let slots = Arc::new(Semaphore::new(inner.concurrency));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut claimed: HashSet<LinkId> = HashSet::new();
    let batch = (inner.concurrency * 4).max(64);
    let mut next_claim = Instant::now();
    let mut next_delivery = Instant::now() + Duration::from_secs(1);
    let mut next_progress = Instant::now();
    let delivering = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    loop {
        reap(&mut tasks);
        if (inner.stop)() {
            break;
        }
        let now = Instant::now();
        let busy = in_flight.lock().len();
        if now >= next_claim && busy < batch / 2 {
            // Snapshot the in-flight set *before* flushing: a check that finishes in between
            // has sent its record before leaving the set, so the flush makes it visible.
            let snapshot: HashSet<LinkId> = in_flight.lock().clone();
            let query = DueQuery {
                now_ms: if inner.once { start_ms } else { now_ms() },
                every_ms,
                spread: !inner.once,
                // A leasing store never hands out what is in flight, and every link it hands
                // out is leased to us: take only what we will check now.
                limit: if store.shared() {
                    batch - busy
                } else {
                    batch + snapshot.len()
                },
            };
            let due = blocking(&store, move |s| {
                s.flush()?;
                s.claim_due(&query, lease_ms)
            })
            .await?;
            let fresh: Vec<DueLink> = due
                .into_iter()
                .filter(|l| !snapshot.contains(&l.id))
                // `once` checks each link at most once, even one whose record was lost.
                .filter(|l| !inner.once || claimed.insert(l.id))
                .take(batch - busy)
                .collect();
            if fresh.is_empty() {
                if inner.once && busy == 0 {
                    break;
                }
                next_claim = now + Duration::from_millis(if inner.once { 20 } else { 200 });
            } else {
                next_claim = now + Duration::from_millis(20);
            }
            for link in fresh {
                in_flight.lock().insert(link.id);
                let guard = InFlight {
                    set: in_flight.clone(),
                    id: link.id,
                };
                let (inner, slots) = (inner.clone(), slots.clone());
                tasks.spawn(async move {
                    // Leaves the set however the task ends (even by a panic or an abort), and
                    // only after the record was handed to the store (see the claim above).
                    let _guard = guard;
                    let _slot = slots.acquire().await;
                    let record = inner.checker.check(&link).await;
                    log::debug!(
                        "{}: {} {:?} {}",
                        link.url,
                        record.outcome.as_str(),
                        record.http_status,
                        record.error.as_deref().unwrap_or("")
                    );
                    inner.counters.count(&link, &record);
                    if let Err(e) = inner.store.record(record) {
                        log::error!("cannot record the check of {}: {e}", link.url);
                    }
                });
            }
        }
        if store.shared() && now >= next_renewal {
            // Links claimed but not yet recorded stay ours (queued behind a busy host, or slow).
            next_renewal = now + renew_every;
            let ids: Vec<LinkId> = in_flight.lock().iter().copied().collect();
            if !ids.is_empty() {
                store.renew_leases(&ids, lease_ms)?;
            }
        }
        if now >= next_delivery && !delivering.swap(true, Ordering::AcqRel) {
            next_delivery = now + Duration::from_secs(1);
            let (inner, delivering, delivered) =
                (inner.clone(), delivering.clone(), delivered.clone());
            crate::rt::spawn(async move {
                match inner.deliverer.deliver(&inner.store).await {
                    Ok(r) => {
                        delivered.fetch_add(r.delivered, Ordering::Relaxed);
                    }
                    Err(e) => log::error!("delivering change events: {e}"),
                }
                delivering.store(false, Ordering::Release);
            });
        }
        if let Some(progress) = &inner.progress {
            if now >= next_progress {
                next_progress = now + Duration::from_millis(200);
                progress(&inner.counters.snapshot(busy, started));
            }
        }
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    // Stopping: a grace period for what is in flight, then abandon the rest.
    let grace_end = Instant::now() + STOP_GRACE;
    while !tasks.is_empty() && Instant::now() < grace_end {
        reap(&mut tasks);
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    let abandoned = tasks.len() as u64;
    // Links claimed but not checked go back to the schedule now, not when their lease ends.
    let unchecked: Vec<LinkId> = in_flight.lock().iter().copied().collect();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if !unchecked.is_empty() {
        store.release_leases(&unchecked)?;
    }
    // Wait for a background delivery pass, then one last pass over everything recorded.
    while delivering.load(Ordering::Acquire) {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    let last: DeliveryReport = inner.deliverer.deliver(&store).await?;
    delivered.fetch_add(last.delivered, Ordering::Relaxed);
    let progress = inner.counters.snapshot(0, started);
    if let Some(f) = &inner.progress {
        f(&progress);
    }
    Ok(RunSummary {
        progress,
        events_delivered: delivered.load(Ordering::Relaxed),
        events_waiting: last.waiting,
        abandoned,
        elapsed: started.elapsed(),
    })
}
