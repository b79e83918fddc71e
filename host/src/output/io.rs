//! `save` / `load` of [`FeatureAttributionOutput`] files, as Inseq's
//! `FeatureAttributionOutput.save` / `.load` (`inseq/data/attribution.py`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{OutputError, TEXT};
use super::gzip::{gunzip, gzip};
use super::json::{self, EncodeOptions};
use super::json_decode;
use super::model::FeatureAttributionOutput;
use super::options::SaveOptions;
use super::pyjson::Json;

/// Gzip level of `compress=True` (Inseq's `save_to_file` default).
const FILE_GZIP_LEVEL: u32 = 5;

/// The part paths of a split save: Inseq's `f"{str(path).split('.json')[0]}_{i}.json"` plus
/// `.gz` when compressed (the stem ends at the first `.json` anywhere in the path).
pub fn split_paths(path: &Path, n: usize, compress: bool) -> Vec<PathBuf> {
    let text = path.to_string_lossy();
    let stem = text.split(".json").next().unwrap_or(&text);
    let gz = if compress { ".gz" } else { "" };
    (0..n)
        .map(|i| PathBuf::from(format!("{stem}_{i}.json{gz}")))
        .collect()
}

impl FeatureAttributionOutput {
    /// The Inseq JSON text of this output (uncompressed; `options.compress` only stops the
    /// per-array gzip of step attributions, as in Inseq).
    pub fn to_inseq_json(&self, options: &SaveOptions) -> Result<String, OutputError> {
        let opts = EncodeOptions {
            precision: options.scores_precision,
            ndarray_compact: options.ndarray_compact,
            compressed_file: options.compress,
        };
        Ok(json::encode(self, opts)?.to_python_string())
    }

    /// Parses Inseq JSON text.
    pub fn from_inseq_json(text: &str) -> Result<Self, OutputError> {
        let root = Json::parse(text).map_err(|detail| OutputError::NotJson {
            file: TEXT.into(),
            detail,
        })?;
        json_decode::decode(&root)
    }

    /// Parses file bytes: gzip (detected by its magic bytes) or plain UTF-8 JSON.
    pub fn from_inseq_bytes(bytes: &[u8]) -> Result<Self, OutputError> {
        let not_json = |detail: String| OutputError::NotJson {
            file: TEXT.into(),
            detail,
        };
        let unzipped;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            unzipped = gunzip(bytes).map_err(|e| not_json(format!("corrupt gzip: {e}")))?;
            &unzipped[..]
        } else {
            bytes
        };
        let text = std::str::from_utf8(bytes).map_err(|e| not_json(format!("not UTF-8: {e}")))?;
        Self::from_inseq_json(text)
    }

    /// Loads a file saved by Inseq (`out.save(...)`, any precision, compressed or not) or by
    /// [`save`](Self::save). Tensors come back as `f32`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, OutputError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| OutputError::io(path, "read", e))?;
        Self::from_inseq_bytes(&bytes).map_err(|e| e.at(path))
    }

    /// Saves in Inseq's format and returns the paths written (one, or one per sequence with
    /// `split_sequences`). Without `overwrite`, an existing `path` (or split part) is an error
    /// and nothing is written (Inseq checks only `path`). Step attributions are written as Inseq
    /// does, but Inseq 0.7.1 cannot reload such files (its `load` calls a method its step class
    /// lacks); rinseq can.
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        options: &SaveOptions,
    ) -> Result<Vec<PathBuf>, OutputError> {
        let path = path.as_ref();
        let jobs: Vec<(PathBuf, FeatureAttributionOutput)> = if options.split_sequences {
            let paths = split_paths(path, self.len(), options.compress);
            paths
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p, self.split_part(i)))
                .collect()
        } else {
            vec![(path.to_path_buf(), self.clone())]
        };
        if !options.overwrite {
            let first_existing = std::iter::once(path)
                .chain(jobs.iter().map(|(p, _)| p.as_path()))
                .find(|p| p.exists());
            if let Some(p) = first_existing {
                return Err(OutputError::Exists {
                    file: p.display().to_string(),
                });
            }
        }
        let mut written = Vec::with_capacity(jobs.len());
        for (p, out) in jobs {
            let text = out.to_inseq_json(options).map_err(|e| e.at(&p))?;
            let bytes = if options.compress {
                gzip(text.as_bytes(), FILE_GZIP_LEVEL)
            } else {
                text.into_bytes()
            };
            std::fs::write(&p, bytes).map_err(|e| OutputError::io(&p, "write", e))?;
            written.push(p);
        }
        Ok(written)
    }

    /// Sequence `i` alone, as Inseq's `split_sequences` writes it: no step attributions, and
    /// `info.input_texts` / `info.generated_texts` reduced to entry `i`.
    pub fn split_part(&self, i: usize) -> FeatureAttributionOutput {
        let mut info = self.info.clone();
        for key in ["input_texts", "generated_texts"] {
            if let Some(Value::Array(texts)) = info.get(key) {
                let one: Vec<Value> = texts.get(i).cloned().into_iter().collect();
                info.insert(key.to_string(), Value::Array(one));
            }
        }
        FeatureAttributionOutput {
            sequence_attributions: self
                .sequence_attributions
                .get(i)
                .cloned()
                .into_iter()
                .collect(),
            step_attributions: None,
            info,
        }
    }
}
