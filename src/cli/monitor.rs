//! `scraipe monitor run|export|status|report`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use scraipe::llm::{LlmCache, LlmTotals};
use scraipe::monitor::store::{RedisOptions, RedisStore, SqliteStore, Store};
use scraipe::monitor::{Monitor, Progress};
use scraipe::offer::{offer_schema, Rules, OFFER_INSTRUCTION};

use super::{CliError, LlmServerArgs};

/// `scraipe monitor ...`
#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Debug, Subcommand)]
enum MonitorCommand {
    /// Check the watch list: once (`--once`), or every `--every` until SIGINT/SIGTERM.
    Run(Box<RunArgs>),
    /// Write the observation history as CSV or JSONL.
    Export(ExportArgs),
    /// Summarise the watch list: links, due now, failing, last change.
    Status(StatusArgs),
    /// Write one self-contained HTML page: a price chart per product and the latest changes.
    Report(ReportArgs),
}

/// Arguments of `scraipe monitor run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The watch list: one URL per line ('-' for standard input), '#' comments. Links missing
    /// from a later input are deactivated (their history is kept).
    #[arg(long, short = 'i', value_name = "URLS")]
    input: String,
    #[command(flatten)]
    store: StoreArgs,
    /// With --redis: how long a claimed link stays this worker's before another may take it
    /// (renewed while the check runs; it runs out only when the worker dies).
    #[arg(long, default_value = "60s", value_parser = super::duration)]
    lease: Duration,
    /// With --redis: keep at most this many observations per link, dropping the oldest (0: all;
    /// Redis holds history in memory, about 300 bytes per observation).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_history: usize,
    /// Site rules for extraction (TOML, `[[site]]` entries).
    #[arg(long, value_name = "RULES.toml")]
    rules: Option<PathBuf>,
    /// A link is due when its last check is older than this (500ms, 30s, 5m, 2h, 1h30m; 0s: always due).
    #[arg(long, default_value = "5m", value_parser = super::duration)]
    every: Duration,
    /// Check every link that is due now, then exit.
    #[arg(long)]
    once: bool,
    /// Append change events here as JSON lines (default: standard output).
    #[arg(long, value_name = "EVENTS.jsonl")]
    changes: Option<PathBuf>,
    /// POST each change event as JSON to this URL (retried; undelivered events wait in the
    /// database for the next run).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Checks in flight at once.
    #[arg(long, short = 'c', default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// Requests in flight at once per host.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    per_host: u32,
    /// Whole-request deadline in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = super::positive_secs)]
    timeout: f64,
    /// Retries of transient failures (connection errors, 429/502/503/504) per request, with
    /// jittered backoff; a Retry-After of up to 2 s is waited out, a longer one holds the host
    /// and the link back instead.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10))]
    retries: u32,
    /// User-Agent header; its first word selects the robots.txt group.
    #[arg(long, value_name = "UA")]
    user_agent: Option<String>,
    /// Send requests through this proxy (http://, socks5://, socks5h://; user:pass@
    /// for credentials). Without it the environment's proxies apply (http_proxy, https_proxy,
    /// all_proxy, no_proxy).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Extra trusted root certificate(s), PEM. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    ca_certs: Vec<PathBuf>,
    /// Do not fetch or obey robots.txt.
    #[arg(long)]
    ignore_robots: bool,
    /// No status line, no summary.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Serve the executor observatory of the monitor's runtime on this address (e.g.
    /// 127.0.0.1:6669), with the scheduler trace on; watch it with `scraipe observe ADDR` or a
    /// browser. Needs a build with `--features observatory`.
    #[arg(long, value_name = "ADDR")]
    observe: Option<std::net::SocketAddr>,
    /// The model for `extract = "llm"` rules (--llm-model is required when the rules file has
    /// one). Its answers are cached in the database (with --redis: in memory, for the run).
    #[command(
        flatten,
        next_help_heading = "LLM extraction (extract = \"llm\" rules)"
    )]
    llm: LlmServerArgs,
}

/// Where the state is: exactly one of `--db` and `--redis`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StoreArgs {
    /// The state database (SQLite; `run` creates it if missing).
    #[arg(long, value_name = "STATE.sqlite")]
    db: Option<PathBuf>,
    /// Keep the state in Redis instead: any number of `monitor run` workers, on any machines,
    /// share the watch list, each link checked once per window (see README, "Redis").
    #[arg(long, value_name = "redis://HOST:PORT/DB")]
    redis: Option<String>,
}

/// An open store, and what keeps it ours.
enum Opened {
    /// The lock file is held (not read) for the run's lifetime.
    Sqlite(Arc<SqliteStore>, #[allow(dead_code)] Option<File>),
    Redis(Arc<RedisStore>),
}

impl Opened {
    /// Opens the store. `run`: create a missing database and take its lock.
    fn open(args: &StoreArgs, run: bool, keep_history: usize) -> Result<Opened, CliError> {
        match (&args.db, &args.redis) {
            (Some(db), _) => {
                if run {
                    let lock = lock_database(db)?;
                    let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
                    Ok(Opened::Sqlite(Arc::new(store), Some(lock)))
                } else {
                    let store = SqliteStore::open_existing(db).map_err(|e| e.to_string())?;
                    Ok(Opened::Sqlite(Arc::new(store), None))
                }
            }
            (None, Some(url)) => Ok(Opened::Redis(Arc::new(
                RedisStore::open_with(
                    url,
                    RedisOptions {
                        history_limit: keep_history,
                        ..RedisOptions::default()
                    },
                )
                .map_err(|e| e.to_string())?,
            ))),
            (None, None) => Err(CliError {
                code: 2,
                message: "one of --db and --redis is required".into(),
            }),
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Sqlite(s, _) => s.clone(),
            Opened::Redis(s) => s.clone(),
        }
    }

    /// Writes everything queued.
    fn close(&self) {
        match self {
            Opened::Sqlite(s, _) => s.close(),
            Opened::Redis(s) => s.close(),
        }
    }
}

/// Arguments of `scraipe monitor export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Write here (CSV for a .csv name, else JSONL) instead of standard output (JSONL).
    #[arg(long, short = 'o', value_name = "HISTORY.csv|.jsonl")]
    output: Option<PathBuf>,
    /// Only this link's history.
    #[arg(long, value_name = "URL")]
    link: Option<String>,
}

/// Arguments of `scraipe monitor status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `scraipe monitor report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The HTML file to write.
    #[arg(long, short = 'o', value_name = "REPORT.html")]
    output: PathBuf,
}

/// Runs a monitor subcommand.
pub fn run(args: MonitorArgs) -> Result<(), CliError> {
    match args.command {
        MonitorCommand::Run(a) => run_monitor(*a),
        MonitorCommand::Export(a) => export(a),
        MonitorCommand::Status(a) => status(a),
        MonitorCommand::Report(a) => report(a),
    }
}

/// The http(s) links of the input, in order, without duplicates; the rest is reported.
fn watch_list(input: &str) -> Result<Vec<String>, CliError> {
    let lines = super::scrape::collect_links(&[], Some(input))?;
    let mut links = Vec::with_capacity(lines.len());
    let mut skipped = Vec::new();
    for line in lines {
        match url::Url::parse(&line) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                links.push(line)
            }
            _ => skipped.push(line),
        }
    }
    if let Some(first) = skipped.first() {
        eprintln!(
            "warning: skipped {} input line(s) that are not http(s) URLs (first: {first:?})",
            skipped.len()
        );
    }
    Ok(links)
}

fn status_line(p: &Progress) -> String {
    format!(
        "checked {} · unchanged {} ({} × 304, {} same body) · changed {} · failed {} · disallowed {} · {:.0} checks/s · {} in flight",
        p.checked,
        p.unchanged,
        p.not_modified,
        p.same_body,
        p.changed,
        p.failed,
        p.disallowed,
        p.per_sec,
        p.in_flight
    )
}

/// One `monitor run` per database: two would check every link twice and race on the schedule.
/// An advisory `flock` on `STATE.sqlite.lock`, released when the process exits (even by
/// `kill -9`), so a crash never leaves a stale lock behind.
fn lock_database(db: &std::path::Path) -> Result<File, CliError> {
    use std::os::fd::AsRawFd;
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| format!("cannot create the lock file {name:?}: {e}"))?;
    // SAFETY: flock on a file descriptor we own and keep open for the returned File's lifetime.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "another `scraipe monitor run` is using the database '{}'",
            db.display()
        )
        .into());
    }
    Ok(file)
}

fn run_monitor(args: RunArgs) -> Result<(), CliError> {
    if args.observe.is_some() && !cfg!(feature = "observatory") {
        return Err(CliError::usage(
            "--observe needs scraipe built with `--features observatory`",
        ));
    }
    let links = watch_list(&args.input)?;
    let rules = match &args.rules {
        Some(path) => Rules::load(path).map_err(|e| format!("unusable rules file: {e}"))?,
        None => Rules::default(),
    };
    let llm_model = match (&args.llm.llm_model, rules.uses_llm()) {
        (Some(model), true) => Some(model.clone()),
        (None, true) => {
            return Err(CliError::usage(
                "the rules file has extract = \"llm\" entries: give the model with --llm-model NAME \
                 (and --llm-provider openai|gemini, --llm-url URL for a server other than OpenAI's)",
            ))
        }
        (Some(_), false) => {
            eprintln!(
                "warning: --llm-model is ignored: no rule in the rules file says extract = \"llm\""
            );
            None
        }
        (None, false) => None,
    };
    let changes: Box<dyn Write + Send> = match &args.changes {
        Some(path) => Box::new(BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot write the changes file '{}': {e}", path.display()))?,
        )),
        None => Box::new(io::stdout()),
    };
    if let Some(hook) = &args.webhook {
        match url::Url::parse(hook) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(CliError {
                    code: 2,
                    message: format!("--webhook {hook:?} is not an http(s) URL"),
                })
            }
        }
    }
    let opened = Opened::open(&args.store, true, args.keep_history)?;
    let store = opened.store();
    let mut builder = Monitor::builder(store.clone())
        .every(args.every)
        .once(args.once)
        .concurrency(args.concurrency as usize)
        .per_host(args.per_host as usize)
        .timeout(Duration::from_secs_f64(args.timeout))
        .retries(args.retries)
        .ignore_robots(args.ignore_robots)
        .lease(args.lease)
        .rules(Arc::new(rules))
        .changes_to(changes)
        .stop_when(super::signals::requested);
    if let Some(ua) = &args.user_agent {
        builder = builder.user_agent(ua.clone());
    }
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.clone());
    }
    if let Some(hook) = &args.webhook {
        builder = builder.webhook(hook.clone());
    }
    let mut ca_pems = Vec::new();
    for path in &args.ca_certs {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA certificate '{}': {e}", path.display()))?;
        builder = builder.ca_cert_pem(pem.clone());
        ca_pems.push(pem);
    }
    let llm_totals = Arc::new(LlmTotals::new());
    if let Some(model) = &llm_model {
        let net = super::llm::Net {
            ca_pems: &ca_pems,
            proxy: args.proxy.as_deref(),
            no_proxy: false,
        };
        let mut llm = super::llm::builder(
            &args.llm,
            model,
            OFFER_INSTRUCTION.to_string(),
            &net,
            llm_totals.clone(),
        )?
        .schema(offer_schema());
        // With SQLite the answers outlive the run; Redis keeps the analyzer's in-memory cache.
        if let Opened::Sqlite(db, _) = &opened {
            llm = llm.cache(db.clone() as Arc<dyn LlmCache>);
        }
        let llm = llm
            .build()
            .map_err(|e| CliError::usage(e.message().to_string()))?;
        builder = builder.llm(Arc::new(llm));
    }
    let bar = (!args.quiet && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    if let Some(bar) = bar.clone() {
        builder = builder.on_progress(move |p| {
            bar.set_message(status_line(p));
            bar.tick();
        });
    }
    // Every setting is checked before the watch list is touched.
    let monitor = builder.build()?;
    let sync = store.sync_watch_list(&links).map_err(|e| e.to_string())?;
    if !args.quiet {
        eprintln!(
            "watch list: {} active ({} new, {} back, {} deactivated)",
            sync.active, sync.added, sync.reactivated, sync.deactivated
        );
    }
    if sync.active == 0 {
        eprintln!("warning: the watch list is empty: nothing to check");
    }
    super::signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let _observatory = super::observe::start(args.observe, || monitor.handle())?;
    let summary = monitor.run()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    opened.close();
    if !args.quiet {
        eprintln!(
            "monitor: {} in {:.1} s; {} change event(s) delivered{}{}",
            status_line(&summary.progress),
            summary.elapsed.as_secs_f64(),
            summary.events_delivered,
            if summary.events_waiting > 0 {
                format!(
                    ", {} waiting for the webhook (delivered on the next run)",
                    summary.events_waiting
                )
            } else {
                String::new()
            },
            if summary.abandoned > 0 {
                format!(
                    "; {} check(s) abandoned at the stop (redone next time)",
                    summary.abandoned
                )
            } else {
                String::new()
            }
        );
        if llm_model.is_some() {
            eprintln!("{}", llm_totals.snapshot());
        }
    }
    Ok(())
}

fn export(args: ExportArgs) -> Result<(), CliError> {
    use scraipe::monitor::export::{export_history, ExportFormat};
    let opened = Opened::open(&args.store, false, 0)?;
    let store = opened.store();
    let csv = args
        .output
        .as_ref()
        .and_then(|p| p.extension())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let format = if csv {
        ExportFormat::Csv
    } else {
        ExportFormat::Jsonl
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path).map_err(|e| {
            format!("cannot write the export file '{}': {e}", path.display())
        })?)),
        None => Box::new(io::stdout().lock()),
    };
    match export_history(&*store, args.link.as_deref(), format, &mut out) {
        Ok(_) => Ok(()),
        // `... export | head` closing the pipe early is not an error.
        Err(e) if args.output.is_none() && e.0.contains("Broken pipe") => Ok(()),
        Err(e) => Err(e.to_string().into()),
    }
}

fn status(args: StatusArgs) -> Result<(), CliError> {
    use scraipe::monitor::{now_ms, rfc3339};
    let opened = Opened::open(&args.store, false, 0)?;
    let store = opened.store();
    let s = store.status(now_ms()).map_err(|e| e.to_string())?;
    let every = s
        .every_ms
        .map(|ms| format!("{} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "5 m (default; no run yet)".into());
    outln!(
        "links:         {} active, {} inactive",
        s.active_links,
        s.inactive_links
    );
    outln!("due now:       {} (every {every})", s.due_now);
    outln!("never checked: {}", s.never_checked);
    outln!("failing:       {}", s.failing);
    outln!("disallowed:    {}", s.disallowed);
    outln!("observations:  {}", s.observations);
    outln!(
        "events:        {} ({} waiting for delivery)",
        s.events,
        s.pending_events
    );
    outln!(
        "last check:    {}",
        s.last_check_ms
            .map(rfc3339)
            .unwrap_or_else(|| "never".into())
    );
    match &s.last_change {
        Some((at, link)) => outln!("last change:   {} {link}", rfc3339(*at)),
        None => outln!("last change:   none"),
    }
    Ok(())
}

fn report(args: ReportArgs) -> Result<(), CliError> {
    let opened = Opened::open(&args.store, false, 0)?;
    let store = opened.store();
    let mut html = String::new();
    let (charts, events) =
        scraipe::monitor::report::write_report(&*store, &mut html).map_err(|e| e.to_string())?;
    std::fs::write(&args.output, html)
        .map_err(|e| format!("cannot write the report '{}': {e}", args.output.display()))?;
    eprintln!(
        "report: {} product chart(s), {} latest change(s) → {}",
        charts,
        events,
        args.output.display()
    );
    Ok(())
}
