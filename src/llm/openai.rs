//! [`OpenAiProvider`]: any server speaking OpenAI's Chat Completions (OpenAI, Ollama, vLLM,
//! llama.cpp's server, LM Studio...).

use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::{json, Value};

use super::provider::{
    is_context_length_error, join_url, Completion, HttpCall, Prompt, Provider, Usage,
};
use super::secret::ApiKey;

/// OpenAI's API.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Chat Completions with structured output: `response_format: json_schema` with `strict`.
/// When a server refuses that (OpenAI refuses strict mode for schemas that do not list every
/// property as required with `additionalProperties: false`; some servers know no
/// `json_schema` at all), it steps back for good, one step per refusal: `json_schema` without
/// `strict`, then `json_object` with the schema in the instruction. The reply is validated
/// against the schema in every mode.
///
/// ```
/// use scraipe::llm::{OpenAiProvider, Prompt, Provider};
/// use serde_json::json;
///
/// let provider = OpenAiProvider::new("http://127.0.0.1:11434/v1");
/// let schema = json!({"type": "object", "properties": {"price": {"type": "number"}}});
/// let call = provider.request(
///     &Prompt { model: "llama3", instruction: "Find the price.", content: "Only $5!", schema: Some(&schema) },
///     None,
/// );
/// assert_eq!(call.url, "http://127.0.0.1:11434/v1/chat/completions");
/// assert_eq!(call.body["model"], "llama3");
/// assert_eq!(call.body["messages"][1]["content"], "Only $5!");
/// assert_eq!(call.body["response_format"]["type"], "json_schema");
/// assert_eq!(call.body["response_format"]["json_schema"]["schema"], schema);
/// ```
#[derive(Debug)]
pub struct OpenAiProvider {
    url: String,
    official: bool,
    /// How structured output is asked for: `STRICT`, then `LOOSE`, then `OBJECT` after
    /// refusals; it never goes back.
    mode: AtomicU8,
}

const STRICT: u8 = 0;
const LOOSE: u8 = 1;
const OBJECT: u8 = 2;

impl OpenAiProvider {
    /// A provider for the server at `base_url` (e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; a URL already ending in `/chat/completions` is used as is).
    pub fn new(base_url: &str) -> OpenAiProvider {
        let url = join_url(base_url, "chat/completions");
        OpenAiProvider {
            official: url.starts_with("https://api.openai.com/"),
            url,
            mode: AtomicU8::new(STRICT),
        }
    }

    /// The endpoint called.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn request(&self, prompt: &Prompt<'_>, key: Option<&ApiKey>) -> HttpCall {
        let mode = self.mode.load(Ordering::Relaxed);
        let (system, response_format) = match prompt.schema {
            Some(schema) if mode != OBJECT => (
                prompt.instruction.to_string(),
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": mode == STRICT}
                }),
            ),
            Some(schema) => (
                format!(
                    "{}\n\nReply with one JSON object that matches this JSON Schema, and nothing else:\n{}",
                    prompt.instruction, schema
                ),
                json!({"type": "json_object"}),
            ),
            // json_object mode requires the word "JSON" in the messages.
            None => (
                format!("{}\n\nReply with one JSON object, and nothing else.", prompt.instruction),
                json!({"type": "json_object"}),
            ),
        };
        let body = json!({
            "model": prompt.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt.content},
            ],
            "response_format": response_format,
        });
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(key) = key {
            headers.push((
                "authorization".to_string(),
                format!("Bearer {}", key.expose()),
            ));
        }
        HttpCall {
            url: self.url.clone(),
            headers,
            body,
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the server's reply is not JSON ({e}); it began {} — is --llm-url the API's \
                 base URL (…/v1)?",
                super::schema::preview(&String::from_utf8_lossy(body))
            )
        })?;
        let choice = v
            .pointer("/choices/0")
            .ok_or("unexpected reply from the server: no choices[0]")?;
        let message = choice.get("message").unwrap_or(&Value::Null);
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            return Err(format!("the model refused: {refusal}"));
        }
        let finish = choice.get("finish_reason").and_then(Value::as_str);
        let text = match message.get("content").and_then(Value::as_str) {
            Some(text) => text,
            None if finish == Some("content_filter") => {
                return Err("the provider's content filter withheld the answer \
                            (finish_reason content_filter)"
                    .into())
            }
            None => {
                return Err(format!(
                    "unexpected reply from the server: no choices[0].message.content \
                     (finish_reason {})",
                    finish.unwrap_or("none")
                ))
            }
        };
        let count = |name: &str| v.pointer(&format!("/usage/{name}")).and_then(Value::as_u64);
        let (prompt, completion) = (
            count("prompt_tokens").unwrap_or(0),
            count("completion_tokens").unwrap_or(0),
        );
        Ok(Completion {
            text: text.to_string(),
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: count("total_tokens").unwrap_or(prompt + completion),
            },
            model: v.get("model").and_then(Value::as_str).map(str::to_string),
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn adapt(&self, call: &HttpCall, status: u16, body: &[u8]) -> bool {
        if !matches!(status, 400 | 422) || is_context_length_error(body) {
            return false;
        }
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        if !["response_format", "json_schema", "strict", "schema"]
            .iter()
            .any(|w| text.contains(w))
        {
            return false;
        }
        let format = &call.body["response_format"];
        let (asked, next) = match (
            format["type"].as_str(),
            format["json_schema"]["strict"].as_bool(),
        ) {
            (Some("json_schema"), Some(true)) => (STRICT, LOOSE),
            (Some("json_schema"), _) => (LOOSE, OBJECT),
            _ => return false,
        };
        // A concurrent call refused the same way may have stepped back already: then just
        // send again in the new mode.
        match self
            .mode
            .compare_exchange(asked, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(now) => now > asked,
        }
    }

    fn output_mode(&self, has_schema: bool) -> &'static str {
        match (has_schema, self.mode.load(Ordering::Relaxed)) {
            (true, STRICT) => "json_schema",
            (true, LOOSE) => "json_schema_loose",
            _ => "json_object",
        }
    }

    fn key_optional(&self) -> bool {
        !self.official
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(schema: Option<&Value>) -> Prompt<'_> {
        Prompt {
            model: "m",
            instruction: "Extract.",
            content: "text",
            schema,
        }
    }

    #[test]
    fn steps_back_one_mode_per_refusal() {
        let p = OpenAiProvider::new("http://h/v1");
        let schema = json!({"type": "object"});
        let refusal =
            b"{\"error\": {\"message\": \"Invalid schema for response_format 'output'\"}}";
        assert_eq!(p.output_mode(true), "json_schema");
        let strict = p.request(&prompt(Some(&schema)), None);
        assert_eq!(
            strict.body["response_format"]["json_schema"]["strict"],
            true
        );
        assert!(!p.adapt(
            &strict,
            400,
            b"{\"error\": {\"message\": \"model not found\"}}"
        ));
        assert!(!p.adapt(&strict, 500, refusal));
        assert!(p.adapt(&strict, 400, refusal));
        // A concurrent call refused in strict mode too: resend, but do not step back twice.
        assert!(p.adapt(&strict, 400, refusal));
        assert_eq!(p.output_mode(true), "json_schema_loose");
        let loose = p.request(&prompt(Some(&schema)), None);
        assert_eq!(loose.body["response_format"]["type"], "json_schema");
        assert_eq!(
            loose.body["response_format"]["json_schema"]["strict"],
            false
        );
        assert!(p.adapt(&loose, 422, b"unknown response_format type json_schema"));
        let object = p.request(&prompt(Some(&schema)), None);
        assert_eq!(object.body["response_format"]["type"], "json_object");
        let system = object.body["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("Extract.") && system.contains(r#"{"type":"object"}"#));
        assert!(
            !p.adapt(&object, 400, b"response_format"),
            "nothing left to try"
        );
        assert_eq!(p.output_mode(true), "json_object");
        assert_eq!(p.output_mode(false), "json_object");
    }

    #[test]
    fn key_goes_in_a_bearer_header_and_is_required_for_openai_only() {
        let p = OpenAiProvider::new(OPENAI_BASE_URL);
        assert!(!p.key_optional());
        assert!(OpenAiProvider::new("http://127.0.0.1:8000/v1").key_optional());
        let call = p.request(&prompt(None), Some(&ApiKey::new("sk-1234")));
        assert!(call
            .headers
            .contains(&("authorization".into(), "Bearer sk-1234".into())));
        assert_eq!(call.body["response_format"]["type"], "json_object");
        assert!(call.body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("JSON"));
    }

    #[test]
    fn parses_replies() {
        let p = OpenAiProvider::new("http://h/v1");
        let body = json!({
            "model": "m-2024",
            "choices": [{"message": {"role": "assistant", "content": "{\"a\":1}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        });
        let c = p.parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(c.text, "{\"a\":1}");
        assert_eq!(c.usage.total_tokens, 13);
        assert_eq!(c.model.as_deref(), Some("m-2024"));
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"}}]});
        assert_eq!(
            p.parse(refused.to_string().as_bytes()).unwrap_err(),
            "the model refused: no"
        );
        assert!(p.parse(b"{}").unwrap_err().contains("no choices[0]"));
        let filtered = br#"{"choices": [{"message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}]}"#;
        assert!(p.parse(filtered).unwrap_err().contains("content filter"));
        let html = p
            .parse(b"<!doctype html><html><title>Open WebUI</title>")
            .unwrap_err();
        assert!(
            html.contains("<!doctype html>") && html.contains("--llm-url"),
            "{html}"
        );
        assert!(p.parse(b"<html>").unwrap_err().contains("not JSON"));
    }
}
