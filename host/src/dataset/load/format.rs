//! The file formats rinseq reads, by `--dataset-name` and by file extension.

use std::path::Path;

use super::fields::Fields;
use super::{csv, json, parquet, DatasetError, Example};

/// A data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines or a JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// All formats, in the order preferred when a repo has as many files of each.
    pub const ALL: [Format; 3] = [Format::Parquet, Format::Json, Format::Csv];

    /// The `--dataset-name` of the format (`datasets`' builder name).
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// The format named `name`, if any.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The file extensions of the format (without the dot).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["jsonl", "json"],
            Format::Csv => &["csv"],
            Format::Parquet => &["parquet"],
        }
    }

    /// The format of a file, by its extension (case-insensitive).
    pub fn of_file(path: &str) -> Option<Format> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.extensions().contains(&ext.as_str()))
    }

    /// Reads the rows of one file, numbering them from `first`.
    pub fn read(
        self,
        path: &Path,
        fields: Fields,
        first: usize,
    ) -> Result<Vec<Example>, DatasetError> {
        match self {
            Format::Json => json::read(path, fields, first),
            Format::Csv => csv::read(path, fields, first),
            Format::Parquet => parquet::read(path, fields, first),
        }
    }
}
