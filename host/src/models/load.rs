//! Loading a model and its tokenizer from local files.
//!
//! ```no_run
//! use rinseq::models::load::{load_model, ModelFiles};
//! let files = ModelFiles::detect("path/to/model-or-file.gguf".as_ref())?;
//! let loaded = load_model(&files, candle_core::DType::F32)?;
//! let ids = loaded.tokenizer.encode("The capital of France is", true)?;
//! # Ok::<(), rinseq::models::ModelError>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde_json::Value;

use super::gguf::GgufSource;
use super::registry::{self, BuildArgs};
use super::spm_tokenizer::{is_marian_folder, load_marian_text};
use super::tokenizer::{read_json_opt, TextTokenizer};
use super::weights::{check_dtype, SafetensorsSource, Weights};
use super::{Model, ModelError, ModelSpec};

/// Local model files (the source resolution — hub ids, aliases, cache — produces one of these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFiles {
    /// An HF folder: `config.json`, `model.safetensors` (or sharded with
    /// `model.safetensors.index.json`), `tokenizer.json` (Marian: `source.spm`, `target.spm`
    /// and `vocab.json` instead), optionally `generation_config.json` and
    /// `tokenizer_config.json`.
    HfFolder(PathBuf),
    /// A single GGUF file with weights, config and tokenizer in its metadata.
    Gguf(PathBuf),
}

impl ModelFiles {
    /// A folder is an HF folder; a file starting with the `GGUF` magic is a GGUF file.
    pub fn detect(path: &Path) -> Result<Self, ModelError> {
        if path.is_dir() {
            return Ok(Self::HfFolder(path.to_path_buf()));
        }
        if path.is_file() {
            let mut magic = [0u8; 4];
            let ok = std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok();
            if ok && &magic == b"GGUF" {
                return Ok(Self::Gguf(path.to_path_buf()));
            }
            if path.file_name().is_some_and(|n| n == "config.json") {
                if let Some(dir) = path.parent() {
                    return Ok(Self::HfFolder(dir.to_path_buf()));
                }
            }
        }
        Err(ModelError::NotAModel {
            path: path.to_path_buf(),
        })
    }

    /// The folder or file.
    pub fn path(&self) -> &Path {
        match self {
            Self::HfFolder(p) | Self::Gguf(p) => p,
        }
    }
}

/// A model ready to use: the network, its tokenizer and its facts.
pub struct LoadedModel {
    /// The network.
    pub model: Box<dyn Model>,
    /// The tokenizer, with the special ids (for Marian models: the source-side tokenizer).
    pub tokenizer: TextTokenizer,
    /// A separate target-side tokenizer, for models that have one (Marian: `target.spm`, used
    /// for `text_target=` and for decoding generated ids); `None` when `tokenizer` serves both.
    pub target_tokenizer: Option<TextTokenizer>,
    /// Same as `model.spec()`, kept here for convenience.
    pub spec: ModelSpec,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("spec", &self.spec)
            .finish()
    }
}

/// Loads a model on [`crate::api::options::default_device`] in `dtype` (f32 default; f16 and
/// f64 also work).
pub fn load_model(files: &ModelFiles, dtype: DType) -> Result<LoadedModel, ModelError> {
    load_model_on(files, dtype, &crate::api::options::default_device())
}

/// [`load_model`] on a given device.
pub fn load_model_on(
    files: &ModelFiles,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel, ModelError> {
    // Before the first tensor op of the process: candle reads its thread settings once.
    super::ops::init_cpu_threads();
    check_dtype(dtype, device)?;
    let mut target_tokenizer = None;
    let (config, weights, tokenizer) = match files {
        ModelFiles::HfFolder(dir) => {
            let cfg_path = dir.join("config.json");
            let config = read_json_opt(&cfg_path)?
                .ok_or_else(|| ModelError::MissingConfig { dir: dir.clone() })?;
            model_type_of(&config, &cfg_path)?;
            let tokenizer = if !dir.join("tokenizer.json").is_file() && is_marian_folder(dir) {
                let (source, target) = load_marian_text(dir)?;
                target_tokenizer = Some(target);
                source
            } else {
                TextTokenizer::from_hf_folder(dir)?
            };
            let src = SafetensorsSource::open_folder(dir)?;
            (
                config,
                Weights::new(Box::new(src), dtype, device.clone()),
                tokenizer,
            )
        }
        ModelFiles::Gguf(path) => {
            let src = GgufSource::open(path)?;
            let config = src.config()?;
            // The weights (dequantized on the rayon pool) and the tokenizer (built from the
            // metadata) are independent: prepare both at once.
            let (tokenizer, prefetched) = rayon::join(
                || TextTokenizer::from_gguf(&src.content, path),
                || src.prefetch(device),
            );
            let tokenizer = tokenizer?;
            prefetched?;
            (
                config,
                Weights::new(Box::new(src), dtype, device.clone()),
                tokenizer,
            )
        }
    };
    let cfg_path = files.path().join("config.json");
    let model_type = model_type_of(&config, &cfg_path)?;
    let arch = registry::find(&model_type)?;
    let model = (arch.build)(&BuildArgs {
        model_type: &model_type,
        config: &config,
        weights: &weights,
        special: &tokenizer.special,
    })?;
    let spec = model.spec().clone();
    Ok(LoadedModel {
        model,
        tokenizer,
        target_tokenizer,
        spec,
    })
}

fn model_type_of(config: &Value, path: &Path) -> Result<String, ModelError> {
    config
        .get("model_type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ModelError::NoModelType {
            path: path.to_path_buf(),
        })
}
