//! How long offer extraction takes on a typical ~20 KiB product page, per kind of markup.
//!
//! ```sh
//! cargo run --release --example offer_timing            # 2,000 pages per kind
//! cargo run --release --example offer_timing -- 200     # fewer
//! cargo run --example offer_timing -- 3                 # a smoke run (100 rules, not 10,000)
//! ```
//!
//! Prints ns/page for the whole `extract_offer` and for the HTML parse alone (the part every
//! kind pays), on one thread. A quick single-run measurement, not a benchmark: on a shared
//! machine expect ±20 %.

use std::hint::black_box;
use std::time::Instant;

use scraipe::offer::{extract_offer, Rules};

const URL: &str = "http://shop-3.localhost:8080/product/7";

/// A page like a shop's product page: head with meta tags and styles, a big navigation, the
/// product block, related products, reviews and a footer; `product` is the product block and
/// `head_extra` what goes into `<head>`, so each kind of markup sits in the same ~20 KiB.
fn page(head_extra: &str, product: &str) -> String {
    let mut s = String::with_capacity(24 * 1024);
    s.push_str("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>");
    s.push_str("<meta name=viewport content=\"width=device-width, initial-scale=1\">");
    s.push_str("<title>Cast-iron kettle | Example Shop</title>");
    s.push_str("<link rel=stylesheet href=/static/site.css><style>body{font:16px sans-serif}.price{color:#c00}</style>");
    s.push_str(head_extra);
    s.push_str("</head><body><header class=site-header><a class=logo href=/>Example Shop</a><nav><ul class=menu>");
    for i in 0..80 {
        s.push_str(&format!(
            "<li class=menu-item><a href=\"/category/{i}\" title=\"Category {i}\">Category {i}</a></li>"
        ));
    }
    s.push_str("</ul></nav></header><main class=container><div class=breadcrumbs><a href=/>Home</a> › <a href=/kitchen>Kitchen</a></div>");
    s.push_str(product);
    s.push_str("<section class=description><h2>Description</h2>");
    for _ in 0..6 {
        s.push_str("<p>Enamelled cast iron keeps the heat for a long time. Works on gas, electric and induction hobs. Capacity 1.6 litres, weight 2.1 kg. Dishwasher safe; hand washing recommended.</p>");
    }
    s.push_str("</section><section class=related><h2>Related products</h2><div class=grid>");
    for i in 0..12 {
        s.push_str(&format!(
            "<div class=card><a href=\"/product/{i}\"><img src=\"/img/{i}.jpg\" alt=\"Product {i}\" loading=lazy></a><h3><a href=\"/product/{i}\">Product {i}</a></h3><span class=price>{i}9,99 €</span><button class=add data-id={i}>Add to cart</button></div>"
        ));
    }
    s.push_str("</div></section><section class=reviews><h2>Reviews</h2>");
    for i in 0..25 {
        s.push_str(&format!(
            "<article class=review><header><b>Customer {i}</b> <time datetime=2026-11-{d:02}>Nov {d}</time></header><p>Great kettle, heats up fast. Bought two of them at 25 € each for my parents.</p></article>",
            d = i % 28 + 1
        ));
    }
    s.push_str("</section></main><footer><ul>");
    for i in 0..30 {
        s.push_str(&format!(
            "<li><a href=\"/help/{i}\">Help topic {i}</a></li>"
        ));
    }
    s.push_str("</ul><p>© 2026 Example Shop</p></footer><script src=/static/app.js></script></body></html>");
    s
}

const PRODUCT_PLAIN: &str = r#"<div class="product"><h1 class="title">Cast-iron kettle</h1>
<div class="price-box"><span class="amount">1.299,00</span> <span class="cur">€</span></div>
<p class="stock">In stock — ships tomorrow</p></div>"#;

const JSON_LD: &str = r#"<script type="application/ld+json">{"@context":"https://schema.org","@graph":[
{"@type":"WebSite","name":"Example Shop","url":"https://shop.example/"},
{"@type":"BreadcrumbList","itemListElement":[{"@type":"ListItem","position":1,"name":"Home"}]},
{"@type":"Product","name":"Cast-iron kettle","sku":"K-1","offers":{"@type":"Offer",
"price":"1299.00","priceCurrency":"EUR","availability":"https://schema.org/InStock"}}]}</script>"#;

const MICRODATA: &str = r#"<div class="product" itemscope itemtype="https://schema.org/Product">
<h1 itemprop="name">Cast-iron kettle</h1>
<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
<span itemprop="price" content="1299.00">1.299,00 €</span><meta itemprop="priceCurrency" content="EUR">
<link itemprop="availability" href="https://schema.org/InStock">In stock</div></div>"#;

const META: &str = r#"<meta property="og:title" content="Cast-iron kettle">
<meta property="product:price:amount" content="1299.00">
<meta property="product:price:currency" content="EUR">
<meta property="product:availability" content="in stock">"#;

const RULES: &str = r#"
[[site]]
match = "^https?://shop-3\\.localhost(:\\d+)?/"
price = ".price-box .amount"
currency = ".price-box .cur"
availability = ".stock"
name = "h1"
"#;

fn time(label: &str, n: usize, html: &str, rules: &Rules) {
    time_at(label, n, html, rules, URL);
}

fn time_at(label: &str, n: usize, html: &str, rules: &Rules, url: &str) {
    // Warm up, and check that the page really yields an offer.
    let offer = extract_offer(html, url, rules).expect("an offer");
    let started = Instant::now();
    for _ in 0..n {
        black_box(extract_offer(black_box(html), url, rules));
    }
    let per_page = started.elapsed().as_nanos() / n as u128;
    println!(
        "{label:<10} {:>6} bytes  {per_page:>8} ns/page  ({} {} via {})",
        html.len(),
        offer.price.unwrap_or_default(),
        offer.currency.unwrap_or_default(),
        offer.source.as_str()
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let rules = Rules::from_toml_str(RULES).expect("valid rules");
    let none = Rules::default();

    let json_ld = page(JSON_LD, PRODUCT_PLAIN);
    let parse_started = Instant::now();
    for _ in 0..n {
        black_box(scraper::Html::parse_document(black_box(&json_ld)));
    }
    println!(
        "{:<10} {:>6} bytes  {:>8} ns/page  (html5ever parse into scraper's DOM only)",
        "parse",
        json_ld.len(),
        parse_started.elapsed().as_nanos() / n as u128
    );
    time("json_ld", n, &json_ld, &none);
    time("microdata", n, &page("", MICRODATA), &none);
    time("meta", n, &page(META, PRODUCT_PLAIN), &none);
    time("rule", n, &page("", PRODUCT_PLAIN), &rules);
    // One rule per site for 10,000 sites: a page runs only the rules indexed under its host.
    // (Fewer for a quick run: compiling 10,000 regexes is slow in a debug build.)
    let sites = if n >= 100 { 10_000 } else { 100 };
    let mut many = String::new();
    for i in 0..sites {
        many.push_str(&format!(
            "[[site]]\nmatch = \"^https?://shop-{i}\\\\.localhost(:\\\\d+)?/\"\nprice = \".price-box .amount\"\n"
        ));
    }
    let started = Instant::now();
    let many = Rules::from_toml_str(&many).expect("valid rules");
    println!(
        "{:<10} {sites} rules loaded in {:?}",
        "rules",
        started.elapsed()
    );
    time("rule/10k", n, &page("", PRODUCT_PLAIN), &many);
    // A host with no rule: the index finds none, and JSON-LD answers without a DOM.
    let no_rule = format!("http://shop-{sites}.localhost:8080/product/7");
    time_at("ld/10k", n, &json_ld, &many, &no_rule);

    let nothing = page("", "<div class=product><h1>Kettle</h1></div>");
    for (label, rules, what) in [
        (
            "none+rule",
            &rules,
            "no offer; a rule matches, so the DOM is built",
        ),
        ("none", &none, "no offer, no rule: the byte scan alone"),
    ] {
        let started = Instant::now();
        for _ in 0..n {
            black_box(extract_offer(black_box(&nothing), URL, rules));
        }
        println!(
            "{label:<10} {:>6} bytes  {:>8} ns/page  ({what})",
            nothing.len(),
            started.elapsed().as_nanos() / n as u128
        );
    }
}
