//! Dumping and loading the store: JSON Lines and CSV, both exact.
//!
//! One row per record, with Python Scraipe's dump columns:
//! `link, content, scrape_success, scrape_error, metadata, output, analysis_success,
//! analysis_error`.
//!
//! * JSONL: each line is an object with those keys; a record without a scrape (analysis) has
//!   `null` in the scrape (analysis) fields; `metadata` and `output` are JSON objects. An
//!   analysis with metadata (LLM analyzers) adds an `analysis_metadata` key; CSV leaves it out.
//! * CSV: `scrape_success` / `analysis_success` are `true`, `false`, or empty for "no result".
//!   Thanks to the results' invariant, that flag says which of `content` / `scrape_error` is
//!   present, so an empty cell there is an empty string, never confused with "none".
//!   `metadata` and `output` hold JSON text, empty for none (a JSON object is never empty
//!   text). Quoting is standard RFC 4180, so commas, quotes and newlines in content survive.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreRecord;
use crate::results::{AnalysisResult, InvalidResult, JsonMap, ScrapeResult};

/// The columns of a store dump, in order.
pub(crate) const COLUMNS: [&str; 8] = [
    "link",
    "content",
    "scrape_success",
    "scrape_error",
    "metadata",
    "output",
    "analysis_success",
    "analysis_error",
];

/// A store file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    JsonLines,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
}

impl StoreFormat {
    /// The format for a file name's extension (case-insensitive).
    ///
    /// ```
    /// use scraipe::workflow::StoreFormat;
    /// assert_eq!(StoreFormat::from_path("out/store.JSONL".as_ref()).unwrap(), StoreFormat::JsonLines);
    /// assert_eq!(StoreFormat::from_path("store.csv".as_ref()).unwrap(), StoreFormat::Csv);
    /// assert!(StoreFormat::from_path("store.xlsx".as_ref()).is_err());
    /// ```
    pub fn from_path(path: &Path) -> Result<StoreFormat, StoreError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl") | Some("ndjson") => Ok(StoreFormat::JsonLines),
            Some("csv") => Ok(StoreFormat::Csv),
            _ => Err(StoreError::UnsupportedFormat(path.to_path_buf())),
        }
    }
}

/// Dumping or loading a store failed.
#[derive(Debug)]
pub enum StoreError {
    /// The file's extension names no supported format.
    UnsupportedFormat(PathBuf),
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The CSV is malformed (or could not be written).
    Csv(csv::Error),
    /// A JSON line, or a JSON cell of the CSV, is malformed.
    Json {
        /// 1-based line (JSONL) or record (CSV, header = 1) number.
        line: u64,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A row breaks the store's rules (a success without content, an error on a success...).
    InvalidRow {
        /// 1-based line (JSONL) or record (CSV, header = 1) number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The CSV header is not the expected one.
    BadHeader(Vec<String>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnsupportedFormat(p) => write!(
                f,
                "unsupported store format for {}: use a .jsonl, .ndjson or .csv file",
                p.display()
            ),
            StoreError::Io(e) => write!(f, "store I/O failed: {e}"),
            StoreError::Csv(e) => write!(f, "malformed store CSV: {e}"),
            StoreError::Json { line, source } => {
                write!(f, "malformed JSON at line {line}: {source}")
            }
            StoreError::InvalidRow { line, reason } => {
                write!(f, "invalid store row at line {line}: {reason}")
            }
            StoreError::BadHeader(h) => write!(
                f,
                "unexpected store CSV header {h:?}; expected {:?}",
                COLUMNS
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            StoreError::Csv(e) => Some(e),
            StoreError::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io(e)
    }
}

impl From<csv::Error> for StoreError {
    fn from(e: csv::Error) -> StoreError {
        StoreError::Csv(e)
    }
}

/// One dump row: the flat union of a record's fields.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    link: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    scrape_success: Option<bool>,
    #[serde(default)]
    scrape_error: Option<String>,
    #[serde(default)]
    metadata: Option<JsonMap>,
    #[serde(default)]
    output: Option<JsonMap>,
    #[serde(default)]
    analysis_success: Option<bool>,
    #[serde(default)]
    analysis_error: Option<String>,
    /// Not a Python column: JSONL only, and only when an analyzer attached metadata (an LLM
    /// analyzer's model, tokens, latency). CSV dumps leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    analysis_metadata: Option<JsonMap>,
}

impl Row {
    fn from_record(record: &StoreRecord) -> Row {
        let mut row = Row {
            link: record.link.clone(),
            ..Row::default()
        };
        if let Some(s) = &record.scrape_result {
            row.content = s.content().map(str::to_string);
            row.scrape_success = Some(s.success());
            row.scrape_error = s.error().map(str::to_string);
            row.metadata = s.metadata().cloned();
        }
        if let Some(a) = &record.analysis_result {
            row.output = a.output().cloned();
            row.analysis_success = Some(a.success());
            row.analysis_error = a.error().map(str::to_string);
            row.analysis_metadata = a.metadata().cloned();
        }
        row
    }

    fn into_record(self, line: u64) -> Result<StoreRecord, StoreError> {
        let invalid = |reason: String| StoreError::InvalidRow { line, reason };
        let scrape_result = match self.scrape_success {
            Some(success) => Some(
                ScrapeResult::from_parts(
                    self.link.clone(),
                    self.content,
                    success,
                    self.scrape_error,
                    self.metadata,
                )
                .map_err(|e: InvalidResult| invalid(e.to_string()))?,
            ),
            None => {
                if self.content.is_some() || self.scrape_error.is_some() || self.metadata.is_some()
                {
                    return Err(invalid("scrape fields without scrape_success".into()));
                }
                None
            }
        };
        let analysis_result = match self.analysis_success {
            Some(success) => {
                let result = AnalysisResult::from_parts(self.output, success, self.analysis_error)
                    .map_err(|e| invalid(e.to_string()))?;
                Some(match self.analysis_metadata {
                    Some(meta) => result.with_metadata(meta),
                    None => result,
                })
            }
            None => {
                if self.output.is_some()
                    || self.analysis_error.is_some()
                    || self.analysis_metadata.is_some()
                {
                    return Err(invalid("analysis fields without analysis_success".into()));
                }
                None
            }
        };
        Ok(StoreRecord {
            link: self.link,
            scrape_result,
            analysis_result,
        })
    }
}

pub(crate) fn write<'a>(
    records: impl Iterator<Item = &'a StoreRecord>,
    writer: impl Write,
    format: StoreFormat,
) -> Result<(), StoreError> {
    match format {
        StoreFormat::JsonLines => write_jsonl(records, writer),
        StoreFormat::Csv => write_csv(records, writer),
    }
}

pub(crate) fn read(reader: impl Read, format: StoreFormat) -> Result<Vec<StoreRecord>, StoreError> {
    match format {
        StoreFormat::JsonLines => read_jsonl(reader),
        StoreFormat::Csv => read_csv(reader),
    }
}

fn write_jsonl<'a>(
    records: impl Iterator<Item = &'a StoreRecord>,
    mut w: impl Write,
) -> Result<(), StoreError> {
    for record in records {
        let line = serde_json::to_string(&Row::from_record(record))
            .map_err(|source| StoreError::Json { line: 0, source })?;
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

fn read_jsonl(reader: impl Read) -> Result<Vec<StoreRecord>, StoreError> {
    let mut text = String::new();
    let mut reader = reader;
    reader.read_to_string(&mut text)?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|source| StoreError::Json {
            line: number,
            source,
        })?;
        records.push(row.into_record(number)?);
    }
    Ok(records)
}

fn flag(value: Option<bool>) -> &'static str {
    match value {
        None => "",
        Some(true) => "true",
        Some(false) => "false",
    }
}

fn json_cell(value: &Option<JsonMap>) -> String {
    match value {
        // Serialising a map of JSON values cannot fail.
        Some(map) => serde_json::to_string(map).unwrap_or_default(),
        None => String::new(),
    }
}

fn write_csv<'a>(
    records: impl Iterator<Item = &'a StoreRecord>,
    w: impl Write,
) -> Result<(), StoreError> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(COLUMNS)?;
    for record in records {
        let row = Row::from_record(record);
        out.write_record([
            row.link.as_str(),
            row.content.as_deref().unwrap_or(""),
            flag(row.scrape_success),
            row.scrape_error.as_deref().unwrap_or(""),
            &json_cell(&row.metadata),
            &json_cell(&row.output),
            flag(row.analysis_success),
            row.analysis_error.as_deref().unwrap_or(""),
        ])?;
    }
    out.flush()?;
    Ok(())
}

fn read_csv(reader: impl Read) -> Result<Vec<StoreRecord>, StoreError> {
    let mut input = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let header: Vec<String> = input.headers()?.iter().map(str::to_string).collect();
    if header != COLUMNS {
        return Err(StoreError::BadHeader(header));
    }
    let mut records = Vec::new();
    for (i, row) in input.records().enumerate() {
        let row = row?;
        let line = i as u64 + 2;
        let cell = |n: usize| row.get(n).unwrap_or("");
        let invalid = |reason: String| StoreError::InvalidRow { line, reason };
        let parse_flag = |n: usize| -> Result<Option<bool>, StoreError> {
            match cell(n).to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                other => Err(invalid(format!(
                    "{} must be true, false or empty, not {other:?}",
                    COLUMNS[n]
                ))),
            }
        };
        let parse_json = |n: usize| -> Result<Option<JsonMap>, StoreError> {
            if cell(n).is_empty() {
                return Ok(None);
            }
            serde_json::from_str(cell(n))
                .map(Some)
                .map_err(|source| StoreError::Json { line, source })
        };
        // Which optional text cells are present follows from the flags (see the module docs);
        // text in a cell that must be absent is reported by the invariant check.
        let text = |n: usize, present: bool| -> Option<String> {
            if present || !cell(n).is_empty() {
                Some(cell(n).to_string())
            } else {
                None
            }
        };
        let scrape_success = parse_flag(2)?;
        let analysis_success = parse_flag(6)?;
        let parsed = Row {
            link: cell(0).to_string(),
            content: text(1, scrape_success == Some(true)),
            scrape_success,
            scrape_error: text(3, scrape_success == Some(false)),
            metadata: parse_json(4)?,
            output: parse_json(5)?,
            analysis_success,
            analysis_error: text(7, analysis_success == Some(false)),
            analysis_metadata: None,
        };
        records.push(parsed.into_record(line)?);
    }
    Ok(records)
}
