//! The embedded demo site: a deterministic generated website and the HTTP/1.1 server that
//! serves it on our own runtime, for `scraipe demo`, `scraipe serve-demo`, tests and benchmarks.
//! Nothing here touches the network beyond the address it is given (loopback in practice).
//!
//! * [`DemoSite`] — `pages` pages of English-like HTML from a seed, with slow, failing and
//!   redirecting pages at fixed indices ([the rules](site)), and [`DemoSite::expected`] to
//!   check a scraper's results against.
//! * [`DemoServer`] — the server: keep-alive, pipelining, HEAD, idle timeouts, bounded heads,
//!   one task per connection.
//! * [`serve_forever`] / [`serve_until`] — the `serve-demo` command's loop.
//! * [`shop`] — the demo shop: thousands of small web shops (`shop-{i}.localhost`) on one
//!   listener, with prices that change, validators, 304s and robots.txt, for the price monitor;
//!   [`serve_shop_forever`] is `serve-demo --shop`.
//!
//! Endpoints (see [`routes`] for the details): `/`, `/page/{i}`, `/bytes/{n}` (n ≤
//! [`MAX_BYTES`]), `/delay/{ms}` (ms ≤ [`MAX_DELAY_MS`]) and `/healthz`.
//!
//! ```
//! use scraipe::demo::{DemoServer, DemoSite};
//! let rt = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
//! let site = DemoSite::new(100, 42);
//! let server = DemoServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), site.clone())?;
//! let urls = site.urls(server.base_url());
//! assert_eq!(urls.len(), 100);
//! assert_eq!(site.expected(7).unwrap().status, 404);
//! # Ok::<(), std::io::Error>(())
//! ```

/// A tiny complete HTML page as a `&'static str`, for fixed error bodies. Must match
/// `site::small_page`, which builds the same layout at run time.
macro_rules! small_page {
    ($title:literal, $paragraph:literal) => {
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>",
            $title,
            "</title></head>\n<body><h1>",
            $title,
            "</h1><p>",
            $paragraph,
            "</p><p><a href=\"/\">Index</a></p></body></html>\n"
        )
    };
}

mod deadline;
mod http;
pub mod routes;
mod serve;
mod server;
mod service;
pub mod shop;
pub mod site;
mod text;

pub use routes::{MAX_BYTES, MAX_DELAY_MS};
pub use serve::{serve_forever, serve_shop_forever, serve_until, ServeOptions, ServeReport};
pub use server::{DemoServer, ServerOptions};
pub use site::{
    DemoSite, Expected, PageKind, CACHE_BUDGET, MAX_PAGES, SCRIPT_MARKER, STYLE_MARKER,
};
