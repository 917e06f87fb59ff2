//! The demo shop: every markup carries the truth, validators and 304s, changes per epoch,
//! robots.txt, and the counters a crawler is checked against. Pages are read with the crate's
//! HTTP client (which resolves `*.localhost` to loopback) and checked with small independent
//! parsers written here, not with the extractor.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use scraipe::demo::shop::{Markup, Shop, ShopOptions, ShopServer, ShopServerOptions, ShopTruth};
use scraipe::http::{Client, Response};
use scraipe::rt::{Builder, JoinSet, Runtime};
use serde_json::Value;

fn runtime() -> Runtime {
    Builder::new().worker_threads(2).build().unwrap()
}

fn shop(hosts: usize, products_per_host: usize, change_share: f64) -> Shop {
    Shop::new(ShopOptions {
        hosts,
        products_per_host,
        seed: 7,
        change_share,
        change_every: Duration::ZERO,
    })
}

fn serve(rt: &Runtime, shop: &Shop) -> ShopServer {
    ShopServer::start(rt.handle(), "127.0.0.1:0".parse().unwrap(), shop.clone()).unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .max_connections(64)
        .max_idle_per_host(2)
        .build()
        .unwrap()
}

/// GETs every URL (with optional request headers), at most `concurrency` at once, in order.
fn fetch_all(
    rt: &Runtime,
    client: &Client,
    requests: Vec<(String, Vec<(String, String)>)>,
    concurrency: usize,
) -> Vec<Response> {
    rt.block_on(async {
        let mut out: Vec<Option<Response>> = (0..requests.len()).map(|_| None).collect();
        let mut set = JoinSet::new();
        let mut next = 0;
        let mut running = 0;
        loop {
            while running < concurrency && next < requests.len() {
                let (url, headers) = requests[next].clone();
                let client = client.clone();
                let index = next;
                set.spawn(async move {
                    let mut request = client.get(&url);
                    for (name, value) in headers {
                        request = request.header(name, value);
                    }
                    (index, request.send().await)
                });
                next += 1;
                running += 1;
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            running -= 1;
            let (index, response) = done.unwrap();
            out[index] = Some(response.unwrap_or_else(|e| panic!("{}: {e}", requests[index].0)));
        }
        out.into_iter().map(Option::unwrap).collect()
    })
}

fn plain(urls: &[String]) -> Vec<(String, Vec<(String, String)>)> {
    urls.iter().map(|u| (u.clone(), Vec::new())).collect()
}

// ---------- an independent reading of the pages ----------

/// Locale price text → exact decimal: the last `.` or `,` followed by exactly two digits at
/// the end of the number is the decimal point; every other separator groups.
fn parse_price_text(text: &str) -> String {
    let number: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .collect();
    let bytes = number.as_bytes();
    let n = bytes.len();
    if n > 3 && (bytes[n - 3] == b'.' || bytes[n - 3] == b',') {
        let whole: String = number[..n - 3]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        format!("{whole}.{}", &number[n - 2..])
    } else {
        number.chars().filter(char::is_ascii_digit).collect()
    }
}

fn symbol_code(text: &str) -> &'static str {
    match text.trim() {
        t if t.contains('€') => "EUR",
        t if t.contains('$') => "USD",
        t if t.contains("zł") => "PLN",
        t if t.contains('¥') => "JPY",
        other => panic!("no currency symbol in {other:?}"),
    }
}

fn words_availability(text: &str) -> &'static str {
    match text.trim().to_ascii_lowercase().as_str() {
        "in stock" => "in_stock",
        "out of stock" => "out_of_stock",
        "pre-order" | "preorder" => "preorder",
        other => panic!("unknown availability {other:?}"),
    }
}

fn schema_availability(url: &str) -> &'static str {
    match url.rsplit('/').next().unwrap() {
        "InStock" => "in_stock",
        "OutOfStock" => "out_of_stock",
        "PreOrder" => "preorder",
        other => panic!("unknown availability {other:?}"),
    }
}

/// The text between `start` (first occurrence) and the next `end`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(&html[from..from + len])
}

fn attr_content<'a>(html: &'a str, marker: &str) -> &'a str {
    between(html, &format!("{marker} content=\""), "\"")
        .unwrap_or_else(|| panic!("no {marker} in the page"))
}

/// Minor units of an exact decimal, to compare offers.
fn minor(decimal: &str) -> u64 {
    decimal.replace('.', "").parse().unwrap()
}

fn json_ld_truth(html: &str) -> (String, String, &'static str, String) {
    let mut rest = html;
    let mut product = None;
    while let Some(block) = between(rest, "<script type=\"application/ld+json\">", "</script>") {
        let value: Value = serde_json::from_str(block).unwrap();
        let nodes = match value.get("@graph") {
            Some(Value::Array(nodes)) => nodes.clone(),
            _ => vec![value],
        };
        product = product.or(nodes.into_iter().find(|n| n["@type"] == "Product"));
        rest = &rest[rest.find("</script>").unwrap() + 9..];
    }
    let product = product.expect("a Product in the JSON-LD");
    let name = product["name"].as_str().unwrap().to_string();
    let offers = &product["offers"];
    let (price, offer) = match offers {
        Value::Array(list) => {
            let lowest = list
                .iter()
                .min_by_key(|o| minor(o["price"].as_str().unwrap()))
                .unwrap();
            (lowest["price"].as_str().unwrap().to_string(), lowest)
        }
        o if o["@type"] == "AggregateOffer" => (o["lowPrice"].as_str().unwrap().to_string(), o),
        o => (o["price"].as_str().unwrap().to_string(), o),
    };
    let currency = offer["priceCurrency"].as_str().unwrap().to_string();
    let availability = schema_availability(offer["availability"].as_str().unwrap());
    (price, currency, availability, name)
}

/// What the page says, read independently of the shop's code.
fn read_page(markup: Markup, html: &str) -> ShopTruth {
    let h1 = between(html, "<h1", "</h1>").unwrap();
    let h1 = h1[h1.find('>').unwrap() + 1..].to_string();
    let title = between(html, "<title>", "</title>").unwrap();
    assert_eq!(title, h1);
    let (price, currency, availability, name) = match markup {
        Markup::JsonLdOffer
        | Markup::JsonLdGraph
        | Markup::JsonLdAggregate
        | Markup::JsonLdOfferArray => json_ld_truth(html),
        Markup::MicrodataContent => (
            attr_content(html, "itemprop=\"price\"").to_string(),
            attr_content(html, "itemprop=\"priceCurrency\"").to_string(),
            schema_availability(attr_content(html, "itemprop=\"availability\"")),
            h1.clone(),
        ),
        Markup::MicrodataText => {
            let text = between(html, "<span itemprop=\"price\">", "<").unwrap();
            let code = between(html, "<span itemprop=\"priceCurrency\">", "<").unwrap();
            assert_eq!(symbol_code(text), code);
            (
                parse_price_text(text),
                code.to_string(),
                words_availability(between(html, "itemprop=\"availability\">", "<").unwrap()),
                h1.clone(),
            )
        }
        Markup::MetaProduct | Markup::MetaOg => {
            let p = if markup == Markup::MetaOg {
                "og"
            } else {
                "product"
            };
            let availability = match attr_content(html, &format!("property=\"{p}:availability\"")) {
                "in stock" => "in_stock",
                "out of stock" => "out_of_stock",
                "preorder" => "preorder",
                other => panic!("{other}"),
            };
            (
                attr_content(html, &format!("property=\"{p}:price:amount\"")).to_string(),
                attr_content(html, &format!("property=\"{p}:price:currency\"")).to_string(),
                availability,
                attr_content(html, "property=\"og:title\"").to_string(),
            )
        }
        Markup::RuleSplit => {
            assert!(
                !html.contains("ld+json")
                    && !html.contains("itemprop")
                    && !html.contains("price:amount")
            );
            let amount = between(html, "<span class=\"pp-amount\">", "<").unwrap();
            let symbol = between(html, "<span class=\"pp-cur\">", "<").unwrap();
            (
                parse_price_text(amount),
                symbol_code(symbol).to_string(),
                words_availability(between(html, "<p class=\"pp-stock\">", "<").unwrap()),
                h1.clone(),
            )
        }
        Markup::RuleFixedCurrency => {
            assert!(
                !html.contains("ld+json")
                    && !html.contains("itemprop")
                    && !html.contains("price:amount")
            );
            let amount = between(html, "<span class=\"now\">", "<").unwrap();
            (
                parse_price_text(amount),
                "USD".to_string(),
                words_availability(between(html, "<span class=\"avail\">", "<").unwrap()),
                h1.clone(),
            )
        }
    };
    assert_eq!(name, h1, "the structured name is the visible one");
    ShopTruth {
        price,
        currency,
        availability,
        name,
    }
}

// ---------- the tests ----------

#[test]
fn every_markup_appears_and_every_page_carries_the_truth() {
    let rt = runtime();
    let shop = shop(60, 2, 0.5);
    let server = serve(&rt, &shop);
    let client = client();
    let urls = shop.urls(server.port());
    assert_eq!(urls.len(), 120);
    let mut markups = HashSet::new();
    let mut currencies = HashSet::new();
    let mut availabilities = HashSet::new();
    let mut grouped = 0;
    // Two epochs, so changed prices and availabilities are read too.
    for round in 0..2 {
        for (url, response) in urls.iter().zip(fetch_all(&rt, &client, plain(&urls), 16)) {
            assert_eq!(response.status(), 200, "{url}");
            let markup = shop.markup(url).unwrap();
            let seen = read_page(markup, &response.text());
            assert_eq!(Some(seen.clone()), shop.expected(url), "{url} ({markup:?})");
            markups.insert(markup);
            currencies.insert(seen.currency.clone());
            availabilities.insert(seen.availability);
            if seen.price.len() > 6 {
                grouped += 1; // 1000 and more: shown with a thousands separator
            }
            // The exact decimal: digits, and two decimals unless yen.
            let decimals = if seen.currency == "JPY" { 0 } else { 2 };
            let (whole, frac) = seen.price.split_once('.').unwrap_or((&seen.price, ""));
            assert_eq!(frac.len(), decimals, "{}", seen.price);
            assert!(whole.bytes().all(|b| b.is_ascii_digit()) && !whole.is_empty());
            assert!(whole == "0" || !whole.starts_with('0'));
        }
        if round == 0 {
            shop.advance_epoch();
        }
    }
    assert_eq!(markups.len(), Markup::ALL.len(), "{markups:?}");
    assert_eq!(currencies.len(), 4, "{currencies:?}");
    assert_eq!(availabilities.len(), 3, "{availabilities:?}");
    assert!(grouped > 0);
    // The rule pages are exactly those the rules' host patterns select.
    let rules = shop.rules_toml();
    assert_eq!(rules.matches("[[site]]").count(), 2);
    for pattern in [
        "match = \"^https?://shop-\\\\d*7\\\\.localhost(:\\\\d+)?/\"",
        "currency_code = \"USD\"",
    ] {
        assert!(rules.contains(pattern), "{pattern} in\n{rules}");
    }
    for url in &urls {
        let host = url.split('.').next().unwrap();
        let needs = host.ends_with('7') || host.ends_with('3');
        assert_eq!(shop.markup(url).unwrap().needs_rule(), needs, "{url}");
    }
}

#[test]
fn the_independent_price_parser_reads_every_locale() {
    assert_eq!(parse_price_text("1.299,00 €"), "1299.00");
    assert_eq!(parse_price_text("$1,299.00"), "1299.00");
    assert_eq!(parse_price_text("12,50 zł"), "12.50");
    assert_eq!(parse_price_text("1 299,00 zł"), "1299.00");
    assert_eq!(parse_price_text("¥1,200"), "1200");
}

fn validators(response: &Response) -> (Option<String>, Option<String>) {
    (
        response.header("etag").map(str::to_string),
        response.header("last-modified").map(str::to_string),
    )
}

/// Conditional request headers from a response's validators: only one kind at a time.
fn conditional(v: &(Option<String>, Option<String>), use_etag: bool) -> Vec<(String, String)> {
    match (use_etag, v) {
        (true, (Some(tag), _)) => vec![("If-None-Match".into(), tag.clone())],
        (false, (_, Some(date))) => vec![("If-Modified-Since".into(), date.clone())],
        _ => Vec::new(),
    }
}

#[test]
fn etag_and_last_modified_give_304_until_the_product_changes() {
    let rt = runtime();
    let shop = shop(200, 1, 0.3);
    let server = serve(&rt, &shop);
    let client = client();
    let urls = shop.urls(server.port());
    let first = fetch_all(&rt, &client, plain(&urls), 16);
    let v0: Vec<_> = first.iter().map(validators).collect();
    let kinds: HashSet<(bool, bool)> = v0.iter().map(|(e, l)| (e.is_some(), l.is_some())).collect();
    assert_eq!(
        kinds.len(),
        3,
        "both, only ETag, only Last-Modified: {kinds:?}"
    );
    for (etag, _) in &v0 {
        if let Some(tag) = etag {
            assert!(
                tag.len() == 18 && tag.starts_with('"') && tag.ends_with('"'),
                "strong: {tag}"
            );
        }
    }

    // Unchanged: each validator alone gives 304, carrying the same validators and no body.
    for use_etag in [true, false] {
        let requests: Vec<_> = urls
            .iter()
            .zip(&v0)
            .filter(|(_, v)| {
                if use_etag {
                    v.0.is_some()
                } else {
                    v.1.is_some()
                }
            })
            .map(|(u, v)| (u.clone(), conditional(v, use_etag)))
            .collect();
        for response in fetch_all(&rt, &client, requests, 16) {
            assert_eq!(response.status(), 304);
            assert!(response.body().is_empty());
            assert!(response.header("content-length").is_none());
            assert!(response.header("date").is_some());
            assert!(v0.contains(&validators(&response)));
        }
    }
    let after_304s = server.stats().not_modified;
    assert!(after_304s >= 200, "{after_304s}");

    // A stale validator (a foreign tag, a date long ago) gets the page.
    let both = (0..urls.len())
        .find(|&i| v0[i].0.is_some() && v0[i].1.is_some())
        .unwrap();
    let stale = vec![
        (
            urls[both].clone(),
            vec![(
                "If-None-Match".to_string(),
                "\"0000000000000000\"".to_string(),
            )],
        ),
        (
            urls[both].clone(),
            vec![(
                "If-Modified-Since".to_string(),
                "Thu, 01 Jan 1970 00:00:00 GMT".to_string(),
            )],
        ),
        (
            urls[both].clone(),
            vec![("If-Modified-Since".to_string(), "not a date".to_string())],
        ),
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        (
            urls[both].clone(),
            vec![
                (
                    "If-None-Match".to_string(),
                    "\"0000000000000000\"".to_string(),
                ),
                ("If-Modified-Since".to_string(), v0[both].1.clone().unwrap()),
            ],
        ),
    ];
    for response in fetch_all(&rt, &client, stale, 1) {
        assert_eq!(response.status(), 200);
        assert_eq!(validators(&response), v0[both]);
    }
    let listed = format!("\"1234567890abcdef\", W/{}", v0[both].0.clone().unwrap());
    let response = &fetch_all(
        &rt,
        &client,
        vec![(
            urls[both].clone(),
            vec![("If-None-Match".to_string(), listed)],
        )],
        1,
    )[0];
    assert_eq!(response.status(), 304, "a list, weak comparison");

    // Next epoch: changed products answer 200 with new validators, the others 304.
    let truth0: Vec<_> = urls.iter().map(|u| shop.expected(u).unwrap()).collect();
    shop.advance_epoch();
    let truth1: Vec<_> = urls.iter().map(|u| shop.expected(u).unwrap()).collect();
    for use_etag in [true, false] {
        let chosen: Vec<usize> = (0..urls.len())
            .filter(|&i| {
                if use_etag {
                    v0[i].0.is_some()
                } else {
                    v0[i].1.is_some()
                }
            })
            .collect();
        let requests = chosen
            .iter()
            .map(|&i| (urls[i].clone(), conditional(&v0[i], use_etag)))
            .collect();
        let responses = fetch_all(&rt, &client, requests, 16);
        let mut changed = 0;
        for (&i, response) in chosen.iter().zip(&responses) {
            if truth0[i] == truth1[i] {
                assert_eq!(response.status(), 304, "{} unchanged", urls[i]);
                assert_eq!(
                    validators(response),
                    v0[i],
                    "unchanged keeps its validators"
                );
            } else {
                changed += 1;
                assert_eq!(response.status(), 200, "{} changed", urls[i]);
                let v1 = validators(response);
                assert_ne!(v1, v0[i]);
                if use_etag {
                    assert_ne!(v1.0, v0[i].0);
                } else {
                    assert_ne!(v1.1, v0[i].1, "Last-Modified moves with the product");
                }
            }
        }
        assert!(changed > 10, "{changed}");
    }
}

#[test]
fn the_configured_share_changes_each_epoch_some_in_availability_only() {
    let shop = shop(2000, 1, 0.2);
    let urls = shop.urls(1);
    let mut before: Vec<ShopTruth> = urls.iter().map(|u| shop.expected(u).unwrap()).collect();
    let mut availability_only = 0;
    for _ in 0..3 {
        shop.advance_epoch();
        let now: Vec<ShopTruth> = urls.iter().map(|u| shop.expected(u).unwrap()).collect();
        let changed = before.iter().zip(&now).filter(|(a, b)| a != b).count();
        let share = changed as f64 / urls.len() as f64;
        assert!((0.16..=0.24).contains(&share), "share {share}");
        availability_only += before
            .iter()
            .zip(&now)
            .filter(|(a, b)| a.price == b.price && a.availability != b.availability)
            .count();
        for (a, b) in before.iter().zip(&now) {
            assert_eq!((&a.name, &a.currency), (&b.name, &b.currency));
        }
        before = now;
    }
    assert!(availability_only > 30, "{availability_only}");
    // No changes at all with a zero share; a clock-driven epoch advances by itself.
    let still = Shop::new(ShopOptions {
        hosts: 50,
        change_share: 0.0,
        change_every: Duration::ZERO,
        ..Default::default()
    });
    let t0: Vec<_> = still.urls(1).iter().map(|u| still.expected(u)).collect();
    still.advance_epoch();
    let t1: Vec<_> = still.urls(1).iter().map(|u| still.expected(u)).collect();
    assert_eq!(t0, t1);
    let ticking = Shop::new(ShopOptions {
        change_every: Duration::from_millis(100),
        ..Default::default()
    });
    std::thread::sleep(Duration::from_millis(250));
    assert!(ticking.epoch() >= 2);
    // Any epoch can be asked for afterwards.
    let at1: Vec<_> = urls
        .iter()
        .map(|u| shop.expected_at(u, 1).unwrap())
        .collect();
    assert_ne!(at1, before);
    assert_eq!(
        shop.expected_at(&urls[0], shop.epoch()),
        shop.expected(&urls[0])
    );
    // Deterministic from the options.
    let again = self::shop(2000, 1, 0.2);
    for _ in 0..3 {
        again.advance_epoch();
    }
    assert_eq!(
        urls.iter()
            .map(|u| again.expected(u).unwrap())
            .collect::<Vec<_>>(),
        before
    );
}

/// RFC 9309 for the `*` group, independently of the shop: longest match, Allow wins ties.
fn robots_disallows(text: &str, path: &str) -> bool {
    let mut in_star = false;
    let mut best: Option<(usize, bool)> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "user-agent" => in_star = value == "*",
            "allow" | "disallow" if in_star && !value.is_empty() => {
                let anchored = value.ends_with('$');
                let pattern = value.trim_end_matches('$');
                let re = format!(
                    "^{}{}",
                    pattern
                        .split('*')
                        .map(regex::escape)
                        .collect::<Vec<_>>()
                        .join(".*"),
                    if anchored { "$" } else { "" }
                );
                if regex::Regex::new(&re).unwrap().is_match(path) {
                    let allow = key == "allow";
                    let len = value.len();
                    best = match best {
                        Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                        _ => Some((len, allow)),
                    };
                }
            }
            _ => {}
        }
    }
    matches!(best, Some((_, false)))
}

#[test]
fn robots_txt_and_is_disallowed_agree_and_disallowed_requests_are_counted() {
    let rt = runtime();
    let shop = shop(300, 6, 0.0);
    let server = serve(&rt, &shop);
    let client = client();
    let port = server.port();
    let robots_urls: Vec<String> = (0..300)
        .map(|i| format!("http://shop-{i}.localhost:{port}/robots.txt"))
        .collect();
    let responses = fetch_all(&rt, &client, plain(&robots_urls), 16);
    let (mut missing, mut delay, mut disallowed_products) = (0, 0, 0);
    let mut disallowed_urls = Vec::new();
    let mut allowed_urls = Vec::new();
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(
            response.status() == 404,
            shop.robots_txt(i).is_none(),
            "host {i}"
        );
        if response.status() == 404 {
            missing += 1;
            continue;
        }
        assert_eq!(response.status(), 200);
        assert!(response.content_type().unwrap().starts_with("text/plain"));
        let text = response.text();
        assert_eq!(Some(text.clone()), shop.robots_txt(i));
        delay += text.contains("Crawl-delay: 1") as usize;
        let mut paths: Vec<String> = (0..6).map(|j| format!("/product/{j}")).collect();
        paths.extend(
            [
                "/cart",
                "/private/x",
                "/product/1?sort=asc",
                "/",
                "/robots.txt",
            ]
            .map(String::from),
        );
        for path in paths {
            let url = format!("http://shop-{i}.localhost:{port}{path}");
            let expected = robots_disallows(&text, &path);
            assert_eq!(shop.is_disallowed(&url), expected, "{url}\n{text}");
            if expected {
                disallowed_products += path.starts_with("/product/") as usize;
                disallowed_urls.push(url);
            } else {
                allowed_urls.push(url);
            }
        }
    }
    assert!(
        (20..=80).contains(&missing),
        "{missing} hosts without robots.txt"
    );
    assert!(delay > 3, "{delay} hosts with Crawl-delay");
    assert!(disallowed_products > 20, "{disallowed_products}");
    let stats = server.stats();
    assert_eq!(stats.robots_requests, 300);
    assert_eq!(stats.disallowed_requests, 0);

    // Allowed requests leave the counter alone; each disallowed one counts once.
    allowed_urls.truncate(200);
    fetch_all(&rt, &client, plain(&allowed_urls), 16);
    assert_eq!(server.stats().disallowed_requests, 0);
    disallowed_urls.truncate(50);
    fetch_all(&rt, &client, plain(&disallowed_urls), 16);
    assert_eq!(server.stats().disallowed_requests, 50);
}

#[test]
fn in_flight_requests_are_counted_per_host() {
    let rt = runtime();
    let shop = shop(10, 4, 0.0);
    let options = ShopServerOptions {
        latency: Duration::from_millis(150),
        ..Default::default()
    };
    let server = ShopServer::start_with(
        rt.handle(),
        "127.0.0.1:0".parse().unwrap(),
        shop.clone(),
        options,
    )
    .unwrap();
    let client = Client::builder()
        .max_connections_per_host(8)
        .build()
        .unwrap();
    let port = server.port();
    // One request on each of the ten hosts at once: never more than one per host.
    let one_each: Vec<String> = (0..10)
        .map(|i| format!("http://shop-{i}.localhost:{port}/product/0"))
        .collect();
    let started = Instant::now();
    fetch_all(&rt, &client, plain(&one_each), 10);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "they overlapped"
    );
    assert_eq!(server.stats().max_in_flight_per_host, 1);
    // Four at once on one host.
    let four: Vec<String> = (0..4)
        .map(|j| format!("http://shop-2.localhost:{port}/product/{j}"))
        .collect();
    fetch_all(&rt, &client, plain(&four), 4);
    assert_eq!(server.stats().max_in_flight_per_host, 4);
}

/// Sends raw bytes and returns the whole answer (the request asks to close).
fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn routing_on_the_host_header() {
    let rt = runtime();
    let shop = shop(5, 2, 0.0);
    let server = serve(&rt, &shop);
    let addr = server.local_addr();
    let get = |host: &str, target: &str| {
        raw(
            addr,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert!(get("shop-4.localhost", "/product/1").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(get("SHOP-4.LOCALHOST:80", "/product/1").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(get("shop-4.localhost", "/product/2").starts_with("HTTP/1.1 404"));
    assert!(
        get("shop-5.localhost", "/product/0").starts_with("HTTP/1.1 404"),
        "no such host"
    );
    assert!(get("example.com", "/product/0").starts_with("HTTP/1.1 404"));
    assert!(get("127.0.0.1", "/").starts_with("HTTP/1.1 404"));
    assert!(get("shop-0.localhost", "/").contains("href=\"/product/1\""));
    // The absolute form names the host itself.
    assert!(get("ignored", "http://shop-1.localhost/product/0").starts_with("HTTP/1.1 200"));
    let head = raw(
        addr,
        "HEAD /product/0 HTTP/1.1\r\nHost: shop-1.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // Heads larger than the shop's small initial read buffer still fit.
    let cookie = "c".repeat(5000);
    let big = raw(addr, &format!("GET /product/0 HTTP/1.1\r\nHost: shop-1.localhost\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"));
    assert!(big.starts_with("HTTP/1.1 200"), "{big}");
    let post = raw(
        addr,
        "POST /product/0 HTTP/1.1\r\nHost: shop-1.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"));
    let stats = server.stats();
    assert_eq!(stats.requests, 11);
    let url = format!("http://shop-1.localhost:{}/product/0", server.port());
    // GETs (one in absolute form) and HEAD count; the POST got 405 and does not.
    assert_eq!(stats.product_requests_per_url[&url], 3);
    assert_eq!(server.product_requests(&url), 3);
    assert_eq!(stats.product_requests_per_url.len(), 2);
}

#[test]
fn two_thousand_hosts_within_the_client_pool_limits() {
    let rt = runtime();
    let shop = shop(2000, 1, 0.1);
    let server = serve(&rt, &shop);
    let client = client(); // at most 64 connections in total
    let urls = shop.urls(server.port());
    let open_fds = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = open_fds();
    let responses = fetch_all(&rt, &client, plain(&urls), 128);
    assert!(responses.iter().all(|r| r.status() == 200));
    // The client's 64 plus the server's ends of them, and some slack for lingering closes.
    let after = open_fds();
    assert!(after < before + 200, "{before} → {after} descriptors");
    assert!(
        server.open_connections() <= 64,
        "{}",
        server.open_connections()
    );
    let stats = server.stats();
    assert_eq!(stats.product_requests_per_url.len(), 2000);
    assert!(stats.product_requests_per_url.values().all(|&n| n == 1));
    assert_eq!(stats.requests, 2000);
    let hosts: HashMap<&str, usize> = urls.iter().map(|u| (u.as_str(), 1)).collect();
    assert_eq!(hosts.len(), 2000);
}

#[test]
fn fifty_thousand_hosts_start_at_once_and_any_host_answers() {
    let rt = runtime();
    let started = Instant::now();
    let shop = shop(50_000, 1, 0.1);
    let server = serve(&rt, &shop);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let port = server.port();
    // A sample across the whole range, the last host included.
    let urls: Vec<String> = (0..50_000)
        .step_by(997)
        .chain([49_999])
        .map(|i| format!("http://shop-{i}.localhost:{port}/product/0"))
        .collect();
    let client = client();
    for (url, response) in urls.iter().zip(fetch_all(&rt, &client, plain(&urls), 16)) {
        assert_eq!(response.status(), 200, "{url}");
        let markup = shop.markup(url).unwrap();
        assert_eq!(
            Some(read_page(markup, &response.text())),
            shop.expected(url)
        );
    }
    let outside = format!("http://shop-50000.localhost:{port}/product/0");
    let response = &fetch_all(&rt, &client, plain(&[outside]), 1)[0];
    assert_eq!(response.status(), 404);
}
