//! The demo shop: many small web shops on one loopback listener, for the price monitor's
//! tests, demo and benchmark.
//!
//! Host `i` is `shop-{i}.localhost` (the HTTP client resolves every `*.localhost` name to
//! loopback, RFC 6761); one listener on `127.0.0.1:PORT` serves them all and routes on the
//! `Host` header (an unknown host gets 404). Each host has `products_per_host` product pages at
//! `/product/{j}`, a front page `/` and usually a `/robots.txt`. Everything is a pure function
//! of [`ShopOptions::seed`], the host, the product and the *epoch*; nothing is stored per host
//! or product, so 50,000 hosts cost the same memory as ten (pages are generated per request).
//!
//! * **Markups** ([`Markup`]): hosts ending in 7 and 3 use one of two plain templates that
//!   need the rules of [`Shop::rules_toml`]; every other product cycles, by its global index
//!   `host × products_per_host + j`, through JSON-LD (`Offer`, `@graph`, `AggregateOffer`,
//!   an array of offers), microdata (`content` attributes, element text) and meta tags
//!   (`product:*`, `og:*`).
//! * **Prices** in EUR (`1.299,00 €`), USD (`$1,299.00`), PLN (`12,50 zł`) and JPY (`¥1,200`).
//!   [`ShopTruth::price`] is the exact decimal (see [`ShopTruth`]).
//! * **Changes**: the epoch is `advance_epoch` calls plus the whole `change_every` periods since
//!   [`Shop::new`] (a zero period never advances by itself). At each epoch a share
//!   `change_share` of the products (each product an independent draw) changes its price, its
//!   availability, or both.
//! * **Validators**: a strong `ETag` (a hash of the page's bytes) and/or `Last-Modified` (the
//!   epoch of the product's last change, see below); some hosts send only one. Conditional GETs
//!   get 304 while the product is unchanged.
//! * **robots.txt**: see the table in the `robots` module docs: some hosts have none, some
//!   disallow product paths (with `Allow`, `*` and `$`), a few ask `Crawl-delay: 1`.
//!   [`Shop::is_disallowed`] answers for the `User-agent: *` group.
//!
//! `Last-Modified` of a version first served at epoch `e` is the shop's creation time minus one
//! day plus `e` seconds: strictly increasing with the epoch however fast `advance_epoch` is
//! called (a wall-clock time has only one-second resolution), and in the past for the first
//! 86,400 epochs.
//!
//! ```
//! use scraipe::demo::shop::{Shop, ShopOptions};
//! let shop = Shop::new(ShopOptions { hosts: 20, ..Default::default() });
//! let urls = shop.urls(8080);
//! assert_eq!(urls[0], "http://shop-0.localhost:8080/product/0");
//! let truth = shop.expected(&urls[0]).unwrap();
//! assert!(["EUR", "USD", "PLN", "JPY"].contains(&truth.currency.as_str()));
//! assert!(shop.rules_toml().contains("[[site]]"));
//! let before = shop.epoch();
//! shop.advance_epoch();
//! assert_eq!(shop.epoch(), before + 1);
//! ```

mod catalog;
mod money;
mod page;
mod robots;
mod server;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use catalog::Markup;
pub use server::{ShopServer, ShopServerOptions, ShopStats};

use catalog::{Product, State};
use robots::Robots;

/// What the shop looks like.
///
/// ```
/// let options = scraipe::demo::shop::ShopOptions::default();
/// assert_eq!((options.hosts, options.products_per_host, options.seed), (100, 1, 42));
/// ```
#[derive(Debug, Clone)]
pub struct ShopOptions {
    /// Number of hosts, `shop-0.localhost` .. `shop-{hosts-1}.localhost` (default 100).
    pub hosts: usize,
    /// Product pages per host (default 1).
    pub products_per_host: usize,
    /// Everything is generated from this (default 42).
    pub seed: u64,
    /// Share of the products that change price and/or availability at each epoch, 0..=1
    /// (default 0.1).
    pub change_share: f64,
    /// Length of an epoch; zero: epochs advance only through [`Shop::advance_epoch`]
    /// (default 60 s).
    pub change_every: Duration,
}

impl Default for ShopOptions {
    fn default() -> Self {
        ShopOptions {
            hosts: 100,
            products_per_host: 1,
            seed: 42,
            change_share: 0.1,
            change_every: Duration::from_secs(60),
        }
    }
}

/// What a correct extractor must find on a product page now.
///
/// `price` is the exact decimal string: ASCII digits, `.` as the decimal separator, no
/// grouping, no sign, and exactly the currency's ISO 4217 minor-unit digits — two for EUR, USD
/// and PLN (`"1299.00"`, `"12.50"`, `"5.00"`), none for JPY (`"1200"`). For an array of offers
/// it is the lowest; for an `AggregateOffer` its `lowPrice`. `currency` is the ISO code,
/// `availability` one of `in_stock`, `out_of_stock`, `preorder`, and `name` the product name
/// (the page's `<title>` and `<h1>`, and the `name` of its structured data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopTruth {
    /// The exact decimal, e.g. `"1299.00"` or `"1200"`.
    pub price: String,
    /// ISO 4217: `EUR`, `USD`, `PLN` or `JPY`.
    pub currency: String,
    /// `in_stock`, `out_of_stock` or `preorder`.
    pub availability: &'static str,
    /// The product's name.
    pub name: String,
}

/// The shop: cheap to clone (an `Arc` inside), deterministic from its [`ShopOptions`].
#[derive(Clone)]
pub struct Shop {
    inner: Arc<Inner>,
}

struct Inner {
    options: ShopOptions,
    started: Instant,
    /// `Last-Modified` of epoch 0, in seconds since the Unix epoch.
    anchor: u64,
    /// Epochs added by [`Shop::advance_epoch`].
    manual: AtomicU64,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("options", &self.inner.options)
            .field("epoch", &self.epoch())
            .finish()
    }
}

/// A product URL taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProductId {
    pub(crate) host: usize,
    pub(crate) j: usize,
    /// `host × products_per_host + j`.
    pub(crate) global: u64,
}

/// Where a product's page stands at one epoch: what the server needs to answer.
pub(crate) struct Version {
    pub(crate) product: Product,
    pub(crate) state: State,
}

impl Shop {
    /// A shop with these options; the epoch clock starts now.
    pub fn new(options: ShopOptions) -> Shop {
        let mut options = options;
        if !options.change_share.is_finite() {
            options.change_share = 0.0;
        }
        options.change_share = options.change_share.clamp(0.0, 1.0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Shop {
            inner: Arc::new(Inner {
                options,
                started: Instant::now(),
                anchor: now.saturating_sub(86_400),
                manual: AtomicU64::new(0),
            }),
        }
    }

    /// The options (with `change_share` clamped to 0..=1).
    pub fn options(&self) -> &ShopOptions {
        &self.inner.options
    }

    /// Every product URL, host-major: `http://shop-{i}.localhost:{port}/product/{j}`.
    pub fn urls(&self, port: u16) -> Vec<String> {
        let o = &self.inner.options;
        let mut urls = Vec::with_capacity(o.hosts.saturating_mul(o.products_per_host));
        for i in 0..o.hosts {
            for j in 0..o.products_per_host {
                urls.push(format!("http://shop-{i}.localhost:{port}/product/{j}"));
            }
        }
        urls
    }

    /// The rules (the `scraipe::offer::Rules` TOML format) for the pages that carry no
    /// structured data: one `[[site]]` per plain template, matching its hosts by name.
    pub fn rules_toml(&self) -> String {
        concat!(
            "# Rules for the scraipe demo shop: its plain templates carry no structured data.\n",
            "# Template A (hosts whose number ends in 7): amount and currency symbol apart.\n",
            "[[site]]\n",
            "match = \"^https?://shop-\\\\d*7\\\\.localhost(:\\\\d+)?/\"\n",
            "price = \".pp-amount\"\n",
            "currency = \".pp-cur\"\n",
            "availability = \".pp-stock\"\n",
            "name = \"h1\"\n",
            "\n",
            "# Template B (hosts whose number ends in 3): US dollars, the code never shown.\n",
            "[[site]]\n",
            "match = \"^https?://shop-\\\\d*3\\\\.localhost(:\\\\d+)?/\"\n",
            "price = \".buybox .now\"\n",
            "currency_code = \"USD\"\n",
            "availability = \".buybox .avail\"\n",
            "name = \"h1\"\n",
        )
        .to_string()
    }

    /// The current epoch: [`advance_epoch`](Shop::advance_epoch) calls plus the whole
    /// `change_every` periods since the shop was created.
    pub fn epoch(&self) -> u64 {
        let every = self.inner.options.change_every.as_nanos();
        // A zero period never advances by itself.
        let auto = self
            .inner
            .started
            .elapsed()
            .as_nanos()
            .checked_div(every)
            .map_or(0, |n| n as u64);
        self.inner.manual.load(Relaxed) + auto
    }

    /// Moves to the next epoch now (a share of the products changes).
    pub fn advance_epoch(&self) {
        self.inner.manual.fetch_add(1, Relaxed);
    }

    /// What a correct extractor must find at `url` now; `None` for anything but a product URL
    /// of this shop (any port, `http` or `https`; a query string is ignored).
    pub fn expected(&self, url: &str) -> Option<ShopTruth> {
        self.expected_at(url, self.epoch())
    }

    /// What the page at `url` showed (or will show) at `epoch`: for checking observations made
    /// before the epoch moved on.
    pub fn expected_at(&self, url: &str, epoch: u64) -> Option<ShopTruth> {
        let (host, path) = split_url(url)?;
        let host = self.host_index(host)?;
        let id = self.product(host, path.split(['?', '#']).next().unwrap_or(""))?;
        let v = self.version(id, epoch);
        Some(ShopTruth {
            price: v.state.price.decimal(),
            currency: v.state.price.currency.code().to_string(),
            availability: v.state.stock.as_str(),
            name: v.product.name,
        })
    }

    /// The markup of the product page at `url` (`None` if it is not one).
    pub fn markup(&self, url: &str) -> Option<Markup> {
        let (host, path) = split_url(url)?;
        let host = self.host_index(host)?;
        let id = self.product(host, path.split(['?', '#']).next().unwrap_or(""))?;
        Some(catalog::markup(id.host, id.global))
    }

    /// Whether the robots.txt of `url`'s host disallows it for a crawler that follows the
    /// `User-agent: *` group. False for hosts without robots.txt and for foreign URLs.
    pub fn is_disallowed(&self, url: &str) -> bool {
        let Some((host, path)) = split_url(url) else {
            return false;
        };
        let path = path.split('#').next().unwrap_or("");
        self.host_index(host)
            .and_then(|h| self.robots(h))
            .is_some_and(|r| r.disallows(path))
    }

    /// The robots.txt host `host` serves, `None` when it answers 404.
    pub fn robots_txt(&self, host: usize) -> Option<String> {
        if host >= self.inner.options.hosts {
            return None;
        }
        self.robots(host).map(|r| r.text(host))
    }

    pub(crate) fn robots(&self, host: usize) -> Option<Robots> {
        let o = &self.inner.options;
        Robots::of(o.seed, host, o.products_per_host)
    }

    /// `shop-{i}.localhost[.][:port]` (any case) → `i`, if this shop has that host.
    pub(crate) fn host_index(&self, authority: &str) -> Option<usize> {
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if !host.is_ascii() || host.len() < "shop-0.localhost".len() {
            return None;
        }
        let (name, domain) = host.split_at(host.len() - ".localhost".len());
        if !domain.eq_ignore_ascii_case(".localhost") {
            return None;
        }
        let digits = name
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("shop-"))
            .map(|_| &name[5..])?;
        let i = canonical(digits)?;
        (i < self.inner.options.hosts).then_some(i)
    }

    /// `/product/{j}` on host `host` → the product, if it exists.
    pub(crate) fn product(&self, host: usize, path: &str) -> Option<ProductId> {
        let j = canonical(path.strip_prefix("/product/")?)?;
        let per_host = self.inner.options.products_per_host;
        (j < per_host).then(|| ProductId {
            host,
            j,
            global: host as u64 * per_host as u64 + j as u64,
        })
    }

    pub(crate) fn version(&self, id: ProductId, epoch: u64) -> Version {
        let o = &self.inner.options;
        let product = Product::new(o.seed, id.host, id.global);
        let state = product.state(o.seed, id.global, o.change_share, epoch);
        Version { product, state }
    }

    /// `Last-Modified` of a version first served at `epoch`.
    pub(crate) fn last_modified(&self, epoch: u64) -> u64 {
        self.inner.anchor.saturating_add(epoch)
    }
}

/// `scheme://authority/path?query` → (authority, path with query); `http`/`https` only.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some((&rest[..i], &rest[i..])),
        Some(i) => Some((&rest[..i], "/")),
        None => Some((rest, "/")),
    }
}

/// Digits without a leading zero (except `0`), as a `usize`.
fn canonical(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths() {
        let shop = Shop::new(ShopOptions {
            hosts: 20,
            products_per_host: 3,
            ..Default::default()
        });
        assert_eq!(shop.host_index("shop-0.localhost"), Some(0));
        assert_eq!(shop.host_index("SHOP-19.LocalHost:8080"), Some(19));
        assert_eq!(shop.host_index("shop-19.localhost."), Some(19));
        for bad in [
            "shop-20.localhost",
            "shop-01.localhost",
            "shop-.localhost",
            "shop-1.example",
            "localhost",
            "shop-1.localhost:x",
            "",
        ] {
            assert_eq!(shop.host_index(bad), None, "{bad}");
        }
        assert!(shop
            .expected("http://shop-3.localhost:1/product/2")
            .is_some());
        assert!(shop
            .expected("http://shop-3.localhost:1/product/2?utm=x")
            .is_some());
        assert!(shop
            .expected("http://shop-3.localhost:1/product/3")
            .is_none());
        assert!(shop.expected("http://shop-3.localhost:1/").is_none());
        assert!(shop.expected("ftp://shop-3.localhost/product/0").is_none());
        assert_eq!(shop.urls(1).len(), 60);
    }
}
