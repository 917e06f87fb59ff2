//! One Redis connection that survives a server restart: a call that fails on the connection
//! (refused, reset, timed out) reconnects with exponential backoff and is tried again, up to
//! [`Conn::retry_for`]. Every call the store makes is idempotent (scripts check what they
//! already applied), so trying a batch again after an unknown outcome is safe. Scripts are
//! loaded on each connect and invoked by SHA; a `NOSCRIPT` (script cache flushed) reloads them.

use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, Script};

use super::scripts;
use crate::monitor::store::StoreError;

/// The scripts, compiled once (their SHA-1 is what `EVALSHA` sends).
pub struct Scripts {
    pub claim: Script,
    pub sync_add: Script,
    pub sync_remove: Script,
    pub record: Script,
    pub clear_pending: Script,
    pub global: Script,
    pub slot_acquire: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            claim: Script::new(scripts::CLAIM),
            sync_add: Script::new(scripts::SYNC_ADD),
            sync_remove: Script::new(scripts::SYNC_REMOVE),
            record: Script::new(scripts::RECORD),
            clear_pending: Script::new(scripts::CLEAR_PENDING),
            global: Script::new(scripts::GLOBAL),
            slot_acquire: Script::new(scripts::SLOT_ACQUIRE),
        }
    }

    fn all(&self) -> [&Script; 7] {
        [
            &self.claim,
            &self.sync_add,
            &self.sync_remove,
            &self.record,
            &self.clear_pending,
            &self.global,
            &self.slot_acquire,
        ]
    }
}

/// First wait after a failed connect; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Connect and per-command I/O timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection, re-established on demand.
pub struct Conn {
    client: Client,
    url: String,
    conn: Option<Connection>,
    /// How long a call keeps trying through connection failures before it gives up.
    pub retry_for: Duration,
}

/// Whether the error is about the connection (try again after reconnecting) rather than the
/// command.
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "NOSCRIPT" | "MASTERDOWN" | "TRYAGAIN")
        )
}

impl Conn {
    /// A connection to `url` (`redis://HOST:PORT/DB`); connects lazily.
    pub fn new(url: &str, retry_for: Duration) -> Result<Conn, StoreError> {
        let client =
            Client::open(url).map_err(|e| StoreError(format!("invalid Redis URL {url:?}: {e}")))?;
        Ok(Conn {
            client,
            url: url.to_string(),
            conn: None,
            retry_for,
        })
    }

    fn connect(&mut self, scripts: &Scripts) -> Result<&mut Connection, RedisError> {
        if self.conn.is_none() {
            let mut c = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            for s in scripts.all() {
                s.load(&mut c)?;
            }
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection, reconnecting with backoff through connection failures.
    pub fn run<T>(
        &mut self,
        scripts: &Scripts,
        what: &str,
        mut f: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = FIRST_BACKOFF;
        let mut logged = false;
        loop {
            let result = self.connect(scripts).and_then(&mut f);
            match result {
                Ok(v) => {
                    if logged {
                        log::warn!("Redis at {} is back", self.url);
                    }
                    return Ok(v);
                }
                Err(e) if is_connection_error(&e) && Instant::now() < deadline => {
                    if !logged {
                        log::warn!("Redis at {} unavailable ({e}); reconnecting", self.url);
                        logged = true;
                    }
                    self.conn = None;
                    // Not past the deadline: the caller was promised `retry_for`.
                    std::thread::sleep(
                        backoff.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    let mut gave_up = String::new();
                    if is_connection_error(&e) {
                        self.conn = None;
                        gave_up = format!(" (unreachable for {:?}; giving up)", self.retry_for);
                    }
                    return Err(StoreError(format!(
                        "Redis ({}) {what}: {e}{gave_up}",
                        self.url
                    )));
                }
            }
        }
    }
}
