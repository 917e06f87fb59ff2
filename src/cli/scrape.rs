//! `scraipe scrape`: read links, check the output can be written, scrape, stream rows out.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use scraipe::defaults::{RawScraper, TextScraper, TextStatsAnalyzer};
use scraipe::http::{Client, ErrorKind, Proxy, RetryPolicy};
use scraipe::llm::LlmTotals;
use scraipe::politeness::HostLimiter;
use scraipe::rt::Builder;
use scraipe::{Analyzer, AsyncScraper};

use super::llm;
use super::output::RowWriter;
use super::pipeline::{self, Event, Settings};
use super::summary::Summary;
use super::{AnalyzerKind, Format, ScrapeArgs, ScraperKind};

/// Links from the arguments then the input, trimmed, without blanks, `#` comments or
/// duplicates, in order of first appearance.
///
/// The input is read as bytes: a UTF-8 byte-order mark at its start (Notepad, Excel's "CSV
/// UTF-8") is dropped, and a byte that is not UTF-8 (a Latin-1 export) is kept percent-encoded
/// (`caf\xe9` → `caf%E9`, the same byte on the wire) instead of ending the run.
pub fn collect_links(args: &[String], input: Option<&str>) -> Result<Vec<String>, String> {
    let mut raw: Vec<String> = args.to_vec();
    if let Some(path) = input {
        let mut reader: Box<dyn BufRead> = if path == "-" {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file =
                File::open(path).map_err(|e| format!("cannot read input file '{path}': {e}"))?;
            Box::new(BufReader::new(file))
        };
        let mut line = Vec::new();
        let mut first = true;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read input '{path}': {e}"))?;
            if n == 0 {
                break;
            }
            let bytes = match line.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) if first => rest,
                _ => &line[..],
            };
            first = false;
            raw.push(percent_encode_invalid_utf8(bytes));
        }
    }
    let mut seen = HashSet::new();
    Ok(raw
        .into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| seen.insert(l.clone()))
        .collect())
}

/// `bytes` as text, each byte of an invalid UTF-8 sequence written as `%XX`.
fn percent_encode_invalid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(args: ScrapeArgs) -> Result<(), super::CliError> {
    let links = collect_links(&args.urls, args.input.as_deref())?;
    if links.is_empty() && args.input.is_none() {
        return Err(super::CliError {
            code: 2,
            message: "no URLs given: pass them as arguments or with --input FILE (or - for stdin)"
                .into(),
        });
    }

    let format = args.format.unwrap_or_else(|| match &args.output {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => Format::Csv,
        _ => Format::Jsonl,
    });
    // Everything that can fail for the user's setup fails now, before any scraping.
    let mut client = Client::builder()
        .timeout(Duration::from_secs_f64(args.timeout))
        .max_body_size(args.max_body)
        .max_connections_per_host(args.concurrency as usize)
        .retry_policy(RetryPolicy::new(args.retries))
        .cookie_store(!args.no_cookies);
    if let Some(proxy) = &args.proxy {
        let proxy = Proxy::parse(proxy).map_err(|e| e.message().to_string())?;
        client = client.proxy(proxy);
    }
    if args.no_proxy {
        client = client.no_proxy();
    }
    for (name, value) in &args.headers {
        client = client.default_header(name.clone(), value.clone());
    }
    if let Some(ua) = &args.user_agent {
        client = client.user_agent(ua.clone());
    }
    let mut ca_pems = Vec::new();
    for path in &args.ca_certs {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA certificate '{}': {e}", path.display()))?;
        client = client.add_root_certificate_pem(&pem);
        ca_pems.push(pem);
    }
    let client = client.build().map_err(|e| match e.kind() {
        ErrorKind::Tls => format!("unusable CA certificate: {}", e.message()),
        _ => format!("cannot set up the HTTP client: {}", e.message()),
    })?;
    let llm_totals = Arc::new(LlmTotals::new());
    let analyzer: Option<Arc<dyn Analyzer>> = match args.analyzer {
        AnalyzerKind::None => None,
        AnalyzerKind::TextStats => Some(Arc::new(TextStatsAnalyzer)),
        AnalyzerKind::Llm => {
            let net = llm::Net {
                ca_pems: &ca_pems,
                proxy: args.proxy.as_deref(),
                no_proxy: args.no_proxy,
            };
            Some(Arc::new(llm::build(&args.llm, &net, llm_totals.clone())?))
        }
    };
    if args.analyzer != AnalyzerKind::Llm {
        llm::check_unused(&args.llm)?;
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| format!("cannot write output file '{}': {e}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let analyzed = args.analyzer != AnalyzerKind::None;
    let mut writer = match format {
        Format::Jsonl => RowWriter::jsonl(out),
        Format::Csv => {
            RowWriter::csv(out, analyzed).map_err(|e| format!("cannot write the output: {e}"))?
        }
    };

    let mut builder = Builder::new().thread_name("scraipe");
    if let Some(t) = args.threads {
        builder = builder.worker_threads(t as usize);
    }
    let runtime = builder
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let concurrency = args.concurrency as usize;
    let scraper: Arc<dyn AsyncScraper> = match args.scraper {
        ScraperKind::Raw => Arc::new(RawScraper::with_client(client).max_workers(concurrency)),
        ScraperKind::Text => Arc::new(TextScraper::with_client(client).max_workers(concurrency)),
    };

    let show_progress = !args.quiet && io::stderr().is_terminal();
    let progress = if show_progress {
        let bar = ProgressBar::new(links.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} links, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let settings = Settings {
        concurrency,
        window: (concurrency * 8).max(256),
        timeout: Duration::from_secs_f64(args.timeout),
        per_host: args.per_host.map(|n| HostLimiter::new(n as usize)),
    };
    let started = Instant::now();
    let mut summary = Summary::default();
    let result = pipeline::run(
        &runtime,
        links,
        scraper,
        analyzer,
        &settings,
        |event| match event {
            Event::Row(row) => {
                summary.add(&row);
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
                writer.write(&row)
            }
            Event::Written => writer.flush(),
        },
    )
    .and_then(|()| writer.flush());
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    match result {
        Ok(()) => {}
        // `scraipe scrape ... | head` closing the pipe early is not an error worth reporting.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && args.output.is_none() => return Ok(()),
        Err(e) => return Err(format!("cannot write the output: {e}").into()),
    }
    if !args.quiet {
        eprintln!("{}", summary.line(started.elapsed(), analyzed));
        if args.analyzer == AnalyzerKind::Llm {
            eprintln!("{}", llm_totals.snapshot());
        }
    }
    Ok(())
}
