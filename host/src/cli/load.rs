//! Model loading shared by the subcommands: resolve `--model`, load it, read its generation
//! defaults.

use candle_core::DType;

use crate::generation::GenerationConfig;
use crate::models::load::{load_model, LoadedModel, ModelFiles};
use crate::source::{resolve, SourceConfig};

/// Resolves and loads `model` (folder, .gguf, hub id or alias) in `dtype`, with the
/// `generation_config.json` defaults of HF folders.
pub fn load_with_defaults(
    model: &str,
    dtype: DType,
    sources: &SourceConfig,
) -> Result<(LoadedModel, GenerationConfig), Box<dyn std::error::Error>> {
    let files = resolve(model, sources)?;
    let defaults = match &files {
        ModelFiles::HfFolder(dir) => GenerationConfig::from_model_dir(dir)?,
        ModelFiles::Gguf(_) => GenerationConfig::default(),
    };
    Ok((load_model(&files, dtype)?, defaults))
}
