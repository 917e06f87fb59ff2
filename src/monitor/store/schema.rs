//! The SQLite schema and its migrations. README ("The monitor's database") documents it for
//! users who query it with `sqlite3`; keep the two in step.

use rusqlite::Connection;

/// The version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Version 1. Times are integer milliseconds since the Unix epoch (UTC), prices TEXT.
const V1: &str = "
CREATE TABLE links (
    id              INTEGER PRIMARY KEY,
    url             TEXT NOT NULL UNIQUE,
    active          INTEGER NOT NULL DEFAULT 1,
    phase           INTEGER NOT NULL,
    added_ms        INTEGER NOT NULL,
    last_checked_ms INTEGER,
    last_outcome    TEXT,
    not_before_ms   INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    etag            TEXT,
    last_modified   TEXT,
    body_hash       TEXT,
    has_offer       INTEGER NOT NULL DEFAULT 0,
    price           TEXT,
    currency        TEXT,
    availability    TEXT,
    name            TEXT,
    source          TEXT,
    last_change_ms  INTEGER
);
CREATE INDEX links_due ON links(active, last_checked_ms);
CREATE TABLE observations (
    id           INTEGER PRIMARY KEY,
    link_id      INTEGER NOT NULL REFERENCES links(id),
    observed_ms  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    http_status  INTEGER,
    price        TEXT,
    currency     TEXT,
    availability TEXT,
    source       TEXT,
    error        TEXT
);
CREATE INDEX observations_link ON observations(link_id, observed_ms);
CREATE TABLE events (
    id                    INTEGER PRIMARY KEY,
    link_id               INTEGER NOT NULL REFERENCES links(id),
    observation_id        INTEGER NOT NULL UNIQUE REFERENCES observations(id),
    observed_ms           INTEGER NOT NULL,
    name                  TEXT,
    price                 TEXT,
    currency              TEXT,
    availability          TEXT,
    previous_price        TEXT,
    previous_currency     TEXT,
    previous_availability TEXT,
    source                TEXT,
    file_done             INTEGER NOT NULL DEFAULT 0,
    webhook_done          INTEGER NOT NULL DEFAULT 0,
    delivered_ms          INTEGER
);
CREATE INDEX events_pending ON events(id) WHERE delivered_ms IS NULL;
CREATE TABLE robots (
    origin     TEXT PRIMARY KEY,
    fetched_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    status     INTEGER,
    body       TEXT NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Version 2: validated LLM answers (`extract = "llm"` rules), by request hash
/// ([`CacheKey`](crate::llm::CacheKey)); `value` is the answer's JSON object.
const V2: &str = "
CREATE TABLE llm_cache (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// Connection settings every connection uses: WAL (readers never block the writer, and a
/// `kill -9` cannot corrupt the file), `synchronous=NORMAL` (durable against process crashes;
/// a power cut may lose the last commits but never corrupts), a busy timeout for the second
/// connection.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`], each step in one transaction. Refuses a database
/// written by a newer version.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(|e| e.to_string())?;
    let current: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(format!(
            "the database has schema version {current}, newer than this scraipe ({SCHEMA_VERSION}); upgrade scraipe"
        ));
    }
    if current < 1 {
        tx.execute_batch(V1).map_err(|e| e.to_string())?;
        tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])
            .map_err(|e| e.to_string())?;
    }
    if current < 2 {
        tx.execute_batch(V2).map_err(|e| e.to_string())?;
        tx.execute("INSERT INTO schema_version (version) VALUES (2)", [])
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}
