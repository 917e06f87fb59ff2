//! The README example: a Workflow of TextScraper and TextStatsAnalyzer over a small local site.
//!
//! `cargo run --example basic_workflow`
//!
//! The site is scraipe's embedded demo site on 127.0.0.1 (no internet needed); point the links
//! anywhere else to scrape real pages.

use std::sync::Arc;

use scraipe::defaults::{TextScraper, TextStatsAnalyzer};
use scraipe::demo::{DemoServer, DemoSite};
use scraipe::Workflow;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A local site to scrape, served by scraipe's own runtime.
    let site_runtime = scraipe::rt::Runtime::builder().worker_threads(1).build()?;
    let server = DemoServer::start(
        site_runtime.handle(),
        "127.0.0.1:0".parse()?,
        DemoSite::new(20, 7),
    )?;
    let links: Vec<String> = (0..8)
        .map(|i| format!("{}/page/{i}", server.base_url()))
        .collect();

    // Scrape, analyze, export: synchronous calls, async underneath.
    let mut workflow = Workflow::new(Arc::new(TextScraper::new()), Arc::new(TextStatsAnalyzer));
    workflow.scrape(links, false);
    workflow.analyze(false);

    for scrape in workflow.get_scrapes() {
        match scrape.content() {
            Some(text) => println!(
                "{}: {} characters of text",
                scrape.link(),
                text.chars().count()
            ),
            None => println!("{}: {}", scrape.link(), scrape.error().unwrap_or("failed")),
        }
    }
    let table = workflow.export(false);
    println!("\n{}", table.columns().join(", "));
    for row in table.rows() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        println!("{}", cells.join(", "));
    }
    Ok(())
}
