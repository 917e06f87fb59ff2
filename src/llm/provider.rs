//! [`Provider`]: what differs between LLM APIs — the request's URL, headers and JSON body, and
//! how to read a reply — kept free of I/O so the analyzer owns timeouts, retries and budgets
//! once for all of them.

use std::fmt;

use serde_json::Value;

use super::secret::ApiKey;

/// One request to make of a model.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    /// Model name, as the server knows it.
    pub model: &'a str,
    /// What to do with the content (the system instruction).
    pub instruction: &'a str,
    /// The content to analyse (already truncated).
    pub content: &'a str,
    /// The JSON Schema the answer must match, if any.
    pub schema: Option<&'a Value>,
}

/// An HTTP POST to make: URL, headers, JSON body. Its `Debug` hides header values, which
/// carry the API key.
pub struct HttpCall {
    /// Where to POST.
    pub url: String,
    /// Headers, the key's among them.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpCall")
            .field("url", &self.url)
            .field("headers", &names)
            .field("body", &self.body)
            .finish()
    }
}

/// Token counts from a reply's usage fields (zeros when the server reports none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// Their sum as the server reports it (or computed).
    pub total_tokens: u64,
}

/// A model's answer, before it is parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer text (JSON, if the model obeyed).
    pub text: String,
    /// Token counts.
    pub usage: Usage,
    /// The model that answered, when the server names it (it may be more specific than the
    /// one asked for).
    pub model: Option<String>,
    /// Why the model stopped, when the server says (`stop`, `length`, `STOP`, `MAX_TOKENS`...).
    pub finish_reason: Option<String>,
}

/// An LLM API. Implement it to add one; the analyzer does the HTTP, the retries and the
/// validation.
pub trait Provider: Send + Sync + fmt::Debug + 'static {
    /// A short name for metadata and messages (`openai`, `gemini`).
    fn name(&self) -> &'static str;

    /// The request for `prompt`, authenticated with `key` when there is one.
    fn request(&self, prompt: &Prompt<'_>, key: Option<&ApiKey>) -> HttpCall;

    /// Reads a successful (2xx) reply body. Errors are messages for the user.
    fn parse(&self, body: &[u8]) -> Result<Completion, String>;

    /// Called with a non-retryable error reply (4xx) to `call`. Returns true if the provider
    /// changed how it asks — e.g. a server without `json_schema` support — and the call should
    /// be made again at once. (`call` tells which way of asking was refused, so concurrent
    /// refusals of the same request step back only once.)
    fn adapt(&self, _call: &HttpCall, _status: u16, _body: &[u8]) -> bool {
        false
    }

    /// How structured output is requested right now (`json_schema`, `json_object`,
    /// `response_schema`...), for the result's metadata.
    fn output_mode(&self, has_schema: bool) -> &'static str;

    /// Whether calls without an API key make sense here (a local server) — when false, an
    /// analyzer without a key is refused at construction.
    fn key_optional(&self) -> bool;
}

/// The message of an API error body (`{"error": {"message": ...}}`, as OpenAI and Gemini
/// send), else the start of the body.
pub(crate) fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The wait an error body asks for, where a header does not: Google's APIs (Gemini) put it in
/// `error.details[]` as a `google.rpc.RetryInfo` with `"retryDelay": "6s"` (or `"6.5s"`), and
/// send no `Retry-After` on a 429.
pub(crate) fn retry_delay_in_body(body: &[u8]) -> Option<std::time::Duration> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let details = value.pointer("/error/details")?.as_array()?;
    details.iter().find_map(|d| {
        let secs: f64 = d["retryDelay"]
            .as_str()?
            .trim()
            .strip_suffix('s')?
            .parse()
            .ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
    })
}

/// Whether an error body is about the request being too long for the model (its context
/// window). Such an error may quote the `response_format` schema's share of the tokens, but it
/// is about this one prompt, not about the server refusing structured output: it must not make
/// a provider drop structured output for the rest of the run.
pub(crate) fn is_context_length_error(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    [
        "context_length_exceeded",
        "context length",
        "context window",
        "maximum context",
        "too many tokens",
        "reduce the length",
        "input token count",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// `base` + `/path`, unless `base` already ends with the endpoint (`…/chat/completions`). A
/// query on `base` (`?api-version=…`, as Azure and some gateways want) stays a query, after
/// the path.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    let base = base.trim();
    let (base, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut url = if base.ends_with(path) {
        base.to_string()
    } else {
        format!("{base}/{path}")
    };
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_delay_in_a_google_error_body_and_context_length_errors_are_recognised() {
        let gemini = br#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6.5s"}]}}"#;
        assert_eq!(
            retry_delay_in_body(gemini),
            Some(std::time::Duration::from_millis(6500))
        );
        for none in [
            &b"{}"[..],
            b"not json",
            br#"{"error": {"details": [{"retryDelay": "soon"}]}}"#,
        ] {
            assert_eq!(retry_delay_in_body(none), None);
        }
        let openai = br#"{"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens (including 317 in the response_format schemas.). Please reduce the length of the messages or schemas.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}"#;
        assert!(is_context_length_error(openai));
        assert!(!is_context_length_error(
            br#"{"error": {"message": "Invalid schema for response_format 'output': strict mode needs additionalProperties false"}}"#
        ));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error": {"message": "Rate limit reached", "type": "x"}}"#),
            "Rate limit reached"
        );
        assert_eq!(
            error_message(br#"{"error": "model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(error_message(b""), "(empty body)");
        assert!(error_message(&[b'x'; 1000]).chars().count() <= 301);
    }

    #[test]
    fn urls() {
        assert_eq!(
            join_url("http://h/v1/", "chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            join_url("http://h/v1/chat/completions", "chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            join_url("http://h/v1?api-version=2024-06-01", "chat/completions"),
            "http://h/v1/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(
            join_url("http://h/v1/chat/completions/?a=1&b=2", "chat/completions"),
            "http://h/v1/chat/completions?a=1&b=2"
        );
        assert_eq!(join_url("http://h/v1?", "x"), "http://h/v1/x");
    }

    #[test]
    fn debug_hides_header_values() {
        let call = HttpCall {
            url: "http://h".into(),
            headers: vec![("authorization".into(), "Bearer sk-secret".into())],
            body: Value::Null,
        };
        let dbg = format!("{call:?}");
        assert!(
            dbg.contains("authorization") && !dbg.contains("sk-secret"),
            "{dbg}"
        );
    }
}
