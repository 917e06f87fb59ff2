//! [`FakeLlmServer`]: an OpenAI-compatible and Gemini server on loopback that answers from a
//! script, for tests, examples and trying the analyzers offline. Not a model: its default
//! answers are shaped after the requested schema and filled from the content.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum FakeReply {
    /// Answer with this JSON value (serialised as the model's text), with usage counts.
    Answer(Value),
    /// Answer with this JSON value, reporting these token counts as usage.
    AnswerWithUsage {
        /// The answer.
        answer: Value,
        /// Reported prompt tokens.
        prompt_tokens: u64,
        /// Reported completion tokens.
        completion_tokens: u64,
    },
    /// Answer with this text as the model's output (e.g. prose instead of JSON).
    Text(String),
    /// Reply with an HTTP error: status, optional `Retry-After`, body.
    Error {
        /// Status code.
        status: u16,
        /// `Retry-After` header value.
        retry_after: Option<String>,
        /// Response body.
        body: String,
    },
    /// Wait, then do the inner reply.
    Slow(Duration, Box<FakeReply>),
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// Request path (with query).
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

impl FakeRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Script {
    queue: VecDeque<FakeReply>,
    always: Option<FakeReply>,
    seen: Vec<FakeRequest>,
}

/// The server. Stops (and frees its port) when dropped.
///
/// ```
/// use scraipe::llm::fake::{FakeLlmServer, FakeReply};
/// use scraipe::llm::OpenAiAnalyzer;
/// use scraipe::Analyzer;
///
/// let server = FakeLlmServer::start().unwrap();
/// server.push(FakeReply::Text("Sorry, I cannot do JSON".into()));
/// let analyzer = OpenAiAnalyzer::builder("Summarise.").base_url(server.openai_url()).build().unwrap();
/// let failed = analyzer.analyze("some text");
/// assert!(failed.error().unwrap().starts_with("reply is not JSON"));
/// // Unscripted requests get an answer shaped after the schema (here, none: a summary).
/// let ok = analyzer.analyze("other text");
/// assert_eq!(ok.output().unwrap()["summary"], "other text");
/// ```
pub struct FakeLlmServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLlmServer {
    /// Starts on `127.0.0.1`, on a free port.
    pub fn start() -> io::Result<FakeLlmServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (script, stop) = (script.clone(), stop.clone());
            std::thread::Builder::new()
                .name("fake-llm".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let script = script.clone();
                        let _ = std::thread::Builder::new()
                            .name("fake-llm-conn".into())
                            .spawn(move || serve(conn, &script));
                    }
                })?
        };
        Ok(FakeLlmServer {
            addr,
            script,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for [`OpenAiAnalyzer`](super::OpenAiAnalyzer): `http://127.0.0.1:PORT/v1`.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL for [`GeminiAnalyzer`](super::GeminiAnalyzer): `http://127.0.0.1:PORT/v1beta`.
    pub fn gemini_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// Queues a reply for the next request (replies are used in order).
    pub fn push(&self, reply: FakeReply) {
        self.script.lock().queue.push_back(reply);
    }

    /// Answers every unscripted request with `answer` (instead of a schema-shaped one).
    pub fn always(&self, answer: Value) {
        self.script.lock().always = Some(FakeReply::Answer(answer));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.script.lock().seen.clone()
    }
}

impl Drop for FakeLlmServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection, answered with `Connection: close`.
fn serve(conn: TcpStream, script: &Mutex<Script>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let reply = {
        let mut s = script.lock();
        s.seen.push(request.clone());
        s.queue.pop_front().or_else(|| s.always.clone())
    };
    let reply = reply.unwrap_or_else(|| FakeReply::Answer(shaped_answer(&request)));
    let _ = write_reply(&mut writer, &request, reply);
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<FakeRequest> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        if name == "content-length" {
            length = value.parse().ok()?;
        }
        headers.push((name, value));
    }
    let mut body = vec![0; length.min(64 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(FakeRequest {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    })
}

fn write_reply(out: &mut TcpStream, request: &FakeRequest, reply: FakeReply) -> io::Result<()> {
    let (status, extra, body) = match reply {
        FakeReply::Slow(delay, inner) => {
            std::thread::sleep(delay);
            return write_reply(out, request, *inner);
        }
        FakeReply::Error {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
        FakeReply::Answer(value) => (200, None, envelope(request, &value.to_string(), None)),
        FakeReply::AnswerWithUsage {
            answer,
            prompt_tokens,
            completion_tokens,
        } => (
            200,
            None,
            envelope(
                request,
                &answer.to_string(),
                Some((prompt_tokens, completion_tokens)),
            ),
        ),
        FakeReply::Text(text) => (200, None, envelope(request, &text, None)),
    };
    let mut head = format!(
        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(r) = extra {
        head.push_str(&format!("retry-after: {r}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

fn is_gemini(request: &FakeRequest) -> bool {
    request.path.contains(":generateContent")
}

/// The model's text wrapped as the API the request was made to would wrap it, with `usage`
/// or counts estimated from the sizes.
fn envelope(request: &FakeRequest, text: &str, usage: Option<(u64, u64)>) -> String {
    let (prompt, completion) = usage.unwrap_or((
        (request.body.to_string().len() / 4) as u64,
        (text.len() / 4 + 1) as u64,
    ));
    if is_gemini(request) {
        let model = request
            .path
            .split("/models/")
            .nth(1)
            .and_then(|m| m.split(':').next())
            .unwrap_or("fake");
        json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion},
            "modelVersion": model
        })
        .to_string()
    } else {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": request.body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        })
        .to_string()
    }
}

/// The content of the request's user message.
fn content_of(request: &FakeRequest) -> String {
    let b = &request.body;
    let text = if is_gemini(request) {
        b.pointer("/contents/0/parts/0/text")
    } else {
        b.pointer("/messages/1/content")
    };
    text.and_then(Value::as_str).unwrap_or("").to_string()
}

/// An answer shaped after the requested schema (or `{"summary", "words"}` without one).
fn shaped_answer(request: &FakeRequest) -> Value {
    let b = &request.body;
    // In json_object mode the schema travels as the last line of the system message.
    let in_prompt: Option<Value> = b
        .pointer("/messages/0/content")
        .and_then(Value::as_str)
        .and_then(|s| s.lines().last())
        .and_then(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("type").is_some());
    let schema = if is_gemini(request) {
        b.pointer("/generationConfig/responseSchema")
    } else {
        b.pointer("/response_format/json_schema/schema")
            .or(in_prompt.as_ref())
    };
    let content = content_of(request);
    match schema {
        Some(s) => fill(s, &content),
        None => json!({
            "summary": content.chars().take(40).collect::<String>(),
            "words": content.split_whitespace().count(),
        }),
    }
}

fn fill(schema: &Value, content: &str) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned(),
        other => other.cloned(),
    };
    match ty.as_ref().and_then(Value::as_str) {
        Some("object") => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, s) in props {
                    out.insert(name.clone(), fill(s, content));
                }
            }
            Value::Object(out)
        }
        Some("array") => json!([]),
        Some("number") | Some("integer") => json!(content.split_whitespace().count()),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        _ => json!(content.chars().take(40).collect::<String>()),
    }
}
