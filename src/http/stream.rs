//! The byte stream under a connection: plain TCP, or TLS (rustls) over TCP.
//!
//! rustls is a state machine without I/O; this file pumps records between it and our
//! non-blocking socket. A tiny adapter turns "socket not ready" (`Poll::Pending`, with the waker
//! registered) into the `WouldBlock` that rustls' `read_tls`/`write_tls` understand, and back.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::rt::net::TcpStream;

/// Plain or TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub(crate) struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
    /// The peer closed TCP without sending close_notify first.
    unclean_eof: bool,
}

/// `Read`/`Write` over the async socket for rustls: `Pending` becomes `WouldBlock`.
struct SyncIo<'a, 'b> {
    tcp: &'a TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for SyncIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tcp.poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SyncIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tcp.poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pending_if_would_block<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

impl TlsStream {
    /// Starts a TLS session over `tcp` and completes the handshake.
    pub(crate) async fn connect(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let conn = ClientConnection::new(config, server_name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tls = TlsStream {
            tcp,
            conn,
            unclean_eof: false,
        };
        poll_fn(|cx| tls.poll_handshake(cx))
            .await
            .map_err(|e| describe(e, &server_name))?;
        Ok(tls)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                match self.poll_write_tls(cx) {
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.poll_read_tls(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection during the TLS handshake",
                    )))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Send the last handshake flight (the client Finished) before returning.
        while self.conn.wants_write() {
            match self.poll_write_tls(cx) {
                Poll::Ready(Ok(_)) => {}
                other => return other.map(|r| r.map(|_| ())),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads TLS records from the socket and processes them.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo { tcp: &self.tcp, cx };
        let n = match pending_if_would_block(self.conn.read_tls(&mut io)) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if let Err(e) = self.conn.process_new_packets() {
            // Tell the server why (best effort), then fail.
            let mut io = SyncIo { tcp: &self.tcp, cx };
            let _ = self.conn.write_tls(&mut io);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo { tcp: &self.tcp, cx };
        pending_if_would_block(self.conn.write_tls(&mut io))
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed TCP without close_notify. Many servers do; HTTP framing
                // (Content-Length, chunked) still detects a truncated body, so report EOF and
                // remember it for bodies delimited by the close itself.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.unclean_eof = true;
                    return Poll::Ready(Ok(0));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            while self.conn.wants_write() {
                match self.poll_write_tls(cx) {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            match self.poll_read_tls(cx) {
                Poll::Ready(Ok(_)) => {} // loop: plaintext, EOF or close_notify is now visible
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Keep rustls' outgoing buffer bounded: flush before accepting more.
        while self.conn.wants_write() {
            match self.poll_write_tls(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.conn.writer().write(buf)?;
        // Start sending right away; what does not fit now goes out on the next write or flush.
        while self.conn.wants_write() {
            match self.poll_write_tls(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            match self.poll_write_tls(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Rewrites rustls errors so the message names the certificate problem in plain words.
fn describe(e: io::Error, server: &ServerName<'_>) -> io::Error {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e;
    };
    let host = server.to_str();
    let text = match tls {
        rustls::Error::InvalidCertificate(cert) => {
            use rustls::CertificateError as C;
            let what = match cert {
                C::UnknownIssuer => "it is signed by an unknown authority (not among the trusted roots; add the issuer with a custom root certificate)".to_string(),
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => format!("it is not valid for the name {host}"),
                C::Revoked => "it was revoked".to_string(),
                C::BadSignature => "its signature is invalid".to_string(),
                C::BadEncoding => "it is malformed".to_string(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => "it is not meant for TLS servers".to_string(),
                C::Other(_) if super::tls::is_ca_used_as_end_entity(tls) => "it is a CA certificate (CA:TRUE), not a server certificate (trust this exact certificate as a custom root, or issue the site a server certificate)".to_string(),
                other => format!("{other:?}"),
            };
            format!("the certificate presented by {host} was rejected: {what}")
        }
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => format!(
            "TLS handshake with {host} failed: the server did not answer in TLS (a plain-HTTP \
             port? try http://)"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    };
    let kind = e.kind();
    let inner = e.into_inner().expect("checked above");
    io::Error::new(kind, TlsError { text, inner })
}

/// A rustls error with a friendlier message; `source()` still gives the original.
#[derive(Debug)]
pub(crate) struct TlsError {
    text: String,
    inner: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

impl Stream {
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(s) => s.poll_read(cx, buf),
            Stream::Tls(s) => s.poll_read(cx, buf),
        }
    }

    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub(crate) async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| match self {
                Stream::Plain(s) => s.poll_write(cx, buf),
                Stream::Tls(s) => s.poll_write(cx, buf),
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => poll_fn(|cx| s.poll_flush(cx)).await,
        }
    }

    /// True when a TLS peer closed TCP without close_notify (a possible truncation attack).
    pub(crate) fn closed_without_notify(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(s) => s.unclean_eof,
        }
    }

    /// Without waiting: is this idle connection still usable? False if the peer closed it (EOF,
    /// close_notify), reset it, or sent bytes nobody asked for.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        matches!(self.poll_read(&mut cx, &mut byte), Poll::Pending)
    }
}
