//! The examples build with the test suite; this runs them and checks what they print.
//!
//! `cargo test` builds every example before running tests. (`cargo test --test examples` alone
//! does not: build them first with `cargo build --examples`.)

use std::process::Command;
use std::time::Duration;

/// Path of an example binary built by `cargo test` (next to this test's own directory).
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    Command::new(dir)
}

fn run(name: &str) -> String {
    let started = std::time::Instant::now();
    let out = example(name)
        // The LLM example talks to a real server when one is named: not in tests.
        .env_remove("SCRAIPE_LLM_URL")
        .output()
        .unwrap_or_else(|e| panic!("example {name} not built: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{name} took too long"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn basic_workflow() {
    let out = run("basic_workflow");
    assert!(
        out.contains("link, word_count, character_count, sentence_count, average_word_length"),
        "{out}"
    );
    assert!(out.contains("Status code: 404"), "{out}");
}

#[test]
fn custom_components() {
    let out = run("custom_components");
    assert!(out.contains("index page links: 40"), "{out}");
    assert!(out.contains("\"internal\""), "{out}");
}

#[test]
fn multiscraper() {
    let out = run("multiscraper");
    assert!(
        out.contains("RawScraper[SUCCESS]") && out.contains("TextScraper[SUCCESS]"),
        "{out}"
    );
    assert!(out.contains("No scraper could handle link"), "{out}");
}

#[test]
fn echo_server() {
    let out = run("echo_server");
    assert!(out.contains("100/100 clients got their line back"), "{out}");
}

#[test]
fn llm_analyzer() {
    let out = run("llm_analyzer");
    assert!(out.contains("server: built-in fake"), "{out}");
    assert!(out.contains("3/3 analyses succeeded"), "{out}");
    assert!(out.contains("\"price_eur\":"), "{out}");
    assert!(out.contains("same page again, from cache: true"), "{out}");
    assert!(
        out.contains("llm: 4 analyses (4 ok, 0 failed, 1 from cache), 3 requests"),
        "{out}"
    );
}

#[test]
fn offer_timing() {
    let out = example("offer_timing")
        .arg("3")
        .output()
        .unwrap_or_else(|e| panic!("example offer_timing not built: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8_lossy(&out.stdout);
    for kind in ["json_ld", "microdata", "meta", "rule"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(kind) && l.contains("(1299.00 EUR via")),
            "{kind}: {out}"
        );
    }
    assert!(out.contains("ns/page"), "{out}");
}
