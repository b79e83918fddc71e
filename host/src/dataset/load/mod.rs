//! Loading the examples of `rinseq attribute-dataset`, the Rust side of Inseq's
//! `datasets.load_dataset(name, config, data_dir=, data_files=, split=, revision=)` followed by
//! reading `input_text_field` (and `generated_text_field`).
//!
//! [`DatasetSpec::name`] is a format, `json` ([`json`]), `csv` ([`csv`]) or `parquet`
//! ([`parquet`]), read from local `files` or every file of that format under `dir`; or a hub
//! dataset id `org/name`, whose data files are listed and downloaded with `hf-hub` ([`hub`]).
//! In a folder or a repo the files of the split are found by name as `datasets` finds them
//! ([`splits`]). Rows are numbered across files in order: [`Example::index`] is a stable id.

pub mod csv;
pub mod error;
pub mod fields;
pub mod format;
pub mod hub;
pub mod json;
pub mod parquet;
pub mod splits;

use std::path::{Path, PathBuf};

pub use error::DatasetError;
use fields::Fields;
pub use format::Format;

use crate::source::SourceConfig;

/// What to load: the `--dataset-*` and `--*-text-field` flags of `rinseq attribute-dataset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    /// `json`, `csv`, `parquet`, or a hub dataset id `org/name`.
    pub name: String,
    /// `--dataset-files`: local files (relative ones are joined to `dir` when it is set); for a
    /// hub id, paths in the repo (`*` matches within a path segment).
    pub files: Vec<PathBuf>,
    /// `--dataset-dir`: a folder of data files (for a hub id: a folder of the repo).
    pub dir: Option<PathBuf>,
    /// `--dataset-split` (default `train`).
    pub split: String,
    /// `--dataset-config`: for a hub id, the config (subset) folder of the repo.
    pub config: Option<String>,
    /// `--dataset-revision`: for a hub id, a branch, tag or commit (default `main`).
    pub revision: Option<String>,
    /// `--input-text-field`.
    pub input_field: String,
    /// `--generated-text-field`.
    pub generated_field: Option<String>,
}

/// One row of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The row number in the dataset (0-based, across its files in order): a stable id.
    pub index: usize,
    /// The input text.
    pub input: String,
    /// The generated text, when `generated_field` is set.
    pub generated: Option<String>,
}

/// Loads the rows of `spec`, with the hub settings taken from the environment (`HF_ENDPOINT`,
/// `HF_HUB_CACHE`/`HF_HOME`, `HF_TOKEN`, `HF_HUB_OFFLINE`; see [`SourceConfig::from_env`]).
pub fn load_dataset(spec: &DatasetSpec) -> Result<Vec<Example>, DatasetError> {
    load_dataset_with(spec, &SourceConfig::from_env())
}

/// Loads the rows of `spec`, with explicit hub settings.
pub fn load_dataset_with(
    spec: &DatasetSpec,
    cfg: &SourceConfig,
) -> Result<Vec<Example>, DatasetError> {
    let fields = Fields {
        input: &spec.input_field,
        generated: spec.generated_field.as_deref(),
    };
    let (format, files) = match Format::from_name(&spec.name) {
        Some(format) => (format, local_files(spec, format)?),
        None if hub::is_dataset_id(&spec.name) => hub::resolve(spec, cfg)?,
        None => return Err(DatasetError::UnknownFormat(spec.name.clone())),
    };
    let mut rows = Vec::new();
    for path in &files {
        rows.extend(format.read(path, fields, rows.len())?);
    }
    if rows.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        return Err(DatasetError::Empty(format!(
            "{} (split {:?}: {})",
            spec.name,
            spec.split,
            names.join(", ")
        )));
    }
    Ok(rows)
}

/// The local files of a `json`/`csv`/`parquet` spec: the given files, else the files of the
/// split among every file of that format under `dir`.
fn local_files(spec: &DatasetSpec, format: Format) -> Result<Vec<PathBuf>, DatasetError> {
    if !spec.files.is_empty() {
        // Explicit files are the requested split, whatever its name.
        let files: Vec<PathBuf> = spec
            .files
            .iter()
            .map(|f| match &spec.dir {
                Some(dir) if f.is_relative() => dir.join(f),
                _ => f.clone(),
            })
            .collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(DatasetError::FileNotFound(missing.clone()));
        }
        return Ok(files);
    }
    let Some(dir) = &spec.dir else {
        return Err(DatasetError::NoFilesGiven(spec.name.clone()));
    };
    if !dir.is_dir() {
        return Err(DatasetError::DirNotFound(dir.clone()));
    }
    let mut all = Vec::new();
    walk(dir, "", &mut all).map_err(|source| DatasetError::Io {
        path: dir.clone(),
        source,
    })?;
    all.retain(|f| Format::of_file(f) == Some(format));
    let splits = splits::resolve(&all);
    if splits.is_empty() {
        return Err(DatasetError::NoFilesInDir {
            dir: dir.clone(),
            format: format.name(),
            extensions: format
                .extensions()
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    match splits.iter().find(|(s, _)| *s == spec.split) {
        Some((_, files)) => Ok(files.iter().map(|f| dir.join(f)).collect()),
        None => Err(DatasetError::UnknownSplit {
            split: spec.split.clone(),
            place: dir.display().to_string(),
            splits: splits
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Every file under `dir`, as `/`-separated paths relative to the folder first walked.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        if entry.path().is_dir() {
            walk(&entry.path(), &format!("{rel}/"), out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}
