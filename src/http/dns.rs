//! Name resolution: its own small pool of lookup threads, a per-lookup timeout, one lookup per
//! name however many requests want it (coalescing), and an LRU cache that remembers answers for
//! a TTL and failures for a shorter one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::rt::sync::oneshot;

use crate::http::error::{Error, ErrorKind};

/// Whether `host` is `localhost` or a name under `.localhost` (any case, optional trailing dot).
///
/// RFC 6761 §6.3 lets resolvers answer these with loopback without asking DNS, and curl and
/// browsers do. We do too: the system resolver here (glibc with /etc/hosts) knows `localhost`
/// but not `shop-7.localhost`, and many distinct loopback host names are how the demo shop and
/// tests model thousands of sites on one machine.
pub(crate) fn is_localhost_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let lower = host.to_ascii_lowercase();
    lower == "localhost" || lower.ends_with(".localhost")
}

/// The loopback addresses, IPv4 first (servers bound to `127.0.0.1` are the common case).
fn loopback_addrs(port: u16) -> Vec<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    vec![
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
    ]
}

/// Lookups that ran or are running, by lower-cased host name.
struct State {
    cache: Lru,
    /// Hosts being looked up, with everyone waiting for the answer (coalescing).
    inflight: HashMap<String, Vec<oneshot::Sender<Answer>>>,
}

/// What a lookup found: addresses, or the error message.
type Answer = Result<Arc<[IpAddr]>, String>;

pub(crate) struct DnsConfig {
    /// How long an answer is reused (0 disables the cache).
    pub(crate) ttl: Duration,
    /// How long a failed lookup is remembered.
    pub(crate) negative_ttl: Duration,
    /// One lookup may take this long before the request gives up on it.
    pub(crate) timeout: Duration,
    /// Names cached at most (least recently used forgotten first).
    pub(crate) max_entries: usize,
    /// Fixed answers (`ClientBuilder::resolve`): lower-cased host → addresses.
    pub(crate) overrides: HashMap<String, Vec<SocketAddr>>,
    /// The blocking lookup itself (the system resolver; a fake in tests).
    pub(crate) lookup: LookupFn,
}

/// A blocking name lookup.
pub(crate) type LookupFn = fn(&str) -> std::io::Result<Vec<IpAddr>>;

/// The system resolver (`getaddrinfo`, with /etc/hosts and nsswitch).
pub(crate) fn system_lookup(name: &str) -> std::io::Result<Vec<IpAddr>> {
    Ok((name, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
}

pub(crate) struct Resolver {
    state: Arc<Mutex<State>>,
    config: DnsConfig,
}

impl Resolver {
    pub(crate) fn new(config: DnsConfig) -> Resolver {
        Resolver {
            state: Arc::new(Mutex::new(State {
                cache: Lru::new(config.max_entries),
                inflight: HashMap::new(),
            })),
            config,
        }
    }

    /// Every address of `host`: IP literals and fixed answers without a lookup, `localhost`
    /// names as loopback, others from the cache when fresh, else from the system resolver on
    /// the DNS threads (one lookup per name however many requests want it at once).
    pub(crate) async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        if let Some(ip) = crate::rt::net::ip_literal(host) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = host.to_ascii_lowercase();
        if let Some(addrs) = self.config.overrides.get(&name) {
            return Ok(addrs
                .iter()
                .map(|a| match a.port() {
                    0 => SocketAddr::new(a.ip(), port),
                    _ => *a,
                })
                .collect());
        }
        if is_localhost_name(host) {
            return Ok(loopback_addrs(port));
        }
        let rx = {
            let mut state = self.state.lock();
            if let Some(answer) = state.cache.get(&name) {
                return with_port(answer, host, port);
            }
            let (tx, rx) = oneshot::channel();
            match state.inflight.get_mut(&name) {
                Some(waiters) => waiters.push(tx),
                None => {
                    state.inflight.insert(name.clone(), vec![tx]);
                    self.start_lookup(name);
                }
            }
            rx
        };
        let deadline = Instant::now() + self.config.timeout;
        match crate::rt::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => with_port(answer, host, port),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Dns,
                format!("could not resolve {host}: the lookup was abandoned"),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Dns,
                format!(
                    "could not resolve {host}: no answer within {}",
                    crate::http::conn::proto_fmt(self.config.timeout)
                ),
            )),
        }
    }

    fn start_lookup(&self, name: String) {
        let state = Arc::clone(&self.state);
        let (ttl, negative_ttl) = (self.config.ttl, self.config.negative_ttl);
        let lookup = self.config.lookup;
        lookup_pool().submit(Box::new(move || {
            let answer: Answer = match lookup(&name) {
                Ok(addrs) => {
                    let mut ips: Vec<IpAddr> = Vec::new();
                    for ip in addrs {
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                    if ips.is_empty() {
                        Err("it has no addresses".to_string())
                    } else {
                        Ok(ips.into())
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let waiters = {
                let mut state = state.lock();
                let keep = if answer.is_ok() { ttl } else { negative_ttl };
                if !keep.is_zero() {
                    state.cache.insert(name.clone(), answer.clone(), keep);
                }
                state.inflight.remove(&name).unwrap_or_default()
            };
            for tx in waiters {
                let _ = tx.send(answer.clone());
            }
        }));
    }
}

fn with_port(answer: Answer, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    match answer {
        Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
        Err(e) => Err(Error::new(
            ErrorKind::Dns,
            format!("could not resolve {host}: {e}"),
        )),
    }
}

/// A least-recently-used map with an expiry per entry: a hash map for lookups and an ordered
/// map from "last used" stamps to names for eviction, both O(log n) at worst. Sized for the
/// 50,000 hosts of a large crawl without wiping everything when full.
struct Lru {
    map: HashMap<String, (Answer, Instant, u64)>,
    order: BTreeMap<u64, String>,
    clock: u64,
    max: usize,
}

impl Lru {
    fn new(max: usize) -> Lru {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            max: max.max(1),
        }
    }

    fn get(&mut self, name: &str) -> Option<Answer> {
        let (answer, expires, stamp) = self.map.get_mut(name)?;
        if Instant::now() >= *expires {
            let stamp = *stamp;
            self.map.remove(name);
            self.order.remove(&stamp);
            return None;
        }
        self.clock += 1;
        let old = std::mem::replace(stamp, self.clock);
        let answer = answer.clone();
        if let Some(key) = self.order.remove(&old) {
            self.order.insert(self.clock, key);
        }
        Some(answer)
    }

    fn insert(&mut self, name: String, answer: Answer, ttl: Duration) {
        self.clock += 1;
        if let Some((_, _, old)) = self.map.remove(&name) {
            self.order.remove(&old);
        }
        while self.map.len() >= self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.order.insert(self.clock, name.clone());
        self.map
            .insert(name, (answer, Instant::now() + ttl, self.clock));
    }
}

/// Threads for blocking `getaddrinfo` calls, apart from the runtime's blocking pool: lookups
/// must not queue behind CPU work, and CPU work must not wait for a slow name server. Threads
/// start on demand up to [`DNS_THREADS`] and leave after 10 s idle.
struct LookupPool {
    queue: Mutex<VecDeque<Job>>,
    ready: parking_lot::Condvar,
    /// (threads alive, threads idle)
    threads: Mutex<(usize, usize)>,
}

type Job = Box<dyn FnOnce() + Send>;

const DNS_THREADS: usize = 8;

fn lookup_pool() -> &'static Arc<LookupPool> {
    static POOL: OnceLock<Arc<LookupPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(LookupPool {
            queue: Mutex::new(VecDeque::new()),
            ready: parking_lot::Condvar::new(),
            threads: Mutex::new((0, 0)),
        })
    })
}

impl LookupPool {
    fn submit(self: &Arc<Self>, job: Job) {
        self.queue.lock().push_back(job);
        let spawn = {
            let mut t = self.threads.lock();
            if t.1 == 0 && t.0 < DNS_THREADS {
                t.0 += 1;
                true
            } else {
                false
            }
        };
        if spawn {
            let pool = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("scraipe-dns".into())
                .stack_size(256 * 1024)
                .spawn(move || pool.work());
            if started.is_err() {
                self.threads.lock().0 -= 1;
            }
        }
        self.ready.notify_one();
    }

    fn work(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock();
                loop {
                    if let Some(job) = queue.pop_front() {
                        break Some(job);
                    }
                    self.threads.lock().1 += 1;
                    let timed_out = self
                        .ready
                        .wait_for(&mut queue, Duration::from_secs(10))
                        .timed_out();
                    self.threads.lock().1 -= 1;
                    if timed_out && queue.is_empty() {
                        break None;
                    }
                }
            };
            match job {
                Some(job) => job(),
                None => {
                    self.threads.lock().0 -= 1;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names_are_loopback() {
        for name in [
            "localhost",
            "LOCALHOST.",
            "shop-7.localhost",
            "a.b.Localhost.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in [
            "localhost.com",
            "mylocalhost",
            "example.org",
            "localhost.example",
        ] {
            assert!(!is_localhost_name(name), "{name}");
        }
        let addrs = loopback_addrs(8080);
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
    }

    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn fake_lookup(name: &str) -> std::io::Result<Vec<IpAddr>> {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(if name == "slow.test" {
            600
        } else {
            100
        }));
        match name {
            "good.test" | "slow.test" => Ok(vec![IpAddr::from([127, 0, 0, 7])]),
            _ => Err(std::io::Error::other("no such name")),
        }
    }

    #[test]
    fn lookups_are_coalesced_cached_negatively_cached_and_timed_out() {
        use std::sync::atomic::Ordering::SeqCst;
        let rt = crate::rt::Runtime::new().unwrap();
        let resolver = Arc::new(Resolver::new(DnsConfig {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_millis(300),
            timeout: Duration::from_millis(300),
            max_entries: 100,
            overrides: HashMap::new(),
            lookup: fake_lookup,
        }));
        rt.block_on(async {
            let mut set = crate::rt::JoinSet::new();
            for _ in 0..20 {
                let r = resolver.clone();
                set.spawn(async move { r.resolve("GOOD.test", 81).await });
            }
            while let Some(r) = set.join_next().await {
                assert_eq!(
                    r.unwrap().unwrap(),
                    vec![SocketAddr::from(([127, 0, 0, 7], 81))]
                );
            }
            assert_eq!(CALLS.load(SeqCst), 1, "twenty requests, one lookup");
            resolver.resolve("good.test", 82).await.unwrap();
            assert_eq!(CALLS.load(SeqCst), 1, "cached, whatever the port");

            for _ in 0..2 {
                let e = resolver.resolve("dead.test", 80).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Dns);
                assert!(e.to_string().contains("no such name"), "{e}");
            }
            assert_eq!(CALLS.load(SeqCst), 2, "the failure is remembered");
            crate::rt::sleep(Duration::from_millis(350)).await;
            resolver.resolve("dead.test", 80).await.unwrap_err();
            assert_eq!(CALLS.load(SeqCst), 3, "for the negative TTL only");

            let e = resolver.resolve("slow.test", 80).await.unwrap_err();
            assert!(e.to_string().contains("no answer within 300 ms"), "{e}");
        });
    }

    #[test]
    fn lru_evicts_least_recent_and_expires() {
        let ip: Answer = Ok(vec![IpAddr::from([127, 0, 0, 1])].into());
        let mut lru = Lru::new(2);
        lru.insert("a".into(), ip.clone(), Duration::from_secs(60));
        lru.insert("b".into(), Err("nxdomain".into()), Duration::from_secs(60));
        assert!(lru.get("a").is_some()); // a is now the most recent
        lru.insert("c".into(), ip.clone(), Duration::from_secs(60));
        assert!(lru.get("b").is_none(), "b was the least recently used");
        assert!(lru.get("a").is_some() && lru.get("c").is_some());
        lru.insert("d".into(), ip, Duration::ZERO);
        assert!(lru.get("d").is_none(), "expired at once");
        assert_eq!(lru.map.len(), lru.order.len());
    }
}
