//! Opening a connection: Happy Eyeballs over the resolved addresses (RFC 8305), TCP options,
//! an optional `CONNECT` tunnel through a proxy, then TLS.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::http::conn::proto_fmt;
use crate::http::error::{Error, ErrorKind};
use crate::http::proto::{find_head_end, parse_head, HeadLimits};
use crate::rt::{self, net::TcpStream};

/// RFC 8305 §5 "Connection Attempt Delay": the next address is tried this long after the
/// previous attempt started, unless that attempt failed sooner.
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Alternates address families, starting with the family of the first address (RFC 8305 §4),
/// so one broken family (typically IPv6) costs one attempt delay, not every address.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v6 = first.is_ipv6();
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(a.len() + b.len());
    a.reverse();
    b.reverse();
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<TcpStream, Error>> + Send>>;

/// Connects to the first address that answers: attempts start [`ATTEMPT_DELAY`] apart (at once
/// after a failure), each bounded by `connect_timeout`; the first success wins and the other
/// attempts are dropped (their sockets closed). The error is the last failure, naming its address.
pub(crate) async fn happy_eyeballs(
    addrs: Vec<SocketAddr>,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let mut queue = interleave(addrs).into_iter();
    let mut pending: Vec<Attempt> = Vec::new();
    let mut last_error: Option<Error> = None;
    let mut next_start = rt::sleep_until(Instant::now());
    poll_fn(|cx| loop {
        let start_next = pending.is_empty() || Pin::new(&mut next_start).poll(cx).is_ready();
        if start_next {
            match queue.next() {
                Some(addr) => {
                    pending.push(Box::pin(attempt(addr, connect_timeout, deadline)));
                    next_start.reset(Instant::now() + ATTEMPT_DELAY);
                    // Poll the timer again so it wakes us at its new deadline.
                    continue;
                }
                None if pending.is_empty() => {
                    return Poll::Ready(Err(last_error.take().unwrap_or_else(|| {
                        Error::new(ErrorKind::Connect, "no address to connect to")
                    })));
                }
                None => {}
            }
        }
        let mut failed = false;
        let mut i = 0;
        while i < pending.len() {
            match pending[i].as_mut().poll(cx) {
                Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
                Poll::Ready(Err(e)) => {
                    log::debug!("{e}");
                    last_error = Some(e);
                    drop(pending.swap_remove(i));
                    failed = true;
                }
                Poll::Pending => i += 1,
            }
        }
        if !failed {
            return Poll::Pending;
        }
        // A failure starts the next attempt now rather than after the delay.
        next_start.reset(Instant::now());
    })
    .await
}

async fn attempt(
    addr: SocketAddr,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let until = (started + connect_timeout).min(deadline);
    match rt::timeout_at(until, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => {
            // Requests are written in one piece; Nagle would only add latency.
            let _ = tcp.set_nodelay(true);
            set_keepalive(&tcp);
            Ok(tcp)
        }
        Ok(Err(e)) => {
            Err(Error::with_source(ErrorKind::Connect, format!("{addr}: {e}"), e).transient())
        }
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "connecting to {addr} took longer than {}",
                proto_fmt(until.saturating_duration_since(started))
            ),
        )
        .transient()),
    }
}

/// TCP keepalive, so a pooled connection whose peer vanished (NAT timeout, crash) is found dead
/// by the kernel instead of eating a request: probes after 60 s idle, every 15 s, 4 tries.
fn set_keepalive(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: `fd` is an open socket owned by `tcp` for the duration of the call, and the
        // option value is a c_int whose size we pass.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 15);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    }
}

/// Asks an HTTP proxy for a tunnel to `authority` (`host:port`) and waits for its 2xx.
pub(crate) async fn tunnel(
    tcp: TcpStream,
    authority: &str,
    proxy_authorization: Option<&str>,
    user_agent: &str,
) -> Result<TcpStream, Error> {
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
    );
    if let Some(auth) = proxy_authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| Error::io("sending CONNECT to the proxy failed", e).transient())?;
    let limits = HeadLimits {
        max_bytes: 16 * 1024,
        max_headers: 100,
    };
    let mut buf = vec![0u8; limits.max_bytes];
    let mut len = 0;
    loop {
        let n = tcp
            .read(&mut buf[len..])
            .await
            .map_err(|e| Error::io("reading the proxy's answer to CONNECT failed", e))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Connect,
                "the proxy closed the connection instead of answering CONNECT",
            )
            .transient());
        }
        len += n;
        if let Some(end) = find_head_end(&buf[..len], 0) {
            let head = parse_head(&buf[..end], limits)?;
            if !(200..300).contains(&head.status) {
                return Err(Error::new(
                    ErrorKind::Connect,
                    format!(
                        "the proxy refused the tunnel to {authority}: {} {}",
                        head.status, head.reason
                    ),
                ));
            }
            if end != len {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "the proxy sent data after its answer to CONNECT",
                ));
            }
            return Ok(tcp);
        }
        if len == buf.len() {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "the proxy's answer to CONNECT is too large",
            ));
        }
    }
}

/// Where a SOCKS5 proxy should connect: an address, or a name for the proxy to resolve.
pub(crate) enum SocksTarget<'a> {
    Addr(SocketAddr),
    Name(&'a str, u16),
}

/// SOCKS5 (RFC 1928) CONNECT, with username/password authentication (RFC 1929) when given.
pub(crate) async fn socks5(
    tcp: TcpStream,
    target: SocksTarget<'_>,
    credentials: Option<(&str, &str)>,
) -> Result<TcpStream, Error> {
    let io = |what: &'static str| move |e| Error::io(what, e).transient();
    let refused = |why: String| Error::new(ErrorKind::Connect, format!("SOCKS5 proxy: {why}"));
    let greeting: &[u8] = if credentials.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    tcp.write_all(greeting)
        .await
        .map_err(io("sending the SOCKS5 greeting failed"))?;
    let mut reply = [0u8; 2];
    tcp.read_exact(&mut reply)
        .await
        .map_err(io("reading the SOCKS5 method failed"))?;
    match (reply, credentials) {
        ([5, 0], _) => {}
        ([5, 2], Some((user, pass))) => {
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            tcp.write_all(&auth)
                .await
                .map_err(io("sending SOCKS5 credentials failed"))?;
            tcp.read_exact(&mut reply)
                .await
                .map_err(io("reading the SOCKS5 authentication failed"))?;
            if reply[1] != 0 {
                return Err(refused("the username or password was rejected".into()));
            }
        }
        ([5, 0xff], _) => return Err(refused("no acceptable authentication method".into())),
        _ => return Err(refused(format!("unexpected method reply {reply:?}"))),
    }
    let mut request = vec![5, 1, 0];
    let port = match target {
        SocksTarget::Addr(SocketAddr::V4(a)) => {
            request.push(1);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        SocksTarget::Addr(SocketAddr::V6(a)) => {
            request.push(4);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        SocksTarget::Name(name, port) => {
            if name.len() > 255 {
                return Err(refused(format!("the host name {name} is too long")));
            }
            request.push(3);
            request.push(name.len() as u8);
            request.extend_from_slice(name.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&request)
        .await
        .map_err(io("sending the SOCKS5 request failed"))?;
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head)
        .await
        .map_err(io("reading the SOCKS5 reply failed"))?;
    if head[0] != 5 {
        return Err(refused("not a SOCKS5 reply".into()));
    }
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(refused(format!("the proxy could not connect: {why}")));
    }
    // The bound address that follows is of no use to us, but must be read off the stream.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            tcp.read_exact(&mut len)
                .await
                .map_err(io("reading the SOCKS5 reply failed"))?;
            usize::from(len[0]) + 2
        }
        other => {
            return Err(refused(format!(
                "unknown address type {other} in the reply"
            )))
        }
    };
    let mut skip = vec![0u8; rest];
    tcp.read_exact(&mut skip)
        .await
        .map_err(io("reading the SOCKS5 reply failed"))?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_starting_with_the_first() {
        let a: Vec<SocketAddr> = ["[::1]:1", "[::2]:1", "[::3]:1", "1.0.0.1:1", "1.0.0.2:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<String> = interleave(a).iter().map(|a| a.ip().to_string()).collect();
        assert_eq!(order, ["::1", "1.0.0.1", "::2", "1.0.0.2", "::3"]);
        assert!(interleave(Vec::new()).is_empty());
    }

    #[test]
    fn connections_have_nodelay_and_tcp_keepalive() {
        let rt = crate::rt::Runtime::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = rt
            .block_on(attempt(
                addr,
                Duration::from_secs(5),
                Instant::now() + Duration::from_secs(5),
            ))
            .unwrap();
        let get = |level, name| {
            use std::os::fd::AsRawFd;
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt on the open socket into a c_int of the size we pass.
            let rc = unsafe {
                libc::getsockopt(
                    tcp.as_raw_fd(),
                    level,
                    name,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            value
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        #[cfg(target_os = "linux")]
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 60);
        assert!(tcp.nodelay().unwrap());
    }
}
