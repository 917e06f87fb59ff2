//! [`GeminiProvider`]: Google's Gemini `generateContent`.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};

use super::provider::{
    is_context_length_error, join_url, Completion, HttpCall, Prompt, Provider, Usage,
};
use super::secret::ApiKey;

/// Google's Generative Language API.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// `models/{model}:generateContent` with `responseMimeType: application/json` and the schema
/// as `responseSchema` (translated to the OpenAPI subset Gemini accepts; the reply is still
/// validated against the full schema). If the server refuses that `responseSchema`, the schema
/// moves into the instruction for good. The key travels in the `x-goog-api-key` header, never
/// in the URL, so it cannot show up in an error that quotes the URL.
///
/// ```
/// use scraipe::llm::{GeminiProvider, Prompt, Provider};
/// use serde_json::json;
///
/// let provider = GeminiProvider::new("http://127.0.0.1:9000/v1beta");
/// let schema = json!({"type": "object", "properties": {"price": {"type": ["number", "null"]}}, "additionalProperties": false});
/// let call = provider.request(
///     &Prompt { model: "gemini-2.0-flash", instruction: "Find the price.", content: "Only $5!", schema: Some(&schema) },
///     None,
/// );
/// assert_eq!(call.url, "http://127.0.0.1:9000/v1beta/models/gemini-2.0-flash:generateContent");
/// let config = &call.body["generationConfig"];
/// assert_eq!(config["responseMimeType"], "application/json");
/// assert_eq!(config["responseSchema"], json!({"type": "object", "properties": {"price": {"type": "number", "nullable": true}}}));
/// ```
#[derive(Debug)]
pub struct GeminiProvider {
    base: String,
    official: bool,
    /// Cleared for good when the server refuses our `responseSchema` (a keyword the model
    /// does not support): the schema then goes into the instruction instead.
    response_schema: AtomicBool,
}

impl GeminiProvider {
    /// A provider for the API at `base_url` (e.g. `https://generativelanguage.googleapis.com/v1beta`).
    pub fn new(base_url: &str) -> GeminiProvider {
        let base = base_url.trim().trim_end_matches('/').to_string();
        GeminiProvider {
            official: base.starts_with("https://generativelanguage.googleapis.com"),
            base,
            response_schema: AtomicBool::new(true),
        }
    }
}

impl Provider for GeminiProvider {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn request(&self, prompt: &Prompt<'_>, key: Option<&ApiKey>) -> HttpCall {
        let model = prompt.model.trim_start_matches("models/");
        let url = if self.base.contains(":generateContent") {
            self.base.clone()
        } else {
            join_url(&self.base, &format!("models/{model}:generateContent"))
        };
        let mut config = json!({"responseMimeType": "application/json"});
        let mut instruction = prompt.instruction.to_string();
        if let Some(schema) = prompt.schema {
            if self.response_schema.load(Ordering::Relaxed) {
                config["responseSchema"] = to_openapi(schema);
            } else {
                instruction.push_str(&format!(
                    "\n\nReply with one JSON object that matches this JSON Schema, and nothing else:\n{schema}"
                ));
            }
        }
        let body = json!({
            "systemInstruction": {"parts": [{"text": instruction}]},
            "contents": [{"role": "user", "parts": [{"text": prompt.content}]}],
            "generationConfig": config,
        });
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(key) = key {
            headers.push(("x-goog-api-key".to_string(), key.expose().to_string()));
        }
        HttpCall { url, headers, body }
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the server's reply is not JSON: {e}"))?;
        if let Some(reason) = v
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str)
        {
            return Err(format!("the prompt was blocked: {reason}"));
        }
        let candidate = v
            .pointer("/candidates/0")
            .ok_or("unexpected reply from the server: no candidates[0]")?;
        let finish = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map(str::to_string);
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .ok_or_else(|| match &finish {
                Some(r) => format!("the model gave no answer (finish reason {r})"),
                None => "unexpected reply from the server: no candidates[0].content.parts".into(),
            })?;
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let count = |name: &str| {
            v.pointer(&format!("/usageMetadata/{name}"))
                .and_then(Value::as_u64)
        };
        let (prompt, completion) = (
            count("promptTokenCount").unwrap_or(0),
            count("candidatesTokenCount").unwrap_or(0),
        );
        Ok(Completion {
            text,
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: count("totalTokenCount").unwrap_or(prompt + completion),
            },
            model: v
                .get("modelVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            finish_reason: finish,
        })
    }

    fn adapt(&self, call: &HttpCall, status: u16, body: &[u8]) -> bool {
        let asked_with_schema = call
            .body
            .pointer("/generationConfig/responseSchema")
            .is_some();
        let about_schema = String::from_utf8_lossy(body)
            .to_ascii_lowercase()
            .contains("schema");
        if status != 400 || !asked_with_schema || !about_schema || is_context_length_error(body) {
            return false;
        }
        // Whether this call or a concurrent one turned it off, send again without it.
        self.response_schema.store(false, Ordering::Relaxed);
        true
    }

    fn output_mode(&self, has_schema: bool) -> &'static str {
        if has_schema && self.response_schema.load(Ordering::Relaxed) {
            "response_schema"
        } else {
            "json_mime_type"
        }
    }

    fn key_optional(&self) -> bool {
        !self.official
    }
}

/// JSON Schema → the OpenAPI 3.0 subset of Gemini's `responseSchema`: keywords it rejects
/// (`$schema`, `additionalProperties`, `$id`, `$defs`, ...) are dropped, `"type": [T, "null"]`
/// becomes `"type": T, "nullable": true`, `const` becomes a one-value `enum`.
pub fn to_openapi(schema: &Value) -> Value {
    const KEPT: [&str; 14] = [
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "properties",
        "required",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
    ];
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => match v {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if let Some(t) = non_null.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "properties" => {
                let props = v
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), to_openapi(s)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), to_openapi(v));
            }
            "anyOf" => {
                let list = v
                    .as_array()
                    .map(|a| a.iter().map(to_openapi).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(list));
            }
            "const" => {
                out.insert("enum".into(), Value::Array(vec![v.clone()]));
            }
            _ if KEPT.contains(&k.as_str()) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_in_a_header_never_the_url() {
        let p = GeminiProvider::new(GEMINI_BASE_URL);
        assert!(!p.key_optional());
        let prompt = Prompt {
            model: "models/gemini-x",
            instruction: "i",
            content: "c",
            schema: None,
        };
        let call = p.request(&prompt, Some(&ApiKey::new("AIza-secret")));
        assert!(!call.url.contains("AIza"));
        assert!(call
            .url
            .ends_with("/v1beta/models/gemini-x:generateContent"));
        assert!(call
            .headers
            .contains(&("x-goog-api-key".into(), "AIza-secret".into())));
        assert!(call.body["generationConfig"]
            .get("responseSchema")
            .is_none());
        assert_eq!(call.body["systemInstruction"]["parts"][0]["text"], "i");
        assert_eq!(call.body["contents"][0]["parts"][0]["text"], "c");
    }

    #[test]
    fn a_refused_response_schema_moves_into_the_instruction() {
        let p = GeminiProvider::new("http://h");
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let prompt = Prompt {
            model: "g",
            instruction: "Do it.",
            content: "c",
            schema: Some(&schema),
        };
        let first = p.request(&prompt, None);
        let refusal =
            b"{\"error\": {\"message\": \"Invalid JSON payload: responseSchema.properties\"}}";
        assert!(!p.adapt(
            &first,
            400,
            b"{\"error\": {\"message\": \"model not found\"}}"
        ));
        assert!(!p.adapt(&first, 500, refusal));
        assert!(p.adapt(&first, 400, refusal));
        assert_eq!(p.output_mode(true), "json_mime_type");
        let second = p.request(&prompt, None);
        assert!(second
            .body
            .pointer("/generationConfig/responseSchema")
            .is_none());
        assert_eq!(
            second.body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        let text = second.body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            text.starts_with("Do it.") && text.contains("\"properties\""),
            "{text}"
        );
        assert!(!p.adapt(&second, 400, refusal), "nothing left to drop");
    }

    #[test]
    fn parses_replies() {
        let p = GeminiProvider::new("http://h");
        let body = json!({
            "candidates": [{"content": {"parts": [{"text": "{\"a\":"}, {"text": "1}"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9},
            "modelVersion": "gemini-x-001"
        });
        let c = p.parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(c.text, "{\"a\":1}");
        assert_eq!(c.usage.prompt_tokens, 7);
        assert_eq!(c.model.as_deref(), Some("gemini-x-001"));
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        assert!(p
            .parse(blocked.to_string().as_bytes())
            .unwrap_err()
            .contains("SAFETY"));
        let empty = json!({"candidates": [{"finishReason": "MAX_TOKENS"}]});
        assert!(p
            .parse(empty.to_string().as_bytes())
            .unwrap_err()
            .contains("MAX_TOKENS"));
    }

    #[test]
    fn schema_translation_keeps_the_shape() {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string", "const": "x"}}},
            "required": ["tags"],
            "additionalProperties": false
        });
        assert_eq!(
            to_openapi(&s),
            json!({
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}}},
                "required": ["tags"]
            })
        );
    }
}
