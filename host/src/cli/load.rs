//! Model loading shared by the subcommands: resolve `--model`, load it, read its generation
//! defaults (the library API's [`crate::api::load_with_defaults`] on the CPU).

use candle_core::DType;

use crate::generation::GenerationConfig;
use crate::models::load::LoadedModel;
use crate::source::SourceConfig;

/// Resolves and loads `model` (folder, .gguf, hub id or alias) in `dtype` on the CPU, with the
/// `generation_config.json` defaults of HF folders.
pub fn load_with_defaults(
    model: &str,
    dtype: DType,
    sources: &SourceConfig,
) -> Result<(LoadedModel, GenerationConfig), Box<dyn std::error::Error>> {
    Ok(crate::api::load_with_defaults(
        model,
        dtype,
        &crate::api::options::default_device(),
        sources,
    )?)
}
