//! Workflow: every link gets exactly one result, dedupe/overwrite/retry rules, progress,
//! exact store round trips (JSONL and CSV), export.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{obj, quiet_panics};

use scraipe::defaults::{ListLinkCollector, TextStatsAnalyzer};
use scraipe::results::JsonMap;
use scraipe::workflow::{Stage, StoreError, StoreFormat, WorkflowError};
use scraipe::{
    async_trait, AnalysisResult, Analyzer, AsyncScraper, LinkCollector, LinkIter, ScrapeIter,
    ScrapeResult, Scraper, Workflow,
};
use serde_json::json;

/// Behaves according to the link: `ok-*` succeeds after a short sleep, `err-*` fails,
/// `panic-*` panics, `hang-*` never returns.
struct MixScraper {
    timeout: Duration,
    calls: AtomicUsize,
}

#[async_trait]
impl AsyncScraper for MixScraper {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if link.starts_with("ok-") {
            scraipe::rt::sleep(Duration::from_micros(200)).await;
            ScrapeResult::succeed(link, format!("Content of {link}. Done!"))
        } else if link.starts_with("err-") {
            ScrapeResult::fail(link, "server said no")
        } else if link.starts_with("panic-") {
            panic!("intentional panic for {link}");
        } else {
            std::future::pending().await
        }
    }
    fn max_workers(&self) -> usize {
        500
    }
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}

#[test]
fn ten_thousand_links_each_get_exactly_one_result() {
    quiet_panics();
    let kinds = [
        "ok", "ok", "ok", "ok", "ok", "ok", "err", "panic", "hang", "ok",
    ];
    let links: Vec<String> = (0..10_000)
        .map(|i| format!("{}-{i}", kinds[i % kinds.len()]))
        .collect();
    let scraper = Arc::new(MixScraper {
        timeout: Duration::from_millis(300),
        calls: AtomicUsize::new(0),
    });
    let mut workflow = Workflow::new(scraper.clone(), Arc::new(TextStatsAnalyzer));
    let progress = Arc::new(AtomicUsize::new(0));
    let p = progress.clone();
    workflow.on_progress(move |step| {
        assert_eq!(step.stage, Stage::Scrape);
        assert_eq!(step.total, Some(10_000));
        p.fetch_add(1, Ordering::Relaxed);
    });

    let started = Instant::now();
    let results = workflow.scrape(links.clone(), false);
    let elapsed = started.elapsed();

    assert_eq!(results.len(), 10_000);
    assert_eq!(progress.load(Ordering::Relaxed), 10_000);
    assert_eq!(
        scraper.calls.load(Ordering::Relaxed),
        10_000,
        "each link scraped once"
    );
    let returned: Vec<&str> = results.iter().map(|r| r.link()).collect();
    assert_eq!(
        returned,
        links.iter().map(String::as_str).collect::<Vec<_>>(),
        "request order"
    );
    let mut by_kind: HashMap<&str, usize> = HashMap::new();
    for r in &results {
        let kind = r.link().split('-').next().unwrap();
        *by_kind.entry(kind).or_default() += 1;
        match kind {
            "ok" => assert_eq!(
                r.content(),
                Some(format!("Content of {}. Done!", r.link()).as_str())
            ),
            "err" => assert_eq!(r.error(), Some("server said no")),
            "panic" => {
                let e = r.error().unwrap();
                assert!(e.contains("panicked") && e.contains(r.link()), "{e}");
            }
            "hang" => assert!(r.error().unwrap().contains("timed out after 0.300"), "{r}"),
            other => panic!("unexpected kind {other}"),
        }
    }
    assert_eq!(by_kind["ok"], 7000);
    assert_eq!(by_kind["err"], 1000);
    assert_eq!(by_kind["panic"], 1000);
    assert_eq!(by_kind["hang"], 1000);
    assert_eq!(workflow.len(), 10_000);
    // 1000 hung links * 300 ms over 500 workers is ~0.6 s of waiting; allow slack for debug
    // builds on a busy 2-core machine.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");

    // Only successes get analysed, and a second scrape without overwrite retries just failures.
    workflow.clear_progress();
    let analyses = workflow.analyze(false);
    assert_eq!(analyses.len(), 7000);
    assert!(analyses
        .iter()
        .all(|(_, a)| a.output().unwrap()["sentence_count"] == 2));
    let again = workflow.scrape(links, false);
    assert_eq!(again.len(), 3000);
    assert!(again.iter().all(|r| !r.success()));
}

/// A synchronous scraper that panics on some links.
struct SyncPanicky;
impl Scraper for SyncPanicky {
    fn scrape(&self, link: &str) -> ScrapeResult {
        if link.contains("boom") {
            panic!("intentional sync panic");
        }
        ScrapeResult::succeed(link, "fine")
    }
}

#[test]
fn sync_scraper_panics_become_failed_results() {
    quiet_panics();
    let mut workflow = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    let results = workflow.scrape(["a", "boom", "b"], false);
    assert_eq!(results.len(), 3);
    assert!(results[0].success() && results[2].success());
    assert_eq!(
        results[1].error(),
        Some("scraper panicked: intentional sync panic")
    );
}

/// A scraper whose scrape_multiple forgets every other link, then panics mid-way.
struct Forgetful {
    panic_after: Option<usize>,
}
impl Scraper for Forgetful {
    fn scrape(&self, link: &str) -> ScrapeResult {
        ScrapeResult::succeed(link, "x")
    }
    fn scrape_multiple(self: Arc<Self>, links: Vec<String>) -> ScrapeIter {
        let panic_after = self.panic_after;
        Box::new(
            links
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(move |(i, link)| {
                    if panic_after.is_some_and(|n| i >= n) {
                        panic!("intentional iterator panic");
                    }
                    let result = ScrapeResult::succeed(&link, "x");
                    (link, result)
                }),
        )
    }
}

#[test]
fn links_a_scraper_forgets_or_drops_by_panicking_still_get_results() {
    quiet_panics();
    let links: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    let mut workflow = Workflow::new(
        Arc::new(Forgetful { panic_after: None }),
        Arc::new(TextStatsAnalyzer),
    );
    let results = workflow.scrape(links.clone(), false);
    assert_eq!(results.len(), 10);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.success(), i % 2 == 0, "{r}");
        if i % 2 == 1 {
            assert_eq!(
                r.error(),
                Some("the scraper returned no result for this link")
            );
        }
    }

    let mut workflow = Workflow::new(
        Arc::new(Forgetful {
            panic_after: Some(4),
        }),
        Arc::new(TextStatsAnalyzer),
    );
    let results = workflow.scrape(links, false);
    assert_eq!(results.len(), 10);
    assert_eq!(
        results.iter().filter(|r| r.success()).count(),
        2,
        "l0 and l2 came before the panic"
    );
    assert_eq!(
        results[4].error(),
        Some("the scraper panicked: intentional iterator panic")
    );
}

/// Returns a result naming another link (a redirect, say).
struct Redirecting;
impl Scraper for Redirecting {
    fn scrape(&self, link: &str) -> ScrapeResult {
        ScrapeResult::succeed(format!("{link}/final"), "moved")
    }
}

#[test]
fn results_are_stored_under_the_requested_link() {
    let mut workflow = Workflow::new(Arc::new(Redirecting), Arc::new(TextStatsAnalyzer));
    let results = workflow.scrape(["https://a.example"], false);
    assert_eq!(results[0].link(), "https://a.example");
    assert_eq!(
        results[0].metadata().unwrap()["original_link"],
        "https://a.example/final"
    );
    assert_eq!(workflow.get_links(), ["https://a.example"]);
}

/// Counts scrapes; fails links containing "flaky" on the first attempt only.
struct Counting {
    seen: Mutex<HashMap<String, usize>>,
}
impl Scraper for Counting {
    fn scrape(&self, link: &str) -> ScrapeResult {
        let mut seen = self.seen.lock().unwrap();
        let n = seen.entry(link.to_string()).or_default();
        *n += 1;
        if link.contains("flaky") && *n == 1 {
            ScrapeResult::fail(link, "first try fails")
        } else {
            ScrapeResult::succeed(link, format!("attempt {n}. ok."))
        }
    }
}

/// Fails its first two analyses, succeeds afterwards.
struct PickyAnalyzer {
    calls: AtomicUsize,
}
impl Analyzer for PickyAnalyzer {
    fn analyze(&self, content: &str) -> AnalysisResult {
        if self.calls.fetch_add(1, Ordering::SeqCst) < 2 {
            AnalysisResult::fail("picky")
        } else {
            AnalysisResult::succeed(obj(json!({"len": content.len()})))
        }
    }
}

#[test]
fn dedupe_overwrite_and_retry_rules() {
    let scraper = Arc::new(Counting {
        seen: Mutex::new(HashMap::new()),
    });
    let mut workflow = Workflow::new(scraper.clone(), Arc::new(TextStatsAnalyzer));
    let results = workflow.scrape(["a", "flaky", "a", "b", "flaky"], false);
    assert_eq!(
        results.iter().map(|r| r.link()).collect::<Vec<_>>(),
        ["a", "flaky", "b"]
    );
    assert!(!results[1].success());
    // Without overwrite: only the failure is retried.
    let again = workflow.scrape(["a", "flaky", "b"], false);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].content(), Some("attempt 2. ok."));
    // With overwrite: everything again.
    let all = workflow.scrape(["a", "flaky", "b"], true);
    assert_eq!(all.len(), 3);
    let seen = scraper.seen.lock().unwrap();
    assert_eq!((seen["a"], seen["flaky"], seen["b"]), (2, 3, 2));
    drop(seen);

    // Analysis: failed analyses are retried, successful ones kept unless overwrite.
    let mut workflow = Workflow::new(
        Arc::new(Counting {
            seen: Mutex::new(HashMap::new()),
        }),
        Arc::new(PickyAnalyzer {
            calls: AtomicUsize::new(0),
        }),
    );
    workflow.scrape(["x", "y", "flaky"], false);
    let first = workflow.analyze(false);
    assert_eq!(first.len(), 2, "the failed scrape is not analysed");
    assert!(first.iter().all(|(_, a)| !a.success()));
    let second = workflow.analyze(false);
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|(_, a)| a.success()));
    assert_eq!(workflow.analyze(false).len(), 0);
    assert_eq!(workflow.analyze(true).len(), 2);
    assert_eq!(workflow.get_analyses().len(), 2);
}

/// Content per call from a script: `(link, Some(content))` succeeds, `None` fails.
struct Scripted(Mutex<Vec<(&'static str, Option<&'static str>)>>);
impl Scraper for Scripted {
    fn scrape(&self, link: &str) -> ScrapeResult {
        let mut script = self.0.lock().unwrap();
        let at = script
            .iter()
            .position(|(l, _)| *l == link)
            .expect("scripted");
        match script.remove(at).1 {
            Some(content) => ScrapeResult::succeed(link, content),
            None => ScrapeResult::fail(link, "gone"),
        }
    }
}

/// A re-scrape that changed the content (or failed) drops the analysis of the old content, so
/// `analyze(false)` looks at the new one; the same content keeps it.
#[test]
fn a_rescrape_with_new_content_drops_the_old_analysis() {
    let scraper = Arc::new(Scripted(Mutex::new(vec![
        ("same", Some("one two three")),
        ("changed", Some("one two three")),
        ("failed", Some("one two three")),
        ("same", Some("one two three")),
        ("changed", Some("one two three four")),
        ("failed", None),
    ])));
    let mut workflow = Workflow::new(scraper, Arc::new(TextStatsAnalyzer));
    workflow.scrape(["same", "changed", "failed"], false);
    assert_eq!(workflow.analyze(false).len(), 3);
    workflow.scrape(["same", "changed", "failed"], true);
    let again = workflow.analyze(false);
    let links: Vec<&str> = again.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        links,
        ["changed"],
        "only the changed page is analysed again"
    );
    assert_eq!(again[0].1.output().unwrap()["word_count"], 4);
    let analyses = workflow.get_analyses();
    assert!(
        !analyses.iter().any(|(l, _)| l == "failed"),
        "a failed re-scrape keeps no analysis of the page it no longer has"
    );
    assert!(analyses.iter().any(|(l, _)| l == "same"));
}

/// A `scrape_multiple` that returns rows nobody asked for, or a second row for a link, adds
/// nothing to the store and replaces nothing: the first row for a requested link is kept.
#[test]
fn unrequested_and_repeated_rows_are_ignored() {
    struct Chatty;
    impl Scraper for Chatty {
        fn scrape(&self, link: &str) -> ScrapeResult {
            ScrapeResult::succeed(link, "first")
        }
        fn scrape_multiple(
            self: Arc<Self>,
            links: Vec<String>,
        ) -> Box<dyn Iterator<Item = (String, ScrapeResult)> + Send> {
            let mut rows: Vec<(String, ScrapeResult)> = links
                .iter()
                .map(|l| (l.clone(), ScrapeResult::succeed(l.as_str(), "first")))
                .collect();
            rows.push(("extra".into(), ScrapeResult::succeed("extra", "unasked")));
            rows.push((
                links[0].clone(),
                ScrapeResult::succeed(links[0].as_str(), "second"),
            ));
            Box::new(rows.into_iter())
        }
    }
    let mut workflow = Workflow::new(Arc::new(Chatty), Arc::new(TextStatsAnalyzer));
    let results = workflow.scrape(["a", "b"], false);
    assert_eq!(results.len(), 2);
    assert_eq!(workflow.len(), 2, "no unrequested link in the store");
    assert!(results.iter().all(|r| r.content() == Some("first")));
}

/// Output keys that collide after flattening, or with a status column once prefixed, become
/// distinct columns: no two columns share a name and no value is dropped.
#[test]
fn export_keeps_every_value_under_a_distinct_column_name() {
    let mut workflow = Workflow::new(
        Arc::new(Counting {
            seen: Mutex::new(HashMap::new()),
        }),
        Arc::new(TextStatsAnalyzer),
    );
    workflow.update_scrapes([ScrapeResult::succeed("x", "page")]);
    let output = json!({"link": "l", "output.link": "y", "a": {"b": 1}, "a.b": 2});
    workflow.update_analyses([(
        "x".to_string(),
        AnalysisResult::succeed(output.as_object().unwrap().clone()),
    )]);
    let table = workflow.export(true);
    let columns = table.columns();
    let distinct: std::collections::HashSet<&String> = columns.iter().collect();
    assert_eq!(distinct.len(), columns.len(), "{columns:?}");
    let values: Vec<&serde_json::Value> = table.rows()[0].iter().collect();
    for want in [json!("l"), json!("y"), json!(1), json!(2)] {
        assert!(
            values.contains(&&want),
            "{want} lost: {columns:?} {values:?}"
        );
    }
    assert_eq!(table.get(0, "output.link"), Some(&json!("y")));
}

#[test]
fn collect_links_from_collectors() {
    let mut workflow = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    assert_eq!(
        workflow.collect_links(),
        Err(WorkflowError::NoLinkCollector)
    );

    let mut workflow =
        workflow.with_link_collector(Arc::new(ListLinkCollector::new(["b", "a", "b"])));
    let stages = Arc::new(Mutex::new(Vec::new()));
    let s = stages.clone();
    workflow.on_progress(move |p| {
        s.lock()
            .unwrap()
            .push((p.stage, p.done, p.link.to_string()))
    });
    assert_eq!(workflow.collect_links(), Ok(3));
    assert_eq!(workflow.get_links(), ["b", "a"]);
    let scraped = workflow.scrape_stored(false);
    assert_eq!(scraped.len(), 2);
    let stages = stages.lock().unwrap();
    assert_eq!(stages[0], (Stage::CollectLinks, 1, "b".to_string()));
    assert_eq!(stages[3].0, Stage::Scrape);
    assert_eq!(stages.len(), 5);

    struct Exploding;
    impl LinkCollector for Exploding {
        fn collect_links(&self) -> LinkIter<'_> {
            Box::new((0..5).map(|i| {
                if i < 2 {
                    format!("e{i}")
                } else {
                    panic!("intentional collector panic")
                }
            }))
        }
    }
    quiet_panics();
    let mut workflow = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer))
        .with_link_collector(Arc::new(Exploding));
    let err = workflow.collect_links().unwrap_err();
    assert_eq!(
        err,
        WorkflowError::CollectorPanicked("intentional collector panic".into())
    );
    assert_eq!(
        workflow.get_links(),
        ["e0", "e1"],
        "links before the panic are kept"
    );
}

/// A store with every kind of record and hostile content.
fn tricky_workflow() -> Workflow {
    let mut workflow = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    let tricky =
        "comma, \"quotes\", 'single', newline\nand\r\nCRLF, tab\t, unicode: 日本語 Ünïcödé 😀, \
                  NUL\u{0} and trailing spaces   ";
    workflow.update_scrapes([
        ScrapeResult::succeed("https://ok.example/?a=1,2", tricky).with_metadata(obj(json!({
            "status": 200, "ratio": 0.1 + 0.2, "tags": ["x", "y,z"], "nested": {"deep": null}, "big": 1.0e300
        }))),
        ScrapeResult::succeed("https://empty.example", ""),
        ScrapeResult::fail("https://fail.example", tricky),
        ScrapeResult::fail("https://fail-empty.example", ""),
        ScrapeResult::succeed("https://meta-empty.example", "x").with_metadata(JsonMap::new()),
        ScrapeResult::succeed("\"weird link\", with\nnewline", "y"),
    ]);
    workflow.update_analyses([
        (
            "https://ok.example/?a=1,2".to_string(),
            AnalysisResult::succeed(obj(json!({
                "word_count": 12, "average_word_length": 4.333333333333333, "summary": tricky,
                "entities": {"people": ["Ann"], "count": 1}
            }))),
        ),
        (
            "https://empty.example".to_string(),
            AnalysisResult::fail(tricky),
        ),
        (
            "https://meta-empty.example".to_string(),
            AnalysisResult::succeed(JsonMap::new()),
        ),
        (
            "https://only-analysis.example".to_string(),
            AnalysisResult::fail(""),
        ),
    ]);
    // A link with neither result.
    workflow.update_analyses(std::iter::empty());
    let mut with_bare = workflow;
    with_bare.update_scrapes(std::iter::empty());
    with_bare
}

fn snapshot(workflow: &Workflow) -> Vec<scraipe::workflow::StoreRecord> {
    workflow.records().cloned().collect()
}

#[test]
fn dump_and_load_round_trip_exactly_in_both_formats() {
    let mut original = tricky_workflow();
    // A record with no result at all, through a collector.
    original =
        original.with_link_collector(Arc::new(ListLinkCollector::new(["https://bare.example"])));
    original.collect_links().unwrap();
    let expected = snapshot(&original);
    assert_eq!(expected.len(), 8);

    let dir = std::env::temp_dir().join(format!("scraipe-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["store.jsonl", "store.csv", "STORE.NDJSON"] {
        let path = dir.join(name);
        original.dump_store(&path).unwrap();
        let mut loaded = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
        loaded.update_scrapes([ScrapeResult::succeed("https://stale.example", "old")]);
        assert_eq!(loaded.load_store(&path, true).unwrap(), 8);
        assert_eq!(snapshot(&loaded), expected, "{name} round trip");
        // Dumping the loaded store gives the same bytes.
        let again = dir.join(format!("again-{name}"));
        loaded.dump_store(&again).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&again).unwrap(),
            "{name} bytes"
        );
    }
    // Without flush, loaded records are merged in.
    let mut merged = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    merged.update_scrapes([ScrapeResult::succeed("https://kept.example", "kept")]);
    merged.load_store(dir.join("store.csv"), false).unwrap();
    assert_eq!(merged.len(), 9);
    assert_eq!(merged.get_links()[0], "https://kept.example");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_dump_is_readable_and_uses_pythons_columns() {
    let workflow = tricky_workflow();
    let mut bytes = Vec::new();
    workflow
        .dump_store_to(&mut bytes, StoreFormat::Csv)
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(
        "link,content,scrape_success,scrape_error,metadata,output,analysis_success,analysis_error\n"
    ));
    assert!(
        text.contains("https://fail-empty.example,,false,,,,,\n"),
        "{text}"
    );
}

#[test]
fn invalid_store_files_are_rejected_without_touching_the_store() {
    let mut workflow = tricky_workflow();
    let before = snapshot(&workflow);
    let cases: Vec<(StoreFormat, &str, &str)> = vec![
        (StoreFormat::JsonLines, "{\"link\": \"a\", \"scrape_success\": true}\n", "needs content"),
        (StoreFormat::JsonLines, "{\"link\": \"a\"}\n{not json\n", "line 2"),
        (StoreFormat::JsonLines, "{\"link\": \"a\", \"content\": \"c\"}\n", "without scrape_success"),
        (StoreFormat::JsonLines, "{\"link\": \"a\", \"extra\": 1}\n", "unknown field"),
        (StoreFormat::Csv, "link,content\na,b\n", "unexpected store CSV header"),
        (
            StoreFormat::Csv,
            "link,content,scrape_success,scrape_error,metadata,output,analysis_success,analysis_error\na,,maybe,,,,,\n",
            "true, false or empty",
        ),
        (
            StoreFormat::Csv,
            "link,content,scrape_success,scrape_error,metadata,output,analysis_success,analysis_error\na,text,false,err,,,,\n",
            "carries no content",
        ),
        (
            StoreFormat::Csv,
            "link,content,scrape_success,scrape_error,metadata,output,analysis_success,analysis_error\na,,,,,[1],true,\n",
            "malformed JSON at line 2",
        ),
        (
            StoreFormat::Csv,
            "link,content,scrape_success,scrape_error,metadata,output,analysis_success,analysis_error\na,b\n",
            "malformed store CSV",
        ),
    ];
    for (format, input, expected) in cases {
        let err = workflow
            .load_store_from(input.as_bytes(), format, true)
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{input:?}: {err}");
    }
    assert_eq!(snapshot(&workflow), before);
    let err = workflow.dump_store("store.parquet").unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedFormat(_)));
    let err = workflow
        .load_store("/nonexistent/dir/store.jsonl", true)
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)));
}

#[test]
fn export_flattens_outputs_into_columns() {
    let workflow = tricky_workflow();
    let table = workflow.export(false);
    assert_eq!(
        table.columns(),
        [
            "link",
            "word_count",
            "average_word_length",
            "summary",
            "entities.people",
            "entities.count"
        ]
    );
    assert_eq!(table.rows().len(), workflow.len());
    assert_eq!(table.get(0, "entities.people"), Some(&json!(["Ann"])));
    assert_eq!(table.get(1, "word_count"), Some(&json!(null)));

    let verbose = workflow.export(true);
    assert_eq!(
        verbose.columns()[..5],
        [
            "link",
            "scrape_success",
            "scrape_error",
            "analysis_success",
            "analysis_error"
        ]
    );
    assert_eq!(verbose.get(2, "scrape_success"), Some(&json!(false)));
    assert_eq!(verbose.get(1, "analysis_success"), Some(&json!(false)));

    let mut csv = Vec::new();
    table.to_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(
        "link,word_count,average_word_length,summary,entities.people,entities.count\n"
    ));
    assert!(csv.contains(",12,4.333333333333333,"));
    let records = table.to_json_records();
    assert_eq!(records[0]["entities.count"], 1);
}

#[test]
fn clear_and_update() {
    let mut workflow = tricky_workflow();
    let n = workflow.len();
    workflow.clear_analyses();
    assert!(workflow.get_analyses().is_empty());
    assert_eq!(workflow.len(), n);
    workflow.clear_scrapes();
    assert!(workflow.get_scrapes().is_empty());
    assert_eq!(workflow.len(), n);
    workflow.clear_store();
    assert!(workflow.is_empty());
}

#[test]
fn analysis_metadata_survives_a_jsonl_round_trip_and_is_left_out_of_csv() {
    let meta = serde_json::json!({"model": "m", "total_tokens": 42})
        .as_object()
        .cloned()
        .unwrap();
    let mut workflow = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    workflow.update_scrapes([ScrapeResult::succeed("https://llm.example", "page")]);
    workflow.update_analyses([(
        "https://llm.example".to_string(),
        AnalysisResult::succeed(JsonMap::new()).with_metadata(meta),
    )]);
    let dir = std::env::temp_dir().join(format!("scraipe-store-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.jsonl");
    workflow.dump_store(&path).unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains(r#""analysis_metadata":{"model":"m","total_tokens":42}"#));
    let mut loaded = Workflow::new(Arc::new(SyncPanicky), Arc::new(TextStatsAnalyzer));
    loaded.load_store(&path, true).unwrap();
    assert_eq!(snapshot(&loaded), snapshot(&workflow));
    let csv = dir.join("store.csv");
    workflow.dump_store(&csv).unwrap();
    assert!(!std::fs::read_to_string(&csv)
        .unwrap()
        .contains("analysis_metadata"));
}
