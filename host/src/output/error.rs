//! Errors of saving and loading attribution files: one line each, naming the file and the fix.

use std::path::Path;

/// What went wrong while saving or loading an attribution file.
///
/// `file` is the path, or `<text>` while decoding text that did not come from a file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file to load does not exist.
    #[error("{file}: no such file; check the path of the attribution file to load")]
    NotFound {
        /// The path.
        file: String,
    },
    /// Reading or writing failed.
    #[error("{file}: cannot {action}: {source}; check the path and its permissions")]
    Io {
        /// The path.
        file: String,
        /// `read` or `write`.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON (or a corrupt gzip / not UTF-8).
    #[error("{file}: not JSON ({detail}); load a file written by Inseq's `save` or rinseq (gzip is detected)")]
    NotJson {
        /// The path.
        file: String,
        /// Where and why parsing failed.
        detail: String,
    },
    /// JSON, but not in the Inseq attribution schema.
    #[error("{file}: not an Inseq attribution file ({detail}); load a file saved by `FeatureAttributionOutput.save` with use_primitives=False")]
    NotInseq {
        /// The path.
        file: String,
        /// What is missing or wrong.
        detail: String,
    },
    /// A saved tensor has a dtype Inseq does not write.
    #[error("{file}: unsupported score precision `{dtype}` in {field}; Inseq files hold float32, float16 or float8 (float8_e4m3fn) scores")]
    UnsupportedPrecision {
        /// The path.
        file: String,
        /// The JSON field, e.g. `sequence_attributions[0].source_attributions`.
        field: String,
        /// The dtype found.
        dtype: String,
    },
    /// A saved tensor cannot be decoded (bad base64 or safetensors, size mismatch).
    #[error("{file}: cannot decode tensor {field} ({detail}); the file is damaged, save it again")]
    BadTensor {
        /// The path.
        file: String,
        /// The JSON field.
        field: String,
        /// Why.
        detail: String,
    },
    /// The output itself is inconsistent (a tensor's data does not match its shape).
    #[error("{file}: cannot save {field} ({detail}); fix the tensor before saving")]
    InvalidTensor {
        /// The path.
        file: String,
        /// The field.
        field: String,
        /// Why.
        detail: String,
    },
    /// The destination exists and overwriting was not asked for.
    #[error("{file} already exists; pass overwrite (`--overwrite`) or choose another path")]
    Exists {
        /// The path.
        file: String,
    },
    /// A precision name that is not `float32`, `float16` or `float8`.
    #[error("unknown score precision `{0}`; use float32, float16 or float8")]
    UnknownPrecision(String),
}

/// The placeholder file name of errors raised while decoding text.
pub(crate) const TEXT: &str = "<text>";

impl OutputError {
    /// The same error, naming `path` as its file.
    pub fn at(mut self, path: &Path) -> Self {
        let name = path.display().to_string();
        match &mut self {
            Self::NotFound { file }
            | Self::Io { file, .. }
            | Self::NotJson { file, .. }
            | Self::NotInseq { file, .. }
            | Self::UnsupportedPrecision { file, .. }
            | Self::BadTensor { file, .. }
            | Self::InvalidTensor { file, .. }
            | Self::Exists { file } => *file = name,
            Self::UnknownPrecision(_) => {}
        }
        self
    }

    pub(crate) fn not_inseq(detail: impl Into<String>) -> Self {
        Self::NotInseq {
            file: TEXT.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn bad_tensor(field: &str, detail: impl Into<String>) -> Self {
        Self::BadTensor {
            file: TEXT.into(),
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound && action == "read" {
            return Self::NotFound {
                file: path.display().to_string(),
            };
        }
        Self::Io {
            file: path.display().to_string(),
            action,
            source,
        }
    }
}
