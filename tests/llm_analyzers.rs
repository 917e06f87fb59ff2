//! The LLM analyzers against a fake OpenAI-compatible / Gemini server on loopback
//! (`scraipe::llm::fake`, plain std::net threads): request shapes, structured replies, broken
//! replies, retries, timeouts, size caps, rate limits, the cache, and that the API key shows
//! up nowhere but in the request header.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use scraipe::llm::fake::{FakeLlmServer, FakeReply};
use scraipe::llm::{Budget, GeminiAnalyzer, LlmAnalyzer, LlmAnalyzerBuilder, OpenAiAnalyzer};
use scraipe::rt::{self, Runtime};
use scraipe::AnalysisResult;
use serde_json::{json, Value};

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

fn offer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
        "required": ["name", "price"],
        "additionalProperties": false
    })
}

/// A fast budget for tests: short backoffs, short timeouts.
fn quick() -> Budget {
    Budget {
        max_retries: 2,
        call_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..Budget::default()
    }
}

fn openai(server: &FakeLlmServer) -> LlmAnalyzerBuilder {
    OpenAiAnalyzer::builder("Extract the product name and price.")
        .base_url(server.openai_url())
        .api_key("sk-test-key")
        .model("gpt-test")
        .schema(offer_schema())
        .budget(quick())
}

fn gemini(server: &FakeLlmServer) -> LlmAnalyzerBuilder {
    GeminiAnalyzer::builder("Extract the product name and price.")
        .base_url(server.gemini_url())
        .api_key("AIza-test-key")
        .model("gemini-test")
        .schema(offer_schema())
        .budget(quick())
}

fn analyze(analyzer: &LlmAnalyzer, content: &str) -> AnalysisResult {
    runtime().block_on(analyzer.analyze_content(content))
}

fn meta(r: &AnalysisResult) -> &serde_json::Map<String, Value> {
    r.metadata().expect("LLM results carry metadata")
}

#[test]
fn openai_request_shape_and_structured_reply() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Answer(json!({"name": "Kettle", "price": 24.5})));
    let analyzer = openai(&server).build().unwrap();
    let r = analyze(&analyzer, "The Kettle costs 24.50 EUR.");
    assert!(r.success(), "{r}");
    assert_eq!(
        Value::Object(r.output().unwrap().clone()),
        json!({"name": "Kettle", "price": 24.5})
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = &req.body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Extract the product name and price."},
            {"role": "user", "content": "The Kettle costs 24.50 EUR."}
        ])
    );
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": offer_schema(), "strict": true}})
    );

    let m = meta(&r);
    assert_eq!(m["provider"], "openai");
    assert_eq!(m["model"], "gpt-test");
    assert_eq!(m["output_mode"], "json_schema");
    assert_eq!(m["attempts"], 1);
    assert_eq!(m["cached"], false);
    assert_eq!(m["truncated"], false);
    assert!(m["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(m["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        m["total_tokens"].as_u64(),
        Some(m["prompt_tokens"].as_u64().unwrap() + m["completion_tokens"].as_u64().unwrap())
    );
    assert!(m["latency_ms"].is_u64());
    let totals = analyzer.totals().snapshot();
    assert_eq!(
        (totals.analyses, totals.succeeded, totals.requests),
        (1, 1, 1)
    );
    assert_eq!(totals.total_tokens(), m["total_tokens"].as_u64().unwrap());
}

#[test]
fn gemini_request_shape_and_structured_reply() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Answer(json!({"name": "Lamp", "price": 12})));
    let analyzer = gemini(&server).build().unwrap();
    let r = analyze(&analyzer, "A Lamp for 12 EUR.");
    assert!(r.success(), "{r}");
    assert_eq!(r.output().unwrap()["name"], "Lamp");

    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(req.header("x-goog-api-key"), Some("AIza-test-key"));
    assert!(!req.path.contains("key="), "the key is not in the URL");
    let body = &req.body;
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Extract the product name and price."}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "A Lamp for 12 EUR."}]}])
    );
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    // additionalProperties is not part of Gemini's schema subset.
    assert_eq!(
        body["generationConfig"]["responseSchema"],
        json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
            "required": ["name", "price"]
        })
    );
    let m = meta(&r);
    assert_eq!(m["provider"], "gemini");
    assert_eq!(m["model"], "gemini-test");
    assert_eq!(m["output_mode"], "response_schema");
    assert!(m["total_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn replies_that_are_not_json_or_break_the_schema_fail_clearly() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Text("Sure! The price is 24.50.".into()));
    server.push(FakeReply::Answer(
        json!({"name": "Kettle", "price": "24.50"}),
    ));
    server.push(FakeReply::Answer(json!({"name": "Kettle"})));
    server.push(FakeReply::Answer(json!(["Kettle", 24.5])));
    let analyzer = openai(&server).no_cache().build().unwrap();
    let errors: Vec<String> = (0..4)
        .map(|i| {
            let r = analyze(&analyzer, &format!("page {i}"));
            assert!(!r.success());
            assert!(r.output().is_none());
            r.error().unwrap().to_string()
        })
        .collect();
    assert!(
        errors[0].starts_with("reply is not JSON: "),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("Sure! The price"), "{}", errors[0]);
    assert_eq!(
        errors[1],
        "reply does not match the schema at /price: expected number, got string"
    );
    assert_eq!(
        errors[2],
        "reply does not match the schema at (the top level): missing required property \"price\""
    );
    assert!(
        errors[3].contains("expected object, got array"),
        "{}",
        errors[3]
    );
    // A broken answer is not retried (it would cost again) and is not cached.
    assert_eq!(server.requests().len(), 4);
    let t = analyzer.totals().snapshot();
    assert_eq!((t.failed, t.retries), (4, 0));
}

#[test]
fn a_429_with_retry_after_is_waited_out_then_succeeds() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Error {
        status: 429,
        retry_after: Some("1".into()),
        body: json!({"error": {"message": "Rate limit reached"}}).to_string(),
    });
    server.push(FakeReply::Answer(json!({"name": "Kettle", "price": 1})));
    let analyzer = openai(&server).build().unwrap();
    let r = analyze(&analyzer, "content");
    assert!(r.success(), "{r}");
    assert_eq!(meta(&r)["attempts"], 2);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After honoured: {gap:?}"
    );
    assert!(gap < Duration::from_secs(3), "{gap:?}");
    assert_eq!(analyzer.totals().snapshot().retries, 1);

    // A Retry-After longer than the budget allows is cut to the cap (here 100 ms).
    server.push(FakeReply::Error {
        status: 503,
        retry_after: Some("3600".into()),
        body: "busy".into(),
    });
    let capped = openai(&server)
        .budget(Budget {
            max_retry_after: Duration::from_millis(100),
            ..quick()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(analyze(&capped, "other content").success());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Gemini says how long to wait in the 429's body (`RetryInfo.retryDelay`), not in a header:
/// that wait is honoured too, so a rate-limited call does not spend its retries inside the
/// quota window.
#[test]
fn a_gemini_429_waits_for_the_retry_delay_in_its_body() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Error {
        status: 429,
        retry_after: None,
        body: json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded. Please retry in 1s.",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]}})
        .to_string(),
    });
    server.push(FakeReply::Answer(json!({"name": "Lamp", "price": 12})));
    let analyzer = gemini(&server).build().unwrap();
    let r = analyze(&analyzer, "A Lamp for 12 EUR.");
    assert!(r.success(), "{r}");
    let seen = server.requests();
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retryDelay honoured: {gap:?}"
    );
}

/// A prompt too long for the model is that prompt's failure: the error may quote the
/// `response_format` schema's tokens, but it must not make the analyzer drop structured output
/// for every later page.
#[test]
fn a_context_length_error_does_not_downgrade_structured_output() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Error {
        status: 400,
        retry_after: None,
        body: json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens (including 317 in the response_format schemas.). Please reduce the length of the messages or schemas.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
        .to_string(),
    });
    server.push(FakeReply::Answer(json!({"name": "Kettle", "price": 1})));
    let analyzer = openai(&server).build().unwrap();
    let long = analyze(&analyzer, "a very long page");
    assert!(!long.success());
    assert!(
        long.error().unwrap().contains("maximum context length"),
        "{long}"
    );
    let next = analyze(&analyzer, "a short page");
    assert!(next.success(), "{next}");
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "the long page was sent once");
    assert_eq!(seen[1].body["response_format"]["type"], "json_schema");
    assert_eq!(
        seen[1].body["response_format"]["json_schema"]["strict"],
        true
    );
}

/// A server that echoes the API key into a valid answer: the key does not reach the result.
#[test]
fn an_api_key_echoed_into_an_answer_is_redacted() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Answer(
        json!({"name": "called with Bearer sk-test-key", "price": 1}),
    ));
    let analyzer = openai(&server).build().unwrap();
    let r = analyze(&analyzer, "content");
    assert!(r.success(), "{r}");
    assert_eq!(r.output().unwrap()["name"], "called with Bearer [redacted]");
}

/// A failure every call would meet (a rejected key; a server that cannot be reached) is not
/// paid for again by every page: the analyzer stops sending for a while and says why.
#[test]
fn failures_every_call_would_meet_stop_the_calls_for_a_while() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Error {
        status: 401,
        retry_after: None,
        body: json!({"error": {"message": "Incorrect API key provided"}}).to_string(),
    });
    let analyzer = openai(&server).no_cache().build().unwrap();
    let results: Vec<AnalysisResult> = (0..5)
        .map(|i| analyze(&analyzer, &format!("page {i}")))
        .collect();
    assert_eq!(server.requests().len(), 1, "one request found out");
    assert!(results[0].error().unwrap().contains("check the API key"));
    for r in &results[1..] {
        let e = r.error().unwrap();
        assert!(
            e.starts_with("not sent: ") && e.contains("check the API key"),
            "{e}"
        );
    }

    // Nothing listens: three calls in a row find out (each after its own retries), the rest
    // fail at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = OpenAiAnalyzer::builder("x")
        .base_url(format!("http://{dead}/v1"))
        .api_key("sk-test-key")
        .model("m")
        .no_cache()
        .budget(Budget {
            max_retries: 1,
            ..quick()
        })
        .build()
        .unwrap();
    let errors: Vec<String> = (0..6)
        .map(|i| {
            analyze(&unreachable, &format!("page {i}"))
                .error()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        errors[..3].iter().all(|e| !e.starts_with("not sent")),
        "{errors:?}"
    );
    assert!(
        errors[3..].iter().all(|e| e.starts_with("not sent")),
        "{errors:?}"
    );
}

#[test]
fn persistent_500s_are_retried_within_the_budget_then_reported() {
    let server = FakeLlmServer::start().unwrap();
    for _ in 0..3 {
        server.push(FakeReply::Error {
            status: 500,
            retry_after: None,
            body: json!({"error": {"message": "The server had an error"}}).to_string(),
        });
    }
    let analyzer = openai(&server).build().unwrap(); // 2 retries
    let r = analyze(&analyzer, "content");
    assert!(!r.success());
    assert_eq!(
        r.error().unwrap(),
        "openai answered 500: The server had an error (gave up after 3 attempts)"
    );
    assert_eq!(meta(&r)["attempts"], 3);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(analyzer.totals().snapshot().retries, 2);

    // A 4xx other than 429 is not retried, and says what to check.
    server.push(FakeReply::Error {
        status: 404,
        retry_after: None,
        body: json!({"error": {"message": "model gpt-test not found"}}).to_string(),
    });
    let r = analyze(&analyzer, "other");
    assert_eq!(
        r.error().unwrap(),
        "openai answered 404 (check the server URL and the model name): model gpt-test not found"
    );
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn a_reply_slower_than_the_call_timeout_fails_in_time() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Slow(
        Duration::from_secs(3),
        Box::new(FakeReply::Answer(json!({"name": "x", "price": 1}))),
    ));
    let analyzer = openai(&server)
        .budget(Budget {
            call_timeout: Duration::from_millis(300),
            max_retries: 0,
            ..quick()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let r = analyze(&analyzer, "content");
    let took = started.elapsed();
    assert_eq!(r.error(), Some("no reply from openai within 0.3 s"));
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // With a retry left, the next (fast) attempt succeeds.
    server.push(FakeReply::Slow(
        Duration::from_secs(2),
        Box::new(FakeReply::Answer(json!({"name": "x", "price": 1}))),
    ));
    server.push(FakeReply::Answer(json!({"name": "y", "price": 2})));
    let retrying = openai(&server)
        .budget(Budget {
            call_timeout: Duration::from_millis(300),
            max_retries: 1,
            ..quick()
        })
        .build()
        .unwrap();
    let r = analyze(&retrying, "content 2");
    assert_eq!(r.output().unwrap()["name"], "y", "{r}");
    assert_eq!(meta(&r)["attempts"], 2);
}

#[test]
fn a_reply_over_the_size_cap_is_refused_without_retrying() {
    let server = FakeLlmServer::start().unwrap();
    server.push(FakeReply::Text("x".repeat(20_000)));
    let analyzer = openai(&server)
        .budget(Budget {
            max_reply_bytes: 4096,
            ..quick()
        })
        .build()
        .unwrap();
    let r = analyze(&analyzer, "content");
    let err = r.error().unwrap();
    assert!(
        err.starts_with("the reply is larger than the 4096-byte limit"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_rate_limiter_spaces_requests_and_max_workers_caps_concurrency() {
    let server = FakeLlmServer::start().unwrap();
    let analyzer = Arc::new(
        openai(&server)
            .requests_per_minute(600) // one every 100 ms
            .max_workers(4)
            .build()
            .unwrap(),
    );
    let rt = runtime();
    let results = rt.block_on(async {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let a = analyzer.clone();
                rt::spawn(async move { a.analyze_content(&format!("item {i}")).await })
            })
            .collect();
        rt::join_all(handles).await
    });
    assert!(results.iter().all(|r| r.as_ref().unwrap().success()));
    let mut at: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    // Starts are 100 ms apart; arrivals jitter by the connection set-up on a busy machine.
    // Without the limiter all five arrive within a few milliseconds.
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(40), "requests {gap:?} apart");
    }
    assert!(
        at[4] - at[0] >= Duration::from_millis(380),
        "{:?}",
        at[4] - at[0]
    );

    // max_workers: 2 calls at once, each 300 ms → 6 calls take at least 3 rounds.
    let slow = FakeLlmServer::start().unwrap();
    for _ in 0..6 {
        slow.push(FakeReply::Slow(
            Duration::from_millis(300),
            Box::new(FakeReply::Answer(json!({"name": "x", "price": 1}))),
        ));
    }
    let two = Arc::new(openai(&slow).max_workers(2).build().unwrap());
    let started = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let a = two.clone();
                rt::spawn(async move { a.analyze_content(&format!("item {i}")).await })
            })
            .collect();
        rt::join_all(handles).await
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(880), "{took:?}");
    let mut at: Vec<Instant> = slow.requests().iter().map(|r| r.at).collect();
    at.sort();
    assert!(
        at[2] - at[0] >= Duration::from_millis(250),
        "a third call waited for a worker"
    );
}

#[test]
fn tokens_reported_by_the_server_drive_the_tokens_per_minute_budget() {
    let server = FakeLlmServer::start().unwrap();
    // 6,000 tokens per minute: 10 ms per token. The first reply says it used a minute's
    // worth plus 50 tokens, so the next call must wait about half a second more.
    server.push(FakeReply::AnswerWithUsage {
        answer: json!({"name": "x", "price": 1}),
        prompt_tokens: 6_000,
        completion_tokens: 50,
    });
    let analyzer = openai(&server).tokens_per_minute(6_000).build().unwrap();
    let first = analyze(&analyzer, "first");
    assert_eq!(meta(&first)["total_tokens"], 6_050);
    let started = Instant::now();
    let second = analyze(&analyzer, "second");
    let waited = started.elapsed();
    assert!(second.success(), "{second}");
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let t = analyzer.totals().snapshot();
    assert_eq!(
        t.prompt_tokens,
        6_000 + meta(&second)["prompt_tokens"].as_u64().unwrap()
    );
}

#[test]
fn identical_requests_are_answered_from_the_cache() {
    let server = FakeLlmServer::start().unwrap();
    let analyzer = openai(&server).build().unwrap();
    let first = analyze(&analyzer, "same page");
    let second = analyze(&analyzer, "same page");
    assert_eq!(first.output(), second.output());
    assert_eq!(meta(&first)["cached"], false);
    assert_eq!(meta(&second)["cached"], true);
    assert_eq!(server.requests().len(), 1);
    analyze(&analyzer, "another page");
    assert_eq!(server.requests().len(), 2);
    let t = analyzer.totals().snapshot();
    assert_eq!((t.analyses, t.cache_hits, t.requests), (3, 1, 2));

    // A different instruction is a different question.
    let other = OpenAiAnalyzer::builder("Another instruction")
        .base_url(server.openai_url())
        .schema(offer_schema())
        .build()
        .unwrap();
    analyze(&other, "same page");
    assert_eq!(server.requests().len(), 3);

    // Without a cache, every call goes out.
    let uncached = openai(&server).no_cache().build().unwrap();
    analyze(&uncached, "same page");
    analyze(&uncached, "same page");
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn refused_structured_output_steps_back_to_loose_schema_then_json_object() {
    let refusal = |m: &str| FakeReply::Error {
        status: 400,
        retry_after: None,
        body: json!({"error": {"message": m}}).to_string(),
    };
    // OpenAI refuses strict mode for a schema that does not require every property.
    let server = FakeLlmServer::start().unwrap();
    server.push(refusal(
        "Invalid schema for response_format 'output': 'required' is required to include every key",
    ));
    let analyzer = openai(&server).build().unwrap();
    let r = analyze(&analyzer, "A Kettle, 24 EUR");
    assert!(r.success(), "{r}");
    assert_eq!(meta(&r)["output_mode"], "json_schema_loose");
    assert_eq!(meta(&r)["attempts"], 1, "a refusal is not a retry");
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].body["response_format"]["json_schema"]["strict"],
        false
    );

    // A server that knows no json_schema at all refuses both; json_object it is.
    let server = FakeLlmServer::start().unwrap();
    server.push(refusal("response_format type json_schema is not supported"));
    server.push(refusal("response_format type json_schema is not supported"));
    let analyzer = openai(&server).build().unwrap();
    let r = analyze(&analyzer, "A Kettle, 24 EUR");
    assert!(r.success(), "{r}");
    assert_eq!(meta(&r)["output_mode"], "json_object");
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[2].body["response_format"],
        json!({"type": "json_object"})
    );
    let system = seen[2].body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("JSON Schema") && system.contains("\"price\""),
        "{system}"
    );
    // Later calls ask that way from the start, and answers are still validated.
    server.push(FakeReply::Answer(json!({"name": 7, "price": 1})));
    let r = analyze(&analyzer, "next page");
    assert_eq!(
        r.error(),
        Some("reply does not match the schema at /name: expected string, got number")
    );
    assert_eq!(server.requests().len(), 4);
    // A third refusal of the last resort is an error, not a loop.
    server.push(refusal("response_format json_object unsupported too"));
    let r = analyze(&analyzer, "third page");
    assert!(
        r.error().unwrap().starts_with("openai answered 400: "),
        "{r}"
    );
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn long_content_is_cut_on_a_character_boundary_and_the_metadata_says_so() {
    let server = FakeLlmServer::start().unwrap();
    let analyzer = openai(&server).max_content_size(5).build().unwrap();
    let r = analyze(&analyzer, "héllo wörld");
    assert!(r.success(), "{r}");
    assert_eq!(server.requests()[0].body["messages"][1]["content"], "héllo");
    let m = meta(&r);
    assert_eq!(m["truncated"], true);
    assert_eq!(m["content_chars"], 5);
    assert_eq!(m["original_chars"], 11);
}

/// Every log line of this test binary (all tests), to look for the key.
fn captured_logs() -> &'static Mutex<Vec<String>> {
    static LOGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        captured_logs().lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

#[test]
fn the_api_key_appears_in_no_output_error_debug_or_log_line() {
    static LOGGER: Capture = Capture;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    const KEY: &str = "sk-SECRET-0123456789abcdef";

    let server = FakeLlmServer::start().unwrap();
    // Servers echo rejected keys in their errors; a retried one is logged as a warning.
    let echo =
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}).to_string();
    server.push(FakeReply::Error {
        status: 503,
        retry_after: Some("0".into()),
        body: echo.clone(),
    });
    server.push(FakeReply::Text(format!("not json {KEY}")));
    server.push(FakeReply::Error {
        status: 401,
        retry_after: None,
        body: echo.clone(),
    });

    let analyzer = openai(&server).api_key(KEY).no_cache().build().unwrap();
    let mut everything = vec![format!("{analyzer:?}")];
    for content in ["a", "b"] {
        let r = analyze(&analyzer, content);
        assert!(!r.success(), "{r}");
        everything.push(format!("{r:?}"));
        everything.push(r.to_string());
        everything.push(serde_json::to_string(&r).unwrap());
    }
    assert_eq!(
        server.requests().len(),
        3,
        "503 retried into the prose reply, then a 401"
    );
    // The key was sent, as a header, every time.
    for req in server.requests() {
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    let gemini = GeminiAnalyzer::builder("x")
        .base_url(server.gemini_url())
        .api_key(KEY)
        .build()
        .unwrap();
    everything.push(format!("{gemini:?}"));
    everything.push(format!("{:?}", OpenAiAnalyzer::builder("x").api_key(KEY)));
    everything.extend(captured_logs().lock().unwrap().iter().cloned());
    assert!(
        everything.iter().any(|l| l.contains("[redacted]")),
        "the echoed key was scrubbed, not dropped: {everything:#?}"
    );
    for line in &everything {
        assert!(!line.contains(KEY), "the key leaked: {line}");
    }
}
