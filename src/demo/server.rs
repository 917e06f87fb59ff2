//! The HTTP/1.1 server of the demo site, on our runtime: one accept task, one task per
//! connection.
//!
//! # A connection's life
//!
//! 1. Read into a reusable buffer (4 KiB, grown up to the head limit only for a large head).
//! 2. Parse every complete request head in the buffer (pipelining), appending each response to
//!    one write buffer; small bodies are copied in, large ones (over 16 KiB) are sent with
//!    `writev` straight from the shared page cache. One write per batch of requests.
//! 3. Keep the connection unless the client said `Connection: close`, spoke HTTP/1.0 without
//!    keep-alive, announced a request body (never read: its bytes would be taken for the next
//!    request), or sent something unparseable (400), a head over the limit (414/431).
//! 4. Close when no complete request arrived within the idle timeout of the previous response
//!    (which also bounds a slow-loris head), or when a write makes no progress for that long.
//!
//! A connection that ends on our side after a response shuts down its write half and drains
//! what the client still sends (at most 1 MiB, at most 2 s) before closing, so the kernel does
//! not answer unread bytes with a reset that would destroy the response in flight.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::rt::net::{TcpListener, TcpStream};
use crate::rt::sync::oneshot;
use crate::rt::{sleep, Handle, JoinHandle, JoinSet, Sleep};

use super::deadline::{until, DeadlineTimer};
use super::http::{self, DateCache, HeadFields, Method, Parsed};
use super::routes::{self, FILLER_LEN};
use super::service::{Body, Reply, Service};
use super::site::DemoSite;

/// Bodies up to this size are copied into the write buffer (one `write`); larger ones go out
/// with `writev` from where they are, without a copy.
const INLINE_BODY: usize = 16 * 1024;
/// Flush the write buffer when pipelined responses pile up beyond this.
const FLUSH_AT: usize = 64 * 1024;
/// A connection yields to the scheduler after answering this many requests.
const YIELD_EVERY: u32 = 64;
/// Lingering close limits.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Settings of a [`DemoServer`].
///
/// ```
/// use std::time::Duration;
/// let options = scraipe::demo::ServerOptions {
///     idle_timeout: Duration::from_secs(5),
///     ..Default::default()
/// };
/// assert_eq!(options.max_head_bytes, 16 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long a keep-alive connection may wait for its next complete request head, and how
    /// long a write may make no progress, before the server closes it (default 15 s).
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) accepted; larger gets 431, or 414
    /// when even the request line does not fit (default 16 KiB, at least 1 KiB).
    pub max_head_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_timeout: Duration::from_secs(15),
            max_head_bytes: 16 * 1024,
        }
    }
}

/// Counters and configuration shared by the accept task and the connections.
struct Shared<S> {
    service: S,
    /// `http://ip:port`, for absolute redirects.
    base_url: String,
    options: ServerOptions,
    handle: Handle,
    requests: AtomicU64,
    connections: AtomicU64,
    open: AtomicUsize,
    panics: AtomicU64,
}

/// The demo site served over HTTP/1.1 on a [`Handle`]'s runtime.
///
/// Dropping it (or [`stop`](DemoServer::stop)) closes the listener and every open connection.
///
/// ```
/// use std::io::{Read, Write};
/// use scraipe::demo::{DemoServer, DemoSite};
///
/// let rt = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
/// let server = DemoServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), DemoSite::new(10, 1))?;
/// let mut client = std::net::TcpStream::connect(server.local_addr())?;
/// client.write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")?;
/// let mut response = String::new();
/// client.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.ends_with("\r\n\r\nok\n"));
/// assert_eq!(server.requests_served(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct DemoServer {
    running: Running<DemoSite>,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("local_addr", &self.running.local_addr)
            .field("site", &self.running.shared.service)
            .field("running", &self.running.acceptor.is_some())
            .finish()
    }
}

impl DemoServer {
    /// Binds `addr` (port 0 picks a free port) and serves `site` on `handle`'s runtime with
    /// default [`ServerOptions`]. Callable from any thread, inside the runtime or not.
    pub fn start(handle: &Handle, addr: SocketAddr, site: DemoSite) -> io::Result<DemoServer> {
        DemoServer::start_with(handle, addr, site, ServerOptions::default())
    }

    /// Like [`start`](DemoServer::start) with explicit options.
    pub fn start_with(
        handle: &Handle,
        addr: SocketAddr,
        site: DemoSite,
        options: ServerOptions,
    ) -> io::Result<DemoServer> {
        Ok(DemoServer {
            running: Running::start(handle, addr, site, options)?,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr
    }

    /// `http://ip:port`, without a trailing slash: the base for [`DemoSite::urls`].
    pub fn base_url(&self) -> &str {
        &self.running.shared.base_url
    }

    /// The site being served.
    pub fn site(&self) -> &DemoSite {
        self.running.service()
    }

    /// Responses sent so far, error responses included.
    pub fn requests_served(&self) -> u64 {
        self.running.requests_served()
    }

    /// Connections accepted so far (a keep-alive client reusing its connection adds one).
    pub fn connections_accepted(&self) -> u64 {
        self.running.connections_accepted()
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.running.open_connections()
    }

    /// Connection tasks that panicked (each is a bug; they are logged). Final once
    /// [`stop`](DemoServer::stop) has returned.
    pub fn connection_panics(&self) -> u64 {
        self.running.connection_panics()
    }

    /// Stops accepting, closes every connection (requests in progress are cut off) and waits
    /// until that is done. Idempotent; the counters stay readable.
    pub fn stop(&mut self) {
        self.running.stop();
    }
}

/// A listener serving one [`Service`]: what [`DemoServer`] and the demo shop's server are made
/// of. Dropping it stops it.
pub(crate) struct Running<S: Service> {
    shared: Arc<Shared<S>>,
    local_addr: SocketAddr,
    stop_tx: Option<oneshot::Sender<()>>,
    acceptor: Option<JoinHandle<()>>,
}

impl<S: Service> Running<S> {
    /// Binds `addr` (port 0 picks a free port) and serves `service` on `handle`'s runtime.
    /// Callable from any thread, inside the runtime or not.
    pub(crate) fn start(
        handle: &Handle,
        addr: SocketAddr,
        service: S,
        mut options: ServerOptions,
    ) -> io::Result<Running<S>> {
        options.max_head_bytes = options.max_head_bytes.max(1024);
        let listener = bind(addr)?;
        let listener = {
            let _enter = handle.enter();
            TcpListener::from_std(listener)?
        };
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            service,
            base_url: format!("http://{local_addr}"),
            options,
            handle: handle.clone(),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            panics: AtomicU64::new(0),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let acceptor = handle.spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(Running {
            shared,
            local_addr,
            stop_tx: Some(stop_tx),
            acceptor: Some(acceptor),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn service(&self) -> &S {
        &self.shared.service
    }

    pub(crate) fn requests_served(&self) -> u64 {
        self.shared.requests.load(Relaxed)
    }

    pub(crate) fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Relaxed)
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.shared.open.load(Relaxed)
    }

    pub(crate) fn connection_panics(&self) -> u64 {
        self.shared.panics.load(Relaxed)
    }

    /// Stops accepting, closes every connection and waits until that is done. Idempotent.
    pub(crate) fn stop(&mut self) {
        // Dropping the sender wakes the accept task, which closes the listener, aborts the
        // connection tasks and waits for them.
        drop(self.stop_tx.take());
        if let Some(acceptor) = self.acceptor.take() {
            // `Handle::block_on` works from plain threads, from inside a task, and drives a
            // runtime without worker threads; after a runtime shutdown the task is already
            // cancelled and this returns at once.
            let _ = self.shared.handle.block_on(acceptor);
        }
    }
}

impl<S: Service> Drop for Running<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Backlog of the listening socket (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: libc::c_int = 4096;

/// Binds a listener with a deep backlog. std and mio listen with a backlog of 128: a burst of
/// connects larger than that (the memory benchmark opens 5,000 at once) overflows the accept
/// queue, and the dropped SYNs are retried only a second later.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: `listen` on a socket we own and keep open; it reads no memory of ours. Calling it
    // again on a listening socket only changes the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        log::warn!(
            "demo server: could not raise the listen backlog: {}",
            io::Error::last_os_error()
        );
    }
    Ok(listener)
}

/// Accepts until stopped; then closes the listener and every connection.
async fn accept_loop<S: Service>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections: JoinSet<()> = JoinSet::new();
    let mut backoff: Option<Sleep> = None;
    let mut accepted = 0u32;
    loop {
        let event = poll_fn(|cx| {
            // Reap finished connection tasks, so the set is only as large as the open ones.
            while let Poll::Ready(Some(done)) = connections.poll_join_next(cx) {
                note_panic(&shared, done);
            }
            if Pin::new(&mut stop).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if let Some(pause) = &mut backoff {
                if Pin::new(pause).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                backoff = None;
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match event {
            None => break,
            Some(Ok((stream, _peer))) => {
                shared.connections.fetch_add(1, Relaxed);
                connections.spawn(connection(stream, shared.clone()));
                // The runtime has no cooperative budget: during a connection storm this loop
                // would accept the whole backlog before any connection got served.
                accepted = accepted.wrapping_add(1);
                if accepted.is_multiple_of(32) {
                    crate::rt::yield_now().await;
                }
            }
            Some(Err(_)) if shared.handle.is_shutdown() => break,
            Some(Err(e)) => {
                // EMFILE/ENFILE/ENOBUFS leave the connection in the backlog and the listener
                // readable: pause instead of spinning on the same error.
                log::warn!("demo server: accept failed: {e}");
                backoff = Some(sleep(Duration::from_millis(20)));
            }
        }
    }
    drop(listener);
    connections.abort_all();
    while let Some(done) = connections.join_next().await {
        note_panic(&shared, done);
    }
}

/// A connection task that panicked is a bug in this module: count it (tests assert zero) and log.
fn note_panic<S>(shared: &Shared<S>, done: Result<(), crate::rt::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            shared.panics.fetch_add(1, Relaxed);
            log::error!("demo server: a connection task panicked: {e}");
        }
    }
}

/// Decrements the open-connection gauge however the task ends (abort included).
struct OpenGuard<S>(Arc<Shared<S>>);

impl<S> Drop for OpenGuard<S> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

async fn connection<S: Service>(stream: TcpStream, shared: Arc<Shared<S>>) {
    shared.open.fetch_add(1, Relaxed);
    let _guard = OpenGuard(shared.clone());
    // Responses leave in one write per batch; Nagle would only hold back the tail of a large one.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        shared,
        rbuf: vec![0; S::READ_BUFFER],
        start: 0,
        end: 0,
        wbuf: Vec::with_capacity(1024),
        date: DateCache::new(),
        timer: DeadlineTimer::default(),
    };
    if let Ok(End::CloseAfterResponse) = conn.serve().await {
        conn.linger().await;
    }
}

/// How a connection's request loop ended.
enum End {
    /// The peer closed, went idle too long, or the connection failed: just drop it.
    Drop,
    /// We answered a request with `Connection: close`: close gracefully.
    CloseAfterResponse,
}

struct Conn<S> {
    stream: TcpStream,
    shared: Arc<Shared<S>>,
    /// Received bytes not yet parsed are `rbuf[start..end]`.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    date: DateCache,
    timer: DeadlineTimer,
}

impl<S: Service> Conn<S> {
    async fn serve(&mut self) -> io::Result<End> {
        let idle = self.shared.options.idle_timeout;
        let max_head = self.shared.options.max_head_bytes;
        let mut deadline = Instant::now() + idle;
        let mut since_yield = 0u32;
        loop {
            let mut answered = false;
            while self.start < self.end {
                match http::parse_request(&self.rbuf[self.start..self.end], &self.shared.service) {
                    Parsed::Complete(head, len) => {
                        self.start += len;
                        answered = true;
                        since_yield += 1;
                        let reply = self.shared.service.reply(head.method, &head.request);
                        let keep = head.keep_alive;
                        self.respond(reply, head.method == Method::Head, keep, head.http11)
                            .await?;
                        // The request ends here (a service may count requests in flight).
                        drop(head);
                        if !keep {
                            self.flush().await?;
                            return Ok(End::CloseAfterResponse);
                        }
                    }
                    Parsed::Partial if self.end - self.start < max_head => break,
                    Parsed::Partial => {
                        // Over the limit. No line end at all means the request line alone is
                        // too long (414); otherwise the headers are (431).
                        let head = &self.rbuf[self.start..self.end];
                        let status = if head.contains(&b'\n') { 431 } else { 414 };
                        return self.fail(status).await;
                    }
                    Parsed::Invalid(status) => return self.fail(status).await,
                }
            }
            self.flush().await?;
            if answered {
                deadline = Instant::now() + idle;
            }
            // The runtime has no cooperative budget, and a client that pipelines without pause
            // keeps every read ready: give the worker's other connections a turn now and then.
            if since_yield >= YIELD_EVERY {
                since_yield = 0;
                crate::rt::yield_now().await;
            }
            self.make_room(max_head);
            let read = until(
                &mut self.timer,
                deadline,
                self.stream.read(&mut self.rbuf[self.end..]),
            )
            .await;
            match read {
                Ok(0) | Err(_) => return Ok(End::Drop),
                Ok(n) => self.end += n,
            }
        }
    }

    /// Moves unparsed bytes to the front, and grows the buffer (up to the head limit) when a
    /// partial head fills it.
    fn make_room(&mut self, max_head: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.rbuf.len() {
            // Only reachable with a partial head shorter than `max_head` (checked by the
            // caller), so the buffer is below the limit and grows.
            let len = (self.rbuf.len() * 2).min(max_head).max(self.rbuf.len() + 1);
            self.rbuf.resize(len, 0);
        }
    }

    /// Answers an unusable request and ends the connection.
    async fn fail(&mut self, status: u16) -> io::Result<End> {
        self.respond(Reply::error(status), false, false, true)
            .await?;
        self.flush().await?;
        Ok(End::CloseAfterResponse)
    }

    /// Queues (or, for a large body, writes) one response. Waits first if the reply is delayed,
    /// after sending what is already queued so earlier pipelined answers are not held back.
    async fn respond(
        &mut self,
        reply: Reply,
        head_only: bool,
        keep_alive: bool,
        http11: bool,
    ) -> io::Result<()> {
        if !reply.delay.is_zero() {
            self.flush().await?;
            sleep(reply.delay).await;
        }
        let base = match reply.location {
            Some((true, _)) => self.shared.base_url.as_str(),
            _ => "",
        };
        let fields = HeadFields {
            status: reply.status,
            content_type: reply.content_type,
            content_length: reply.body.len() as u64,
            location: reply.location.map(|(_, page)| (base, page)),
            allow: reply.allow,
            keep_alive,
            http11,
            etag: reply.etag,
            last_modified: reply.last_modified,
        };
        http::write_head(&mut self.wbuf, &fields, self.date.now());
        self.shared.requests.fetch_add(1, Relaxed);
        if head_only || reply.body.len() == 0 {
            return self.flush_if_large().await;
        }
        match &reply.body {
            Body::Static(b) if b.len() <= INLINE_BODY => self.wbuf.extend_from_slice(b),
            Body::Shared(b) if b.len() <= INLINE_BODY => self.wbuf.extend_from_slice(b),
            Body::Owned(b) if b.len() <= INLINE_BODY => self.wbuf.extend_from_slice(b),
            Body::Filler(n) if *n <= INLINE_BODY => {
                self.wbuf.extend_from_slice(&routes::filler()[..*n])
            }
            Body::Static(b) => self.write_with(b).await?,
            Body::Shared(b) => self.write_with(b).await?,
            Body::Owned(b) => self.write_with(b).await?,
            Body::Filler(n) => {
                let filler = routes::filler();
                let mut left = *n;
                let first = left.min(FILLER_LEN);
                self.write_with(&filler[..first]).await?;
                left -= first;
                while left > 0 {
                    let chunk = left.min(FILLER_LEN);
                    self.write_parts(&[&filler[..chunk]]).await?;
                    left -= chunk;
                }
            }
        }
        self.flush_if_large().await
    }

    async fn flush_if_large(&mut self) -> io::Result<()> {
        if self.wbuf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the queued bytes followed by `body` in as few `writev`s as the socket allows.
    async fn write_with(&mut self, body: &[u8]) -> io::Result<()> {
        let queued = std::mem::take(&mut self.wbuf);
        let result = self.write_parts(&[&queued, body]).await;
        self.wbuf = queued;
        self.wbuf.clear();
        result
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let queued = std::mem::take(&mut self.wbuf);
        let result = self.write_parts(&[&queued]).await;
        self.wbuf = queued;
        self.wbuf.clear();
        if self.wbuf.capacity() > 4 * FLUSH_AT {
            self.wbuf.shrink_to(FLUSH_AT); // a burst of pipelining should not pin memory
        }
        result
    }

    /// Writes every byte of `parts` in order, with `writev`. Fails with `TimedOut` when the
    /// peer accepts nothing for the idle timeout.
    async fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let idle = self.shared.options.idle_timeout;
        let (mut index, mut offset) = (0, 0);
        while index < parts.len() {
            if offset >= parts[index].len() {
                index += 1;
                offset = 0;
                continue;
            }
            let mut slices = [IoSlice::new(&[]); 4];
            slices[0] = IoSlice::new(&parts[index][offset..]);
            let mut count = 1;
            for part in parts[index + 1..].iter().take(slices.len() - 1) {
                slices[count] = IoSlice::new(part);
                count += 1;
            }
            let deadline = Instant::now() + idle;
            let mut written = until(
                &mut self.timer,
                deadline,
                self.stream.write_vectored(&slices[..count]),
            )
            .await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 && index < parts.len() {
                let left = parts[index].len() - offset;
                if written >= left {
                    written -= left;
                    index += 1;
                    offset = 0;
                } else {
                    offset += written;
                    written = 0;
                }
            }
        }
        Ok(())
    }

    /// Graceful close: FIN first, then read and discard until the peer closes (bounded), so
    /// unread request bytes do not turn our close into a reset.
    async fn linger(&mut self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME.min(self.shared.options.idle_timeout);
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match until(&mut self.timer, deadline, self.stream.read(&mut self.rbuf)).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }
}
