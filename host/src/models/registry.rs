//! The architecture registry: every model file registers a builder under its HF `model_type`.
//!
//! ```text
//! inventory::submit! {
//!     Architecture { model_type: "llama", kind: ModelKind::DecoderOnly, build: build_llama }
//! }
//! ```

use super::tokenizer::SpecialTokens;
use super::weights::Weights;
use super::{Model, ModelError, ModelKind};

/// What a builder receives.
pub struct BuildArgs<'a> {
    /// `model_type` the builder was picked for (one builder may serve several types).
    pub model_type: &'a str,
    /// The parsed `config.json` (for GGUF files, an equivalent built from the metadata).
    pub config: &'a serde_json::Value,
    /// The weights, by HF tensor name, converted to the requested dtype on access.
    pub weights: &'a Weights,
    /// Special token ids, already merged from all sources (use these for [`super::ModelSpec`]).
    pub special: &'a SpecialTokens,
}

/// Builds a model from a config and weights.
pub type BuildFn = fn(&BuildArgs<'_>) -> Result<Box<dyn Model>, ModelError>;

/// One registered architecture.
pub struct Architecture {
    /// HF `model_type` (`config.json`), e.g. `"llama"`.
    pub model_type: &'static str,
    /// Decoder-only or encoder-decoder.
    pub kind: ModelKind,
    /// The builder.
    pub build: BuildFn,
}

inventory::collect!(Architecture);

/// Every registered `model_type`, sorted.
pub fn supported() -> Vec<&'static str> {
    let mut v: Vec<_> = inventory::iter::<Architecture>
        .into_iter()
        .map(|a| a.model_type)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The architecture registered under `model_type`, or an error listing the supported ones.
pub fn find(model_type: &str) -> Result<&'static Architecture, ModelError> {
    inventory::iter::<Architecture>
        .into_iter()
        .find(|a| a.model_type == model_type)
        .ok_or_else(|| ModelError::UnknownModelType {
            model_type: model_type.to_string(),
            supported: supported().join(", "),
        })
}
