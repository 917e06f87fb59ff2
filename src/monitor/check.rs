//! One check of one link: robots.txt, politeness, a conditional GET, and what it means.
//!
//! * robots.txt forbids the path → `disallowed`, no request.
//! * 304 → `not_modified`: no body downloaded, no extraction, no event.
//! * 200 whose body (hashed with SHA-256 together with the rules) is the one last seen → `ok`
//!   without extraction (the store copies the last offer; no event).
//! * 200 with a new body → extraction on the blocking pool → `ok` with the offer (the store
//!   decides whether it is a change), or `failed` when the page has no offer.
//! * A page whose first matching rule says `extract = "llm"` and that has no structured
//!   markup: its visible text goes to the LLM analyzer under the offer schema; a validated
//!   answer is the offer (source `llm`), anything else is `failed` with the analyzer's error.
//!   Answers are cached by the analyzer (in the database with SQLite), so unchanged text
//!   costs no new request.
//! * Transient failures (connection errors, 429/502/503/504) are retried by the client's
//!   `RetryPolicy` (`--retries`), waiting out a short `Retry-After`; a longer one comes back
//!   here: the host is held back that long and the link waits too. Other failures → `failed`,
//!   with backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use super::clock::{now_ms, parse_http_date};
use super::robots_cache::RobotsCache;
use super::schedule::backoff;
use super::shared_gate::SharedGate;
use super::store::{CheckRecord, DueLink, Outcome, Validators};
use crate::http::{Client, Response};
use crate::llm::LlmAnalyzer;
use crate::offer::{extract_offer, offer_from_llm, Rules};
use crate::politeness::HostLimiter;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// A check whose host is held back by a `Retry-After` longer than this from when its turn
/// comes is not kept waiting: it is recorded as held back, due again when the host's wait ends.
pub const MAX_DEFERRED_WAIT: Duration = Duration::from_secs(5);

/// Everything a check needs; shared by all checks of a run.
pub struct Checker {
    /// The HTTP client.
    pub client: Client,
    /// Extraction rules.
    pub rules: Arc<Rules>,
    /// A fingerprint of the rules, mixed into body hashes (new rules → extract again).
    pub rules_fingerprint: Vec<u8>,
    /// `None` with `--ignore-robots`.
    pub robots: Option<Arc<RobotsCache>>,
    /// Per-host politeness.
    pub gate: HostLimiter,
    /// Per-host politeness across workers sharing the store (issue 13); `None` alone.
    pub shared_gate: Option<SharedGate>,
    /// The window, for backoff.
    pub every: Duration,
    /// Asked for the offer of pages under an `extract = "llm"` rule.
    pub llm: Option<Arc<LlmAnalyzer>>,
}

/// `host:port` of a URL: the politeness key (one site = one host and port).
pub fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Hex SHA-256 of the rules fingerprint and the body.
pub fn body_hash(rules_fingerprint: &[u8], body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(rules_fingerprint.len() as u64).to_le_bytes());
    ctx.update(rules_fingerprint);
    ctx.update(body);
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Retry-After` as a duration from now (seconds or an HTTP date), capped at a day.
pub fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.header("retry-after")?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => Duration::from_millis((parse_http_date(v)? - now_ms()).max(0) as u64),
    };
    Some(d.min(MAX_RETRY_AFTER))
}

impl Checker {
    fn record(&self, link: &DueLink, outcome: Outcome) -> CheckRecord {
        CheckRecord {
            link_id: link.id,
            observed_ms: now_ms(),
            outcome,
            http_status: None,
            offer: None,
            validators: None,
            error: None,
            not_before_ms: None,
        }
    }

    fn failed(&self, link: &DueLink, status: Option<u16>, error: String) -> CheckRecord {
        let mut r = self.record(link, Outcome::Failed);
        r.http_status = status;
        r.error = Some(error);
        r.not_before_ms =
            Some(r.observed_ms + backoff(self.every, link.failures + 1).as_millis() as i64);
        r
    }

    /// Not checked: `host` answered another link with a long `Retry-After`. A failed check
    /// (no price was seen), due again when the host's wait ends, without a request.
    fn held_back(&self, link: &DueLink, host: &str, until: Instant) -> CheckRecord {
        let mut r = self.record(link, Outcome::Failed);
        let wait = until.saturating_duration_since(Instant::now());
        r.error = Some(format!(
            "held back: {host} asked for a pause of {} s more (Retry-After on another page)",
            wait.as_secs()
        ));
        r.not_before_ms = Some(r.observed_ms + wait.as_millis() as i64);
        r
    }

    /// Checks one link. Never panics on bad input; every path yields a record.
    pub async fn check(&self, link: &DueLink) -> CheckRecord {
        let url = match Url::parse(link.url.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            Ok(_) => return self.failed(link, None, "not an http(s) URL with a host".into()),
            Err(e) => return self.failed(link, None, format!("invalid URL: {e}")),
        };
        let key = host_key(&url);
        let mut crawl_delay = Duration::ZERO;
        if let Some(robots) = &self.robots {
            let origin = format!("{}://{}", url.scheme(), key);
            let answer = robots.get(&origin, &key).await;
            if let Some(why) = &answer.unavailable {
                return self.failed(link, None, why.clone());
            }
            let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
            if !answer.robots.allows(path) {
                let mut r = self.record(link, Outcome::Disallowed);
                r.error = Some("disallowed by robots.txt".into());
                return r;
            }
            crawl_delay = answer.robots.crawl_delay().unwrap_or_default();
        }
        let response = {
            let _permit = match self
                .gate
                .acquire_unless_deferred(&key, crawl_delay, MAX_DEFERRED_WAIT)
                .await
            {
                Ok(permit) => permit,
                Err(until) => return self.held_back(link, &key, until),
            };
            let _shared = match &self.shared_gate {
                Some(g) => Some(g.acquire(&key, crawl_delay).await),
                None => None,
            };
            let mut request = self.client.get(url.as_str());
            if let Some(etag) = &link.etag {
                request = request.if_none_match(etag);
            }
            if let Some(lm) = &link.last_modified {
                request = request.if_modified_since(lm);
            }
            request.await
        };
        let resp = match response {
            Ok(resp) => resp,
            Err(e) => return self.failed(link, None, e.to_string()),
        };
        let status = resp.status();
        if matches!(status, 429 | 503) {
            if let Some(wait) = retry_after(&resp) {
                self.gate.defer(&key, Instant::now() + wait);
                let mut r = self.failed(
                    link,
                    Some(status),
                    format!("HTTP {status}, retry after {} s", wait.as_secs()),
                );
                let until = r.observed_ms + wait.as_millis() as i64;
                r.not_before_ms = r.not_before_ms.max(Some(until));
                return r;
            }
        }
        self.response(link, &url, resp).await
    }

    async fn response(&self, link: &DueLink, url: &Url, resp: Response) -> CheckRecord {
        let status = resp.status();
        if resp.is_not_modified() {
            let mut r = self.record(link, Outcome::NotModified);
            r.http_status = Some(304);
            return r;
        }
        if !resp.is_success() {
            return self.failed(link, Some(status), format!("HTTP {status}"));
        }
        let validators = Validators {
            etag: resp.etag().map(str::to_string),
            last_modified: resp.last_modified().map(str::to_string),
            body_hash: Some(body_hash(&self.rules_fingerprint, resp.body())),
        };
        if validators.body_hash.is_some() && validators.body_hash == link.body_hash {
            let mut r = self.record(link, Outcome::Ok);
            r.http_status = Some(status);
            r.validators = Some(validators);
            return r;
        }
        let html = resp.text();
        let rules = self.rules.clone();
        let page = url.to_string();
        let wants_llm = self.llm.is_some() && rules.llm_wanted(&page);
        // Markup first (it costs nothing); the page's text only when the model will need it.
        let extracted = crate::rt::spawn_blocking(move || {
            let offer = extract_offer(&html, &page, &rules);
            let text = (offer.is_none() && wants_llm).then(|| crate::defaults::html_to_text(&html));
            (offer, text)
        })
        .await;
        let offer = match extracted {
            Ok((Some(offer), _)) => offer,
            Ok((None, Some(text))) => match self.llm_offer(url, &text).await {
                Ok(offer) => offer,
                Err(e) => return self.failed(link, Some(status), e),
            },
            Ok((None, None)) => {
                return self.failed(
                    link,
                    Some(status),
                    "no offer on the page (no matching rule, JSON-LD, microdata or meta price)"
                        .into(),
                )
            }
            Err(e) => return self.failed(link, Some(status), format!("extraction failed: {e}")),
        };
        let mut r = self.record(link, Outcome::Ok);
        r.http_status = Some(status);
        r.offer = Some(offer);
        r.validators = Some(validators);
        r
    }

    /// Asks the model for the offer in `text`. The analyzer validates the answer against the
    /// offer schema; only a success is used.
    async fn llm_offer(&self, url: &Url, text: &str) -> Result<crate::offer::Offer, String> {
        let Some(llm) = &self.llm else {
            return Err("no LLM analyzer for an extract = \"llm\" rule".into());
        };
        if text.trim().is_empty() {
            return Err("llm extraction: the page has no visible text".into());
        }
        let result = llm.analyze_content(text).await;
        match result.output() {
            Some(answer) if result.success() => {
                offer_from_llm(answer, self.rules.currency_code(url.as_str()))
                    .map_err(|e| format!("llm extraction: {e}"))
            }
            _ => Err(format!(
                "llm extraction: {}",
                result.error().unwrap_or("the analysis failed")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_hash_depends_on_rules_and_body() {
        let a = body_hash(b"r1", b"<html>");
        assert_eq!(a.len(), 64);
        assert_eq!(a, body_hash(b"r1", b"<html>"));
        assert_ne!(a, body_hash(b"r2", b"<html>"));
        assert_ne!(a, body_hash(b"r1", b"<html> "));
    }

    #[test]
    fn host_keys_include_the_port() {
        let u = Url::parse("http://Shop-1.localhost:8080/p").unwrap();
        assert_eq!(host_key(&u), "shop-1.localhost:8080");
        assert_eq!(
            host_key(&Url::parse("https://a.example/").unwrap()),
            "a.example:443"
        );
    }
}
