//! [`OutputSchema`]: the JSON Schema a model's reply must match, compiled once, and the
//! parsing + validation of replies with errors a user can act on.

use std::fmt;
use std::path::Path;

use boon::{Compiler, ErrorKind, SchemaIndex, Schemas, SchemeUrlLoader, ValidationError};
use serde_json::Value;

use crate::results::JsonMap;

/// A compiled JSON Schema (drafts 4, 6, 7, 2019-09 and 2020-12, by `$schema`; 2020-12 when
/// absent) for the replies of an LLM analyzer.
///
/// External `$ref`s are not fetched — neither from the network nor from files — so a schema
/// must be self-contained (`$defs` are fine).
///
/// ```
/// use scraipe::llm::OutputSchema;
/// use serde_json::json;
///
/// let schema = OutputSchema::new(json!({
///     "type": "object",
///     "properties": {"price": {"type": "number"}},
///     "required": ["price"]
/// })).unwrap();
/// assert!(schema.parse_reply(r#"{"price": 9.5}"#).is_ok());
/// assert_eq!(
///     schema.parse_reply(r#"{"price": "cheap"}"#).unwrap_err(),
///     "reply does not match the schema at /price: expected number, got string"
/// );
/// assert!(schema.parse_reply("Sure! Here it is").unwrap_err().starts_with("reply is not JSON: "));
/// ```
pub struct OutputSchema {
    value: Value,
    /// `value` serialised once: part of every cache key and of fallback prompts.
    text: String,
    schemas: Schemas,
    index: SchemaIndex,
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutputSchema").field(&self.text).finish()
    }
}

const LOCATION: &str = "urn:scraipe:llm-output-schema";

impl OutputSchema {
    /// Compiles `schema`. Fails with a readable message if it is not a valid JSON Schema or
    /// does not describe an object (an analysis output is a JSON object).
    pub fn new(schema: Value) -> Result<OutputSchema, String> {
        if !schema.is_object() {
            return Err("the schema must be a JSON object".into());
        }
        if let Some(t) = schema.get("type") {
            let object =
                t == "object" || t.as_array().is_some_and(|a| a.contains(&"object".into()));
            if !object {
                return Err(format!(
                    "the schema must describe an object (\"type\": \"object\"), not {t}"
                ));
            }
        }
        let mut compiler = Compiler::new();
        // No loader for any scheme: a schema cannot make us read files or the network.
        compiler.use_loader(Box::new(SchemeUrlLoader::new()));
        compiler
            .add_resource(LOCATION, schema.clone())
            .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        let mut schemas = Schemas::new();
        let index = compiler
            .compile(LOCATION, &mut schemas)
            .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        Ok(OutputSchema {
            text: schema.to_string(),
            value: schema,
            schemas,
            index,
        })
    }

    /// Reads and compiles a schema file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<OutputSchema, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read schema file '{}': {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("schema file '{}' is not JSON: {e}", path.display()))?;
        OutputSchema::new(value).map_err(|e| format!("schema file '{}': {e}", path.display()))
    }

    /// The schema as given.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The schema as compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Checks a JSON value against the schema; the error names the first failing place.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        self.schemas
            .validate(value, self.index)
            .map_err(|e| format!("reply does not match the schema {}", describe(&e)))
    }

    /// Parses a model's reply text into a JSON object and validates it (see
    /// [`parse_object`] for what is tolerated around the JSON).
    pub fn parse_reply(&self, text: &str) -> Result<JsonMap, String> {
        let value = parse_json(text)?;
        self.validate(&value)?;
        into_object(value)
    }
}

/// Parses a reply that must be a JSON object, without a schema. Tolerates what models add
/// around JSON when no structured mode is available: surrounding whitespace and a Markdown
/// code fence (```` ```json … ``` ````).
///
/// ```
/// let out = scraipe::llm::parse_object("```json\n{\"a\": 1}\n```").unwrap();
/// assert_eq!(out["a"], 1);
/// assert_eq!(scraipe::llm::parse_object("[1]").unwrap_err(), "reply is JSON but not an object: [1]");
/// ```
pub fn parse_object(text: &str) -> Result<JsonMap, String> {
    into_object(parse_json(text)?)
}

/// The JSON in a model's reply. Constrained decoding gives bare JSON; without it (a local
/// server, `json_object` mode) models wrap it: a fence with any language tag (```` ```JSON ````),
/// prose before or around it, a reasoning model's `<think>…</think>` first. The reply is
/// taken whole if it parses; else the first fenced block; else the first balanced `{…}` that
/// parses. Whatever is taken is still validated against the schema afterwards.
fn parse_json(text: &str) -> Result<Value, String> {
    let whole = text.trim();
    let first_error = match serde_json::from_str(whole) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let body = strip_thinking(whole);
    let candidates = [strip_fence(body), fenced_block(body), first_object(body)];
    candidates
        .into_iter()
        .flatten()
        .find_map(|c| serde_json::from_str(c).ok())
        .ok_or_else(|| format!("reply is not JSON: {first_error}: {}", preview(text)))
}

/// Drops reasoning blocks (`<think>…</think>`, any case) at the start of a reply.
fn strip_thinking(mut text: &str) -> &str {
    loop {
        let lower = text.get(..7).map(str::to_ascii_lowercase);
        if lower.as_deref() != Some("<think>") {
            return text;
        }
        let Some(end) = text.to_ascii_lowercase().find("</think>") else {
            return text;
        };
        text = text[end + "</think>".len()..].trim_start();
    }
}

/// A reply that is one fence: its content (after the language tag, if any).
fn strip_fence(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("```")?;
    let tag_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let rest = &rest[tag_end..];
    Some(rest.strip_suffix("```").unwrap_or(rest).trim())
}

/// The content of the first fenced block anywhere in the reply (its language tag skipped).
fn fenced_block(text: &str) -> Option<&str> {
    let start = text.find("```")? + 3;
    let rest = &text[start..];
    let rest = &rest[rest.find('\n').map_or(0, |n| n + 1)..];
    let end = rest.find("```").unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// The first balanced `{…}` in the reply (braces inside JSON strings are skipped).
fn first_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in text.bytes().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn into_object(value: Value) -> Result<JsonMap, String> {
    match value {
        Value::Object(map) => Ok(map),
        other => {
            let json = other.to_string();
            let cut: String = json.chars().take(120).collect();
            let more = if cut.len() < json.len() { "…" } else { "" };
            Err(format!("reply is JSON but not an object: {cut}{more}"))
        }
    }
}

/// The start of a reply, for error messages: at most 120 characters, on one line.
pub(crate) fn preview(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(121)
        .collect();
    if one_line.chars().count() > 120 {
        let cut: String = one_line.chars().take(120).collect();
        format!("{cut:?}…")
    } else {
        format!("{one_line:?}")
    }
}

/// "at /price: expected number, got string" for the first leaf failure.
fn describe(e: &ValidationError<'_, '_>) -> String {
    let mut leaf = e;
    while let Some(first) = leaf.causes.first() {
        leaf = first;
    }
    let location = leaf.instance_location.to_string();
    let at = if location.is_empty() {
        "(the top level)".to_string()
    } else {
        location
    };
    let what = match &leaf.kind {
        ErrorKind::Type { got, want } => {
            let want: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            format!("expected {}, got {got}", want.join(" or "))
        }
        ErrorKind::Required { want } => {
            let names: Vec<String> = want.iter().map(|w| format!("\"{w}\"")).collect();
            format!("missing required property {}", names.join(", "))
        }
        ErrorKind::AdditionalProperties { got } => {
            let names: Vec<String> = got.iter().map(|w| format!("\"{w}\"")).collect();
            format!("unexpected property {}", names.join(", "))
        }
        other => other.to_string(),
    };
    format!("at {at}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_found_in_the_shapes_models_wrap_it_in() {
        let want = json!({"name": "Lamp", "price": 12.5, "note": "a } in a string"});
        let bare = want.to_string();
        let replies = [
            bare.clone(),
            format!("```json\n{bare}\n```"),
            format!("```JSON\n{bare}\n```"),
            format!("```\n{bare}\n```"),
            format!("Here you go:\n```json\n{bare}\n```\nAnything else?"),
            format!("Sure! {bare} Hope that helps."),
            format!("<think>The user wants {{JSON}}.</think>\n{bare}"),
            format!("<THINK>hmm</THINK>\n```json\n{bare}\n```"),
        ];
        for reply in replies {
            assert_eq!(parse_json(&reply).as_ref(), Ok(&want), "{reply}");
        }
        // A whole reply that is JSON but not an object stays what it is (the caller says so).
        assert_eq!(parse_json("[1, 2]"), Ok(json!([1, 2])));
        for bad in [
            "no json here",
            "{\"open\": ",
            "```json\n{not json}\n```",
            "",
        ] {
            let e = parse_json(bad).unwrap_err();
            assert!(e.starts_with("reply is not JSON"), "{bad}: {e}");
        }
    }

    fn offer() -> OutputSchema {
        OutputSchema::new(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "price": {"type": "number", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name", "price"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn messages_name_the_place_and_the_problem() {
        let s = offer();
        let err = |t: &str| s.parse_reply(t).unwrap_err();
        assert_eq!(
            err(r#"{"name": "x"}"#),
            "reply does not match the schema at (the top level): missing required property \"price\""
        );
        assert_eq!(
            err(r#"{"name": "x", "price": 1, "tags": ["a", 2]}"#),
            "reply does not match the schema at /tags/1: expected string, got number"
        );
        assert_eq!(
            err(r#"{"name": "x", "price": 1, "color": "red"}"#),
            "reply does not match the schema at (the top level): unexpected property \"color\""
        );
        assert!(err(r#"{"name": "x", "price": -1}"#)
            .starts_with("reply does not match the schema at /price: "));
        assert!(err("not json at all").starts_with("reply is not JSON: "));
        assert!(err("").starts_with("reply is not JSON: "));
        let ok = s
            .parse_reply("```json\n{\"name\": \"x\", \"price\": 2.5}\n```")
            .unwrap();
        assert_eq!(ok["price"], 2.5);
    }

    #[test]
    fn bad_schemas_are_refused_with_reasons() {
        assert!(OutputSchema::new(json!([1]))
            .unwrap_err()
            .contains("JSON object"));
        assert!(OutputSchema::new(json!({"type": "string"}))
            .unwrap_err()
            .contains("describe an object"));
        assert!(
            OutputSchema::new(json!({"type": "object", "properties": {"a": {"type": 7}}}))
                .unwrap_err()
                .starts_with("invalid JSON Schema")
        );
        // No file or network access through $ref.
        let err = OutputSchema::new(json!({"$ref": "file:///etc/passwd"})).unwrap_err();
        assert!(err.starts_with("invalid JSON Schema"), "{err}");
    }

    #[test]
    fn previews_are_short_and_single_line() {
        let p = preview(&"a\nb".repeat(100));
        assert!(!p.contains('\n'));
        assert!(p.chars().count() < 130);
    }
}
