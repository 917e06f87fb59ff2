//! Component traits from a downstream crate's point of view: blanket impls, MultiScraper,
//! MultiAnalyzer, link collectors, and the nested sync bridge.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{obj, quiet_panics};

use scraipe::defaults::{
    IngressRule, ListLinkCollector, MultiAnalyzer, MultiScraper, NoAnalyzers, TextStatsAnalyzer,
};
use scraipe::executor::{AsyncExecutorExt, AsyncManager};
use scraipe::results::JsonMap;
use scraipe::stream::{generate, BoxStream};
use scraipe::{
    async_trait, AnalysisResult, Analyzer, AsyncAnalyzer, AsyncLinkCollector, AsyncScraper,
    LinkCollector, ScrapeResult, Scraper,
};
use serde_json::json;

/// Async: succeeds with a fixed body after a timer.
struct Named(&'static str);
#[async_trait]
impl AsyncScraper for Named {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        scraipe::rt::sleep(Duration::from_millis(1)).await;
        ScrapeResult::succeed(link, self.0)
    }
    fn name(&self) -> String {
        self.0.to_string()
    }
}

/// Async: fails, or panics, or hangs.
enum Broken {
    Fails,
    Panics,
    Hangs,
}
#[async_trait]
impl AsyncScraper for Broken {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        match self {
            Broken::Fails => ScrapeResult::fail(link, "nope"),
            Broken::Panics => panic!("intentional scraper panic"),
            Broken::Hangs => std::future::pending().await,
        }
    }
    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
}

/// A synchronous scraper that itself bridges into async code through the process-wide
/// executor: called from inside a MultiScraper task on a one-thread event loop, this is the
/// case that deadlocks without a nested-safe `block_on`.
struct SyncOverAsync;
impl Scraper for SyncOverAsync {
    fn scrape(&self, link: &str) -> ScrapeResult {
        let exec = AsyncManager::get_executor();
        let owned = link.to_string();
        let body = exec
            .run(async move {
                scraipe::rt::sleep(Duration::from_millis(2)).await;
                format!("bridged {owned}")
            })
            .expect("nested run");
        ScrapeResult::succeed(link, body)
    }
}

#[test]
fn blanket_impls_give_the_sync_api() {
    let s = Named("body");
    assert_eq!(Scraper::name(&s), "body");
    assert_eq!(s.scrape("x").content(), Some("body"));
    assert!(Scraper::as_async(&s).is_some());
    assert!(SyncOverAsync.as_async().is_none());
    assert_eq!(Scraper::name(&SyncOverAsync), "SyncOverAsync");

    let links: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
    let mut got: Vec<String> = Arc::new(Named("b"))
        .scrape_multiple(links.clone())
        .map(|(l, _)| l)
        .collect();
    got.sort();
    let mut want = links;
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn async_failures_become_results_through_the_bridge() {
    quiet_panics();
    assert_eq!(Broken::Fails.scrape("l").error(), Some("nope"));
    assert_eq!(
        Broken::Panics.scrape("l").error(),
        Some("task panicked: intentional scraper panic")
    );
    let started = Instant::now();
    assert_eq!(
        Broken::Hangs.scrape("l").error(),
        Some("task timed out after 0.050 seconds")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let rows: Vec<_> = Arc::new(Broken::Panics)
        .scrape_multiple(vec!["a".into(), "b".into()])
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|(l, r)| r.link() == l && r.error().unwrap().contains("intentional")));
}

#[test]
fn multi_scraper_tries_rules_in_order_and_first_success_wins() {
    quiet_panics();
    let multi = MultiScraper::new(vec![
        IngressRule::new("never-matches", Arc::new(Named("unused"))).unwrap(),
        IngressRule::new("example", Arc::new(Broken::Fails)).unwrap(),
        IngressRule::new("example", Arc::new(Broken::Panics)).unwrap(),
        IngressRule::new("example", Arc::new(Broken::Hangs)).unwrap(),
        IngressRule::new("example", Arc::new(Named("first"))).unwrap(),
        IngressRule::new(".*", Arc::new(Named("second"))).unwrap(),
    ])
    .debug(true);
    let result = multi.scrape("https://example.com");
    assert_eq!(result.content(), Some("first"));
    assert_eq!(
        result.metadata().unwrap()["debug_chain"],
        "Broken[FAIL]: nope; Broken[FAIL]: task panicked: intentional scraper panic; \
         Broken[FAIL]: task timed out after 0.050 seconds; first[SUCCESS]"
    );
    assert_eq!(multi.scrape("https://other.org").content(), Some("second"));

    let exclusive = MultiScraper::new(vec![
        IngressRule::new("example", Arc::new(Broken::Fails))
            .unwrap()
            .exclusive(true),
        IngressRule::new(".*", Arc::new(Named("fallback"))).unwrap(),
    ])
    .debug_delimiter(" | ");
    assert_eq!(
        exclusive.scrape("https://example.com").error(),
        Some("No scraper could handle link | Broken[FAIL]: nope")
    );
    assert_eq!(
        exclusive.scrape("https://other.org").content(),
        Some("fallback")
    );
    assert!(
        exclusive.scrape("https://other.org").metadata().is_none(),
        "no debug chain unless asked"
    );

    let none = MultiScraper::new(vec![
        IngressRule::new("^ftp:", Arc::new(Named("x"))).unwrap()
    ]);
    assert_eq!(
        none.scrape("https://a").error(),
        Some("No scraper could handle link; ")
    );

    // from_scraper uses the scraper's expected link format.
    struct OnlyTme;
    impl Scraper for OnlyTme {
        fn scrape(&self, link: &str) -> ScrapeResult {
            ScrapeResult::succeed(link, "telegram")
        }
        fn expected_link_format(&self) -> Option<regex::Regex> {
            Some(regex::Regex::new(r"^https://t\.me/").unwrap())
        }
    }
    let rule = IngressRule::from_scraper(Arc::new(OnlyTme));
    assert!(rule.pattern.is_match("https://t.me/x") && !rule.pattern.is_match("https://x.org"));
    assert!(IngressRule::from_scraper(Arc::new(Named("n")))
        .pattern
        .is_match("anything"));
}

#[test]
fn multi_scraper_calls_sync_scrapers_from_inside_its_tasks() {
    // The process-wide executor of this test binary is the default single event loop.
    let multi = Arc::new(
        MultiScraper::new(vec![
            IngressRule::new(".*", Arc::new(SyncOverAsync)).unwrap()
        ])
        .max_workers(8),
    );
    let links: Vec<String> = (0..40).map(|i| format!("https://s{i}.example")).collect();
    let started = Instant::now();
    let results: Vec<_> = multi.clone().scrape_multiple(links.clone()).collect();
    assert_eq!(results.len(), 40);
    for (link, result) in &results {
        assert_eq!(result.content(), Some(format!("bridged {link}").as_str()));
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the single-link path, which polls on the calling thread.
    assert_eq!(multi.scrape("z").content(), Some("bridged z"));
}

/// Blocks its thread, as a scraper over `std::net` or a blocking HTTP client does.
struct SleepySync(Duration);
impl Scraper for SleepySync {
    fn scrape(&self, link: &str) -> ScrapeResult {
        std::thread::sleep(self.0);
        ScrapeResult::succeed(link, "late")
    }
}

struct PanickingSync;
impl Scraper for PanickingSync {
    fn scrape(&self, _: &str) -> ScrapeResult {
        panic!("intentional sync scraper panic")
    }
}

/// A synchronous scraper that blocks its thread runs off the event loop: the MultiScraper's
/// timeout ends each link, links run side by side, and other users of the shared executor do
/// not wait for it. A panicking one is a failed rule, and the next rule answers.
#[test]
fn a_blocking_sync_scraper_in_a_multi_scraper_holds_neither_the_timeout_nor_the_executor() {
    let multi = Arc::new(
        MultiScraper::new(vec![IngressRule::new(
            ".*",
            Arc::new(SleepySync(Duration::from_millis(700))),
        )
        .unwrap()])
        .max_workers(4)
        .timeout(Some(Duration::from_millis(200))),
    );
    let other = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        assert_eq!(Named("quick").scrape("q").content(), Some("quick"));
        started.elapsed()
    });
    let started = Instant::now();
    let links: Vec<String> = (0..4).map(|i| format!("https://b{i}.example")).collect();
    let results: Vec<_> = multi.scrape_multiple(links).collect();
    let took = started.elapsed();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|(_, r)| !r.success()), "{results:?}");
    assert!(took < Duration::from_millis(650), "took {took:?}");
    let other_took = other.join().unwrap();
    assert!(
        other_took < Duration::from_millis(300),
        "another scrape waited {other_took:?}"
    );

    let fallback = MultiScraper::new(vec![
        IngressRule::new(".*", Arc::new(PanickingSync)).unwrap(),
        IngressRule::new(".*", Arc::new(Named("second"))).unwrap(),
    ]);
    assert_eq!(fallback.scrape("p").content(), Some("second"));
}

struct Fixed(JsonMap);
impl Analyzer for Fixed {
    fn analyze(&self, _: &str) -> AnalysisResult {
        AnalysisResult::succeed(self.0.clone())
    }
    fn name(&self) -> String {
        "Fixed".into()
    }
}

struct FailingAnalyzer;
impl Analyzer for FailingAnalyzer {
    fn analyze(&self, _: &str) -> AnalysisResult {
        AnalysisResult::fail("no model")
    }
}

struct PanickingAnalyzer;
impl Analyzer for PanickingAnalyzer {
    fn analyze(&self, _: &str) -> AnalysisResult {
        panic!("intentional analyzer panic")
    }
}

/// Async and slow: proves async analyzers run concurrently with each other.
struct SlowAsync(&'static str);
#[async_trait]
impl AsyncAnalyzer for SlowAsync {
    async fn async_analyze(&self, content: &str) -> AnalysisResult {
        scraipe::rt::sleep(Duration::from_millis(100)).await;
        let mut out = JsonMap::new();
        out.insert(self.0.to_string(), content.len().into());
        AnalysisResult::succeed(out)
    }
}

#[test]
fn multi_analyzer_merges_and_renames_conflicts() {
    quiet_panics();
    assert!(matches!(MultiAnalyzer::new(vec![]), Err(NoAnalyzers)));
    let multi = MultiAnalyzer::new(vec![
        Arc::new(Fixed(obj(json!({"a": 1, "shared": "x"})))),
        Arc::new(FailingAnalyzer),
        Arc::new(Fixed(obj(json!({"b": 2, "shared": "y"})))),
        Arc::new(TextStatsAnalyzer),
        Arc::new(PanickingAnalyzer),
        Arc::new(SlowAsync("slow1")),
        Arc::new(SlowAsync("slow2")),
    ])
    .unwrap()
    .debug(true);
    let started = Instant::now();
    let out = multi.analyze("One. Two.").into_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(190),
        "async analyzers ran concurrently"
    );
    assert_eq!(out["a"], 1);
    assert_eq!(out["b"], 2);
    assert_eq!(out["Fixed-0_shared"], "x");
    assert_eq!(out["Fixed-2_shared"], "y");
    assert!(!out.contains_key("shared"));
    assert_eq!(out["sentence_count"], 2);
    assert_eq!(out["slow1"], 9);
    assert_eq!(out["slow2"], 9);
    assert_eq!(
        out["debug_chain"],
        "Fixed[SUCCESS]; FailingAnalyzer[FAIL]: no model; Fixed[SUCCESS]; TextStatsAnalyzer[SUCCESS]; \
         PanickingAnalyzer[FAIL]: task panicked: intentional analyzer panic; SlowAsync[SUCCESS]; SlowAsync[SUCCESS]"
    );

    let all_fail =
        MultiAnalyzer::new(vec![Arc::new(FailingAnalyzer), Arc::new(PanickingAnalyzer)]).unwrap();
    assert_eq!(
        all_fail.analyze("x").error(),
        Some("All analyzers failed... FailingAnalyzer[FAIL]: no model; PanickingAnalyzer[FAIL]: task panicked: intentional analyzer panic")
    );

    // Through analyze_multiple: one row per content.
    let contents: Vec<(String, String)> = (0..25)
        .map(|i| (format!("l{i}"), "a b".to_string()))
        .collect();
    let rows: Vec<_> = Arc::new(multi).analyze_multiple(contents).collect();
    assert_eq!(rows.len(), 25);
    assert!(rows
        .iter()
        .all(|(_, r)| r.output().unwrap()["word_count"] == 2));
}

/// A synchronous member slower than the MultiAnalyzer's timeout fails alone: the fast members'
/// output is kept.
#[test]
fn a_slow_sync_member_fails_alone_and_the_others_output_is_kept() {
    struct SlowSync;
    impl Analyzer for SlowSync {
        fn analyze(&self, _: &str) -> AnalysisResult {
            std::thread::sleep(Duration::from_millis(1000));
            AnalysisResult::succeed(JsonMap::new())
        }
        fn name(&self) -> String {
            "SlowSync".into()
        }
    }
    let multi = MultiAnalyzer::new(vec![Arc::new(TextStatsAnalyzer), Arc::new(SlowSync)])
        .unwrap()
        .timeout(Some(Duration::from_millis(300)));
    let started = Instant::now();
    let r = multi.analyze("Hello world.");
    assert!(r.success(), "{r}");
    assert_eq!(r.output().unwrap()["word_count"], 2);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sync_analyzer_batches_survive_panics() {
    quiet_panics();
    let rows: Vec<_> = Arc::new(PanickingAnalyzer)
        .analyze_multiple(vec![("a".into(), "x".into()), ("b".into(), "y".into())])
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|(_, r)| r.error() == Some("task panicked: intentional analyzer panic")));
}

struct Paged {
    pages: usize,
    produced: Arc<AtomicUsize>,
}
impl AsyncLinkCollector for Paged {
    fn async_collect_links(&self) -> BoxStream<'_, String> {
        Box::pin(generate(move |y| async move {
            for page in 0..self.pages {
                scraipe::rt::sleep(Duration::from_millis(1)).await;
                self.produced.fetch_add(1, Ordering::SeqCst);
                y.send(format!("https://example.com/?page={page}")).await;
            }
        }))
    }
}

#[test]
fn link_collectors_sync_and_async() {
    let list = ListLinkCollector::new(vec!["a".to_string(), "b".to_string()]);
    assert_eq!(list.collect_links().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(list.links(), ["a", "b"]);

    let produced = Arc::new(AtomicUsize::new(0));
    let paged = Paged {
        pages: 5,
        produced: produced.clone(),
    };
    let mut links = paged.collect_links();
    assert_eq!(links.next().as_deref(), Some("https://example.com/?page=0"));
    assert_eq!(
        produced.load(Ordering::SeqCst),
        1,
        "pages are fetched as links are consumed"
    );
    assert_eq!(links.count(), 4);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ScrapeResult>();
    check::<AnalysisResult>();
    check::<scraipe::Workflow>();
    check::<scraipe::workflow::StoreError>();
    check::<scraipe::workflow::ExportTable>();
    check::<MultiScraper>();
    check::<MultiAnalyzer>();
    check::<IngressRule>();
    check::<ListLinkCollector>();
    check::<scraipe::politeness::HostLimiter>();
    check::<scraipe::politeness::PoliteScraper>();
    check::<scraipe::politeness::HostPermit>();
    check::<scraipe::executor::DefaultBackgroundExecutor>();
    check::<scraipe::executor::EventLoopPoolExecutor>();
    check::<scraipe::executor::TaskHandle<String>>();
    check::<scraipe::executor::TaskError>();
    check::<Arc<dyn Scraper>>();
    check::<Arc<dyn Analyzer>>();
    check::<Arc<dyn LinkCollector>>();
    check::<Arc<dyn scraipe::AsyncExecutor>>();
    fn check_send<T: Send>() {}
    check_send::<scraipe::ScrapeIter>();
    check_send::<scraipe::AnalysisIter>();
}
