//! Writing your own components: implement one async method, get the synchronous API for free.
//!
//! `cargo run --example custom_components`
//!
//! * `LinkCounter` is an async scraper: it fetches a page with scraipe's HTTP client and keeps the
//!   list of links found on it.
//! * `LinkStats` is an async analyzer: it counts the links and how many point inside the site.

use std::sync::Arc;

use scraipe::demo::{DemoServer, DemoSite};
use scraipe::http::Client;
use scraipe::prelude::*;
use serde_json::{json, Map};

struct LinkCounter {
    client: Client,
}

#[async_trait]
impl AsyncScraper for LinkCounter {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        match self.client.get(link).await {
            Ok(page) if page.status() == 200 => {
                let html = page.text();
                let hrefs: Vec<&str> = html
                    .split("href=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next())
                    .collect();
                ScrapeResult::succeed(link, hrefs.join("\n"))
            }
            Ok(page) => ScrapeResult::fail(link, format!("status {}", page.status())),
            Err(e) => ScrapeResult::fail(link, e.to_string()),
        }
    }
}

struct LinkStats;

#[async_trait]
impl AsyncAnalyzer for LinkStats {
    async fn async_analyze(&self, content: &str) -> AnalysisResult {
        let links: Vec<&str> = content.lines().collect();
        let internal = links.iter().filter(|l| l.starts_with('/')).count();
        let mut out = Map::new();
        out.insert("links".into(), json!(links.len()));
        out.insert("internal".into(), json!(internal));
        AnalysisResult::succeed(out)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site_runtime = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
    let server = DemoServer::start(
        site_runtime.handle(),
        "127.0.0.1:0".parse()?,
        DemoSite::new(40, 1),
    )?;

    // The synchronous API comes with the async implementations.
    let scraper = LinkCounter {
        client: Client::new(),
    };
    let result = scraper.scrape(&format!("{}/", server.base_url()));
    println!(
        "index page links: {}",
        result.content().map(|c| c.lines().count()).unwrap_or(0)
    );

    let mut workflow = Workflow::new(Arc::new(scraper), Arc::new(LinkStats));
    workflow.scrape(
        (0..5).map(|i| format!("{}/page/{i}", server.base_url())),
        false,
    );
    for (link, analysis) in workflow.analyze(false) {
        println!("{link}: {:?}", analysis.output());
    }
    Ok(())
}
