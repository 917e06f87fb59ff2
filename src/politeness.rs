//! Politeness for crawls over many sites: at most `n` requests in flight per host and an
//! optional minimum delay between the starts of two requests to the same host.
//!
//! [`HostLimiter`] keeps state only for hosts in use: a host's entry is dropped once it is
//! idle (no permit held, nobody waiting, its delay elapsed), so a crawl over 50,000 sites does
//! not keep 50,000 entries forever (Scrapy keeps one slot per domain for the whole crawl,
//! Scrapy#245). [`PoliteScraper`] wraps any scraper with a limiter.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use regex::Regex;

use crate::executor::{guarded, DEFAULT_TIMEOUT};
use crate::results::ScrapeResult;
use crate::rt::sync::{OwnedSemaphorePermit, Semaphore};
use crate::traits::{AsyncScraper, Scraper};

/// The host of a link, lower-cased (`None` for links without one, or unparsable ones).
///
/// ```
/// use scraipe::politeness::host_of;
/// assert_eq!(host_of("https://News.Example.com:8443/a?b").as_deref(), Some("news.example.com"));
/// assert_eq!(host_of("not a url"), None);
/// ```
pub fn host_of(link: &str) -> Option<String> {
    let url = url::Url::parse(link).ok()?;
    url.host_str().map(str::to_ascii_lowercase)
}

/// Per-host concurrency limit and delay. Cheap to clone (clones share the state).
///
/// ```
/// use std::time::{Duration, Instant};
/// use scraipe::politeness::HostLimiter;
/// use scraipe::rt::Runtime;
///
/// let limiter = HostLimiter::new(2).with_delay(Duration::from_millis(20));
/// let rt = Runtime::builder().worker_threads(1).build().unwrap();
/// let start = Instant::now();
/// rt.block_on(async {
///     for _ in 0..3 {
///         let _permit = limiter.acquire("example.com").await;
///     }
/// });
/// // Three starts, 20 ms apart.
/// assert!(start.elapsed() >= Duration::from_millis(40));
/// // Once the host is idle and its delay has passed, nothing is kept for it.
/// std::thread::sleep(Duration::from_millis(25));
/// assert_eq!(limiter.tracked_hosts(), 0);
/// ```
#[derive(Clone)]
pub struct HostLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    per_host: usize,
    delay: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    hosts: HashMap<String, HostSlot>,
    /// Hosts that went idle, by when their delay ends: candidates for removal.
    expiries: BinaryHeap<Reverse<(Instant, String)>>,
}

struct HostSlot {
    semaphore: Arc<Semaphore>,
    /// Permits held plus acquires waiting.
    users: usize,
    /// Earliest start of the next request (last start + delay).
    next_start: Instant,
    /// Until when the host asked us to stay away ([`HostLimiter::defer`]).
    deferred_until: Option<Instant>,
}

impl State {
    /// Drops idle hosts whose delay has passed, then the slot of `host`, made on first use.
    fn slot(&mut self, host: &str, per_host: usize, now: Instant) -> &mut HostSlot {
        self.purge(now);
        self.hosts
            .entry(host.to_string())
            .or_insert_with(|| HostSlot {
                semaphore: Arc::new(Semaphore::new(per_host)),
                users: 0,
                next_start: now,
                deferred_until: None,
            })
    }

    /// Drops idle hosts whose delay has passed.
    fn purge(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, host))) = self.expiries.pop() else {
                break;
            };
            if let Some(slot) = self.hosts.get(&host) {
                if slot.users == 0 && slot.next_start <= now {
                    self.hosts.remove(&host);
                }
            }
        }
    }
}

/// Permission to send one request to a host; released on drop.
#[must_use = "the host permit is released as soon as it is dropped"]
pub struct HostPermit {
    // Field order matters: the semaphore permit is released before the user count drops.
    _permit: Option<OwnedSemaphorePermit>,
    _user: User,
}

impl fmt::Debug for HostPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostPermit")
            .field("host", &self._user.host)
            .finish()
    }
}

/// One acquire in progress or permit held on a host.
struct User {
    inner: Arc<Inner>,
    host: String,
}

impl Drop for User {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.inner.state.lock();
        let Some(slot) = state.hosts.get_mut(&self.host) else {
            return;
        };
        slot.users -= 1;
        if slot.users > 0 {
            return;
        }
        if slot.next_start <= now {
            state.hosts.remove(&self.host);
        } else {
            let at = slot.next_start;
            state.expiries.push(Reverse((at, self.host.clone())));
        }
        state.purge(now);
    }
}

impl HostLimiter {
    /// At most `per_host` permits at once per host (0 is treated as 1), no delay.
    pub fn new(per_host: usize) -> HostLimiter {
        HostLimiter {
            inner: Arc::new(Inner {
                per_host: per_host.max(1),
                delay: Duration::ZERO,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Also keeps the starts of two requests to the same host at least `delay` apart.
    pub fn with_delay(self, delay: Duration) -> HostLimiter {
        let per_host = self.inner.per_host;
        HostLimiter {
            inner: Arc::new(Inner {
                per_host,
                delay,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The per-host limit.
    pub fn per_host(&self) -> usize {
        self.inner.per_host
    }

    /// The per-host delay.
    pub fn delay(&self) -> Duration {
        self.inner.delay
    }

    /// Waits for a permit for `host` (waiters are served in arrival order), then for the
    /// host's delay. Dropping the future while it waits gives up cleanly. With a delay, poll
    /// it inside a scraipe runtime (it sleeps).
    pub async fn acquire(&self, host: &str) -> HostPermit {
        self.acquire_spaced(host, Duration::ZERO).await
    }

    /// Like [`acquire`](HostLimiter::acquire), keeping the starts of two requests to this host
    /// at least `delay` apart as well (the longer of `delay` and the limiter's own delay): for a
    /// delay a host asks for itself, such as a robots.txt `Crawl-delay`.
    pub async fn acquire_spaced(&self, host: &str, delay: Duration) -> HostPermit {
        match self.acquire_within(host, delay, None).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("no wait limit"),
        }
    }

    /// Like [`acquire_spaced`](HostLimiter::acquire_spaced), but when the host is
    /// [deferred](HostLimiter::defer) past `max_wait` from the moment our turn comes, gives up
    /// at once with the end of the deferral instead of waiting for it: the caller can put the
    /// work off itself rather than hold it (and whatever else it holds) for an hour.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use scraipe::politeness::HostLimiter;
    /// use scraipe::rt::Runtime;
    ///
    /// let limiter = HostLimiter::new(1);
    /// limiter.defer("shop.example", Instant::now() + Duration::from_secs(3600));
    /// let rt = Runtime::builder().worker_threads(1).build().unwrap();
    /// let wait = Duration::from_secs(5);
    /// let turn = rt.block_on(limiter.acquire_unless_deferred("shop.example", Duration::ZERO, wait));
    /// assert!(turn.is_err()); // the deferral's end
    /// assert!(rt.block_on(limiter.acquire_unless_deferred("other.example", Duration::ZERO, wait)).is_ok());
    /// ```
    pub async fn acquire_unless_deferred(
        &self,
        host: &str,
        delay: Duration,
        max_wait: Duration,
    ) -> Result<HostPermit, Instant> {
        self.acquire_within(host, delay, Some(max_wait)).await
    }

    async fn acquire_within(
        &self,
        host: &str,
        delay: Duration,
        max_wait: Option<Duration>,
    ) -> Result<HostPermit, Instant> {
        let host = host.to_ascii_lowercase();
        let semaphore = {
            let now = Instant::now();
            let mut state = self.inner.state.lock();
            let slot = state.slot(&host, self.inner.per_host, now);
            slot.users += 1;
            slot.semaphore.clone()
        };
        let user = User {
            inner: self.inner.clone(),
            host,
        };
        // We never close the semaphore, so acquiring cannot fail.
        let permit = semaphore.acquire_owned().await.ok();
        let delay = self.inner.delay.max(delay);
        let start = {
            let now = Instant::now();
            let mut state = self.inner.state.lock();
            match state.hosts.get_mut(&user.host) {
                Some(slot) => {
                    if let (Some(until), Some(max)) = (slot.deferred_until, max_wait) {
                        if until > now + max {
                            return Err(until);
                        }
                    }
                    let start = slot.next_start.max(now);
                    slot.next_start = start + delay;
                    start
                }
                None => now,
            }
        };
        if start > Instant::now() {
            crate::rt::sleep_until(start).await;
        }
        Ok(HostPermit {
            _permit: permit,
            _user: user,
        })
    }

    /// Holds back the next start on `host` until `until` (a server's `Retry-After`). Requests
    /// already started are not affected.
    pub fn defer(&self, host: &str, until: Instant) {
        let host = host.to_ascii_lowercase();
        let now = Instant::now();
        let mut state = self.inner.state.lock();
        let slot = state.slot(&host, self.inner.per_host, now);
        slot.deferred_until = slot.deferred_until.max(Some(until));
        if until > slot.next_start {
            slot.next_start = until;
            if slot.users == 0 {
                state.expiries.push(Reverse((until, host)));
            }
        }
    }

    /// Number of hosts with state right now (busy, or idle within their delay).
    pub fn tracked_hosts(&self) -> usize {
        let mut state = self.inner.state.lock();
        state.purge(Instant::now());
        state.hosts.len()
    }
}

impl fmt::Debug for HostLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostLimiter")
            .field("per_host", &self.inner.per_host)
            .field("delay", &self.inner.delay)
            .field("tracked_hosts", &self.inner.state.lock().hosts.len())
            .finish()
    }
}

/// A scraper that takes a [`HostLimiter`] permit for the link's host before each scrape.
/// Links without a host are scraped without one.
///
/// ```
/// use std::sync::Arc;
/// use scraipe::politeness::{HostLimiter, PoliteScraper};
/// use scraipe::{ScrapeResult, Scraper};
///
/// struct Fetch;
/// impl Scraper for Fetch {
///     fn scrape(&self, link: &str) -> ScrapeResult {
///         ScrapeResult::succeed(link, "page")
///     }
/// }
/// let polite = PoliteScraper::new(Arc::new(Fetch), HostLimiter::new(2)).max_workers(64);
/// assert_eq!(polite.scrape("https://example.com/").content(), Some("page"));
/// ```
pub struct PoliteScraper {
    inner: Arc<dyn Scraper>,
    limiter: HostLimiter,
    max_workers: usize,
    timeout: Option<Duration>,
}

impl PoliteScraper {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Scraper>, limiter: HostLimiter) -> PoliteScraper {
        PoliteScraper {
            inner,
            limiter,
            max_workers: 16,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// How many links `scrape_multiple` handles at once over all hosts (default 16).
    pub fn max_workers(mut self, n: usize) -> PoliteScraper {
        self.max_workers = n.max(1);
        self
    }

    /// The time limit per link through the sync bridge, waiting for the host included
    /// (default 60 s).
    pub fn timeout(mut self, timeout: Option<Duration>) -> PoliteScraper {
        self.timeout = timeout;
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &HostLimiter {
        &self.limiter
    }
}

#[async_trait]
impl AsyncScraper for PoliteScraper {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        let _permit = match host_of(link) {
            Some(host) => Some(self.limiter.acquire(&host).await),
            None => None,
        };
        let out = match self.inner.as_async() {
            Some(scraper) => guarded(scraper.async_scrape(link), None).await,
            None => guarded(async { self.inner.scrape(link) }, None).await,
        };
        out.unwrap_or_else(|e| ScrapeResult::fail(link, e.to_string()))
    }

    fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn expected_link_format(&self) -> Option<Regex> {
        self.inner.expected_link_format()
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}

impl fmt::Debug for PoliteScraper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoliteScraper")
            .field("inner", &self.inner.name())
            .field("limiter", &self.limiter)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::{sleep, Runtime};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn runtime() -> Runtime {
        Runtime::builder().worker_threads(2).build().unwrap()
    }

    #[test]
    fn per_host_concurrency_is_limited_and_hosts_are_independent() {
        let rt = runtime();
        let limiter = HostLimiter::new(2);
        let active: Arc<HashMap<&str, (AtomicUsize, AtomicUsize)>> = Arc::new(
            ["a.example", "b.example"]
                .into_iter()
                .map(|h| (h, (AtomicUsize::new(0), AtomicUsize::new(0))))
                .collect(),
        );
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let host = if i % 2 == 0 { "a.example" } else { "b.example" };
                let (limiter, active) = (limiter.clone(), active.clone());
                rt.spawn(async move {
                    let _permit = limiter.acquire(host).await;
                    let (now, max) = &active[host];
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    sleep(Duration::from_millis(3)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        for host in ["a.example", "b.example"] {
            assert_eq!(
                active[host].1.load(Ordering::SeqCst),
                2,
                "{host} ran exactly 2 at once"
            );
        }
        assert_eq!(limiter.tracked_hosts(), 0, "idle hosts are forgotten");
    }

    #[test]
    fn delay_spaces_starts_per_host_only() {
        let rt = runtime();
        let limiter = HostLimiter::new(8).with_delay(Duration::from_millis(30));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let host = if i < 3 {
                    "slow.example"
                } else {
                    "other.example"
                };
                let (limiter, starts) = (limiter.clone(), starts.clone());
                rt.spawn(async move {
                    let _permit = limiter.acquire(host).await;
                    starts.lock().push((host, t0.elapsed()));
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        let starts = starts.lock();
        let mut slow: Vec<Duration> = starts
            .iter()
            .filter(|(h, _)| *h == "slow.example")
            .map(|(_, d)| *d)
            .collect();
        slow.sort();
        assert_eq!(slow.len(), 3);
        // Lower bounds only (scheduling noise can only make starts later): the k-th start on
        // the delayed host comes at least k delays after the first request was made.
        for (k, start) in slow.iter().enumerate() {
            assert!(
                *start >= Duration::from_millis(30) * k as u32,
                "starts {slow:?}"
            );
        }
        let other = starts
            .iter()
            .find(|(h, _)| *h == "other.example")
            .unwrap()
            .1;
        assert!(
            other < Duration::from_millis(25),
            "another host does not wait: {other:?}"
        );
        // The slow host stays tracked until its delay has passed, then goes.
        assert!(limiter.tracked_hosts() >= 1);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(limiter.tracked_hosts(), 0);
    }

    #[test]
    fn fifty_thousand_hosts_leave_nothing_behind() {
        let rt = runtime();
        let limiter = HostLimiter::new(1);
        let l = limiter.clone();
        rt.block_on(async move {
            for i in 0..50_000 {
                let _permit = l.acquire(&format!("host{i}.example")).await;
            }
        });
        assert_eq!(limiter.tracked_hosts(), 0);
        // With a delay, idle hosts stay only until their delay ends.
        let limiter = HostLimiter::new(1).with_delay(Duration::from_millis(20));
        let l = limiter.clone();
        rt.block_on(async move {
            for i in 0..1000 {
                let _permit = l.acquire(&format!("host{i}.example")).await;
            }
        });
        assert!(limiter.tracked_hosts() > 0);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(limiter.tracked_hosts(), 0);
        assert!(limiter.inner.state.lock().expiries.is_empty());
    }

    #[test]
    fn abandoned_acquire_releases_its_place() {
        let rt = runtime();
        let limiter = HostLimiter::new(1);
        let l = limiter.clone();
        rt.block_on(async move {
            let held = l.acquire("x.example").await;
            // A waiter that gives up...
            let gave_up =
                crate::rt::timeout(Duration::from_millis(5), l.acquire("x.example")).await;
            assert!(gave_up.is_err());
            drop(held);
            // ...does not block the next one.
            let next = crate::rt::timeout(Duration::from_secs(5), l.acquire("x.example")).await;
            assert!(next.is_ok());
        });
        assert_eq!(limiter.tracked_hosts(), 0);
    }

    /// Records the highest number of concurrent scrapes per host.
    struct Probe {
        live: Mutex<HashMap<String, (usize, usize)>>,
    }

    #[async_trait]
    impl AsyncScraper for Probe {
        async fn async_scrape(&self, link: &str) -> ScrapeResult {
            let host = host_of(link).unwrap_or_default();
            {
                let mut live = self.live.lock();
                let entry = live.entry(host.clone()).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(entry.0);
            }
            sleep(Duration::from_millis(2)).await;
            if let Some(entry) = self.live.lock().get_mut(&host) {
                entry.0 -= 1;
            }
            ScrapeResult::succeed(link, "ok")
        }
    }

    #[test]
    fn polite_scraper_limits_each_host_but_not_the_crawl() {
        let probe = Arc::new(Probe {
            live: Mutex::new(HashMap::new()),
        });
        let polite =
            Arc::new(PoliteScraper::new(probe.clone(), HostLimiter::new(2)).max_workers(30));
        let links: Vec<String> = (0..90)
            .map(|i| format!("https://h{}.example/{i}", i % 3))
            .chain(["nohost".into()])
            .collect();
        let results: Vec<_> = polite.clone().scrape_multiple(links).collect();
        assert_eq!(results.len(), 91);
        assert!(results.iter().all(|(_, r)| r.success()));
        let live = probe.live.lock();
        for h in 0..3 {
            assert_eq!(
                live[&format!("h{h}.example")].1,
                2,
                "host h{h} had exactly 2 at once"
            );
        }
        assert_eq!(polite.limiter().tracked_hosts(), 0);
    }

    #[test]
    fn spacing_per_call_and_deferral() {
        let rt = runtime();
        let limiter = HostLimiter::new(4);
        let l = limiter.clone();
        let t0 = Instant::now();
        rt.block_on(async move {
            for _ in 0..3 {
                let _p = l
                    .acquire_spaced("crawl.example", Duration::from_millis(20))
                    .await;
            }
            assert!(t0.elapsed() >= Duration::from_millis(40));
            l.defer("later.example", Instant::now() + Duration::from_millis(30));
            let t1 = Instant::now();
            let _p = l.acquire("later.example").await;
            assert!(
                t1.elapsed() >= Duration::from_millis(30),
                "deferred host waits"
            );
            let t2 = Instant::now();
            let _q = l.acquire("other.example").await;
            assert!(t2.elapsed() < Duration::from_millis(25), "others do not");
        });
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            limiter.tracked_hosts(),
            0,
            "deferred hosts are forgotten afterwards"
        );
    }

    #[test]
    fn host_names_are_case_insensitive() {
        let rt = runtime();
        let limiter = HostLimiter::new(1);
        let l = limiter.clone();
        rt.block_on(async move {
            let _a = l.acquire("Example.COM").await;
            let b = crate::rt::timeout(Duration::from_millis(5), l.acquire("example.com")).await;
            assert!(b.is_err(), "same host, second permit must wait");
        });
    }
}
