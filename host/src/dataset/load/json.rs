//! JSON datasets, as `datasets`' `json` builder reads them: JSON Lines (one object per line, in
//! `.jsonl` or `.json` files; blank lines skipped) or one top-level array of objects. A top-level
//! object (e.g. `{"data": [...]}`) needs `datasets`' `field=` option, which Inseq's CLI does not
//! expose, so it is refused with its keys listed.

use std::path::Path;

use serde_json::{Map, Value};

use super::fields::{Cell, Fields};
use super::{DatasetError, Example};

type Record = Map<String, Value>;

/// Reads the rows of one JSON file, numbering them from `first`.
pub fn read(path: &Path, fields: Fields, first: usize) -> Result<Vec<Example>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // (line number, record): the line locates a bad row in the error message.
    let records: Vec<(Option<usize>, Record)> = if text.trim_start().starts_with('[') {
        array(path, &text)?
    } else {
        lines(path, &text)?
    };
    let mut keys: Vec<String> = Vec::new();
    for (_, r) in &records {
        for k in r.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    if !records.is_empty() {
        fields.check(path, &keys)?;
    }
    records
        .iter()
        .enumerate()
        .map(|(i, (line, record))| {
            let location = || match line {
                Some(l) => format!("{}:{l}", path.display()),
                None => format!("{} item {i}", path.display()),
            };
            fields.example(first + i, location, |f| cell(record.get(f)))
        })
        .collect()
}

/// A top-level array: every item must be an object.
fn array(path: &Path, text: &str) -> Result<Vec<(Option<usize>, Record)>, DatasetError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DatasetError::MalformedJsonLine {
        path: path.to_path_buf(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    let Value::Array(items) = value else {
        return Err(not_records(path, &value));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) => Ok((None, m)),
            other => Err(DatasetError::JsonNotRecords {
                path: path.to_path_buf(),
                found: format!("item {i} of the array is {}", kind(&other)),
            }),
        })
        .collect()
}

/// JSON Lines; a file that fails as lines but parses whole is reported for what it holds.
fn lines(path: &Path, text: &str) -> Result<Vec<(Option<usize>, Record)>, DatasetError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DatasetError::MalformedJsonLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push((Some(i + 1), m)),
            Ok(other) => return Err(bad(format!("found {}", kind(&other)))),
            Err(e) => {
                // A pretty-printed object spans lines: name what it is rather than line 1.
                if let Ok(whole) = serde_json::from_str::<Value>(text) {
                    return Err(not_records(path, &whole));
                }
                return Err(bad(e.to_string()));
            }
        }
    }
    Ok(out)
}

fn not_records(path: &Path, value: &Value) -> DatasetError {
    let found = match value {
        Value::Object(m) => format!(
            "one JSON object with keys [{}], not records (datasets would need field=)",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        other => format!("one JSON value ({}), not records", kind(other)),
    };
    DatasetError::JsonNotRecords {
        path: path.to_path_buf(),
        found,
    }
}

fn cell(value: Option<&Value>) -> Cell<'_> {
    match value {
        Some(Value::String(s)) => Cell::Str(s.as_str().into()),
        Some(other) => Cell::Other(kind(other).to_string()),
        None => Cell::Other("null (absent)".to_string()),
    }
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
