//! TCP on the reactor: mio's non-blocking sockets plus a [`Registration`] that turns
//! `WouldBlock` into "park until readiness".

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::no_runtime;
use crate::rt::context;
use crate::rt::reactor::{Direction, Registration};

/// A TCP socket server, listening for connections.
///
/// ```
/// use scraipe::rt::net::{TcpListener, TcpStream};
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// rt.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = scraipe::rt::spawn(async move {
///         let stream = TcpStream::connect(addr).await.unwrap();
///         stream.write_all(b"ping").await.unwrap();
///     });
///     let (server_side, _) = listener.accept().await.unwrap();
///     let mut buf = [0u8; 4];
///     server_side.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"ping");
///     client.await.unwrap();
/// });
/// ```
pub struct TcpListener {
    io: mio::net::TcpListener,
    registration: Registration,
}

impl TcpListener {
    /// Binds to `addr` (port 0 picks a free port) with `SO_REUSEADDR` and a backlog of 1024.
    /// Must be called inside a runtime (the listener registers with the current worker).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, 1024)
    }

    /// Like [`bind`](TcpListener::bind) with a chosen accept backlog (std and mio use 128, which
    /// drops SYNs — and costs clients a one-second retransmit — when hundreds connect at once).
    /// The kernel caps it at `net.core.somaxconn`.
    pub fn bind_with_backlog(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
        let io = mio::net::TcpListener::bind(addr)?;
        // Listening again on a listening socket just updates its backlog (Linux).
        let backlog = backlog.min(i32::MAX as u32) as libc::c_int;
        // SAFETY: `io` owns an open listening socket for the duration of the call.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&io), backlog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        TcpListener::from_mio(io)
    }

    /// Wraps a std listener (switched to non-blocking mode).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    fn from_mio(mut io: mio::net::TcpListener) -> io::Result<TcpListener> {
        let reactor = context::current_reactor().ok_or_else(no_runtime)?;
        let registration = Registration::new(&mut io, reactor)?;
        Ok(TcpListener { io, registration })
    }

    /// Waits for a connection. The new stream registers with the workers' reactors in
    /// round-robin order (not the accepting worker's), so one accept loop spreads its
    /// connections' readiness over every worker.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`accept`](TcpListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (io, addr) = match self
            .registration
            .poll_io(cx, Direction::Read, || self.io.accept())
        {
            Poll::Ready(Ok(pair)) => pair,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(TcpStream::from_mio_accepted(io).map(|s| (s, addr)))
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.registration.deregister(&mut self.io);
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.io.local_addr().ok())
            .finish()
    }
}

/// A TCP connection.
///
/// Methods take `&self`, so one task can read while another writes the same stream. It also
/// implements the `futures-io` [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) traits (for `TcpStream` and `&TcpStream`), so
/// runtime-agnostic crates work on it.
pub struct TcpStream {
    io: mio::net::TcpStream,
    registration: Registration,
}

impl TcpStream {
    /// Connects to `addr`: a non-blocking `connect`, a wait for writability, then a check of
    /// `SO_ERROR` (and of the peer address, for spurious wake-ups) to learn whether it worked.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let io = mio::net::TcpStream::connect(addr)?;
        let stream = TcpStream::from_mio(io)?;
        poll_fn(|cx| stream.poll_connected(cx)).await?;
        Ok(stream)
    }

    /// Wraps a connected std stream (switched to non-blocking mode).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    fn from_mio(mut io: mio::net::TcpStream) -> io::Result<TcpStream> {
        let reactor = context::current_reactor().ok_or_else(no_runtime)?;
        let registration = Registration::new(&mut io, reactor)?;
        Ok(TcpStream { io, registration })
    }

    /// Registers an accepted connection. With several workers, connections are spread over
    /// their reactors round-robin, so one acceptor task does not leave every socket's readiness
    /// to a single worker: each connection's task then mostly runs where its events arrive.
    fn from_mio_accepted(mut io: mio::net::TcpStream) -> io::Result<TcpStream> {
        let reactor = context::reactor_for_accepted().ok_or_else(no_runtime)?;
        let registration = Registration::new(&mut io, reactor)?;
        Ok(TcpStream { io, registration })
    }

    fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let ev = match self.registration.poll_ready(cx, Direction::Write) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if let Some(e) = self.io.take_error()? {
                return Poll::Ready(Err(e));
            }
            match self.io.peer_addr() {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e)
                    if e.kind() == io::ErrorKind::NotConnected
                        || e.raw_os_error() == Some(libc::EINPROGRESS) =>
                {
                    self.registration.clear_readiness(ev)
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Reads into `buf`; `Ok(0)` means the peer closed its side (or `buf` is empty).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads exactly `buf.len()` bytes, failing with `UnexpectedEof` if the stream ends first.
    pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Writes some of `buf`, returning how much.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Poll form of [`write_vectored`](TcpStream::write_vectored).
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.registration
            .poll_io(cx, Direction::Write, || (&self.io).write_vectored(bufs))
    }

    /// Writes from several buffers in one syscall, returning how much was written in all.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        poll_fn(|cx| {
            self.registration
                .poll_io(cx, Direction::Write, || (&self.io).write_vectored(bufs))
        })
        .await
    }

    /// Poll form of [`read`](TcpStream::read).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        self.registration
            .poll_read_io(cx, len, || (&self.io).read(buf))
    }

    /// Poll form of [`write`](TcpStream::write).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.registration
            .poll_io(cx, Direction::Write, || (&self.io).write(buf))
    }

    /// Without waiting: `Ok(true)` if the connection is idle and open, `Ok(false)` if the peer
    /// closed it or sent unexpected bytes. For checking pooled connections before reuse.
    pub fn is_idle_and_open(&self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.io.peek(&mut byte) {
                Ok(_) => return false, // EOF (0) or unsolicited data: either way unusable
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.nodelay()
    }
}

impl std::os::fd::AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.as_raw_fd()
    }
}

impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.as_raw_fd()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.registration.deregister(&mut self.io);
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.io.local_addr().ok())
            .field("peer_addr", &self.io.peer_addr().ok())
            .finish()
    }
}

impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        TcpStream::poll_read(&self, cx, buf)
    }
}

impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        TcpStream::poll_write(&self, cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write))
    }
}

impl futures_io::AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        TcpStream::poll_read(*self, cx, buf)
    }
}

impl futures_io::AsyncWrite for &TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        TcpStream::poll_write(*self, cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write))
    }
}
