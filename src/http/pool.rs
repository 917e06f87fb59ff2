//! The keep-alive pool, keyed by (scheme, host, port), with limits per host and in total so
//! that scraping 50,000 hosts cannot exhaust file descriptors.
//!
//! * Every open connection holds a [`Slot`]: one permit of the global semaphore plus a count in
//!   its host's entry. Dropping the connection releases both.
//! * A request takes the most recently used idle connection of its host (checked for a server
//!   close first), else opens a new one if the host and global limits allow, else waits.
//! * Waiters are served by hand-off: a connection returned to the pool, or the slot freed by a
//!   closed one, goes straight to the oldest waiter of that host.
//! * When the global limit is reached, the oldest idle connection of any host is closed to make
//!   room; a connection is not pooled at all while others wait for a global slot.
//! * Host entries are removed as soon as they hold nothing, and idle connections past the idle
//!   timeout are closed, so memory stays proportional to what is open, not to hosts ever seen.

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

struct Inner {
    hosts: HashMap<PoolKey, Host>,
    last_sweep: Instant,
}

#[derive(Default)]
struct Host {
    /// Most recently returned last.
    idle: Vec<Conn>,
    /// Open connections (idle or busy), i.e. slots handed out.
    open: usize,
    waiters: VecDeque<oneshot::Sender<Handoff>>,
}

impl Host {
    fn is_empty(&self) -> bool {
        self.open == 0 && self.idle.is_empty() && self.waiters.is_empty()
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
                    let host = inner.hosts.entry(key.clone()).or_default();
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
        let host = inner.hosts.entry(key.clone()).or_default();
        if !fresh {
            while let Some(conn) = host.idle.pop() {
                if conn.idle_expired(self.config.idle_timeout) {
                    to_close.push(conn);
                    continue;
                }
                return Step::Idle(conn);
            }
        }
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
        // At the global limit: close the oldest idle connection anywhere to make room.
        let oldest = inner
            .hosts
            .iter()
            .filter_map(|(k, h)| h.idle.first().map(|c| (c.idle_since, k.clone())))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, k)) => {
                let host = inner.hosts.get_mut(&k).expect("found above");
                to_close.push(host.idle.remove(0));
                Step::Retry
            }
            None => {
                // Do not leave an empty entry behind if this wait is cancelled: it would stay
                // forever (entries are otherwise removed only when a slot is released).
                if inner.hosts.get(key).is_some_and(Host::is_empty) {
                    inner.hosts.remove(key);
                }
                Step::WaitTotal
            }
        }
    }

    /// Returns a connection after a complete response that both sides agreed to keep alive.
    pub(crate) fn checkin(&self, mut conn: Conn) {
        let mut close = None;
        {
            let mut inner = self.inner.lock();
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
                host.idle.push(conn);
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

    /// At most once a second: close idle connections past their timeout.
    fn sweep_expired(&self, inner: &mut Inner, to_close: &mut Vec<Conn>) {
        if inner.last_sweep.elapsed() < Duration::from_secs(1) {
            return;
        }
        inner.last_sweep = Instant::now();
        let timeout = self.config.idle_timeout;
        for host in inner.hosts.values_mut() {
            let mut i = 0;
            while i < host.idle.len() {
                if host.idle[i].idle_expired(timeout) {
                    to_close.push(host.idle.remove(i));
                } else {
                    if host.idle[i].idle_since.elapsed() >= Duration::from_secs(1) {
                        host.idle[i].shrink_idle_buffer();
                    }
                    i += 1;
                }
            }
        }
    }

    /// (open connections, idle connections, host entries) — for tests and metrics.
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        let open = inner.hosts.values().map(|h| h.open).sum();
        let idle = inner.hosts.values().map(|h| h.idle.len()).sum();
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
                    for c in &mut host.idle {
                        c.idle_since -= Duration::from_secs(2);
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
}
