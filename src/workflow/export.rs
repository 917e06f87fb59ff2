//! [`ExportTable`]: the store with analysis outputs flattened into columns.

use std::io::Write;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::{StoreError, StoreRecord};

/// A rectangular table of JSON values: what [`Workflow::export`](super::Workflow::export)
/// returns (Python returns a pandas DataFrame).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTable {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl ExportTable {
    /// Column names: `link`, then (verbose) the status columns, then the output columns in
    /// order of first appearance.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The rows, one per record, each with one value per column (`null` where a record has
    /// no such output).
    pub fn rows(&self) -> &[Vec<Value>] {
        &self.rows
    }

    /// The value of `column` in row `row`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(index)
    }

    /// The rows as JSON objects keyed by column.
    pub fn to_json_records(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// Writes the table as CSV: strings as they are, `null` as an empty cell, other values as
    /// JSON text.
    pub fn to_csv(&self, writer: impl Write) -> Result<(), StoreError> {
        let mut out = csv::Writer::from_writer(writer);
        out.write_record(&self.columns)?;
        for row in &self.rows {
            out.write_record(row.iter().map(|v| match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Writes the table as CSV to a file.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let file = std::fs::File::create(path)?;
        let mut writer = std::io::BufWriter::new(file);
        self.to_csv(&mut writer)?;
        writer.flush()?;
        Ok(())
    }
}

/// `name`, or `name (2)`, `name (3)`, ...: the first that is not `taken`.
fn unique(name: String, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&name) {
        return name;
    }
    (2..)
        .map(|n| format!("{name} ({n})"))
        .find(|candidate| !taken(candidate))
        .expect("some suffix is free")
}

/// Flattens nested objects into `parent.child` keys (arrays and scalars stay values).
fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut IndexMap<String, Value>) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(&name, inner, out),
            other => {
                // `{"a": {"b": 1}, "a.b": 2}` flattens to two `a.b`: the second is kept
                // as `a.b (2)`, not dropped.
                let name = unique(name, |n| out.contains_key(n));
                out.insert(name, other.clone());
            }
        }
    }
}

pub(crate) fn export<'a>(
    records: impl Iterator<Item = &'a StoreRecord>,
    verbose: bool,
) -> ExportTable {
    let mut columns: Vec<String> = vec!["link".into()];
    if verbose {
        columns.extend(
            [
                "scrape_success",
                "scrape_error",
                "analysis_success",
                "analysis_error",
            ]
            .map(String::from),
        );
    }
    let fixed = columns.len();
    let mut output_columns: IndexMap<String, ()> = IndexMap::new();
    let mut partial: Vec<(Vec<Value>, IndexMap<String, Value>)> = Vec::new();
    for record in records {
        let mut row = vec![Value::String(record.link.clone())];
        if verbose {
            let scrape = record.scrape_result.as_ref();
            let analysis = record.analysis_result.as_ref();
            row.push(Value::Bool(scrape.is_some_and(|s| s.success())));
            row.push(
                scrape
                    .and_then(|s| s.error())
                    .map_or(Value::Null, Value::from),
            );
            row.push(Value::Bool(analysis.is_some_and(|a| a.success())));
            row.push(
                analysis
                    .and_then(|a| a.error())
                    .map_or(Value::Null, Value::from),
            );
        }
        let mut flat = IndexMap::new();
        if let Some(output) = record.analysis_result.as_ref().and_then(|a| a.output()) {
            flatten("", output, &mut flat);
        }
        for key in flat.keys() {
            if !output_columns.contains_key(key) {
                output_columns.insert(key.clone(), ());
            }
        }
        partial.push((row, flat));
    }
    // An output key equal to a fixed column name would be ambiguous: prefix it; and no two
    // columns may share a name (a prefixed key may meet a real `output.…` key).
    let mut taken: std::collections::HashSet<String> = columns[..fixed].iter().cloned().collect();
    let names: Vec<String> = output_columns
        .keys()
        .map(|k| {
            let name = if columns[..fixed].contains(k) {
                format!("output.{k}")
            } else {
                k.clone()
            };
            let name = unique(name, |n| {
                taken.contains(n) || (n != k && output_columns.contains_key(n))
            });
            taken.insert(name.clone());
            name
        })
        .collect();
    let rows = partial
        .into_iter()
        .map(|(mut row, mut flat)| {
            for key in output_columns.keys() {
                row.push(flat.swap_remove(key).unwrap_or(Value::Null));
            }
            row
        })
        .collect();
    columns.extend(names);
    ExportTable { columns, rows }
}
