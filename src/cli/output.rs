//! Output rows and their JSONL/CSV writers.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use scraipe::{AnalysisResult, ScrapeResult};

/// One output row: the scrape result's fields, then (with an analyzer) the analysis's.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub link: String,
    pub content: Option<String>,
    pub scrape_success: bool,
    pub scrape_error: Option<String>,
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_success: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<Value>,
    /// How the analysis went (model, tokens, latency...), when the analyzer says: JSONL only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_metadata: Option<Value>,
}

impl Row {
    /// A row from a scrape and, when an analyzer ran (`analyzed` is true), its analysis — which
    /// is `None` when the scrape failed and there was nothing to analyze (then the analysis
    /// columns are null).
    pub fn new(scrape: &ScrapeResult, analyzed: bool, analysis: Option<&AnalysisResult>) -> Row {
        let (output, analysis_success, analysis_error) = match (analyzed, analysis) {
            (false, _) => (None, None, None),
            (true, None) => (Some(Value::Null), Some(Value::Null), Some(Value::Null)),
            (true, Some(a)) => (
                Some(
                    a.output()
                        .map(|o| Value::Object(o.clone()))
                        .unwrap_or(Value::Null),
                ),
                Some(Value::Bool(a.success())),
                Some(
                    a.error()
                        .map(|e| Value::String(e.to_string()))
                        .unwrap_or(Value::Null),
                ),
            ),
        };
        let analysis_metadata = analysis
            .and_then(AnalysisResult::metadata)
            .map(|m| Value::Object(m.clone()));
        Row {
            analysis_metadata,
            link: scrape.link().to_string(),
            content: scrape.content().map(str::to_string),
            scrape_success: scrape.success(),
            scrape_error: scrape.error().map(str::to_string),
            metadata: scrape.metadata().cloned().unwrap_or_default(),
            output,
            analysis_success,
            analysis_error,
        }
    }

    /// The `error_kind` metadata of a failed row (`timeout`, `status 404`, ...).
    pub fn error_kind(&self) -> Option<&str> {
        if self.scrape_success {
            return None;
        }
        Some(
            self.metadata
                .get("error_kind")
                .and_then(Value::as_str)
                .unwrap_or("error"),
        )
    }
}

/// Writes rows as JSON lines or CSV. (One per run: the size difference of the variants is
/// irrelevant.)
#[allow(clippy::large_enum_variant)]
pub enum RowWriter {
    Jsonl(io::BufWriter<Box<dyn Write>>),
    Csv {
        writer: csv::Writer<Box<dyn Write>>,
        analyzed: bool,
    },
}

impl RowWriter {
    pub fn jsonl(out: Box<dyn Write>) -> RowWriter {
        RowWriter::Jsonl(io::BufWriter::with_capacity(64 * 1024, out))
    }

    /// A CSV writer; the header row goes out first, so even an empty run yields a valid file.
    pub fn csv(out: Box<dyn Write>, analyzed: bool) -> io::Result<RowWriter> {
        let mut writer = csv::Writer::from_writer(out);
        let mut header = vec![
            "link",
            "content",
            "scrape_success",
            "scrape_error",
            "metadata",
        ];
        if analyzed {
            header.extend(["output", "analysis_success", "analysis_error"]);
        }
        writer.write_record(&header).map_err(csv_io)?;
        Ok(RowWriter::Csv { writer, analyzed })
    }

    pub fn write(&mut self, row: &Row) -> io::Result<()> {
        match self {
            RowWriter::Jsonl(w) => {
                serde_json::to_writer(&mut *w, row)?;
                w.write_all(b"\n")
            }
            RowWriter::Csv { writer, analyzed } => {
                let json = |v: &Value| {
                    if v.is_null() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                };
                let mut record = vec![
                    row.link.clone(),
                    row.content.clone().unwrap_or_default(),
                    row.scrape_success.to_string(),
                    row.scrape_error.clone().unwrap_or_default(),
                    Value::Object(row.metadata.clone()).to_string(),
                ];
                if *analyzed {
                    record.push(row.output.as_ref().map(json).unwrap_or_default());
                    record.push(row.analysis_success.as_ref().map(json).unwrap_or_default());
                    record.push(match &row.analysis_error {
                        Some(Value::String(s)) => s.clone(),
                        _ => String::new(),
                    });
                }
                writer.write_record(&record).map_err(csv_io)
            }
        }
    }

    /// Flushes buffered rows to the output.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            RowWriter::Jsonl(w) => w.flush(),
            RowWriter::Csv { writer, .. } => writer.flush(),
        }
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}
