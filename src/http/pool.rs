//! The keep-alive pool, keyed by (scheme, host, port), with limits per host and in total so
//! that scraping 50,000 hosts cannot exhaust file descriptors.
//!
//! * Every open connection holds a [`Slot`]: one permit of the global semaphore plus a count in
//!   its host's entry. Dropping the connection releases both.
//! * A request takes the most recently used idle connection of its host (checked for a server
//!   close first), else opens a new one if the host and global limits allow, else waits.
//! * Waiters are served by hand-off: a connection returned to the pool, or the slot freed by a
//!   closed one, goes straight to the oldest waiter of that host.
//! * When the global limit is reached, the least recently used idle connection of any host is
//!   closed to make room; a connection is not pooled at all while others wait for a global slot.
//! * Host entries are removed as soon as they hold nothing, and idle connections past the idle
//!   timeout are closed, so memory stays proportional to what is open, not to hosts ever seen.
//!
//! ## Finding the least recently used idle connection
//!
//! A scraper at the total limit evicts on *every* request to a new host, so this must not cost
//! a scan of all hosts (with 15,000 idle connections that scan, cloning every key, made 50,000
//! loopback hosts take 95-110 s). Each idle connection gets a stamp from a counter when it is
//! checked in, and the stamp goes to the back of one global queue (`Inner::lru`) with its
//! host's key. A host's idle list is ordered by stamp too, so the oldest idle connection of all
//! is the first one of the host named at the front of the queue. Connections leave idle lists
//! in other ways (reused, expired, evicted): their queue entries are not searched for but left
//! behind as *stale* and skipped when they reach the front (lazy deletion). The queue is
//! compacted in place when stale entries outnumber live ones, so it stays within twice the idle
//! count plus a constant; a reused connection that was the last one checked in (a keep-alive
//! loop on one host) takes its entry off the back at once. Eviction is amortised O(1); checkin
//! adds a stamp and an `Arc` clone, no allocation once the queue has its capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::http::conn::Conn;
use crate::rt::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Identifies connections that can serve each other's requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The proxy (`host:port`) the connection goes through, if any.
    pub(crate) via: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    pub(crate) max_per_host: usize,
    pub(crate) max_idle_per_host: usize,
    pub(crate) idle_timeout: Duration,
}

pub(crate) struct Pool {
    inner: Mutex<Inner>,
    total: Arc<Semaphore>,
    config: PoolConfig,
    me: Weak<Pool>,
}

/// Stale queue entries allowed beyond the live ones before the queue is compacted (so a pool
/// with one or two idle connections does not compact on every checkin).
const LRU_SLACK: usize = 64;

struct Inner {
    /// Keyed by an `Arc` so that queue entries can name their host without allocating.
    hosts: HashMap<Arc<PoolKey>, Host>,
    /// Idle connections, least recently checked in first; may hold stale entries (see the
    /// module docs).
    lru: VecDeque<LruEntry>,
    /// Idle connections in all hosts' lists, i.e. live entries of `lru`.
    idle: usize,
    /// The stamp of the next connection checked in.
    next_stamp: u64,
    last_sweep: Instant,
}

/// An idle connection in the global queue: its stamp and its host.
struct LruEntry {
    stamp: u64,
    key: Arc<PoolKey>,
}

struct Host {
    /// The same key as in the map, cloned into queue entries.
    key: Arc<PoolKey>,
    /// Ascending stamps: least recently used first, most recently returned last.
    idle: VecDeque<Idle>,
    /// Open connections (idle or busy), i.e. slots handed out.
    open: usize,
    waiters: VecDeque<oneshot::Sender<Handoff>>,
}

struct Idle {
    stamp: u64,
    conn: Conn,
}

impl Host {
    fn new(key: Arc<PoolKey>) -> Host {
        Host {
            key,
            idle: VecDeque::new(),
            open: 0,
            waiters: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.open == 0 && self.idle.is_empty() && self.waiters.is_empty()
    }

    fn holds_idle(&self, stamp: u64) -> bool {
        self.idle.binary_search_by_key(&stamp, |i| i.stamp).is_ok()
    }
}

impl Inner {
    /// The entry of `key`, created if missing. Looks up before inserting so that the common
    /// case (the host is known) allocates nothing.
    fn host_mut(&mut self, key: &PoolKey) -> &mut Host {
        if !self.hosts.contains_key(key) {
            let key = Arc::new(key.clone());
            self.hosts.insert(key.clone(), Host::new(key));
        }
        self.hosts.get_mut(key).expect("inserted above")
    }

    /// Compacts the queue once stale entries outnumber live ones (amortised O(1) per entry).
    fn compact_lru_if_stale(&mut self) {
        if self.lru.len() > 2 * self.idle + LRU_SLACK {
            self.compact_lru();
        }
    }

    /// Drops stale queue entries, keeping the order (in place: no allocation).
    fn compact_lru(&mut self) {
        let hosts = &self.hosts;
        self.lru
            .retain(|e| hosts.get(&*e.key).is_some_and(|h| h.holds_idle(e.stamp)));
        debug_assert_eq!(self.lru.len(), self.idle);
    }

    /// Removes and returns the least recently used idle connection of any host.
    fn pop_lru(&mut self) -> Option<Conn> {
        while let Some(entry) = self.lru.pop_front() {
            let Some(host) = self.hosts.get_mut(&*entry.key) else {
                continue; // The host's entry went away with all its connections.
            };
            // Every older idle connection's entry was ahead of this one, so a live entry at the
            // front is its host's oldest idle connection.
            if host.idle.front().is_some_and(|i| i.stamp == entry.stamp) {
                self.idle -= 1;
                return host.idle.pop_front().map(|i| i.conn);
            }
            debug_assert!(!host.holds_idle(entry.stamp), "queue out of stamp order");
        }
        None
    }
}

enum Handoff {
    Conn(Conn),
    Slot(Slot),
}

/// The right to have one connection open to a host. Released when dropped.
pub(crate) struct Slot {
    pool: Weak<Pool>,
    pub(crate) key: PoolKey,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let (Some(permit), Some(pool)) = (self.permit.take(), self.pool.upgrade()) {
            pool.release(&self.key, permit);
        }
    }
}

/// What `checkout` found.
pub(crate) enum Checkout {
    /// An idle connection to reuse.
    Reused(Conn),
    /// Permission to open a new connection.
    Connect(Slot),
}

impl Pool {
    pub(crate) fn new(max_total: usize, config: PoolConfig) -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            inner: Mutex::new(Inner {
                hosts: HashMap::new(),
                lru: VecDeque::new(),
                idle: 0,
                next_stamp: 0,
                last_sweep: Instant::now(),
            }),
            total: Arc::new(Semaphore::new(max_total.max(1))),
            config,
            me: me.clone(),
        })
    }

    fn slot(&self, key: &PoolKey, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            pool: self.me.clone(),
            key: key.clone(),
            permit: Some(permit),
        }
    }

    /// Gets a connection for `key`: an idle one (unless `fresh`), or a slot to open one.
    pub(crate) async fn checkout(&self, key: &PoolKey, fresh: bool) -> Checkout {
        loop {
            let mut to_close = Vec::new();
            let step = {
                let mut inner = self.inner.lock();
                self.sweep_expired(&mut inner, &mut to_close);
                self.try_checkout(&mut inner, key, fresh, &mut to_close)
            };
            // Closing connections releases slots, which takes the lock: do it outside.
            drop(to_close);
            match step {
                Step::Idle(mut conn) => {
                    if conn.is_reusable() {
                        return Checkout::Reused(conn);
                    }
                    // Closed by the server while idle: drop it and look again.
                }
                Step::Connect(slot) => return Checkout::Connect(slot),
                Step::Retry => {}
                Step::WaitHost(rx) => match rx.await {
                    Ok(Handoff::Conn(conn)) => return Checkout::Reused(conn),
                    Ok(Handoff::Slot(slot)) => return Checkout::Connect(slot),
                    Err(_) => {}
                },
                Step::WaitTotal => {
                    let permit = match self.total.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    let mut inner = self.inner.lock();
                    let host = inner.host_mut(key);
                    // Others may have opened connections to this host while we waited.
                    if host.open < self.config.max_per_host {
                        host.open += 1;
                        return Checkout::Connect(self.slot(key, permit));
                    }
                    if host.is_empty() {
                        inner.hosts.remove(key);
                    }
                    drop(inner);
                    drop(permit);
                }
            }
        }
    }

    fn try_checkout(
        &self,
        inner: &mut Inner,
        key: &PoolKey,
        fresh: bool,
        to_close: &mut Vec<Conn>,
    ) -> Step {
        if !fresh {
            if let Some(host) = inner.hosts.get_mut(key) {
                // Most recently used first: the likeliest to be still open on the server.
                while let Some(Idle { stamp, conn }) = host.idle.pop_back() {
                    inner.idle -= 1;
                    // The connection checked in last of all (always so in a keep-alive loop on
                    // one host) has the queue's last entry: drop it now rather than leave it
                    // stale for a compaction.
                    if inner.lru.back().is_some_and(|e| e.stamp == stamp) {
                        inner.lru.pop_back();
                    }
                    if conn.idle_expired(self.config.idle_timeout) {
                        to_close.push(conn);
                        continue;
                    }
                    return Step::Idle(conn);
                }
            }
        }
        let host = inner.host_mut(key);
        if host.open >= self.config.max_per_host {
            // Waiters whose request was cancelled would otherwise pile up until the next hand-off.
            host.waiters.retain(|tx| !tx.is_closed());
            let (tx, rx) = oneshot::channel();
            host.waiters.push_back(tx);
            return Step::WaitHost(rx);
        }
        if let Some(permit) = self.total.try_acquire_owned() {
            host.open += 1;
            return Step::Connect(self.slot(key, permit));
        }
        // At the global limit: close the least recently used idle connection to make room.
        if let Some(conn) = inner.pop_lru() {
            to_close.push(conn);
            return Step::Retry;
        }
        // Do not leave an empty entry behind if this wait is cancelled: it would stay forever
        // (entries are otherwise removed only when a slot is released).
        if inner.hosts.get(key).is_some_and(Host::is_empty) {
            inner.hosts.remove(key);
        }
        Step::WaitTotal
    }

    /// Returns a connection after a complete response that both sides agreed to keep alive.
    pub(crate) fn checkin(&self, mut conn: Conn) {
        let mut close = None;
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let Some(host) = inner.hosts.get_mut(&conn.slot.key) else {
                return;
            };
            while let Some(tx) = host.waiters.pop_front() {
                match tx.send(Handoff::Conn(conn)) {
                    Ok(()) => return,
                    Err(Handoff::Conn(back)) => conn = back,
                    Err(Handoff::Slot(_)) => unreachable!("we sent a connection"),
                }
            }
            if self.total.waiting() > 0 || host.idle.len() >= self.config.max_idle_per_host {
                close = Some(conn);
            } else {
                conn.make_idle();
                let stamp = inner.next_stamp;
                inner.next_stamp += 1;
                host.idle.push_back(Idle { stamp, conn });
                inner.lru.push_back(LruEntry {
                    stamp,
                    key: host.key.clone(),
                });
                inner.idle += 1;
                inner.compact_lru_if_stale();
            }
        }
        drop(close);
    }
    /// A connection closed: its slot goes to a waiter of the same host, or back to the pool.
    fn release(&self, key: &PoolKey, permit: OwnedSemaphorePermit) {
        let mut permit = Some(permit);
        let mut inner = self.inner.lock();
        let Some(host) = inner.hosts.get_mut(key) else {
            return;
        };
        host.open = host.open.saturating_sub(1);
        while let Some(tx) = host.waiters.pop_front() {
            let slot = self.slot(key, permit.take().expect("permit present"));
            host.open += 1;
            match tx.send(Handoff::Slot(slot)) {
                Ok(()) => return,
                Err(Handoff::Slot(mut back)) => {
                    host.open -= 1;
                    permit = back.permit.take();
                }
                Err(Handoff::Conn(_)) => unreachable!("we sent a slot"),
            }
        }
        if host.is_empty() {
            inner.hosts.remove(key);
        }
        drop(inner);
        drop(permit);
    }

    /// At most once a second: close idle connections past their timeout (ours, or a shorter
    /// one the server announced, so not necessarily the least recently used), give back grown
    /// read buffers of connections idle for a second, and drop the queue's stale entries.
    fn sweep_expired(&self, inner: &mut Inner, to_close: &mut Vec<Conn>) {
        if inner.last_sweep.elapsed() < Duration::from_secs(1) {
            return;
        }
        inner.last_sweep = Instant::now();
        let timeout = self.config.idle_timeout;
        for host in inner.hosts.values_mut() {
            let mut i = 0;
            while i < host.idle.len() {
                let conn = &mut host.idle[i].conn;
                if conn.idle_expired(timeout) {
                    let expired = host.idle.remove(i).expect("index in bounds");
                    inner.idle -= 1;
                    to_close.push(expired.conn);
                } else {
                    if conn.idle_since.elapsed() >= Duration::from_secs(1) {
                        conn.shrink_idle_buffer();
                    }
                    i += 1;
                }
            }
        }
        inner.compact_lru_if_stale();
        // After a burst of idle connections, give the queue's memory back too.
        let wanted = 2 * inner.lru.len() + LRU_SLACK;
        if inner.lru.capacity() > 2 * wanted {
            inner.lru.shrink_to(wanted);
        }
    }

    /// (open connections, idle connections, host entries) — for tests and metrics.
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        let open = inner.hosts.values().map(|h| h.open).sum();
        let idle = inner.hosts.values().map(|h| h.idle.len()).sum();
        debug_assert_eq!(idle, inner.idle, "idle count out of step");
        (open, idle, inner.hosts.len())
    }
}

enum Step {
    Idle(Conn),
    Connect(Slot),
    Retry,
    WaitHost(oneshot::Receiver<Handoff>),
    WaitTotal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::ExchangeLimits;
    use crate::http::proto::HeadLimits;
    use crate::http::stream::Stream;
    use std::io::{Read, Write};

    /// A connection whose read buffer grew for a chunked body gives it back once idle.
    #[test]
    fn idle_connections_shrink_grown_read_buffers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..16 {
                resp.extend_from_slice(b"10000\r\n");
                resp.extend(std::iter::repeat_n(b'x', 0x10000));
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&resp).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let rt = crate::rt::Runtime::new().unwrap();
        let pool = Pool::new(
            4,
            PoolConfig {
                max_per_host: 4,
                max_idle_per_host: 4,
                idle_timeout: Duration::from_secs(60),
            },
        );
        let key = PoolKey {
            https: false,
            host: "127.0.0.1".into(),
            port: addr.port(),
            via: None,
        };
        rt.block_on(async {
            let Checkout::Connect(slot) = pool.checkout(&key, false).await else {
                panic!("an empty pool gives a slot");
            };
            let tcp = crate::rt::net::TcpStream::connect(addr).await.unwrap();
            let mut conn = Conn::new(Stream::Plain(tcp), slot);
            let limits = ExchangeLimits {
                head: HeadLimits {
                    max_bytes: 65536,
                    max_headers: 100,
                },
                max_body: 4 << 20,
                read_timeout: Duration::from_secs(5),
                deadline: Instant::now() + Duration::from_secs(5),
                total: Duration::from_secs(5),
            };
            let (raw, reusable) = conn
                .exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", false, &limits)
                .await
                .unwrap();
            assert_eq!(raw.body.len(), 16 << 16);
            assert!(reusable);
            assert!(
                conn.buffer_capacity() >= 64 * 1024,
                "{}",
                conn.buffer_capacity()
            );
            pool.checkin(conn);
            // Pretend a second went by, idle.
            {
                let mut inner = pool.inner.lock();
                inner.last_sweep -= Duration::from_secs(2);
                for host in inner.hosts.values_mut() {
                    for i in &mut host.idle {
                        i.conn.idle_since -= Duration::from_secs(2);
                    }
                }
            }
            let Checkout::Reused(conn) = pool.checkout(&key, false).await else {
                panic!("the idle connection is reused");
            };
            assert_eq!(conn.buffer_capacity(), 0, "the grown buffer was given back");
        });
        server.join().unwrap();
    }

    /// Counts allocations of the current thread, to show what the hot path costs.
    mod alloc_count {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
        }

        struct Counting;

        // SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
        // const-initialised thread-local `Cell` (no allocation, no destructor) that is only
        // read and written here and in `allocations`.
        unsafe impl GlobalAlloc for Counting {
            // Safety: the `GlobalAlloc` contract, which the caller keeps and we forward.
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
                // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
                unsafe { System.alloc(layout) }
            }
            // Safety: the `GlobalAlloc` contract, which the caller keeps and we forward.
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: `ptr` came from `System` with `layout` (every allocation does).
                unsafe { System.dealloc(ptr, layout) }
            }
            // Safety: the `GlobalAlloc` contract, which the caller keeps and we forward.
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
                // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;

        /// Allocations (and reallocations) made by this thread so far.
        pub(super) fn allocations() -> u64 {
            ALLOCATIONS.with(Cell::get)
        }
    }

    /// A loopback listener that never accepts: the kernel completes connections into its
    /// backlog, which is all an idle pooled connection needs (no data, no close). Keep tests
    /// under 128 connections (std's backlog): later ones would not be completed.
    struct Backlog {
        listener: std::net::TcpListener,
    }

    impl Backlog {
        fn new() -> Backlog {
            Backlog {
                listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            }
        }

        fn key(&self, host: &str) -> PoolKey {
            PoolKey {
                https: false,
                host: host.into(),
                port: self.listener.local_addr().unwrap().port(),
                via: None,
            }
        }

        /// A new connection for `key`, which must get a slot without waiting.
        async fn connect(&self, pool: &Pool, key: &PoolKey) -> Conn {
            let Checkout::Connect(slot) = pool.checkout(key, false).await else {
                panic!("{} had an idle connection", key.host);
            };
            let addr = self.listener.local_addr().unwrap();
            let tcp = crate::rt::net::TcpStream::connect(addr).await.unwrap();
            Conn::new(Stream::Plain(tcp), slot)
        }
    }

    fn pool(max_total: usize) -> Arc<Pool> {
        Pool::new(
            max_total,
            PoolConfig {
                max_per_host: 4,
                max_idle_per_host: 4,
                idle_timeout: Duration::from_secs(60),
            },
        )
    }

    /// Host names with an entry, sorted.
    fn hosts(pool: &Pool) -> Vec<String> {
        let mut names: Vec<String> = pool
            .inner
            .lock()
            .hosts
            .keys()
            .map(|k| k.host.clone())
            .collect();
        names.sort();
        names
    }

    /// The stamp the last checked-in connection got.
    fn last_stamp(pool: &Pool) -> u64 {
        pool.inner.lock().next_stamp - 1
    }

    /// At the total limit a new host evicts the connection idle the longest, whatever host it
    /// belongs to and however the hosts were first seen: a connection reused and returned is
    /// recent again (its old queue entry is stale and skipped), and a host with two idle
    /// connections loses its older one first.
    #[test]
    fn eviction_takes_the_least_recently_used_idle_connection_across_hosts() {
        let rt = crate::rt::Runtime::new().unwrap();
        let backlog = Backlog::new();
        let pool = pool(3);
        let [a, b, c, d, e, f, g] = ["a", "b", "c", "d", "e", "f", "g"].map(|h| backlog.key(h));
        rt.block_on(async {
            for key in [&a, &b, &c] {
                let conn = backlog.connect(&pool, key).await;
                pool.checkin(conn);
            }
            // `a` was opened first but is used again: `b` is now the least recently used.
            let Checkout::Reused(conn) = pool.checkout(&a, false).await else {
                panic!("a's idle connection is reused");
            };
            pool.checkin(conn);
            let conn_d = backlog.connect(&pool, &d).await;
            assert_eq!(hosts(&pool), ["a", "c", "d"], "b was idle the longest");
            pool.checkin(conn_d);
            let Checkout::Connect(slot_e) = pool.checkout(&e, false).await else {
                panic!("e is new");
            };
            assert_eq!(hosts(&pool), ["a", "d", "e"], "then c");
            drop(slot_e);
            assert_eq!(hosts(&pool), ["a", "d"], "an unused slot leaves no entry");

            // Two idle connections to `a`, returned a1 after a2.
            let Checkout::Reused(a1) = pool.checkout(&a, false).await else {
                panic!("a's idle connection is reused");
            };
            let a2 = backlog.connect(&pool, &a).await;
            pool.checkin(a2);
            pool.checkin(a1);
            let a1_stamp = last_stamp(&pool);
            let Checkout::Connect(_slot_f) = pool.checkout(&f, false).await else {
                panic!("f is new");
            };
            assert_eq!(
                hosts(&pool),
                ["a", "f"],
                "d was idle longer than both of a's"
            );
            let Checkout::Connect(_slot_g) = pool.checkout(&g, false).await else {
                panic!("g is new");
            };
            let inner = pool.inner.lock();
            let stamps: Vec<u64> = inner.hosts[&a].idle.iter().map(|i| i.stamp).collect();
            assert_eq!(stamps, [a1_stamp], "a2, the older of a's two, was closed");
            assert_eq!(inner.idle, 1);
        });
    }

    /// Checks out the idle connection of `key` and returns it, as a keep-alive request does.
    fn reuse(pool: &Pool, key: &PoolKey) {
        let mut to_close = Vec::new();
        let step = pool.try_checkout(&mut pool.inner.lock(), key, false, &mut to_close);
        let Step::Idle(conn) = step else {
            panic!("the idle connection of {} is reused", key.host);
        };
        assert!(to_close.is_empty());
        pool.checkin(conn);
    }

    /// The keep-alive hot path (one host, one connection, checked out and in again and again)
    /// allocates nothing and leaves no stale entry: the queue holds exactly the one connection.
    #[test]
    fn keep_alive_loop_on_one_host_allocates_nothing() {
        let rt = crate::rt::Runtime::new().unwrap();
        let backlog = Backlog::new();
        let pool = pool(8);
        let key = backlog.key("one.localhost");
        rt.block_on(async {
            let conn = backlog.connect(&pool, &key).await;
            pool.checkin(conn);
        });
        reuse(&pool, &key); // The first checkout of a fresh connection may set things up.
        let before = alloc_count::allocations();
        for _ in 0..10_000 {
            reuse(&pool, &key);
        }
        assert_eq!(alloc_count::allocations() - before, 0, "allocations");
        let inner = pool.inner.lock();
        assert_eq!((inner.idle, inner.lru.len()), (1, 1));
    }

    /// Two hosts used in turn leave a stale queue entry per request (each reused connection is
    /// not the last one checked in): compaction keeps the queue within its bound, in place.
    #[test]
    fn keep_alive_loop_on_two_hosts_keeps_the_queue_bounded_without_allocating() {
        let rt = crate::rt::Runtime::new().unwrap();
        let backlog = Backlog::new();
        let pool = pool(8);
        let (a, b) = (backlog.key("a.localhost"), backlog.key("b.localhost"));
        rt.block_on(async {
            for key in [&a, &b] {
                let conn = backlog.connect(&pool, key).await;
                pool.checkin(conn);
            }
        });
        // Warm up: the queue reaches its steady capacity.
        for _ in 0..200 {
            reuse(&pool, &a);
            reuse(&pool, &b);
        }
        let before = alloc_count::allocations();
        for _ in 0..5_000 {
            reuse(&pool, &a);
            reuse(&pool, &b);
            let inner = pool.inner.lock();
            assert!(inner.lru.len() <= 2 * 2 + LRU_SLACK, "{}", inner.lru.len());
        }
        assert_eq!(alloc_count::allocations() - before, 0, "allocations");
        let inner = pool.inner.lock();
        assert_eq!(inner.idle, 2);
        assert!(
            inner.lru.capacity() <= 4 * LRU_SLACK,
            "{}",
            inner.lru.capacity()
        );
    }

    /// Many hosts at the total limit: each new host evicts one connection, the queue stays
    /// within its bound, and host entries do not pile up.
    #[test]
    fn many_hosts_at_the_total_limit_keep_entries_and_queue_bounded() {
        let rt = crate::rt::Runtime::new().unwrap();
        let backlog = Backlog::new();
        let pool = pool(16);
        rt.block_on(async {
            for i in 0..100 {
                let key = backlog.key(&format!("h{i}.localhost"));
                let conn = backlog.connect(&pool, &key).await;
                pool.checkin(conn);
                // Some hosts are used again, leaving stale entries behind.
                if i % 3 == 0 {
                    let Checkout::Reused(conn) = pool.checkout(&key, false).await else {
                        panic!("just returned");
                    };
                    pool.checkin(conn);
                }
                let inner = pool.inner.lock();
                assert!(inner.hosts.len() <= 16, "{}", inner.hosts.len());
                assert!(inner.lru.len() <= 2 * inner.idle + LRU_SLACK + 1);
            }
            // The survivors are the 16 most recent hosts.
            let mut expected: Vec<String> = (84..100).map(|i| format!("h{i}.localhost")).collect();
            expected.sort();
            assert_eq!(hosts(&pool), expected);
            assert_eq!(pool.stats(), (16, 16, 16));
        });
    }
}
