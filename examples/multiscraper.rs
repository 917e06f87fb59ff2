//! Routing links to scrapers with ingress rules.
//!
//! `cargo run --example multiscraper`
//!
//! Rules are tried in order; the first scraper that succeeds wins. `/bytes/` links only ever go
//! to the raw scraper (an exclusive rule stops the search even when it fails); page links try the
//! text scraper first and fall back to the raw body.

use std::sync::Arc;

use scraipe::defaults::{IngressRule, MultiScraper, RawScraper, TextScraper};
use scraipe::demo::{DemoServer, DemoSite};
use scraipe::Scraper;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site_runtime = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
    let server = DemoServer::start(
        site_runtime.handle(),
        "127.0.0.1:0".parse()?,
        DemoSite::new(20, 3),
    )?;
    let base = server.base_url();

    let scraper = MultiScraper::new(vec![
        IngressRule::new(r"/bytes/\d+$", Arc::new(RawScraper::new()))?.exclusive(true),
        IngressRule::new(r"/page/\d+$", Arc::new(TextScraper::new()))?,
        IngressRule::new(r"^https?://", Arc::new(RawScraper::new()))?,
    ])
    .debug(true);

    for link in [
        format!("{base}/bytes/64"),
        format!("{base}/page/2"),
        format!("{base}/page/7"),
        "ftp://nowhere".to_string(),
    ] {
        let result = scraper.scrape(&link);
        let what = match result.content() {
            Some(c) => format!("{} chars", c.chars().count()),
            None => result.error().unwrap_or("failed").to_string(),
        };
        let chain = result
            .metadata()
            .and_then(|m| m.get("debug_chain"))
            .map(|c| c.to_string())
            .unwrap_or_default();
        println!("{link}\n  -> {what}\n  tried: {chain}");
    }
    Ok(())
}
