//! The observation history as CSV or JSONL, columns [`COLUMNS`] in that order.

use std::io::Write;

use super::store::{HistoryRow, Store, StoreError};

/// Export columns, in order.
pub const COLUMNS: [&str; 9] = [
    "link",
    "observed_at",
    "outcome",
    "http_status",
    "price",
    "currency",
    "availability",
    "source",
    "error",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A header row, then one row per observation; empty cells for nulls.
    Csv,
    /// One JSON object per observation, nulls as `null`.
    Jsonl,
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("cannot write the export: {e}"))
}

/// Writes the history (of `link`, or every link) to `out`; returns the number of rows.
pub fn export_history(
    store: &dyn Store,
    link: Option<&str>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let mut rows = 0u64;
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS).map_err(io_err)?;
            store.history(link, &mut |r: HistoryRow| {
                rows += 1;
                let status = r.http_status.map(|s| s.to_string()).unwrap_or_default();
                let o = |v: &Option<String>| v.clone().unwrap_or_default();
                w.write_record([
                    r.link.as_str(),
                    &r.observed_at,
                    &r.outcome,
                    &status,
                    &o(&r.price),
                    &o(&r.currency),
                    &o(&r.availability),
                    &o(&r.source),
                    &o(&r.error),
                ])
                .map_err(io_err)
            })?;
            w.flush().map_err(io_err)?;
        }
        ExportFormat::Jsonl => {
            store.history(link, &mut |r: HistoryRow| {
                rows += 1;
                let line = serde_json::to_string(&r).map_err(io_err)?;
                writeln!(out, "{line}").map_err(io_err)
            })?;
            out.flush().map_err(io_err)?;
        }
    }
    Ok(rows)
}
