//! CPU-bound analyzers run on the blocking pool, so scrapes on the (single) event loop keep
//! their pace while an analysis burns 200 ms of CPU. The control case — the same work done
//! inside an async analyzer, on the event loop — shows the test would notice a stall.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scraipe::executor::AsyncManager;
use scraipe::{
    async_trait, AnalysisResult, Analyzer, AsyncAnalyzer, AsyncScraper, ScrapeResult, Scraper,
};

/// Burns CPU (no sleeping) for `d`.
fn spin_for(d: Duration) -> u64 {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

/// When each analysis started and ended.
#[derive(Default)]
struct Probe {
    started: Mutex<Vec<Instant>>,
    spans: Mutex<Vec<(Instant, Instant)>>,
}

/// A synchronous CPU-bound analyzer: 200 ms of work per content.
struct Heavy(Arc<Probe>);
impl Analyzer for Heavy {
    fn analyze(&self, _: &str) -> AnalysisResult {
        let start = Instant::now();
        self.0.started.lock().unwrap().push(start);
        let x = spin_for(Duration::from_millis(200));
        self.0.spans.lock().unwrap().push((start, Instant::now()));
        let mut out = serde_json::Map::new();
        out.insert("x".into(), x.into());
        AnalysisResult::succeed(out)
    }
}

/// The same work, wrongly done on the event loop.
struct HeavyOnLoop(Arc<Probe>);
#[async_trait]
impl AsyncAnalyzer for HeavyOnLoop {
    async fn async_analyze(&self, content: &str) -> AnalysisResult {
        Heavy(self.0.clone()).analyze(content)
    }
}

/// A fake network scraper: 10 ms of waiting per link, no CPU.
struct TimerScraper;
#[async_trait]
impl AsyncScraper for TimerScraper {
    async fn async_scrape(&self, link: &str) -> ScrapeResult {
        scraipe::rt::sleep(Duration::from_millis(10)).await;
        ScrapeResult::succeed(link, "page")
    }
    fn max_workers(&self) -> usize {
        10
    }
}

/// Once `analyzer` is busy analysing four contents, scrapes 100 links (10 at a time, 10 ms
/// each: ~100 ms unimpeded). Returns when the scraping started and ended.
fn scrape_during_analysis(analyzer: Arc<dyn Analyzer>, probe: &Probe) -> (Instant, Instant) {
    let contents: Vec<(String, String)> = (0..4)
        .map(|i| (format!("c{i}"), "text".to_string()))
        .collect();
    let analysis = std::thread::spawn(move || analyzer.analyze_multiple(contents).count());
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.started.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no analysis started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let links: Vec<String> = (0..100)
        .map(|i| format!("https://site{i}.example/"))
        .collect();
    let start = Instant::now();
    let results: Vec<_> = Arc::new(TimerScraper).scrape_multiple(links).collect();
    let end = Instant::now();
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|(_, r)| r.success()));
    assert_eq!(analysis.join().unwrap(), 4);
    (start, end)
}

#[test]
fn cpu_bound_analysis_does_not_slow_scraping() {
    // One event loop: the setting where a stall would show most.
    AsyncManager::disable_multithreading().unwrap();

    let probe = Arc::new(Probe::default());
    let (start, end) = scrape_during_analysis(Arc::new(Heavy(probe.clone())), &probe);
    let took = end - start;
    let spans = probe.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 4);
    let busy_from = spans.iter().map(|s| s.0).min().unwrap();
    let busy_until = spans.iter().map(|s| s.1).max().unwrap();
    assert!(
        busy_from <= start && end <= busy_until,
        "the scrapes ran while analyses were running"
    );
    // Unimpeded: 10 rounds of 10 ms. Generous slack for a loaded 2-core machine, yet a single
    // 200 ms stall of the event loop would push it past 300 ms.
    eprintln!("scraping during CPU-bound analysis took {took:?}");
    assert!(
        took < Duration::from_millis(280),
        "scraping took {took:?} during CPU-bound analysis"
    );

    // Control: the same CPU work on the event loop stalls the scrapes.
    let probe = Arc::new(Probe::default());
    let (start, end) = scrape_during_analysis(Arc::new(HeavyOnLoop(probe.clone())), &probe);
    let stalled = end - start;
    eprintln!("control (analysis on the event loop): scraping took {stalled:?}");
    assert!(
        stalled >= Duration::from_millis(200),
        "control case took only {stalled:?}"
    );
}
