//! Save options, as in Inseq's `FeatureAttributionOutput.save` (reference §5.1).

use std::fmt;
use std::str::FromStr;

use super::error::OutputError;

/// The dtype score tensors are stored with (`scores_precision`); load always gives `f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ScorePrecision {
    /// `float32`, lossless.
    #[default]
    Float32,
    /// `float16` (IEEE half, round to nearest even).
    Float16,
    /// `float8`: `float8_e4m3fn` (experimental in Inseq; about 2 significant digits).
    Float8,
}

impl ScorePrecision {
    /// The Inseq name: `float32`, `float16` or `float8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Float16 => "float16",
            Self::Float8 => "float8",
        }
    }
}

impl fmt::Display for ScorePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScorePrecision {
    type Err = OutputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "float32" => Ok(Self::Float32),
            "float16" => Ok(Self::Float16),
            "float8" => Ok(Self::Float8),
            other => Err(OutputError::UnknownPrecision(other.to_string())),
        }
    }
}

/// How [`FeatureAttributionOutput::save`](super::FeatureAttributionOutput::save) writes files.
/// The defaults are Inseq's (`use_primitives=True` output, which Inseq cannot reload, is not
/// offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// Replace existing files; otherwise an existing path is an error.
    pub overwrite: bool,
    /// Gzip the whole JSON text (level 5, mtime 0), as Inseq's `compress=True`.
    pub compress: bool,
    /// Write one file per sequence, `<stem>_<i>.json[.gz]` (step attributions dropped).
    pub split_sequences: bool,
    /// The dtype of saved scores.
    pub scores_precision: ScorePrecision,
    /// Store step-attribution arrays as base64 (Inseq's default) rather than number lists.
    pub ndarray_compact: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            overwrite: false,
            compress: false,
            split_sequences: false,
            scores_precision: ScorePrecision::Float32,
            ndarray_compact: true,
        }
    }
}
