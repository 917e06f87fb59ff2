//! `scraipe scrape --analyzer llm` end to end: the binary scrapes the demo site and asks a
//! fake OpenAI-compatible / Gemini server (loopback) about each page.

mod support;

use std::process::Command;

use scraipe::llm::fake::{FakeLlmServer, FakeReply};
use serde_json::{json, Value};
use support::proc::{fresh_dir, jsonl, Site};

const KEY: &str = "sk-cli-SECRET-42";

fn scraipe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scraipe"));
    c.env_remove("OPENAI_API_KEY").env_remove("GEMINI_API_KEY");
    c
}

fn tmp(name: &str) -> std::path::PathBuf {
    fresh_dir("cli-llm", name)
}

fn schema_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("schema.json");
    let schema = json!({
        "type": "object",
        "properties": {"topic": {"type": "string"}, "words": {"type": "integer"}},
        "required": ["topic", "words"]
    });
    std::fs::write(&path, schema.to_string()).unwrap();
    path
}

#[test]
fn scrape_with_an_openai_compatible_model_end_to_end() {
    let site = Site::start();
    let llm = FakeLlmServer::start().unwrap();
    let dir = tmp("e2e");
    let instruction = dir.join("instruction.txt");
    std::fs::write(&instruction, "Name the topic and count the words.\n").unwrap();
    let out = scraipe()
        .env("OPENAI_API_KEY", KEY)
        .args(["scrape", "--scraper", "text", "--analyzer", "llm"])
        .args(["--llm-provider", "openai", "--llm-url", &llm.openai_url()])
        .args(["--llm-model", "fake-model", "--llm-max-content", "200"])
        .arg("--instruction")
        .arg(format!("@{}", instruction.display()))
        .arg("--schema")
        .arg(schema_file(&dir))
        .args([
            site.url("/page/0"),
            site.url("/page/1"),
            site.url("/page/7"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = jsonl(&out.stdout);
    assert_eq!(rows.len(), 3);
    for row in &rows[..2] {
        assert_eq!(row["scrape_success"], true, "{row}");
        assert_eq!(row["analysis_success"], true, "{row}");
        let output = &row["output"];
        assert!(
            output["topic"].is_string() && output["words"].is_u64(),
            "{row}"
        );
        let meta = &row["analysis_metadata"];
        assert_eq!(meta["provider"], "openai");
        assert_eq!(meta["model"], "fake-model");
        assert!(meta["total_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            meta["truncated"], true,
            "demo pages are longer than 200 characters"
        );
    }
    // The 404 page is not analysed.
    assert_eq!(rows[2]["scrape_success"], false);
    assert_eq!(rows[2]["analysis_success"], Value::Null);

    let seen = llm.requests();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(req.body["model"], "fake-model");
        assert_eq!(
            req.body["messages"][0]["content"],
            "Name the topic and count the words.\n"
        );
        let content = req.body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), 200);
        assert_eq!(req.body["response_format"]["type"], "json_schema");
    }
    assert!(
        stderr.contains("llm: 2 analyses (2 ok, 0 failed, 0 from cache), 2 requests, 0 retries"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
}

/// `--no-proxy` (and `--proxy`) apply to the model server as to the pages: with a dead proxy in
/// the environment and `--no-proxy`, the LLM call goes direct (it carries the API key; it must
/// not go where the user said not to send anything).
#[test]
fn the_proxy_flags_apply_to_the_llm_calls_too() {
    let site = Site::start();
    let llm = FakeLlmServer::start().unwrap();
    let out = scraipe()
        .env("OPENAI_API_KEY", KEY)
        .env("http_proxy", "http://127.0.0.1:1")
        .env("all_proxy", "http://127.0.0.1:1")
        .args(["scrape", "--no-proxy", "--analyzer", "llm"])
        .args(["--llm-url", &llm.openai_url(), "--llm-model", "m"])
        .args(["--instruction", "Summarise.", "--llm-retries", "0"])
        .arg(site.url("/page/3"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = jsonl(&out.stdout);
    assert_eq!(rows[0]["scrape_success"], true, "{}", rows[0]);
    assert_eq!(rows[0]["analysis_success"], true, "{}", rows[0]);
    assert_eq!(llm.requests().len(), 1);
}

#[test]
fn gemini_failures_become_failed_analyses_not_failed_runs() {
    let site = Site::start();
    let llm = FakeLlmServer::start().unwrap();
    llm.push(FakeReply::Error {
        status: 500,
        retry_after: None,
        body: json!({"error": {"message": format!("internal error, key {KEY}")}}).to_string(),
    });
    let out = scraipe()
        .env("GEMINI_API_KEY", KEY)
        .env("RUST_LOG", "debug")
        .args(["scrape", "--analyzer", "llm", "--llm-provider", "gemini"])
        .args(["--llm-url", &llm.gemini_url(), "--llm-model", "gem"])
        .args(["--instruction", "Summarise.", "--llm-retries", "0"])
        .arg(site.url("/page/2"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = jsonl(&out.stdout);
    assert_eq!(rows[0]["scrape_success"], true);
    assert_eq!(rows[0]["analysis_success"], false);
    assert_eq!(
        rows[0]["analysis_error"],
        "gemini answered 500: internal error, key [redacted]"
    );
    assert_eq!(llm.requests()[0].header("x-goog-api-key"), Some(KEY));
    assert!(stderr.contains("1 analyses failed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(KEY), "{stdout}");
    assert!(!stderr.contains(KEY), "debug logs too: {stderr}");
}

#[test]
fn missing_or_misplaced_llm_options_are_usage_errors() {
    let site = Site::start();
    let page = site.url("/page/0");
    let dir = tmp("usage");
    let run = |args: &[&str]| {
        let out = scraipe()
            .args(["scrape", &page])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let local = "http://127.0.0.1:9/v1";
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "--analyzer",
                "llm",
                "--instruction",
                "x",
                "--llm-url",
                local,
            ],
            2,
            "--llm-model",
        ),
        (
            vec!["--analyzer", "llm", "--llm-model", "m", "--llm-url", local],
            2,
            "--instruction",
        ),
        (
            vec!["--instruction", "x"],
            2,
            "only applies with --analyzer llm",
        ),
        (
            vec!["--analyzer", "text-stats", "--llm-model", "m"],
            2,
            "only applies with --analyzer llm",
        ),
        // Budget options with defaults count too, when given another value.
        (
            vec!["--llm-concurrency", "7"],
            2,
            "--llm-concurrency only applies with --analyzer llm",
        ),
        (
            vec!["--llm-retries", "9"],
            2,
            "--llm-retries only applies with --analyzer llm",
        ),
        // The official API without a key.
        (
            vec![
                "--analyzer",
                "llm",
                "--llm-model",
                "m",
                "--instruction",
                "x",
            ],
            2,
            "OPENAI_API_KEY",
        ),
        (
            vec![
                "--analyzer",
                "llm",
                "--llm-provider",
                "gemini",
                "--llm-model",
                "m",
                "--instruction",
                "x",
            ],
            2,
            "GEMINI_API_KEY",
        ),
        (
            vec![
                "--analyzer",
                "llm",
                "--llm-model",
                "m",
                "--instruction",
                "@/no/such/file",
                "--llm-url",
                local,
            ],
            1,
            "cannot read instruction file",
        ),
        (
            vec!["--analyzer", "llm", "--llm-provider", "claude"],
            2,
            "invalid value",
        ),
        (
            vec!["--analyzer", "llm", "--llm-concurrency", "0"],
            2,
            "invalid value",
        ),
    ];
    for (args, code, needle) in cases {
        let (got, err) = run(&args);
        assert_eq!(got, Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let bad_schema = dir.join("bad.json");
    std::fs::write(&bad_schema, "{not json").unwrap();
    let (code, err) = run(&[
        "--analyzer",
        "llm",
        "--llm-model",
        "m",
        "--instruction",
        "x",
        "--llm-url",
        local,
        "--schema",
        bad_schema.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not JSON"), "{err}");
    let (code, err) = run(&[
        "--analyzer",
        "llm",
        "--llm-model",
        "m",
        "--instruction",
        "x",
        "--llm-url",
        local,
        "--schema",
        "/no/such/schema.json",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot read schema file"), "{err}");
    assert_eq!(
        site.server.requests_served(),
        0,
        "checked before any scraping"
    );
}

#[test]
fn help_documents_the_llm_options() {
    let out = scraipe().args(["scrape", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--analyzer",
        "llm",
        "--llm-provider",
        "--llm-url",
        "--llm-model",
        "--instruction",
        "--schema",
        "--llm-max-content",
        "--llm-concurrency",
        "--llm-timeout",
        "--llm-retries",
        "--llm-rpm",
        "--llm-tpm",
        "OPENAI_API_KEY",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
