//! A scripted HTTP/1.1 test server on plain std threads: each connection gets a thread that
//! reads requests and lets a handler write whatever bytes it likes — correct responses and every
//! kind of broken one. It counts connections and records requests so tests can check keep-alive
//! reuse and which headers were sent.
#![allow(dead_code)]

pub mod host_shop;
pub mod mini_shop;
pub mod proc;
pub mod redis_server;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Index of the connection (0-based, in accept order) it arrived on.
    pub conn: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the handler wants done with the connection afterwards.
pub enum After {
    KeepAlive,
    Close,
}

pub type Handler = dyn Fn(&Seen, &mut dyn Transport) -> After + Send + Sync;

/// Wraps an accepted connection (e.g. in TLS); `None` drops it.
pub type Wrap = Arc<dyn Fn(TcpStream) -> Option<Box<dyn Transport>> + Send + Sync>;

/// What a handler writes to: a TCP stream, or a TLS stream over one.
pub trait Transport: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start(
        handler: impl Fn(&Seen, &mut dyn Transport) -> After + Send + Sync + 'static,
    ) -> TestServer {
        Self::start_with(handler, None)
    }

    /// Like `start`, wrapping each connection with `wrap` (e.g. a TLS server session).
    pub fn start_with(
        handler: impl Fn(&Seen, &mut dyn Transport) -> After + Send + Sync + 'static,
        wrap: Option<Wrap>,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (connections, seen, stop) = (connections.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn = connections.fetch_add(1, Ordering::SeqCst);
                    let (handler, seen, wrap) = (handler.clone(), seen.clone(), wrap.clone());
                    std::thread::spawn(move || {
                        let transport: Box<dyn Transport> = match wrap {
                            Some(w) => match w(stream) {
                                Some(t) => t,
                                None => return,
                            },
                            None => Box::new(stream),
                        };
                        serve(transport, conn, &*handler, &seen);
                    });
                }
            });
        }
        TestServer {
            addr,
            connections,
            seen,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    mut transport: Box<dyn Transport>,
    conn: usize,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
) {
    let _ = transport
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(20)));
    loop {
        let Some(request) = read_request(&mut *transport, conn) else {
            return;
        };
        seen.lock().unwrap().push(request.clone());
        match handler(&request, &mut *transport) {
            After::KeepAlive => {}
            After::Close => {
                let _ = transport.flush();
                return;
            }
        }
    }
}

/// Reads one request head (and a Content-Length body) byte by byte; `None` at EOF.
fn read_request(t: &mut dyn Transport, conn: usize) -> Option<Seen> {
    let mut reader = BufReader::new(ByteReader(t));
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
        conn,
    })
}

/// Reads one byte at a time so no bytes of the next request are buffered away.
struct ByteReader<'a>(&'a mut dyn Transport);

impl Read for ByteReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

/// Writes a complete response with a Content-Length.
pub fn respond(t: &mut dyn Transport, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len()).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    let _ = t.write_all(&out);
    let _ = t.flush();
}

/// Writes raw bytes.
pub fn raw(t: &mut dyn Transport, bytes: &[u8]) {
    let _ = t.write_all(bytes);
    let _ = t.flush();
}

/// Makes the coming close a TCP reset (SO_LINGER 0); return `After::Close` after it.
pub fn reset(t: &mut dyn Transport) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(t.tcp());
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // The RST goes out when the handler returns `After::Close` and the socket is closed.
}

/// Gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Panics in these tests are intentional (their message says so); keep them off the output.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !message.contains("intentional") {
                default(info);
            }
        }));
    });
}

/// A JSON object literal as a map.
pub fn obj(v: serde_json::Value) -> scraipe::results::JsonMap {
    v.as_object().cloned().expect("an object")
}
