//! Structured extraction with a language model: Python Scraipe's `OpenAiAnalyzer`, with the
//! answers validated against a JSON Schema.
//!
//! ```text
//! cargo run --example llm_analyzer                        # a built-in fake server
//! SCRAIPE_LLM_URL=http://localhost:11434/v1 SCRAIPE_LLM_MODEL=llama3.1 \
//!     cargo run --example llm_analyzer                    # a local Ollama
//! SCRAIPE_LLM_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!     cargo run --example llm_analyzer                    # OpenAI
//! ```
//!
//! `SCRAIPE_LLM_URL` names any OpenAI-compatible server (the key, if it needs one, comes from
//! `OPENAI_API_KEY`); without it, a fake server on loopback answers, shaped after the schema.

use std::sync::Arc;

use scraipe::llm::fake::FakeLlmServer;
use scraipe::llm::OpenAiAnalyzer;
use scraipe::Analyzer;
use serde_json::json;

const PAGES: [(&str, &str); 3] = [
    (
        "https://shop.example/kettle",
        "Stainless steel kettle, 1.7 litres. Now only 24.90 EUR, free delivery.",
    ),
    (
        "https://shop.example/lamp",
        "Desk lamp with a warm LED. Price: 39 EUR (was 49 EUR). In stock.",
    ),
    (
        "https://shop.example/mug",
        "Hand-made ceramic mug — 12,50 € — ships in 2 days.",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the fake server alive for the whole run when there is no real one.
    let (url, model, _fake) = match std::env::var("SCRAIPE_LLM_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let model = std::env::var("SCRAIPE_LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
            println!("server: {url} (model {model})");
            (url, model, None)
        }
        _ => {
            let fake = FakeLlmServer::start()?;
            println!(
                "server: built-in fake at {} (set SCRAIPE_LLM_URL for a real one)",
                fake.openai_url()
            );
            (fake.openai_url(), "fake-model".to_string(), Some(fake))
        }
    };

    let analyzer = Arc::new(
        OpenAiAnalyzer::builder("Extract the product's name and its current price in euros.")
            .base_url(url)
            .model(model)
            .schema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "price_eur": {"type": "number"}
                },
                "required": ["name", "price_eur"],
                "additionalProperties": false
            }))
            .max_content_size(2_000)
            .max_workers(2)
            .build()?,
    );

    let contents: Vec<(String, String)> = PAGES
        .iter()
        .map(|(link, text)| (link.to_string(), text.to_string()))
        .collect();
    let mut ok = 0;
    let mut results: Vec<_> = analyzer.clone().analyze_multiple(contents).collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (link, result) in &results {
        match result.output() {
            Some(output) => {
                ok += 1;
                let meta = result.metadata().cloned().unwrap_or_default();
                println!(
                    "{link}: {} ({} tokens, {} ms)",
                    serde_json::Value::Object(output.clone()),
                    meta["total_tokens"],
                    meta["latency_ms"]
                );
            }
            None => println!("{link}: FAILED {}", result.error().unwrap_or("")),
        }
    }
    println!("{ok}/{} analyses succeeded", results.len());

    // Asking again about unchanged content costs nothing: the answer comes from the cache.
    let again = analyzer.analyze(PAGES[0].1);
    let cached = again.metadata().and_then(|m| m["cached"].as_bool()) == Some(true);
    println!("same page again, from cache: {cached}");
    println!("{}", analyzer.totals().snapshot());
    Ok(())
}
