//! Command-line interface: argument definitions and dispatch.

mod demo;
mod observe;
mod output;
mod pipeline;
mod scrape;
mod summary;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Scrape links, analyze the content, keep the results — on scraipe's own async runtime.
#[derive(Debug, Parser)]
#[command(name = "scraipe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scrape URLs (arguments and/or a file) into JSONL or CSV, one row per distinct link.
    Scrape(ScrapeArgs),
    /// Start an embedded site on loopback, scrape and analyze it, print what happened.
    Demo(DemoArgs),
    /// Serve the demo site until interrupted (for wrk, other clients, benchmarks).
    ServeDemo(ServeDemoArgs),
    /// Show a top-like table of a program's runtime from its observatory endpoint
    /// (started by `demo --observe ADDR`; needs the `observatory` feature there).
    Observe(ObserveArgs),
}

/// Arguments of `scraipe observe`.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// The observatory endpoint, e.g. 127.0.0.1:6669.
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// Print one table and exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_parser = positive_secs)]
    pub interval: f64,
    /// Task rows to show (busiest first).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
}

/// Arguments of `scraipe scrape`.
#[derive(Debug, clap::Args)]
pub struct ScrapeArgs {
    /// URLs to scrape (in addition to --input).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read URLs from this file, one per line ('-' for standard input); blank lines and lines
    /// starting with '#' are skipped.
    #[arg(long, short = 'i', value_name = "FILE|-")]
    pub input: Option<String>,
    /// Write rows here instead of standard output (format from the extension: .csv or JSONL).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format (default: from the --output extension, else jsonl).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// What to keep of each page: the raw body, or its visible text.
    #[arg(long, value_enum, default_value_t = ScraperKind::Raw)]
    pub scraper: ScraperKind,
    /// Analysis of each successfully scraped page.
    #[arg(long, value_enum, default_value_t = AnalyzerKind::None)]
    pub analyzer: AnalyzerKind,
    /// Links in flight at once.
    #[arg(long, short = 'c', default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, short = 't', value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Whole per-link deadline in seconds (connect, redirects, body, analysis).
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    pub timeout: f64,
    /// Extra trusted root certificate(s), PEM (internal or self-hosted sites). Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    /// Largest accepted body in bytes (checked again after decompression).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// User-Agent header.
    #[arg(long, value_name = "UA")]
    pub user_agent: Option<String>,
    /// At most this many requests at once per host (politeness for large crawls).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// No progress bar, no summary line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `scraipe demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Pages on the demo site.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pages: u32,
    /// Pages scraped at once.
    #[arg(long, short = 'c', default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Runtime worker threads for the scraper (default: one per CPU).
    #[arg(long, short = 't', value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Rows of the results table to print.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
    /// Serve the executor observatory of the scraper's runtime on this address (e.g.
    /// 127.0.0.1:6669) while the demo runs, with the scheduler trace on; watch it with
    /// `scraipe observe ADDR` or a browser. Needs a build with `--features observatory`.
    #[arg(long, value_name = "ADDR")]
    pub observe: Option<std::net::SocketAddr>,
    /// With --observe: keep serving this many seconds after the run (time to look).
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub observe_linger: f64,
}

/// Arguments of `scraipe serve-demo`.
#[derive(Debug, clap::Args)]
pub struct ServeDemoArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// Pages on the site.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pages: u32,
    /// Server worker threads.
    #[arg(long, short = 't', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row; metadata and output as JSON text.
    Csv,
}

/// Scrapers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScraperKind {
    /// The body, decoded to text.
    Raw,
    /// The visible text of HTML pages.
    Text,
}

/// Analyzers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalyzerKind {
    /// No analysis.
    None,
    /// Word, character and sentence counts and the average word length.
    TextStats,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err("must be between 0 and 86400 seconds".into())
    }
}

/// A one-line message for the user and the exit code: 2 for usage errors, 1 for everything
/// else (unreadable input, unwritable output, unusable certificates).
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError { code: 1, message }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Scrape(args) => scrape::run(args),
        Command::Demo(args) => demo::run(args).map_err(CliError::from),
        Command::Observe(args) => observe::run(args).map_err(CliError::from),
        Command::ServeDemo(args) => {
            scraipe::demo::serve_forever(args.port, args.pages as usize, args.threads as usize)
                .map_err(|e| {
                    format!("could not serve the demo site on port {}: {e}", args.port).into()
                })
        }
    }
}
