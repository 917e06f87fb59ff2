//! Command-line interface: argument definitions and dispatch.

/// `println!` for commands with nothing left to save when their reader goes away: a closed pipe
/// (`scraipe demo | head`) ends the program quietly with exit code 0, as it would a C program,
/// instead of a panic. Not for `scrape` or `monitor run`, which finish their own work first.
macro_rules! outln {
    () => {
        $crate::cli::out_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out_line(format_args!($($arg)*))
    };
}

mod demo;
mod demo_monitor;
mod llm;
mod monitor;
mod observe;
mod output;
mod pipeline;
mod scrape;
mod serve_shop;
mod signals;
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
    Scrape(Box<ScrapeArgs>),
    /// Start an embedded site on loopback, scrape and analyze it, print what happened.
    Demo(DemoArgs),
    /// Serve the demo site until interrupted (for wrk, other clients, benchmarks).
    ServeDemo(ServeDemoArgs),
    /// The price monitor: check product pages on a schedule, record prices, report changes.
    Monitor(Box<monitor::MonitorArgs>),
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
    /// Whole per-link deadline in seconds (connect, redirects, body, analysis). An LLM analysis
    /// is not bound by it: it has its own budget (--llm-timeout, --llm-retries); nor is waiting
    /// for a --per-host turn.
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    pub timeout: f64,
    /// Extra trusted root certificate(s), PEM (internal or self-hosted sites). Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    /// Largest accepted body in bytes (checked again after decompression).
    #[arg(long, default_value_t = scraipe::http::DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub max_body: usize,
    /// Retries of a transient failure (connection failed or reset, 429, 502, 503, 504), with
    /// jittered exponential backoff and Retry-After (up to 60 s), within --timeout.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// Do not keep cookies (by default one jar serves the whole run).
    #[arg(long)]
    pub no_cookies: bool,
    /// Send every request through this HTTP proxy: http://[user:password@]host[:port]
    /// (default: http_proxy, https_proxy, all_proxy and no_proxy from the environment).
    #[arg(long, value_name = "URL", value_parser = parse_proxy, conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Connect directly, ignoring proxy environment variables.
    #[arg(long)]
    pub no_proxy: bool,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// User-Agent header.
    #[arg(long, value_name = "UA")]
    pub user_agent: Option<String>,
    /// At most this many requests at once per host (politeness for large crawls). A link
    /// waiting for its host's turn is not timed: --timeout starts when its request may go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// No progress bar, no summary line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// The `--analyzer llm` options of `scraipe scrape`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "LLM analysis (--analyzer llm)")]
pub struct LlmArgs {
    /// The server, the model and the budgets (shared with `monitor run`).
    #[command(flatten)]
    pub server: LlmServerArgs,
    /// What the model should do with each page (required with --analyzer llm); @FILE reads it
    /// from a file.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub instruction: Option<String>,
    /// JSON Schema file the answers must match (they are validated; the output is the
    /// validated object). Without one, any JSON object is accepted.
    #[arg(long, value_name = "FILE.json")]
    pub schema: Option<PathBuf>,
}

/// Defaults of the LLM budget options (named: `check_unused` tells a given value from them).
pub const LLM_MAX_CONTENT: u64 = 10_000;
pub const LLM_CONCURRENCY: u32 = 3;
pub const LLM_TIMEOUT_SECS: f64 = 60.0;
pub const LLM_RETRIES: u32 = 3;

/// Which LLM server and model, and the budgets of the calls: the options `scrape --analyzer
/// llm` and `monitor run` (for `extract = "llm"` rules) share.
#[derive(Debug, clap::Args)]
pub struct LlmServerArgs {
    /// API flavour of the LLM server. Keys come from OPENAI_API_KEY / GEMINI_API_KEY (not
    /// needed for a server other than the official ones).
    #[arg(long, value_enum, value_name = "PROVIDER")]
    pub llm_provider: Option<LlmProvider>,
    /// Base URL of the server (default: the provider's official API), e.g.
    /// http://localhost:11434/v1 for Ollama.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// Model name (required with --analyzer llm, and by `monitor run` with `extract = "llm"`
    /// rules).
    #[arg(long, value_name = "NAME")]
    pub llm_model: Option<String>,
    /// Characters of each page sent to the model (the rest is cut; metadata says so).
    #[arg(long, value_name = "N", default_value_t = LLM_MAX_CONTENT, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub llm_max_content: u64,
    /// LLM calls in flight at once.
    #[arg(long, value_name = "N", default_value_t = LLM_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub llm_concurrency: u32,
    /// Limit on one LLM call, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = LLM_TIMEOUT_SECS, value_parser = positive_secs)]
    pub llm_timeout: f64,
    /// Retries of an LLM call after a 429, a 5xx, a timeout or a connection failure.
    #[arg(long, value_name = "N", default_value_t = LLM_RETRIES, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub llm_retries: u32,
    /// LLM requests per minute (evenly spaced).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub llm_rpm: Option<u32>,
    /// LLM tokens per minute (from the replies' usage counts).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub llm_tpm: Option<u64>,
}

/// LLM API flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmProvider {
    /// OpenAI Chat Completions, or any compatible server (Ollama, vLLM, llama.cpp, LM Studio).
    Openai,
    /// Google Gemini generateContent.
    Gemini,
}

/// Arguments of `scraipe demo`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    /// Another demo instead of the scrape demo.
    #[command(subcommand)]
    pub what: Option<DemoWhat>,
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

/// The other demos.
#[derive(Debug, Subcommand)]
pub enum DemoWhat {
    /// The price monitor over the demo shop for a few short windows: what it found, what
    /// changed, all checked against the shop's truth (exit 1 on any mismatch).
    Monitor(DemoMonitorArgs),
}

/// Arguments of `scraipe demo monitor`.
#[derive(Debug, clap::Args)]
pub struct DemoMonitorArgs {
    /// Shop hosts (shop-N.localhost on one loopback listener).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub hosts: u32,
    /// Product pages per host.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub products_per_host: u32,
    /// Share of the products that change between windows (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = share)]
    pub change_share: f64,
    /// Windows to run (the first sees everything for the first time).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub windows: u32,
    /// Checks in flight at once.
    #[arg(long, short = 'c', default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Requests in flight at once per host.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub per_host: u32,
}

/// Arguments of `scraipe serve-demo`.
#[derive(Debug, clap::Args)]
pub struct ServeDemoArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// Pages on the site.
    #[arg(long, default_value_t = 1000, conflicts_with = "shop", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pages: u32,
    /// Server worker threads.
    #[arg(long, short = 't', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Serve the demo shop instead: N sites named shop-{i}.localhost on one listener, product
    /// pages whose prices change, ETag/Last-Modified and 304s, robots.txt per host.
    #[arg(long)]
    pub shop: bool,
    /// Shop: number of hosts (shop-0.localhost ...).
    #[arg(long, requires = "shop", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub hosts: u32,
    /// Shop: product pages per host (/product/0 ...).
    #[arg(long, requires = "shop", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub products_per_host: u32,
    /// Shop: share of the products whose price and/or availability changes each period (0 to 1).
    #[arg(long, requires = "shop", default_value_t = 0.1, value_parser = share)]
    pub change_share: f64,
    /// Shop: length of a period (30s, 5m, 2h, 1500ms; at least 100ms; 0s: prices never change).
    #[arg(long, requires = "shop", default_value = "60s", value_parser = period)]
    pub change_every: std::time::Duration,
    /// Shop: seed everything is generated from.
    #[arg(long, requires = "shop", default_value_t = 42)]
    pub seed: u64,
    /// Shop: delay every response by this much (e.g. 50ms), as a real site would.
    #[arg(long, requires = "shop", default_value = "0s", value_parser = duration)]
    pub latency: std::time::Duration,
    /// Shop: write every product URL here, one per line (the monitor's --input).
    #[arg(long, requires = "shop", value_name = "FILE")]
    pub urls_out: Option<PathBuf>,
    /// Shop: write the extraction rules for the pages without structured data here (the
    /// monitor's --rules).
    #[arg(long, requires = "shop", value_name = "FILE")]
    pub rules_out: Option<PathBuf>,
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1 (0.1 is 10 %)".into())
    }
}

/// A change period: zero (never) or at least 100 ms, since a page's state is replayed over every
/// epoch so far (a few nanoseconds each) and a tiny period would make that grow without need.
fn period(s: &str) -> Result<std::time::Duration, String> {
    let d = duration(s)?;
    if d.is_zero() || d >= std::time::Duration::from_millis(100) {
        Ok(d)
    } else {
        Err("must be 0s (never) or at least 100ms".into())
    }
}

pub(crate) fn duration(s: &str) -> Result<std::time::Duration, String> {
    scraipe::util::parse_duration(s).map_err(|e| e.to_string())
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
    /// Ask a language model (see the LLM analysis options); the output is its JSON answer.
    Llm,
}

/// Checks a proxy URL (kept as text: the parsed form is built with the client).
fn parse_proxy(s: &str) -> Result<String, String> {
    scraipe::http::Proxy::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.message().to_string())
}

/// `Name: value` → (name, value), validated like the client validates request headers.
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not 'Name: value'"))?;
    let (name, value) = (name.trim(), value.trim_matches(|c| c == ' ' || c == '\t'));
    scraipe::http::Headers::check_request_header(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err("must be more than 0 and at most 86400 seconds".into())
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

impl CliError {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Scrape(args) => scrape::run(*args),
        Command::Demo(DemoArgs {
            what: Some(DemoWhat::Monitor(args)),
            ..
        }) => demo_monitor::run(args).map_err(CliError::from),
        // Refused before the demo site starts, like `monitor run --observe`: a usage error.
        Command::Demo(args) if args.observe.is_some() && !cfg!(feature = "observatory") => Err(
            CliError::usage("--observe needs scraipe built with `--features observatory`"),
        ),
        Command::Demo(args) => demo::run(args).map_err(CliError::from),
        Command::Monitor(args) => monitor::run(*args),
        Command::ServeDemo(args) if args.shop => serve_shop::run(args),
        Command::Observe(args) => observe::run(args).map_err(CliError::from),
        Command::ServeDemo(args) => {
            scraipe::demo::serve_forever(args.port, args.pages as usize, args.threads as usize)
                .map_err(|e| {
                    format!("could not serve the demo site on port {}: {e}", args.port).into()
                })
        }
    }
}

/// Writes one line to standard output for [`outln!`].
pub fn out_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
