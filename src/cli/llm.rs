//! The LLM analyzer from the command line's options: `scrape --analyzer llm`, and `monitor
//! run` for `extract = "llm"` rules (both through [`builder`]).

use std::sync::Arc;
use std::time::Duration;

use scraipe::http::{Client, Proxy};
use scraipe::llm::{
    Budget, GeminiAnalyzer, LlmAnalyzer, LlmAnalyzerBuilder, LlmTotals, OpenAiAnalyzer,
};

use super::{CliError, LlmArgs, LlmProvider, LlmServerArgs};

/// Refuses LLM options given without `--analyzer llm` (they would silently do nothing).
pub fn check_unused(args: &LlmArgs) -> Result<(), CliError> {
    let server = &args.server;
    let given = [
        ("--llm-provider", server.llm_provider.is_some()),
        ("--llm-url", server.llm_url.is_some()),
        ("--llm-model", server.llm_model.is_some()),
        ("--instruction", args.instruction.is_some()),
        ("--schema", args.schema.is_some()),
        ("--llm-rpm", server.llm_rpm.is_some()),
        ("--llm-tpm", server.llm_tpm.is_some()),
        // Options with defaults: given when not the default (the default given explicitly
        // is harmless to ignore).
        (
            "--llm-max-content",
            server.llm_max_content != super::LLM_MAX_CONTENT,
        ),
        (
            "--llm-concurrency",
            server.llm_concurrency != super::LLM_CONCURRENCY,
        ),
        (
            "--llm-timeout",
            server.llm_timeout != super::LLM_TIMEOUT_SECS,
        ),
        ("--llm-retries", server.llm_retries != super::LLM_RETRIES),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(CliError::usage(format!(
            "{flag} only applies with --analyzer llm"
        ))),
        None => Ok(()),
    }
}

/// How the model server is reached: the run's own network options (`--ca-cert`, `--proxy`,
/// `--no-proxy`), so the LLM calls go where the page requests go.
pub struct Net<'a> {
    /// Extra trusted roots, PEM: a self-hosted HTTPS model server.
    pub ca_pems: &'a [Vec<u8>],
    /// `--proxy`.
    pub proxy: Option<&'a str>,
    /// `--no-proxy`: ignore the environment's proxies.
    pub no_proxy: bool,
}

/// Builds the analyzer, reaching the model server as `net` says. Missing or contradictory
/// options are usage errors (exit 2); unreadable files exit 1.
pub fn build(
    args: &LlmArgs,
    net: &Net<'_>,
    totals: Arc<LlmTotals>,
) -> Result<LlmAnalyzer, CliError> {
    let model = args
        .server
        .llm_model
        .as_deref()
        .ok_or_else(|| CliError::usage("--analyzer llm needs --llm-model NAME"))?;
    let instruction = args
        .instruction
        .as_deref()
        .ok_or_else(|| CliError::usage("--analyzer llm needs --instruction TEXT (or @FILE)"))?;
    let instruction = match instruction.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read instruction file '{path}': {e}"))?,
        None => instruction.to_string(),
    };
    if instruction.trim().is_empty() {
        return Err(CliError::usage("--instruction is empty"));
    }
    let mut builder = builder(&args.server, model, instruction, net, totals)?;
    if let Some(path) = &args.schema {
        if !path.is_file() {
            return Err(format!("cannot read schema file '{}'", path.display()).into());
        }
        builder = builder.schema_file(path);
    }
    builder
        .build()
        .map_err(|e| CliError::usage(e.message().to_string()))
}

/// An analyzer builder for `model` with the server, budget and client options set; the
/// caller adds the schema (and the cache) and builds.
pub fn builder(
    args: &LlmServerArgs,
    model: &str,
    instruction: String,
    net: &Net<'_>,
    totals: Arc<LlmTotals>,
) -> Result<LlmAnalyzerBuilder, CliError> {
    let budget = Budget {
        max_workers: args.llm_concurrency as usize,
        requests_per_minute: args.llm_rpm,
        tokens_per_minute: args.llm_tpm,
        max_retries: args.llm_retries,
        call_timeout: Duration::from_secs_f64(args.llm_timeout),
        ..Budget::default()
    };
    // Our own client, so --ca-cert covers a self-hosted HTTPS model server too.
    let mut client = Client::builder()
        .timeout(budget.call_timeout + Duration::from_secs(5))
        .read_timeout(budget.call_timeout + Duration::from_secs(5))
        .max_body_size(budget.max_reply_bytes)
        .max_connections_per_host(budget.max_workers);
    for pem in net.ca_pems {
        client = client.add_root_certificate_pem(pem);
    }
    if let Some(proxy) = net.proxy {
        let proxy = Proxy::parse(proxy).map_err(|e| CliError::usage(e.message().to_string()))?;
        client = client.proxy(proxy);
    }
    if net.no_proxy {
        client = client.no_proxy();
    }
    let client = client
        .build()
        .map_err(|e| format!("cannot set up the LLM client: {}", e.message()))?;
    let mut builder = match args.llm_provider.unwrap_or(LlmProvider::Openai) {
        LlmProvider::Openai => OpenAiAnalyzer::builder(instruction),
        LlmProvider::Gemini => GeminiAnalyzer::builder(instruction),
    }
    .model(model)
    .max_content_size(args.llm_max_content as usize)
    .budget(budget)
    .client(client)
    .totals(totals);
    if let Some(url) = &args.llm_url {
        builder = builder.base_url(url.clone());
    }
    Ok(builder)
}
