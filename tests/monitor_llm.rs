//! `scraipe monitor run` with `extract = "llm"` rules, against the built-in fake
//! OpenAI-compatible server and a loopback page without structured data: the offer comes from
//! the model's validated answer, an answer that breaks the offer schema fails the check, and
//! unchanged pages (same body, or a new body with the same text) cost no new model request.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use scraipe::llm::fake::{FakeLlmServer, FakeReply};
use serde_json::{json, Value};
use support::proc::{fresh_dir, monitor_run, OutputOk};
use support::{respond, After, Seen, TestServer, Transport};

fn scraipe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scraipe"));
    // The fake server needs no key; make sure no real one is around.
    cmd.env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY");
    cmd
}

fn tmp(name: &str) -> PathBuf {
    fresh_dir("monllm", name)
}

/// A one-page site whose body the test sets; no markup a parser could read a price from.
struct PlainSite {
    server: TestServer,
    body: Arc<Mutex<String>>,
}

impl PlainSite {
    fn start(body: &str) -> PlainSite {
        let body = Arc::new(Mutex::new(body.to_string()));
        let page = body.clone();
        let server = TestServer::start(move |req: &Seen, t: &mut dyn Transport| {
            if req.path == "/product/1" {
                let html = page.lock().unwrap().clone();
                respond(
                    t,
                    "200 OK",
                    &[("Content-Type", "text/html; charset=utf-8")],
                    html.as_bytes(),
                );
            } else {
                respond(t, "404 Not Found", &[], b"no");
            }
            After::KeepAlive
        });
        PlainSite { server, body }
    }

    fn url(&self) -> String {
        self.server.url("/product/1")
    }

    fn set(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }
}

fn setup(dir: &Path, site: &PlainSite) {
    std::fs::write(dir.join("urls.txt"), format!("{}\n", site.url())).unwrap();
    std::fs::write(
        dir.join("rules.toml"),
        "[[site]]\nmatch = \"^http://127\\\\.0\\\\.0\\\\.1:\\\\d+/product/\"\nextract = \"llm\"\n",
    )
    .unwrap();
}

fn monitor(dir: &Path, llm: &[&str]) -> Output {
    monitor_run(dir, &dir.join("urls.txt"))
        // The fake server needs no key; make sure no real one is around.
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .args(["--once", "--every", "0s", "--ignore-robots"])
        .arg("--rules")
        .arg(dir.join("rules.toml"))
        .args(llm)
        .output()
        .unwrap()
}

fn run_ok(dir: &Path, fake: &FakeLlmServer) -> String {
    let url = fake.openai_url();
    let out = monitor(
        dir,
        &[
            "--llm-provider",
            "openai",
            "--llm-url",
            &url,
            "--llm-model",
            "test-model",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "monitor run failed: {stderr}");
    stderr
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn history(dir: &Path) -> Vec<Value> {
    let out = scraipe()
        .args(["monitor", "export", "--db"])
        .arg(dir.join("state.sqlite"))
        .output_ok();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const PAGE: &str = "<html><body><h1>Copper Kettle</h1><p>Only 1.299,00 € today</p>\
                    <p>In stock</p></body></html>";

#[test]
fn the_model_reads_the_offer_and_unchanged_pages_cost_nothing() {
    let dir = tmp("offer");
    let site = PlainSite::start(PAGE);
    setup(&dir, &site);
    let fake = FakeLlmServer::start().unwrap();
    fake.push(FakeReply::Answer(json!({
        "price": "1299.00", "currency": "EUR", "availability": "in_stock", "name": "Copper Kettle"
    })));

    let stderr = run_ok(&dir, &fake);
    let ev = events(&dir);
    assert_eq!(ev.len(), 1, "{ev:?}\n{stderr}");
    assert_eq!(ev[0]["price"], "1299.00");
    assert_eq!(ev[0]["currency"], "EUR");
    assert_eq!(ev[0]["availability"], "in_stock");
    assert_eq!(ev[0]["name"], "Copper Kettle");
    assert_eq!(ev[0]["source"], "llm");
    assert!(stderr.contains("llm: 1 analysis (1 ok"), "{stderr}");

    // What the model was sent: the model, the page's visible text, the offer schema.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].body.to_string();
    assert_eq!(reqs[0].body["model"], "test-model");
    assert!(body.contains("Only 1.299,00 € today"), "{body}");
    assert!(!body.contains("<h1>"), "markup sent to the model: {body}");
    assert!(body.contains("out_of_stock"), "no offer schema: {body}");

    // The same body: skipped by its hash, no model call, no event.
    run_ok(&dir, &fake);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(events(&dir).len(), 1);

    // A new body with the same text: the answer comes from the database's cache.
    site.set(&PAGE.replace("<p>In stock", "<p class=\"x\">In stock"));
    let stderr = run_ok(&dir, &fake);
    assert_eq!(fake.requests().len(), 1, "{stderr}");
    assert!(stderr.contains("1 from cache"), "{stderr}");
    assert_eq!(events(&dir).len(), 1);

    // New text: a new call, a new price, a change event.
    site.set(&PAGE.replace("1.299,00", "1.199,00"));
    fake.push(FakeReply::Answer(json!({
        "price": "1199.00", "currency": "EUR", "availability": "in_stock", "name": "Copper Kettle"
    })));
    run_ok(&dir, &fake);
    assert_eq!(fake.requests().len(), 2);
    let ev = events(&dir);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1]["price"], "1199.00");
    assert_eq!(ev[1]["previous_price"], "1299.00");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_answer_that_breaks_the_schema_fails_the_check() {
    let dir = tmp("invalid");
    let site = PlainSite::start(PAGE);
    setup(&dir, &site);
    let fake = FakeLlmServer::start().unwrap();
    // A float price: exactly what the schema forbids.
    fake.push(FakeReply::Answer(json!({
        "price": 1299.0, "currency": "EUR", "availability": "in_stock", "name": "Copper Kettle"
    })));
    let stderr = run_ok(&dir, &fake);
    assert!(events(&dir).is_empty(), "{stderr}");
    assert!(stderr.contains("failed 1"), "{stderr}");
    let rows = history(&dir);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "failed");
    let error = rows[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("llm extraction: ") && error.contains("/price"),
        "{error}"
    );
    assert!(rows[0]["price"].is_null(), "{rows:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn llm_rules_need_a_model() {
    let dir = tmp("usage");
    let site = PlainSite::start(PAGE);
    setup(&dir, &site);
    let out = monitor(&dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--llm-model"), "{stderr}");
    assert!(!dir.join("state.sqlite").exists(), "the store was touched");

    std::fs::write(
        dir.join("rules.toml"),
        "[[site]]\nmatch = \"^http://\"\nextract = \"gpt\"\n",
    )
    .unwrap();
    let out = monitor(&dir, &["--llm-model", "m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("[[site]] #1") && stderr.contains("field `extract`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_library_refuses_llm_rules_without_an_analyzer() {
    use scraipe::monitor::{store::SqliteStore, Monitor};
    use scraipe::offer::Rules;
    let dir = tmp("lib");
    let store = Arc::new(SqliteStore::open(dir.join("s.sqlite")).unwrap());
    let rules =
        Rules::from_toml_str("[[site]]\nmatch = \"^http://\"\nextract = \"llm\"\n").unwrap();
    let err = Monitor::builder(store.clone())
        .rules(Arc::new(rules))
        .build()
        .err()
        .expect("llm rules without an analyzer must not build");
    assert!(err.contains("no LLM analyzer"), "{err}");
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_offer_schema_works_with_gemini_too() {
    use scraipe::llm::GeminiAnalyzer;
    use scraipe::offer::{offer_from_llm, offer_schema, OFFER_INSTRUCTION};
    use scraipe::Analyzer;
    let fake = FakeLlmServer::start().unwrap();
    fake.push(FakeReply::Answer(json!({
        "price": "12.50", "currency": null, "availability": "out_of_stock", "name": null
    })));
    let analyzer = GeminiAnalyzer::builder(OFFER_INSTRUCTION)
        .base_url(fake.gemini_url())
        .model("gemini-test")
        .schema(offer_schema())
        .no_cache()
        .build()
        .unwrap();
    let result = analyzer.analyze("Sold out. 12,50 zł");
    let answer = result
        .output()
        .unwrap_or_else(|| panic!("{:?}", result.error()));
    let offer = offer_from_llm(answer, Some("PLN")).unwrap();
    assert_eq!(offer.price.as_deref(), Some("12.50"));
    assert_eq!(offer.currency.as_deref(), Some("PLN"));
    assert_eq!(offer.availability.as_str(), "out_of_stock");
    // Gemini got the schema in its OpenAPI dialect (nullable instead of a type list).
    let body = fake.requests()[0].body.to_string();
    assert!(
        body.contains("responseSchema") && body.contains("nullable"),
        "{body}"
    );
}
