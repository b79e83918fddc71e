//! CSV datasets: a header row naming the fields, then one row per example (`,`-separated, `"`
//! quoting, as pandas writes them). An empty cell is a missing value, as pandas reads it.

use std::path::Path;

use super::fields::{Cell, Fields};
use super::{DatasetError, Example};

/// Reads the rows of one CSV file, numbering them from `first`.
pub fn read(path: &Path, fields: Fields, first: usize) -> Result<Vec<Example>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |e: csv::Error| DatasetError::Csv {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let headers: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    let column = |f: &str| headers.iter().position(|h| h == f);
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(bad)?;
        if out.is_empty() {
            fields.check(path, &headers)?;
        }
        let line = record.position().map_or(0, |p| p.line());
        let location = || format!("{}:{line}", path.display());
        out.push(fields.example(first + i, location, |f| {
            match column(f).and_then(|c| record.get(c)) {
                Some(s) if !s.is_empty() => Cell::Str(s.to_string().into()),
                _ => Cell::Other("empty (a missing value)".to_string()),
            }
        })?);
    }
    Ok(out)
}
