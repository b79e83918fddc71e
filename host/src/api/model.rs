//! [`AttributionModel`]: a loaded model, its generation defaults and the plugin registry
//! (Inseq's `inseq.load_model(...)`).

use std::sync::Arc;

use candle_core::{DType, Device};

use super::options::LoadOptions;
use super::request::AttributeRequest;
use super::ApiError;
use crate::generation::GenerationConfig;
use crate::models::load::{load_model_on, LoadedModel, ModelFiles};
use crate::models::ModelKind;
use crate::plugins::{PluginKind, PluginRegistry};
use crate::source::{resolve, SourceConfig};

/// A model ready to attribute with a default method: what [`load_model`](super::load_model)
/// returns. [`AttributionModel::attribute`] starts a request.
pub struct AttributionModel {
    loaded: LoadedModel,
    generation_defaults: GenerationConfig,
    registry: Arc<PluginRegistry>,
    name: String,
    method: String,
}

impl std::fmt::Debug for AttributionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttributionModel")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl AttributionModel {
    /// Loads `model` (a local HF-format folder, a .gguf file, a hub id or an alias) for
    /// attribution with `method`, as `options` say. The plugins load first, and an unknown
    /// method fails before the model loads.
    pub fn load_with(model: &str, method: &str, options: LoadOptions) -> Result<Self, ApiError> {
        let registry = match options.registry {
            Some(r) => r,
            None => Arc::new(PluginRegistry::load(&options.plugins)?),
        };
        registry.find(PluginKind::Attribution, method)?;
        let (loaded, generation_defaults) =
            load_with_defaults(model, options.dtype, &options.device, &options.source)?;
        Ok(Self {
            loaded,
            generation_defaults,
            registry,
            name: model.to_string(),
            method: method.to_string(),
        })
    }

    /// Starts an attribution of `inputs` (one sequence each) with this model's method; set the
    /// other arguments on the request, then [`AttributeRequest::run`] it.
    pub fn attribute<I, S>(&self, inputs: I) -> AttributeRequest<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AttributeRequest::new(self, inputs.into_iter().map(Into::into).collect())
    }

    /// The model as it was named when loaded (path, hub id or alias).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default attribution method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The loaded model and its tokenizers.
    pub fn loaded(&self) -> &LoadedModel {
        &self.loaded
    }

    /// The model's own generation defaults (`generation_config.json` of HF folders).
    pub fn generation_defaults(&self) -> &GenerationConfig {
        &self.generation_defaults
    }

    /// The plugin registry (methods, step functions, aggregators).
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Whether the model is decoder-only (else encoder-decoder).
    pub fn is_decoder_only(&self) -> bool {
        self.loaded.spec.kind == ModelKind::DecoderOnly
    }
}

/// Resolves and loads `model` (folder, .gguf, hub id or alias) in `dtype` on `device`, with the
/// `generation_config.json` defaults of HF folders.
pub fn load_with_defaults(
    model: &str,
    dtype: DType,
    device: &Device,
    sources: &SourceConfig,
) -> Result<(LoadedModel, GenerationConfig), ApiError> {
    let files = resolve(model, sources)?;
    let defaults = match &files {
        ModelFiles::HfFolder(dir) => GenerationConfig::from_model_dir(dir)?,
        ModelFiles::Gguf(_) => GenerationConfig::default(),
    };
    Ok((load_model_on(&files, dtype, device)?, defaults))
}
