//! The endpoints: turning a request path into what to answer.
//!
//! | path            | answer                                                            |
//! |-----------------|-------------------------------------------------------------------|
//! | `/`             | index: links to every page                                        |
//! | `/page/{i}`     | page `i`, as the [site rules](super::site) say; 404 past the end  |
//! | `/bytes/{n}`    | `n` bytes of ASCII text as `text/html`, `n` ≤ [`MAX_BYTES`]       |
//! | `/delay/{ms}`   | a small page after `ms` milliseconds, `ms` ≤ [`MAX_DELAY_MS`]      |
//! | `/healthz`      | `ok` (`text/plain`)                                               |
//! | anything else   | 404                                                               |
//!
//! Numbers are canonical decimals (no sign, no leading zero): `/page/007` is a 404, so every
//! page has exactly one URL. A number out of range for `/bytes` or `/delay` is a 400. The query
//! string is ignored; absolute-form targets (`GET http://host/page/1`) are accepted.

use std::sync::OnceLock;
use std::time::Duration;

use super::http::Method;
use super::service::{Body, Reply, Service, PLAIN};
use super::site::{DemoSite, PageKind};
use super::text::{Rng, WORDS};

/// The largest body `/bytes/{n}` serves: 16 MiB.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// The longest delay `/delay/{ms}` accepts: one minute.
pub const MAX_DELAY_MS: u64 = 60_000;

/// A parsed request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Index,
    Healthz,
    Page(usize),
    Bytes(usize),
    Delay(u64),
    /// A known endpoint with an unusable number.
    BadNumber,
    NotFound,
}

impl Route {
    pub(crate) fn parse(target: &str) -> Route {
        let path = origin_form(target);
        let path = path.split(['?', '#']).next().unwrap_or("");
        if path == "/" || path == "/index.html" {
            return Route::Index;
        }
        if path == "/healthz" {
            return Route::Healthz;
        }
        if let Some(n) = path.strip_prefix("/page/") {
            return canonical_number(n)
                .and_then(|n| usize::try_from(n).ok())
                .map_or(Route::NotFound, Route::Page);
        }
        if let Some(n) = path.strip_prefix("/bytes/") {
            return match canonical_number(n) {
                Some(n) if n <= MAX_BYTES as u64 => Route::Bytes(n as usize),
                _ => Route::BadNumber,
            };
        }
        if let Some(n) = path.strip_prefix("/delay/") {
            return match canonical_number(n) {
                Some(n) if n <= MAX_DELAY_MS => Route::Delay(n),
                _ => Route::BadNumber,
            };
        }
        Route::NotFound
    }
}

/// `http://host:port/path` → `/path`; anything else unchanged.
fn origin_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    target
}

/// Digits only, no leading zero (except `0` itself), fits in a u64.
fn canonical_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// The demo site as a [`Service`]: the request is its parsed path.
impl Service for DemoSite {
    type Request = Route;

    fn request(&self, _method: Method, target: &str, _headers: &[httparse::Header<'_>]) -> Route {
        Route::parse(target)
    }

    fn reply(&self, method: Method, route: &Route) -> Reply {
        reply(self, method, *route)
    }
}

/// Decides the answer to a parsed request.
pub(crate) fn reply(site: &DemoSite, method: Method, route: Route) -> Reply {
    if method == Method::Other {
        return Reply::error(405);
    }
    match route {
        Route::Index => Reply::html(200, Body::Shared(site.index_html())),
        Route::Healthz => Reply::with_type(200, PLAIN, Body::Static(b"ok\n")),
        Route::Bytes(n) => Reply::html(200, Body::Filler(n)),
        Route::Delay(ms) => Reply {
            delay: Duration::from_millis(ms),
            ..Reply::html(
                200,
                Body::Static(
                    small_page!("Delayed", "This answer was held back on purpose.").as_bytes(),
                ),
            )
        },
        Route::BadNumber => Reply::error(400),
        Route::NotFound => Reply::error(404),
        Route::Page(i) => {
            let (Some(kind), Some(body)) = (site.kind(i), site.body(i)) else {
                return Reply::error(404);
            };
            let mut reply = Reply::html(kind.status(), Body::Shared(body));
            match kind {
                PageKind::Slow { delay } => reply.delay = delay,
                PageKind::Redirect {
                    target, absolute, ..
                } => reply.location = Some((absolute, target)),
                PageKind::Normal | PageKind::NotFound | PageKind::ServerError => {}
            }
            reply
        }
    }
}

/// Length of the [`filler`] block.
pub(crate) const FILLER_LEN: usize = 64 * 1024;

/// 64 KiB of ASCII words in lines of about 70 characters: the body of `/bytes/{n}` (repeated
/// for `n` above 64 KiB). ASCII, so a body cut anywhere is still valid UTF-8.
pub(crate) fn filler() -> &'static [u8] {
    static FILLER: OnceLock<Box<[u8]>> = OnceLock::new();
    FILLER.get_or_init(|| {
        let mut rng = Rng::new(0x0062_7974_6573, 0);
        let mut out = Vec::with_capacity(FILLER_LEN + 80);
        let mut line = 0;
        while out.len() < FILLER_LEN {
            let word = rng.pick(WORDS).as_bytes();
            if line + word.len() > 70 {
                out.push(b'\n');
                line = 0;
            } else if line > 0 {
                out.push(b' ');
                line += 1;
            }
            out.extend_from_slice(word);
            line += word.len();
        }
        out.truncate(FILLER_LEN);
        out.into_boxed_slice()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/"), Route::Index);
        assert_eq!(Route::parse("/?x=1"), Route::Index);
        assert_eq!(Route::parse("/healthz"), Route::Healthz);
        assert_eq!(Route::parse("/page/0"), Route::Page(0));
        assert_eq!(Route::parse("/page/12?utm=x"), Route::Page(12));
        assert_eq!(Route::parse("http://127.0.0.1:80/page/3"), Route::Page(3));
        assert_eq!(Route::parse("http://127.0.0.1:80"), Route::Index);
        assert_eq!(Route::parse("/page/007"), Route::NotFound);
        assert_eq!(Route::parse("/page/+7"), Route::NotFound);
        assert_eq!(Route::parse("/page/"), Route::NotFound);
        assert_eq!(
            Route::parse("/page/99999999999999999999999"),
            Route::NotFound
        );
        assert_eq!(Route::parse("/bytes/1024"), Route::Bytes(1024));
        assert_eq!(Route::parse("/bytes/16777216"), Route::Bytes(MAX_BYTES));
        assert_eq!(Route::parse("/bytes/16777217"), Route::BadNumber);
        assert_eq!(Route::parse("/bytes/x"), Route::BadNumber);
        assert_eq!(Route::parse("/delay/4000"), Route::Delay(4000));
        assert_eq!(Route::parse("/delay/60001"), Route::BadNumber);
        assert_eq!(Route::parse("/nope"), Route::NotFound);
        assert_eq!(Route::parse("*"), Route::NotFound);
    }

    #[test]
    fn filler_is_ascii_and_full() {
        let f = filler();
        assert_eq!(f.len(), FILLER_LEN);
        assert!(f.is_ascii());
    }

    #[test]
    fn other_methods_get_405() {
        let site = DemoSite::new(3, 0);
        let r = reply(&site, Method::Other, Route::Index);
        assert_eq!(r.status, 405);
        assert!(r.allow);
        assert_eq!(reply(&site, Method::Get, Route::Page(3)).status, 404);
        assert_eq!(reply(&site, Method::Head, Route::Page(2)).status, 200);
    }
}
