//! `scraipe demo`: the whole system on loopback, no network needed. An embedded site (served by
//! our runtime) with slow, failing and redirecting pages; a Workflow of TextScraper and
//! TextStatsAnalyzer over it; the summary, the throughput, a check of every result against what
//! the site is known to serve, and the first rows as a table.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use scraipe::defaults::{TextScraper, TextStatsAnalyzer};
use scraipe::demo::{DemoServer, DemoSite};
use scraipe::http::Client;
use scraipe::rt::Builder;
use scraipe::{AsyncManager, Workflow};

use super::summary::group;
use super::DemoArgs;

pub fn run(args: DemoArgs) -> Result<(), String> {
    let pages = args.pages as usize;
    let threads = args.threads.map(|t| t as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });

    // The site, on its own one-thread runtime.
    let server_rt = Builder::new()
        .worker_threads(1)
        .thread_name("demo-site")
        .build()
        .map_err(|e| format!("cannot start the demo site's runtime: {e}"))?;
    let site = DemoSite::new(pages, 2026);
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let server = DemoServer::start(server_rt.handle(), addr, site.clone())
        .map_err(|e| format!("cannot start the demo site: {e}"))?;
    outln!(
        "demo site: {} pages at {}/ (served by scraipe's runtime, 1 thread)",
        group(pages),
        server.base_url()
    );
    outln!(
        "scraping with TextScraper + TextStatsAnalyzer on a pool of {threads} event loop(s), {} pages at once",
        args.concurrency
    );

    // The scraper side: a pool of event loops behind the synchronous Workflow API.
    AsyncManager::enable_multithreading(threads)
        .map_err(|e| format!("cannot start the executor: {e}"))?;
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .max_connections_per_host(args.concurrency as usize)
        .build()
        .map_err(|e| e.to_string())?;
    let scraper = TextScraper::with_client(client).max_workers(args.concurrency as usize);
    let mut workflow = Workflow::new(Arc::new(scraper), Arc::new(TextStatsAnalyzer));
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(pages as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg:9} {bar:40} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = bar.clone() {
        workflow.on_progress(move |p| {
            bar.set_message(format!("{:?}", p.stage).to_lowercase());
            bar.set_position(p.done as u64);
        });
    }

    let observatory =
        super::observe::start(args.observe, || AsyncManager::get_executor().handle())?;
    let urls = site.urls(server.base_url());
    let started = Instant::now();
    workflow.scrape(urls.clone(), false);
    let scraped_in = started.elapsed();
    workflow.analyze(false);
    let total = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    // What happened.
    let scrapes = workflow.get_scrapes();
    let analyses: HashMap<String, _> = workflow.get_analyses().into_iter().collect();
    let ok = scrapes.iter().filter(|s| s.success()).count();
    let mut failures: HashMap<String, usize> = HashMap::new();
    for s in scrapes.iter().filter(|s| !s.success()) {
        let kind = s
            .metadata()
            .and_then(|m| m.get("error_kind"))
            .and_then(Value::as_str)
            .unwrap_or("error");
        *failures.entry(kind.to_string()).or_default() += 1;
    }
    let analyzed = analyses.values().filter(|a| a.success()).count();
    let mut failure_list: Vec<_> = failures.into_iter().collect();
    failure_list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let failure_text: Vec<String> = failure_list
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    outln!();
    outln!(
        "scraped {}/{} ok, analyzed {} in {:.2} s ({} pages/s; scraping {:.2} s, analysis {:.2} s){}",
        group(ok),
        group(scrapes.len()),
        group(analyzed),
        total.as_secs_f64(),
        group((scrapes.len() as f64 / total.as_secs_f64()).round() as usize),
        scraped_in.as_secs_f64(),
        (total - scraped_in).as_secs_f64(),
        if failure_text.is_empty() { String::new() } else { format!("; {} failed: {}", group(scrapes.len() - ok), failure_text.join(", ")) }
    );
    let slow = (0..pages)
        .filter(|&i| site.expected(i).is_some_and(|e| e.is_slow()))
        .count();
    outln!(
        "the site served {} requests on {} connections ({} pages answered after a 50–300 ms delay)",
        group(server.requests_served() as usize),
        group(server.connections_accepted() as usize),
        group(slow)
    );

    // Every result checked against what the site is known to serve.
    let by_link: HashMap<&str, &scraipe::ScrapeResult> =
        scrapes.iter().map(|s| (s.link(), s)).collect();
    let mut mismatches = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let Some(expected) = site.expected(i) else {
            continue;
        };
        let Some(result) = by_link.get(url.as_str()) else {
            mismatches.push(format!("{url}: no result"));
            continue;
        };
        let good = match expected.final_page {
            Some(page) => {
                result.success()
                    && result
                        .metadata()
                        .and_then(|m| m.get("final_url"))
                        .and_then(Value::as_str)
                        == Some(site.url(server.base_url(), page).as_str())
            }
            None => {
                !result.success()
                    && result.error().is_some_and(|e| {
                        e.ends_with(&format!("Status code: {}", expected.final_status))
                    })
            }
        };
        if !good {
            mismatches.push(format!(
                "{url}: expected {expected:?}, got {:?}",
                result.error()
            ));
        }
    }
    if mismatches.is_empty() {
        outln!(
            "checked: all {} results match what the site serves (statuses, redirects, failures)",
            group(urls.len())
        );
    } else {
        outln!(
            "checked: {} of {} results do NOT match the site:",
            mismatches.len(),
            urls.len()
        );
        for m in mismatches.iter().take(5) {
            outln!("  {m}");
        }
    }

    // The first rows.
    outln!();
    outln!(
        "{:<12} {:>6} {:>7} {:>7} {:>9} {:>8}  first words / error",
        "page",
        "status",
        "words",
        "chars",
        "sentences",
        "avg word"
    );
    for s in scrapes.iter().take(args.rows) {
        let path = s.link().strip_prefix(server.base_url()).unwrap_or(s.link());
        let status = s
            .metadata()
            .and_then(|m| m.get("status"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let stats = analyses.get(s.link()).and_then(|a| a.output());
        let num = |k: &str| {
            stats
                .and_then(|o| o.get(k))
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into())
        };
        let avg = stats
            .and_then(|o| o.get("average_word_length"))
            .and_then(Value::as_f64)
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "-".into());
        let note = match s.content() {
            Some(text) => {
                let first: String = text
                    .split_whitespace()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("{first}…")
            }
            None => s
                .error()
                .unwrap_or("")
                .rsplit(". ")
                .next()
                .unwrap_or("")
                .to_string(),
        };
        outln!(
            "{:<12} {:>6} {:>7} {:>7} {:>9} {:>8}  {}",
            path,
            status,
            num("word_count"),
            num("character_count"),
            num("sentence_count"),
            avg,
            note
        );
    }
    drop(server);
    if observatory.is_some() && args.observe_linger > 0.0 {
        outln!("observatory: serving {:.0} s more", args.observe_linger);
        std::thread::sleep(Duration::from_secs_f64(args.observe_linger.min(86_400.0)));
    }
    Ok(())
}
