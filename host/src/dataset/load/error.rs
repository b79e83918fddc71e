//! [`DatasetError`]: every way loading a dataset can fail, each as one line that names the thing
//! at fault and the fix.

use std::path::PathBuf;

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// `--dataset-name` is neither a local format nor a hub id.
    #[error("unknown dataset {0:?}: use json, csv or parquet (with --dataset-files or --dataset-dir), or a hub dataset id org/name")]
    UnknownFormat(String),
    /// A local format was named without any file to read.
    #[error("dataset {0} needs --dataset-files or --dataset-dir")]
    NoFilesGiven(String),
    /// A `--dataset-files` entry does not exist.
    #[error("dataset file {} does not exist; check --dataset-files (and --dataset-dir, which relative files are joined to)", .0.display())]
    FileNotFound(PathBuf),
    /// The `--dataset-dir` folder does not exist.
    #[error("dataset folder {} does not exist; check --dataset-dir", .0.display())]
    DirNotFound(PathBuf),
    /// The folder holds no file of the requested format.
    #[error("dataset folder {} has no {format} file (looked for {extensions}); check --dataset-dir or the dataset format", .dir.display())]
    NoFilesInDir {
        /// The folder.
        dir: PathBuf,
        /// The format name (`json`, `csv`, `parquet`).
        format: &'static str,
        /// The extensions looked for, e.g. `.jsonl, .json`.
        extensions: String,
    },
    /// The requested split has no files among those found.
    #[error("no files for split {split:?} in {place}: it has splits [{splits}]; pass --dataset-split with one of them")]
    UnknownSplit {
        /// The requested split.
        split: String,
        /// The folder or repo searched.
        place: String,
        /// The splits that do have files.
        splits: String,
    },
    /// A file could not be read.
    #[error("cannot read dataset file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON Lines line is not a JSON object.
    #[error("{}:{line}: not a JSON object ({reason}); every line of a JSON Lines file must be one object", .path.display())]
    MalformedJsonLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What went wrong.
        reason: String,
    },
    /// A `.json` file is valid JSON but not a list of records.
    #[error("{}: {found}; rinseq reads JSON Lines (one object per line) or a top-level array of objects", .path.display())]
    JsonNotRecords {
        /// The file.
        path: PathBuf,
        /// What the file holds instead.
        found: String,
    },
    /// A CSV file could not be parsed.
    #[error("{}: {reason}", .path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The parser's message (with the line).
        reason: String,
    },
    /// A parquet file could not be read.
    #[error("{}: not a readable parquet file ({reason})", .path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        reason: String,
    },
    /// A file of the hub repo has an extension rinseq cannot read.
    #[error("{0}: unsupported data file (rinseq reads .jsonl, .json, .csv and .parquet); pass --dataset-files with the files to read")]
    UnsupportedFile(String),
    /// The text field is absent from a file.
    #[error("{}: no field {field:?}; the fields are [{available}]; pass the right --input-text-field/--generated-text-field", .path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The requested field.
        field: String,
        /// The fields the file has, comma-separated.
        available: String,
    },
    /// A row's text field holds something other than a string.
    #[error("row {row} ({location}): field {field:?} is {found}, not a string")]
    NotAString {
        /// The row number in the dataset (0-based, as [`super::Example::index`]).
        row: usize,
        /// The file (and line) of the row.
        location: String,
        /// The field.
        field: String,
        /// What it holds (`null`, `a number`, …).
        found: String,
    },
    /// No row at all.
    #[error("dataset {0} has no rows; check the files and the split")]
    Empty(String),
    /// The hub answered with an HTTP error status.
    #[error("hub {endpoint} answered {status} for dataset {what}{hint}")]
    HubStatus {
        /// The endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The repo (and file) asked for.
        what: String,
        /// The likely fix.
        hint: &'static str,
    },
    /// The hub cannot be reached and the dataset is not cached.
    #[error("cannot reach {endpoint} for dataset {repo} ({reason}) and it is not in the cache {}; check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 after caching it", .cache.display())]
    HubUnreachable {
        /// The repo id.
        repo: String,
        /// The endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// The HF hub cache.
        cache: PathBuf,
        /// The transport error.
        reason: String,
    },
    /// Offline mode and the revision is not in the cache.
    #[error("dataset {repo}@{revision} is not in the cache {} and HF_HUB_OFFLINE is set; unset it to download the dataset", .cache.display())]
    OfflineNotCached {
        /// The repo id.
        repo: String,
        /// The revision.
        revision: String,
        /// The HF hub cache.
        cache: PathBuf,
    },
    /// The hub repo has no data file for the requested split (and config).
    #[error("dataset {repo} has no data files for split {split:?}{config} (splits found: [{splits}]); its files are [{files}]; pass --dataset-split, --dataset-config or --dataset-files")]
    NoSplitFiles {
        /// The repo id and revision, `org/name@rev`.
        repo: String,
        /// The split.
        split: String,
        /// ` in config "x"` or empty.
        config: String,
        /// The splits that do have data files there, comma-separated.
        splits: String,
        /// The repo's files, comma-separated.
        files: String,
    },
    /// Any other hub error.
    #[error("hub error for dataset {repo}: {reason}")]
    Hub {
        /// The repo id.
        repo: String,
        /// What went wrong.
        reason: String,
    },
}
