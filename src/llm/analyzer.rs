//! [`LlmAnalyzer`]: asks a model to analyse content, validates the answer, and keeps to its
//! [`Budget`]. [`OpenAiAnalyzer`] and [`GeminiAnalyzer`] are Python Scraipe's names for it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::http::{self, Client, ErrorKind};
use crate::results::{AnalysisResult, JsonMap};
use crate::rt::{self, sync::Semaphore};
use crate::traits::AsyncAnalyzer;

use super::breaker::{self, Breaker, Failure};
use super::budget::{estimate_tokens, Budget, RateLimiter};
use super::cache::{CacheKey, LlmCache, MemoryCache};
use super::gemini::{GeminiProvider, GEMINI_BASE_URL};
use super::openai::{OpenAiProvider, OPENAI_BASE_URL};
use super::provider::{error_message, retry_delay_in_body, Completion, Prompt, Provider};
use super::retry::{backoff, is_retryable_status, parse_retry_after};
use super::schema::{parse_object, OutputSchema};
use super::secret::{scrub, ApiKey};
use super::totals::LlmTotals;

/// Python Scraipe's default `max_content_size`, in characters.
pub const DEFAULT_MAX_CONTENT: usize = 10_000;

/// A configuration the analyzer cannot work with (no key, a bad schema...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfigError(String);

impl LlmConfigError {
    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LlmConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LlmConfigError {}

/// Python Scraipe's `OpenAiAnalyzer`: an [`LlmAnalyzer`] over OpenAI's Chat Completions, or
/// any server that speaks them (set [`base_url`](LlmAnalyzerBuilder::base_url)).
pub struct OpenAiAnalyzer;

// These two types are only Python's class names, kept as constructors: what they build is an
// `LlmAnalyzer`, so `new` deliberately returns that rather than `Self`.
#[allow(clippy::new_ret_no_self)]
impl OpenAiAnalyzer {
    /// As in Python: an instruction, an optional JSON Schema for the answers, the key from
    /// `OPENAI_API_KEY`, model `gpt-4o-mini`, 10,000 characters of content, 3 workers.
    pub fn new(
        instruction: impl Into<String>,
        schema: Option<Value>,
    ) -> Result<LlmAnalyzer, LlmConfigError> {
        let mut b = OpenAiAnalyzer::builder(instruction);
        if let Some(s) = schema {
            b = b.schema(s);
        }
        b.build()
    }

    /// A builder to set the rest (model, server, key, budgets, cache).
    pub fn builder(instruction: impl Into<String>) -> LlmAnalyzerBuilder {
        LlmAnalyzerBuilder::new(ProviderKind::OpenAi, instruction.into())
    }
}

/// Python Scraipe's `GeminiAnalyzer`: an [`LlmAnalyzer`] over Gemini's `generateContent`.
pub struct GeminiAnalyzer;

#[allow(clippy::new_ret_no_self)]
impl GeminiAnalyzer {
    /// As in Python: an instruction, an optional JSON Schema, the key from `GEMINI_API_KEY`,
    /// model `gemini-2.0-flash`, 10,000 characters of content, 3 workers.
    pub fn new(
        instruction: impl Into<String>,
        schema: Option<Value>,
    ) -> Result<LlmAnalyzer, LlmConfigError> {
        let mut b = GeminiAnalyzer::builder(instruction);
        if let Some(s) = schema {
            b = b.schema(s);
        }
        b.build()
    }

    /// A builder to set the rest.
    pub fn builder(instruction: impl Into<String>) -> LlmAnalyzerBuilder {
        LlmAnalyzerBuilder::new(ProviderKind::Gemini, instruction.into())
    }
}

enum ProviderKind {
    OpenAi,
    Gemini,
    Custom(Arc<dyn Provider>),
}

/// Configures an [`LlmAnalyzer`]. Start from [`OpenAiAnalyzer::builder`],
/// [`GeminiAnalyzer::builder`] or [`LlmAnalyzer::with_provider`].
///
/// ```
/// use std::time::Duration;
/// use scraipe::llm::OpenAiAnalyzer;
/// use serde_json::json;
///
/// let analyzer = OpenAiAnalyzer::builder("Extract the product name and price.")
///     .base_url("http://127.0.0.1:11434/v1") // a local Ollama: no key needed
///     .model("llama3.1")
///     .schema(json!({
///         "type": "object",
///         "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
///         "required": ["name", "price"]
///     }))
///     .max_content_size(4_000)
///     .max_workers(2)
///     .requests_per_minute(60)
///     .call_timeout(Duration::from_secs(20))
///     .build()
///     .unwrap();
/// assert_eq!(analyzer.model(), "llama3.1");
/// ```
pub struct LlmAnalyzerBuilder {
    kind: ProviderKind,
    base_url: Option<String>,
    key: Option<ApiKey>,
    instruction: String,
    schema: Option<Result<OutputSchema, String>>,
    model: Option<String>,
    max_content_size: usize,
    budget: Budget,
    client: Option<Client>,
    cache: Option<Arc<dyn LlmCache>>,
    use_cache: bool,
    totals: Option<Arc<LlmTotals>>,
}

impl fmt::Debug for LlmAnalyzerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmAnalyzerBuilder")
            .field("base_url", &self.base_url)
            .field("key", &self.key)
            .field("model", &self.model)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl LlmAnalyzerBuilder {
    fn new(kind: ProviderKind, instruction: String) -> LlmAnalyzerBuilder {
        LlmAnalyzerBuilder {
            kind,
            base_url: None,
            key: None,
            instruction,
            schema: None,
            model: None,
            max_content_size: DEFAULT_MAX_CONTENT,
            budget: Budget::default(),
            client: None,
            cache: None,
            use_cache: true,
            totals: None,
        }
    }

    /// The server (default: the provider's official API). Not used with a custom provider.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key (default: `OPENAI_API_KEY` or `GEMINI_API_KEY` from the environment).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(ApiKey::new(key));
        self
    }

    /// The model (default `gpt-4o-mini` / `gemini-2.0-flash`, Python Scraipe's).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The JSON Schema answers must match (compiled at [`build`](Self::build)).
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(OutputSchema::new(schema));
        self
    }

    /// The JSON Schema, from a file.
    pub fn schema_file(mut self, path: impl AsRef<Path>) -> Self {
        self.schema = Some(OutputSchema::from_file(path));
        self
    }

    /// An already compiled schema.
    pub fn output_schema(mut self, schema: OutputSchema) -> Self {
        self.schema = Some(Ok(schema));
        self
    }

    /// Characters of content sent (the rest is cut off, on a character boundary, and the
    /// result's metadata says so). Default 10,000.
    pub fn max_content_size(mut self, chars: usize) -> Self {
        self.max_content_size = chars.max(1);
        self
    }

    /// Calls in flight at once (default 3).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.budget.max_workers = n.max(1);
        self
    }

    /// Requests started per minute, evenly spaced.
    pub fn requests_per_minute(mut self, rpm: u32) -> Self {
        self.budget.requests_per_minute = Some(rpm.max(1));
        self
    }

    /// Tokens per minute, from the replies' usage.
    pub fn tokens_per_minute(mut self, tpm: u64) -> Self {
        self.budget.tokens_per_minute = Some(tpm.max(1));
        self
    }

    /// Retries after a 429, 5xx, timeout or connection failure (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.budget.max_retries = n;
        self
    }

    /// Limit on one call (default 60 s).
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.budget.call_timeout = d;
        self
    }

    /// All limits at once.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The HTTP client (default: one built for the budget's timeout and reply size).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Where answers are cached (default: a [`MemoryCache`] of 10,000 answers).
    pub fn cache(mut self, cache: Arc<dyn LlmCache>) -> Self {
        self.cache = Some(cache);
        self.use_cache = true;
        self
    }

    /// Ask the model every time.
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self.use_cache = false;
        self
    }

    /// Counters to add this analyzer's calls to (default: its own; see
    /// [`LlmAnalyzer::totals`]).
    pub fn totals(mut self, totals: Arc<LlmTotals>) -> Self {
        self.totals = Some(totals);
        self
    }

    /// Builds the analyzer. Fails on an invalid schema, an unusable URL, or a missing key
    /// for an official API.
    pub fn build(self) -> Result<LlmAnalyzer, LlmConfigError> {
        let err = |m: String| LlmConfigError(m);
        let (provider, env_var, default_model): (Arc<dyn Provider>, Option<&str>, &str) =
            match self.kind {
                ProviderKind::OpenAi => {
                    let url = self.base_url.as_deref().unwrap_or(OPENAI_BASE_URL);
                    check_url(url)?;
                    let p = OpenAiProvider::new(url);
                    (Arc::new(p), Some("OPENAI_API_KEY"), "gpt-4o-mini")
                }
                ProviderKind::Gemini => {
                    let url = self.base_url.as_deref().unwrap_or(GEMINI_BASE_URL);
                    check_url(url)?;
                    (
                        Arc::new(GeminiProvider::new(url)),
                        Some("GEMINI_API_KEY"),
                        "gemini-2.0-flash",
                    )
                }
                ProviderKind::Custom(p) => (p, None, ""),
            };
        let model = self.model.unwrap_or_else(|| default_model.to_string());
        if model.trim().is_empty() {
            return Err(err("no model given".into()));
        }
        if self.instruction.trim().is_empty() {
            return Err(err("the instruction is empty".into()));
        }
        let schema = self.schema.transpose().map_err(err)?;
        let key = self.key.or_else(|| env_var.and_then(ApiKey::from_env));
        if key.is_none() && !provider.key_optional() {
            return Err(err(format!(
                "no API key for {}: set {} or pass one to the builder",
                provider.name(),
                env_var.unwrap_or("one")
            )));
        }
        let budget = self.budget;
        let client = match self.client {
            Some(c) => c,
            None => Client::builder()
                // Our own race against call_timeout fires first, with a clearer message.
                .timeout(budget.call_timeout + Duration::from_secs(5))
                .read_timeout(budget.call_timeout + Duration::from_secs(5))
                .max_body_size(budget.max_reply_bytes)
                .max_connections_per_host(budget.max_workers.max(1))
                .build()
                .map_err(|e| err(format!("cannot set up the HTTP client: {e}")))?,
        };
        let cache = match (self.use_cache, self.cache) {
            (false, _) => None,
            (true, Some(c)) => Some(c),
            (true, None) => Some(Arc::new(MemoryCache::default()) as Arc<dyn LlmCache>),
        };
        Ok(LlmAnalyzer {
            limiter: RateLimiter::new(budget.requests_per_minute, budget.tokens_per_minute),
            workers: Semaphore::new(budget.max_workers.max(1)),
            provider,
            key,
            instruction: self.instruction,
            schema,
            model,
            max_content_size: self.max_content_size,
            budget,
            client,
            cache,
            totals: self.totals.unwrap_or_default(),
            breaker: Breaker::default(),
        })
    }
}

fn check_url(url: &str) -> Result<(), LlmConfigError> {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(LlmConfigError(format!(
            "the LLM server URL must be http:// or https://, not {url:?}"
        ))),
        Err(e) => Err(LlmConfigError(format!(
            "the LLM server URL {url:?} is invalid: {e}"
        ))),
    }
}

/// Asks a model to analyse each piece of content and returns its answer — a JSON object,
/// validated against the schema when there is one — as the [`AnalysisResult`]'s output.
///
/// Metadata of every result: `provider`, `model` (the one that answered, when the server
/// says), `latency_ms`, `attempts`, `prompt_tokens`, `completion_tokens`, `total_tokens`,
/// `output_mode`, `cached`, `truncated`, `content_chars` (and `original_chars` when cut).
///
/// It is an [`AsyncAnalyzer`], so [`Analyzer`](crate::Analyzer) too: use it in a
/// [`Workflow`](crate::Workflow) or call `analyze` directly. Calls are limited by its
/// [`Budget`] whoever makes them (several workflows sharing one analyzer share its budget).
///
/// ```
/// use scraipe::llm::{fake::FakeLlmServer, OpenAiAnalyzer};
/// use scraipe::Analyzer;
/// use serde_json::json;
///
/// // A fake OpenAI-compatible server on loopback that answers every call with this object.
/// let server = FakeLlmServer::start().unwrap();
/// server.always(json!({"sentiment": "positive"}));
/// let analyzer = OpenAiAnalyzer::builder("Classify the sentiment.")
///     .base_url(server.openai_url())
///     .schema(json!({"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative"]}}}))
///     .build()
///     .unwrap();
/// let result = analyzer.analyze("What a lovely day!");
/// assert_eq!(result.output().unwrap()["sentiment"], "positive");
/// assert_eq!(result.metadata().unwrap()["cached"], false);
/// // The same content again: answered from the cache.
/// assert_eq!(analyzer.analyze("What a lovely day!").metadata().unwrap()["cached"], true);
/// assert_eq!(server.requests().len(), 1);
/// ```
pub struct LlmAnalyzer {
    provider: Arc<dyn Provider>,
    key: Option<ApiKey>,
    instruction: String,
    schema: Option<OutputSchema>,
    model: String,
    max_content_size: usize,
    budget: Budget,
    client: Client,
    limiter: RateLimiter,
    workers: Semaphore,
    cache: Option<Arc<dyn LlmCache>>,
    totals: Arc<LlmTotals>,
    /// Stops calling a server that fails every call the same way (see `breaker.rs`).
    breaker: Breaker,
}

impl fmt::Debug for LlmAnalyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmAnalyzer")
            .field("provider", &self.provider)
            .field("key", &self.key)
            .field("model", &self.model)
            .field("instruction", &self.instruction)
            .field("schema", &self.schema)
            .field("max_content_size", &self.max_content_size)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Why a call gave up.
struct CallError {
    message: String,
    attempts: u32,
}

impl LlmAnalyzer {
    /// A builder over any [`Provider`] (no key from the environment: pass one with
    /// [`api_key`](LlmAnalyzerBuilder::api_key) if the provider needs it).
    pub fn with_provider(
        provider: Arc<dyn Provider>,
        instruction: impl Into<String>,
    ) -> LlmAnalyzerBuilder {
        LlmAnalyzerBuilder::new(ProviderKind::Custom(provider), instruction.into())
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The limits in force.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The running totals of this analyzer's calls (shared with whoever passed them to
    /// [`LlmAnalyzerBuilder::totals`]).
    pub fn totals(&self) -> Arc<LlmTotals> {
        self.totals.clone()
    }

    /// The cache key content would have (after truncation), for stores that want to look
    /// answers up themselves.
    pub fn cache_key(&self, content: &str) -> CacheKey {
        let (sent, _) = truncate(content, self.max_content_size);
        CacheKey::new(
            &self.model,
            &self.instruction,
            self.schema.as_ref().map(OutputSchema::as_str),
            sent,
        )
    }

    /// Analyses one piece of content: the body of [`AsyncAnalyzer::async_analyze`].
    pub async fn analyze_content(&self, content: &str) -> AnalysisResult {
        let started = Instant::now();
        self.totals.analysis();
        let (sent, original_chars) = truncate(content, self.max_content_size);
        let mut meta = JsonMap::new();
        meta.insert("provider".into(), json!(self.provider.name()));
        meta.insert("model".into(), json!(self.model));
        meta.insert("truncated".into(), json!(original_chars.is_some()));
        meta.insert(
            "content_chars".into(),
            json!(original_chars.map_or_else(|| sent.chars().count(), |_| self.max_content_size)),
        );
        if let Some(n) = original_chars {
            meta.insert("original_chars".into(), json!(n));
        }
        let key = self.cache.as_ref().map(|_| self.cache_key(content));
        if let Some(hit) = self.cached(key.as_ref(), &mut meta, started) {
            return hit;
        }
        let Ok(_permit) = self.workers.acquire().await else {
            return self.failed("the analyzer is shutting down".into(), meta, started);
        };
        // Another worker may have answered the same content while this one waited.
        if let Some(hit) = self.cached(key.as_ref(), &mut meta, started) {
            return hit;
        }
        meta.insert("cached".into(), json!(false));
        let outcome = self.call(sent).await;
        // After the call: a server may have just made the provider fall back.
        meta.insert(
            "output_mode".into(),
            json!(self.provider.output_mode(self.schema.is_some())),
        );
        let completion = match outcome {
            Ok((completion, attempts)) => {
                meta.insert("attempts".into(), json!(attempts));
                completion
            }
            Err(e) => {
                meta.insert("attempts".into(), json!(e.attempts));
                return self.failed(e.message, meta, started);
            }
        };
        let usage = completion.usage;
        meta.insert("prompt_tokens".into(), json!(usage.prompt_tokens));
        meta.insert("completion_tokens".into(), json!(usage.completion_tokens));
        meta.insert("total_tokens".into(), json!(usage.total_tokens));
        if let Some(m) = &completion.model {
            meta.insert("model".into(), json!(m));
        }
        if let Some(r) = &completion.finish_reason {
            meta.insert("finish_reason".into(), json!(r));
        }
        self.totals
            .tokens(usage.prompt_tokens, usage.completion_tokens);
        let parsed = match &self.schema {
            Some(schema) => schema.parse_reply(&completion.text),
            None => parse_object(&completion.text),
        };
        match parsed {
            Ok(mut output) => {
                // A key the server echoed into the answer must not reach the results (or the
                // cache) either.
                if let Some(api_key) = &self.key {
                    for value in output.values_mut() {
                        scrub_value(api_key, value);
                    }
                }
                if let (Some(cache), Some(key)) = (&self.cache, &key) {
                    cache.put(key, &output);
                }
                self.totals.outcome(true);
                meta.insert("latency_ms".into(), json!(millis(started.elapsed())));
                AnalysisResult::succeed(output).with_metadata(meta)
            }
            Err(message) => {
                let message = match completion.finish_reason.as_deref() {
                    Some("length" | "MAX_TOKENS") => {
                        format!("{message} (the answer was cut off at the model's token limit)")
                    }
                    Some(
                        r @ ("content_filter" | "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT"),
                    ) => {
                        format!("{message} (the provider's filter stopped the answer: {r})")
                    }
                    _ => message,
                };
                self.failed(scrub(self.key.as_ref(), &message), meta, started)
            }
        }
    }

    fn cached(
        &self,
        key: Option<&CacheKey>,
        meta: &mut JsonMap,
        started: Instant,
    ) -> Option<AnalysisResult> {
        let output = self.cache.as_ref()?.get(key?)?;
        self.totals.cache_hit();
        self.totals.outcome(true);
        meta.insert("cached".into(), json!(true));
        meta.insert("latency_ms".into(), json!(millis(started.elapsed())));
        Some(AnalysisResult::succeed(output).with_metadata(meta.clone()))
    }

    fn failed(&self, message: String, mut meta: JsonMap, started: Instant) -> AnalysisResult {
        self.totals.outcome(false);
        meta.insert("latency_ms".into(), json!(millis(started.elapsed())));
        log::debug!("{} analysis failed: {message}", self.provider.name());
        AnalysisResult::fail(message).with_metadata(meta)
    }

    /// Sends the prompt, retrying within the budget. Returns the completion and the number of
    /// attempts it took.
    async fn call(&self, content: &str) -> Result<(Completion, u32), CallError> {
        let schema_value = self.schema.as_ref().map(OutputSchema::value);
        let prompt = Prompt {
            model: &self.model,
            instruction: &self.instruction,
            content,
            schema: schema_value,
        };
        let estimate = estimate_tokens(&[
            &self.instruction,
            content,
            self.schema.as_ref().map_or("", OutputSchema::as_str),
        ]);
        let budget = &self.budget;
        let name = self.provider.name();
        let mut retries = 0u32;
        // Each refusal of a way of asking steps the provider back once; two steps at most
        // (strict schema → loose schema → JSON object).
        let mut adaptations = 0u32;
        if let Some(reason) = self.breaker.refuses(Instant::now()) {
            return Err(CallError {
                message: format!(
                    "not sent: an earlier call failed the way every call would: {reason}"
                ),
                attempts: 0,
            });
        }
        loop {
            self.limiter.acquire(estimate).await;
            let call = self.provider.request(&prompt, self.key.as_ref());
            let url = call.url.clone();
            let mut request = self.client.post(&call.url);
            for (n, v) in &call.headers {
                request = request.header(n.clone(), v.clone());
            }
            let body = serde_json::to_vec(&call.body).unwrap_or_default();
            request = request.body(body);
            self.totals.request();
            log::debug!("{name}: POST {url} (attempt {})", retries + 1);
            let attempt = retries + 1;
            let give_up = |message: String| CallError {
                message: scrub(self.key.as_ref(), &message),
                attempts: attempt,
            };
            // (message, retryable, server-requested delay, what it says about the server)
            let (message, retryable, retry_after, failure) = match rt::timeout(
                budget.call_timeout,
                request.send(),
            )
            .await
            {
                Err(_) => {
                    self.limiter.settle(estimate, 0);
                    (
                        format!(
                            "no reply from {name} within {:.1} s",
                            budget.call_timeout.as_secs_f64()
                        ),
                        true,
                        None,
                        Failure::Unreachable,
                    )
                }
                Ok(Err(e)) => {
                    self.limiter.settle(estimate, 0);
                    let retryable = matches!(
                        e.kind(),
                        ErrorKind::Timeout
                            | ErrorKind::Connect
                            | ErrorKind::Incomplete
                            | ErrorKind::Io
                            | ErrorKind::Dns
                    );
                    let failure = match e.kind() {
                        ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Dns => {
                            Failure::Unreachable
                        }
                        _ => Failure::ThisCall,
                    };
                    (
                        http_message(&e, budget.max_reply_bytes),
                        retryable,
                        None,
                        failure,
                    )
                }
                Ok(Ok(response)) if response.is_success() => {
                    self.breaker.success();
                    return match self.provider.parse(response.body()) {
                        Ok(c) => {
                            let used = if c.usage.total_tokens > 0 {
                                c.usage.total_tokens
                            } else {
                                estimate
                            };
                            self.limiter.settle(estimate, used);
                            Ok((c, attempt))
                        }
                        Err(m) => Err(give_up(m)),
                    };
                }
                Ok(Ok(response)) => {
                    self.limiter.settle(estimate, 0);
                    let status = response.status();
                    let detail = error_message(response.body());
                    // OpenAI's "out of credit" is a 429 that no wait cures.
                    let no_quota = status == 429
                        && String::from_utf8_lossy(response.body()).contains("insufficient_quota");
                    if no_quota {
                        (
                                format!("{name} answered {status} (the account has no quota left): {detail}"),
                                false,
                                None,
                                Failure::Config,
                            )
                    } else if is_retryable_status(status) {
                        let wait = response
                            .header("retry-after")
                            .and_then(|v| parse_retry_after(v, SystemTime::now()))
                            .or_else(|| retry_delay_in_body(response.body()));
                        (
                            format!("{name} answered {status}: {detail}"),
                            true,
                            wait,
                            Failure::ThisCall,
                        )
                    } else if adaptations < 2 && self.provider.adapt(&call, status, response.body())
                    {
                        adaptations += 1;
                        log::info!(
                            "{name}: the server refused the structured-output request \
                                 ({status}: {}); now asking with {}",
                            scrub(self.key.as_ref(), &detail),
                            self.provider.output_mode(true)
                        );
                        continue;
                    } else {
                        let (hint, failure) = match status {
                            401 | 403 => (" (check the API key)", Failure::Config),
                            404 => (
                                " (check the server URL and the model name)",
                                Failure::Config,
                            ),
                            _ => ("", Failure::ThisCall),
                        };
                        (
                            format!("{name} answered {status}{hint}: {detail}"),
                            false,
                            None,
                            failure,
                        )
                    }
                }
            };
            if !retryable || retries >= budget.max_retries {
                let message = if retries > 0 {
                    format!("{message} (gave up after {attempt} attempts)")
                } else {
                    message
                };
                let error = give_up(message);
                if self
                    .breaker
                    .failure(failure, &error.message, Instant::now())
                {
                    log::error!(
                        "{}; the next LLM calls fail at once, without a request, for {} s",
                        error.message,
                        match failure {
                            Failure::Config => breaker::CONFIG_PAUSE,
                            _ => breaker::UNREACHABLE_PAUSE,
                        }
                        .as_secs()
                    );
                }
                return Err(error);
            }
            let delay = match retry_after {
                Some(d) => d.min(budget.max_retry_after),
                None => backoff(retries, budget.backoff_base, budget.backoff_max),
            };
            log::warn!(
                "{}; retry {} of {} in {:.1} s",
                scrub(self.key.as_ref(), &message),
                retries + 1,
                budget.max_retries,
                delay.as_secs_f64()
            );
            self.totals.retry();
            rt::sleep(delay).await;
            retries += 1;
        }
    }
}

/// Replaces the API key in every string of `value` (see [`ApiKey::scrub`]).
fn scrub_value(key: &ApiKey, value: &mut Value) {
    match value {
        Value::String(s) => *s = key.scrub(s),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(key, v)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_value(key, v)),
        _ => {}
    }
}

fn http_message(e: &http::Error, max_reply: usize) -> String {
    match e.kind() {
        ErrorKind::TooLarge => format!(
            "the reply is larger than the {max_reply}-byte limit ({})",
            e.message()
        ),
        _ => e.to_string(),
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// The first `max_chars` characters of `content` and, if it was longer, its length in
/// characters. Cuts on a character boundary, never inside a UTF-8 sequence.
pub(crate) fn truncate(content: &str, max_chars: usize) -> (&str, Option<usize>) {
    match content.char_indices().nth(max_chars) {
        Some((end, _)) => (&content[..end], Some(content.chars().count())),
        None => (content, None),
    }
}

#[crate::async_trait]
impl AsyncAnalyzer for LlmAnalyzer {
    async fn async_analyze(&self, content: &str) -> AnalysisResult {
        self.analyze_content(content).await
    }

    fn max_workers(&self) -> usize {
        self.budget.max_workers
    }

    /// No overall limit: every wait is bounded by the budget already (per-call timeout,
    /// capped backoff, a bounded number of retries), and waiting for the rate limiter is
    /// the point of having one.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    fn name(&self) -> String {
        match self.provider.name() {
            "openai" => "OpenAiAnalyzer".into(),
            "gemini" => "GeminiAnalyzer".into(),
            _ => "LlmAnalyzer".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), ("hé", Some(5)));
        assert_eq!(truncate("héllo", 5), ("héllo", None));
        assert_eq!(truncate("日本語", 1), ("日", Some(3)));
        assert_eq!(truncate("", 3), ("", None));
    }

    #[test]
    fn builds_refuse_bad_configurations() {
        let no_key = OpenAiAnalyzer::builder("x").build();
        if std::env::var("OPENAI_API_KEY").is_err() {
            assert!(no_key.unwrap_err().message().contains("OPENAI_API_KEY"));
        }
        let bad_url = OpenAiAnalyzer::builder("x").base_url("ftp://h").build();
        assert!(bad_url.unwrap_err().message().contains("http"));
        let bad_schema = OpenAiAnalyzer::builder("x")
            .base_url("http://127.0.0.1:1")
            .schema(json!({"type": "array"}))
            .build();
        assert!(bad_schema.unwrap_err().message().contains("object"));
        let empty = GeminiAnalyzer::builder(" ")
            .base_url("http://127.0.0.1:1")
            .build();
        assert!(empty.unwrap_err().message().contains("instruction"));
        let ok = GeminiAnalyzer::builder("x")
            .base_url("http://127.0.0.1:1")
            .api_key("AIza-topsecret")
            .build()
            .unwrap();
        assert_eq!(ok.model(), "gemini-2.0-flash");
        assert_eq!(AsyncAnalyzer::name(&ok), "GeminiAnalyzer");
        let dbg = format!("{ok:?}");
        assert!(
            !dbg.contains("topsecret") && dbg.contains("ApiKey(***)"),
            "{dbg}"
        );
    }
}
