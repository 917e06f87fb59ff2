//! Async networking: TCP and name resolution.

mod tcp;

pub use tcp::{TcpListener, TcpStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `host:port` on the blocking pool (std's resolver blocks the calling thread, which a
/// reactor must never do). IP literals are parsed without touching the resolver.
///
/// ```
/// let rt = scraipe::rt::Runtime::new().unwrap();
/// let addrs = rt.block_on(scraipe::rt::net::lookup_host("127.0.0.1", 80)).unwrap();
/// assert_eq!(addrs, vec!["127.0.0.1:80".parse().unwrap()]);
/// ```
pub async fn lookup_host(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Some(ip) = ip_literal(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = host.to_string();
    let handle = super::Handle::try_current().ok_or_else(no_runtime)?;
    handle
        .spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        })
        .await
        .map_err(|e| io::Error::other(format!("name resolution task failed: {e}")))?
}

/// The address written in `host` when it is an IP literal (`127.0.0.1`, `::1`, `[::1]`).
pub fn ip_literal(host: &str) -> Option<std::net::IpAddr> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse().ok()
}

pub(crate) fn no_runtime() -> io::Error {
    io::Error::other("no scraipe runtime: sockets must be created inside one (a task, block_on, or Handle::enter)")
}
