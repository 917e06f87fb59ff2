//! Delivering change events from the outbox: appended to the changes file (or standard
//! output) and POSTed to the webhook, then acknowledged per sink. An event leaves the outbox
//! once every sink of the run has it; what could not be delivered stays for the next pass or
//! the next run. Across a crash between a delivery and its acknowledgement a sink may see an
//! event twice (at-least-once; receivers de-duplicate on `id`), but the database never holds
//! it twice.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::store::{EventAck, Store, StoreError};
use crate::http::Client;

/// Events read from the outbox per page.
const PAGE: usize = 500;
/// POST attempts per event within one pass.
const WEBHOOK_ATTEMPTS: u32 = 3;
/// The longest wait between passes that try a failing webhook again.
const MAX_WEBHOOK_BACKOFF: Duration = Duration::from_secs(60);

/// Where events go.
pub struct Sinks {
    /// The changes file (or standard output); `None` to skip.
    pub changes: Option<Box<dyn Write + Send>>,
    /// The webhook URL.
    pub webhook: Option<String>,
}

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Events that left the outbox.
    pub delivered: u64,
    /// Events still waiting (the webhook failed).
    pub waiting: u64,
}

/// Delivers events; one per run.
pub struct Deliverer {
    changes: Mutex<Option<Box<dyn Write + Send>>>,
    webhook: Option<String>,
    client: Client,
    /// Consecutive failed passes and when to try the webhook again.
    webhook_backoff: Mutex<(u32, Option<Instant>)>,
}

impl Deliverer {
    /// With `client` for the webhook.
    pub fn new(sinks: Sinks, client: Client) -> Deliverer {
        Deliverer {
            changes: Mutex::new(sinks.changes),
            webhook: sinks.webhook,
            client,
            webhook_backoff: Mutex::new((0, None)),
        }
    }

    async fn post(&self, url: &str, payload: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..WEBHOOK_ATTEMPTS {
            if attempt > 0 {
                crate::rt::sleep(Duration::from_millis(100) * (1 << attempt)).await;
            }
            let response = self
                .client
                .post(url)
                .header("Content-Type", "application/json")
                .body(payload.as_bytes().to_vec())
                .await;
            match response {
                Ok(r) if r.is_success() => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// One pass over the outbox. Flushes the store first so it sees every recorded event, and
    /// after, so the acknowledgements are durable before returning. Store calls run on the
    /// blocking pool: call this from a task.
    pub async fn deliver(&self, store: &Arc<dyn Store>) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        blocking(store, |s| s.flush()).await?;
        let mut webhook_up = match *self.webhook_backoff.lock() {
            (_, Some(at)) => Instant::now() >= at,
            _ => true,
        };
        let mut after = 0;
        loop {
            let page = blocking(store, move |s| s.pending_events(after, PAGE)).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let mut acks = Vec::with_capacity(page.len());
            for event in &page {
                let mut file_done = event.file_done;
                if !file_done {
                    let mut changes = self.changes.lock();
                    match changes.as_mut() {
                        Some(out) => {
                            writeln!(out, "{}", event.payload).map_err(|e| {
                                StoreError(format!("cannot write the changes file: {e}"))
                            })?;
                            file_done = true;
                        }
                        None => file_done = true,
                    }
                }
                let mut webhook_done = event.webhook_done || self.webhook.is_none();
                if !webhook_done && webhook_up {
                    let url = self.webhook.as_deref().unwrap_or_default();
                    match self.post(url, &event.payload).await {
                        Ok(()) => webhook_done = true,
                        Err(e) => {
                            log::warn!("webhook {url} refused event {}: {e}", event.id);
                            webhook_up = false;
                        }
                    }
                }
                let delivered = file_done && webhook_done;
                report.delivered += delivered as u64;
                report.waiting += (!delivered) as u64;
                if file_done != event.file_done || webhook_done != event.webhook_done {
                    acks.push(EventAck {
                        id: event.id,
                        file_done,
                        webhook_done,
                        delivered,
                    });
                }
            }
            // What was written must be on its way before it is acknowledged.
            if let Some(out) = self.changes.lock().as_mut() {
                out.flush()
                    .map_err(|e| StoreError(format!("cannot write the changes file: {e}")))?;
            }
            if !acks.is_empty() {
                store.ack_events(&acks)?;
            }
            if page.len() < PAGE {
                break;
            }
        }
        {
            let mut backoff = self.webhook_backoff.lock();
            if webhook_up {
                *backoff = (0, None);
            } else if self.webhook.is_some() && report.waiting > 0 {
                let failures = backoff.0 + 1;
                let wait =
                    (Duration::from_secs(1) * (1 << failures.min(6))).min(MAX_WEBHOOK_BACKOFF);
                *backoff = (failures, Some(Instant::now() + wait));
            }
        }
        blocking(store, |s| s.flush()).await?;
        Ok(report)
    }
}

/// Runs a store call on the blocking pool (SQLite must not stall an event loop).
pub async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    crate::rt::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| StoreError(format!("store call failed: {e}")))?
}
