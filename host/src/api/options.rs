//! How [`AttributionModel::load_with`](super::AttributionModel::load_with) loads a model:
//! precision, device, plugin sources (or an already loaded registry) and model sources.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};
use serde_json::{Map, Value};

use crate::plugins::{PluginRegistry, PluginSources};
use crate::source::SourceConfig;

/// Options of [`AttributionModel::load_with`](super::AttributionModel::load_with) (Inseq's
/// `load_model(..., model_kwargs=...)`), built with the methods below.
#[derive(Clone)]
pub struct LoadOptions {
    /// Model precision (default f32; f16; bf16 needs a GPU).
    pub dtype: DType,
    /// Where the model runs (default the CPU).
    pub device: Device,
    /// Where plugins come from (default [`default_plugin_sources`]).
    pub plugins: PluginSources,
    /// A registry loaded beforehand: used instead of loading [`LoadOptions::plugins`].
    pub registry: Option<Arc<PluginRegistry>>,
    /// Hub and cache settings for model ids and aliases (default [`SourceConfig::from_env`]).
    pub source: SourceConfig,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .field("plugins", &self.plugins)
            .field("registry", &self.registry.as_ref().map(|_| "loaded"))
            .field("source", &self.source)
            .finish()
    }
}

/// The device models load on unless told otherwise: the one place a run's device is chosen
/// (every tensor the host builds then follows the model's [`crate::models::Model::device`]).
/// rinseq computes on the CPU today; a GPU build would choose here.
pub fn default_device() -> Device {
    Device::Cpu
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: default_device(),
            plugins: default_plugin_sources(),
            registry: None,
            source: SourceConfig::from_env(),
        }
    }
}

impl LoadOptions {
    /// The model precision.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The device the model runs on.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Replaces every plugin source.
    pub fn plugin_sources(mut self, sources: PluginSources) -> Self {
        self.plugins = sources;
        self
    }

    /// A user registry file layered over the built-in one (the CLI's `--registry`).
    pub fn registry_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.plugins.registry = Some(path.into());
        self
    }

    /// One more plugin library, loaded last (the CLI's `--plugin`).
    pub fn plugin(mut self, path: impl Into<PathBuf>) -> Self {
        self.plugins.extra.push(path.into());
        self
    }

    /// Uses a registry loaded beforehand (shared by several models) instead of the sources.
    pub fn registry(mut self, registry: Arc<PluginRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Hub and cache settings.
    pub fn source(mut self, source: SourceConfig) -> Self {
        self.source = source;
        self
    }
}

/// The plugin layers the CLI uses without `--registry`/`--plugin`: the built-in registry, the
/// user registry (`$RINSEQ_REGISTRY`, else `./registry.toml`), then `RINSEQ_PLUGIN_PATH`.
pub fn default_plugin_sources() -> PluginSources {
    PluginSources {
        builtin: builtin_registry(),
        registry: default_registry(),
        search_path: std::env::var_os("RINSEQ_PLUGIN_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default(),
        extra: Vec::new(),
    }
}

/// The user registry when none is given: `$RINSEQ_REGISTRY`, else `./registry.toml`, else none.
pub fn default_registry() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINSEQ_REGISTRY") {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from("registry.toml");
    local.is_file().then_some(local)
}

/// The registry of the rinseq source tree this crate was built from, if it is still there.
pub fn builtin_registry() -> Option<PathBuf> {
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../registry.toml"));
    built.is_file().then_some(built)
}

/// The precision of a model-kwargs object: `dtype` f32 | f16 | bf16 (default f32); any other
/// key is an error.
pub fn model_dtype(model_kwargs: &Map<String, Value>) -> Result<DType, String> {
    if let Some(k) = model_kwargs.keys().find(|k| k.as_str() != "dtype") {
        return Err(format!(
            "--model-kwargs key '{k}' is not supported (supported: dtype)"
        ));
    }
    match model_kwargs.get("dtype").and_then(Value::as_str) {
        None | Some("f32") | Some("float32") => Ok(DType::F32),
        Some("f16") | Some("float16") => Ok(DType::F16),
        Some("bf16") | Some("bfloat16") => Ok(DType::BF16),
        Some(other) => Err(format!(
            "--model-kwargs dtype '{other}' is not one of f32, f16, bf16"
        )),
    }
}
