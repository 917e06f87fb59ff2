//! A tiny product site for the monitor tests: one per port (distinct ports are distinct hosts),
//! product pages in meta-tag or JSON-LD markup, ETag and/or Last-Modified with 304 answers,
//! a configurable robots.txt, optional slowness, and a log of every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{respond, After, Seen, TestServer, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    Meta,
    JsonLd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validators {
    None,
    ETag,
    LastModified,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub name: String,
    pub price: String,
    pub currency: String,
    pub availability: String,
    pub markup: Markup,
    pub validators: Validators,
    /// Bumped on every change (drives the ETag / Last-Modified).
    pub version: u64,
    /// Served without any price (the extractor finds nothing).
    pub no_offer: bool,
}

impl Product {
    pub fn new(name: &str, price: &str, markup: Markup, validators: Validators) -> Product {
        Product {
            name: name.into(),
            price: price.into(),
            currency: "EUR".into(),
            availability: "in_stock".into(),
            markup,
            validators,
            version: 1,
            no_offer: false,
        }
    }

    fn html(&self) -> String {
        let schema = match self.availability.as_str() {
            "in_stock" => "https://schema.org/InStock",
            "out_of_stock" => "https://schema.org/OutOfStock",
            _ => "https://schema.org/PreOrder",
        };
        if self.no_offer {
            return format!(
                "<html><head><title>{}</title></head><body>gone</body></html>",
                self.name
            );
        }
        match self.markup {
            Markup::Meta => format!(
                "<html><head><meta property=\"og:title\" content=\"{}\">\
                 <meta property=\"product:price:amount\" content=\"{}\">\
                 <meta property=\"product:price:currency\" content=\"{}\">\
                 <meta property=\"product:availability\" content=\"{}\">\
                 </head><body><h1>{}</h1></body></html>",
                self.name, self.price, self.currency, self.availability, self.name
            ),
            Markup::JsonLd => format!(
                "<html><head><script type=\"application/ld+json\">{{\"@context\":\"https://schema.org\",\
                 \"@type\":\"Product\",\"name\":\"{}\",\"offers\":{{\"@type\":\"Offer\",\"price\":\"{}\",\
                 \"priceCurrency\":\"{}\",\"availability\":\"{}\"}}}}</script></head>\
                 <body><h1>{}</h1></body></html>",
                self.name, self.price, self.currency, schema, self.name
            ),
        }
    }

    fn etag(&self) -> String {
        format!("\"v{}\"", self.version)
    }

    fn last_modified(&self) -> String {
        format!("Mon, 0{} Jan 2024 00:00:00 GMT", self.version.min(9))
    }
}

#[derive(Default)]
pub struct ShopState {
    pub products: HashMap<String, Product>,
    /// (status, body) of /robots.txt; `None` → 404.
    pub robots: Option<(u16, String)>,
    /// Each request: (when, method, path, status answered).
    pub log: Vec<(Instant, String, String, u16)>,
    /// Delay before each product answer.
    pub delay: Duration,
    /// Answer product pages with this status and Retry-After (seconds) instead.
    pub throttle: Option<(u16, u64)>,
    /// Answer this many product requests with a bare 503 first.
    pub fail_next: usize,
}

pub struct MiniShop {
    pub server: TestServer,
    pub state: Arc<Mutex<ShopState>>,
}

impl MiniShop {
    pub fn start() -> MiniShop {
        let state = Arc::new(Mutex::new(ShopState::default()));
        let st = state.clone();
        let server = TestServer::start(move |req: &Seen, t: &mut dyn Transport| {
            handle(&st, req, t);
            After::KeepAlive
        });
        MiniShop { server, state }
    }

    pub fn add(&self, path: &str, product: Product) -> String {
        self.state
            .lock()
            .unwrap()
            .products
            .insert(path.to_string(), product);
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.server.addr.port(), path)
    }

    pub fn set_robots(&self, status: u16, body: &str) {
        self.state.lock().unwrap().robots = Some((status, body.to_string()));
    }

    /// Changes a product (and its version, so validators change).
    pub fn update(&self, path: &str, f: impl FnOnce(&mut Product)) {
        let mut s = self.state.lock().unwrap();
        let p = s.products.get_mut(path).expect("known product");
        f(p);
        p.version += 1;
    }

    pub fn log(&self) -> Vec<(Instant, String, String, u16)> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests for `path` (any method), and how many were answered 200.
    pub fn hits(&self, path: &str) -> (usize, usize) {
        let log = self.log();
        let all = log.iter().filter(|l| l.2 == path).count();
        let ok = log.iter().filter(|l| l.2 == path && l.3 == 200).count();
        (all, ok)
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

fn handle(state: &Mutex<ShopState>, req: &Seen, t: &mut dyn Transport) {
    let (status, headers, body, delay) = {
        let mut s = state.lock().unwrap();
        let fail = s.fail_next > 0 && req.path != "/robots.txt";
        if fail {
            s.fail_next -= 1;
        }
        if req.path == "/robots.txt" {
            match &s.robots {
                Some((status, body)) => (*status, vec![], body.clone(), Duration::ZERO),
                None => (404, vec![], "not found".to_string(), Duration::ZERO),
            }
        } else if fail {
            (503, vec![], "try again".to_string(), Duration::ZERO)
        } else if let Some((status, secs)) = s.throttle {
            (
                status,
                vec![("Retry-After".to_string(), secs.to_string())],
                "slow down".to_string(),
                Duration::ZERO,
            )
        } else {
            match s.products.get(&req.path) {
                None => (404, vec![], "no such product".to_string(), Duration::ZERO),
                Some(p) => {
                    let mut headers = Vec::new();
                    let mut not_modified = false;
                    if p.validators == Validators::ETag {
                        headers.push(("ETag".to_string(), p.etag()));
                        not_modified = req.header("if-none-match") == Some(&p.etag());
                    }
                    if p.validators == Validators::LastModified {
                        headers.push(("Last-Modified".to_string(), p.last_modified()));
                        not_modified = req.header("if-modified-since") == Some(&p.last_modified());
                    }
                    headers.push((
                        "Content-Type".to_string(),
                        "text/html; charset=utf-8".into(),
                    ));
                    if not_modified {
                        (304, headers, String::new(), s.delay)
                    } else {
                        (200, headers, p.html(), s.delay)
                    }
                }
            }
        }
    };
    state
        .lock()
        .unwrap()
        .log
        .push((Instant::now(), req.method.clone(), req.path.clone(), status));
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reason = match status {
        200 => "200 OK",
        304 => "304 Not Modified",
        404 => "404 Not Found",
        429 => "429 Too Many Requests",
        503 => "503 Service Unavailable",
        500 => "500 Internal Server Error",
        _ => "418 I'm a teapot",
    };
    if status == 304 {
        // No body, and no Content-Length claiming one.
        let mut out = format!("HTTP/1.1 {reason}\r\n");
        for (n, v) in &headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        super::raw(t, out.as_bytes());
    } else {
        respond(t, reason, &headers, body.as_bytes());
    }
}
