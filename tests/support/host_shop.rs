//! Many shops on one loopback listener, told apart by the `Host` header (`shop-{i}.localhost`,
//! which the client resolves to loopback), for the multi-worker tests: it counts requests per
//! URL and the concurrent in-flight requests per host (the highest number seen is what the
//! per-host limit must bound). Product pages carry meta-tag prices; robots.txt is a 404
//! (everything allowed). Each connection is closed after its answer, so the server's threads
//! stay bounded by the requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{respond, After, Seen, TestServer, Transport};

#[derive(Default)]
pub struct HostShopState {
    /// Requests per `host/path`.
    pub requests: Mutex<HashMap<String, u64>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// The highest number of concurrent requests seen on any one host.
    pub max_in_flight_per_host: AtomicUsize,
    /// Product requests answered.
    pub product_requests: AtomicUsize,
    /// Delay before each product answer, ms.
    pub delay_ms: AtomicUsize,
}

pub struct HostShop {
    pub server: TestServer,
    pub state: Arc<HostShopState>,
    /// Products per host, by host index.
    pub products: Vec<usize>,
}

impl HostShop {
    /// Host `i` has `products[i]` products.
    pub fn start(products: Vec<usize>, delay: Duration) -> HostShop {
        let state = Arc::new(HostShopState::default());
        state
            .delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
        let st = state.clone();
        let server = TestServer::start(move |req: &Seen, t: &mut dyn Transport| {
            handle(&st, req, t);
            After::Close
        });
        HostShop {
            server,
            state,
            products,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    /// Every product URL, host-major.
    pub fn urls(&self) -> Vec<String> {
        let port = self.port();
        self.products
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                (0..*n).map(move |j| format!("http://shop-{i}.localhost:{port}/product/{j}"))
            })
            .collect()
    }

    /// Requests for a product URL.
    pub fn hits(&self, url: &str) -> u64 {
        let key = url
            .trim_start_matches("http://")
            .replacen(&format!(":{}", self.port()), "", 1);
        self.state
            .requests
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    pub fn max_in_flight_per_host(&self) -> usize {
        self.state.max_in_flight_per_host.load(Ordering::SeqCst)
    }

    pub fn product_requests(&self) -> usize {
        self.state.product_requests.load(Ordering::SeqCst)
    }
}

fn handle(state: &HostShopState, req: &Seen, t: &mut dyn Transport) {
    let host = req
        .header("host")
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    {
        let mut f = state.in_flight.lock().unwrap();
        let n = f.entry(host.clone()).or_insert(0);
        *n += 1;
        state.max_in_flight_per_host.fetch_max(*n, Ordering::SeqCst);
    }
    *state
        .requests
        .lock()
        .unwrap()
        .entry(format!("{host}{}", req.path))
        .or_insert(0) += 1;
    // Counted out just before the answer is written: the client can only start its next
    // request on this host after reading it.
    let done = || *state.in_flight.lock().unwrap().get_mut(&host).unwrap() -= 1;
    let close = [("Connection", "close")];
    if req.path == "/robots.txt" {
        done();
        respond(t, "404 Not Found", &close, b"no robots.txt");
    } else if let Some(j) = req.path.strip_prefix("/product/") {
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay as u64));
        }
        state.product_requests.fetch_add(1, Ordering::SeqCst);
        let i: usize = host
            .trim_start_matches("shop-")
            .trim_end_matches(".localhost")
            .parse()
            .unwrap_or(0);
        let j: usize = j.parse().unwrap_or(0);
        let price = format!("{}.{:02}", 10 + (i * 7 + j) % 90, (i + j) % 100);
        let body = format!(
            "<html><head><meta property=\"og:title\" content=\"Product {i}/{j}\">\
             <meta property=\"product:price:amount\" content=\"{price}\">\
             <meta property=\"product:price:currency\" content=\"EUR\">\
             <meta property=\"product:availability\" content=\"in_stock\">\
             </head><body><h1>Product {i}/{j}</h1></body></html>"
        );
        done();
        respond(
            t,
            "200 OK",
            &[
                ("Connection", "close"),
                ("Content-Type", "text/html; charset=utf-8"),
            ],
            body.as_bytes(),
        );
    } else {
        done();
        respond(t, "404 Not Found", &close, b"no such page");
    }
}
