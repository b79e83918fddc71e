//! The library API: Inseq's `inseq.load_model(...).attribute(...)` for Rust callers.
//!
//! [`load_model`] (or [`AttributionModel::load_with`] and [`LoadOptions`]) loads a model and
//! the plugins; [`AttributionModel::attribute`] starts an [`AttributeRequest`], whose builder
//! methods mirror Inseq's `attribute` arguments; [`AttributeRequest::run`] returns an
//! [`Attribution`], which saves Inseq's JSON and aggregates. The `rinseq attribute`,
//! `attribute-dataset` and `attribute-context` commands run through this module.
//!
//! Files: [`options`] (load options), [`model`], [`request`] (the builder), [`run`],
//! [`plugins`] (method and step functions with routed arguments), [`contrast`], [`info`]
//! (Inseq's `info` record), [`output`], [`error`].

#![warn(missing_docs)]

pub mod contrast;
pub mod error;
pub mod info;
pub mod model;
pub mod options;
pub mod output;
pub mod plugins;
pub mod request;
pub mod run;

pub use contrast::Contrast;
pub use error::ApiError;
pub use model::{load_with_defaults, AttributionModel};
pub use options::{default_plugin_sources, LoadOptions};
pub use output::Attribution;
pub use plugins::{PluginChoice, Plugins};
pub use request::AttributeRequest;

/// HF `generate` keyword arguments (Inseq's `generation_args`), for
/// [`AttributeRequest::generation_kwargs`].
pub type GenerationKwargs = crate::generation::GenerationConfig;

/// Loads `model` (a local HF-format folder, a `.gguf` file, a hub id `org/name` or an alias
/// such as `smollm2-135m`) for attribution with `method` (any attribution plugin, e.g.
/// `saliency`), in f32 on the CPU, with the plugins of the built-in registry, the user
/// registry (`$RINSEQ_REGISTRY`, else `./registry.toml`) and `RINSEQ_PLUGIN_PATH`. Other
/// settings: [`AttributionModel::load_with`].
///
/// ```
/// use rinseq::{load_model, AggregationSpec, GenerationKwargs};
///
/// # fn main() -> Result<(), rinseq::ApiError> {
/// # // The built-in registry's plugin libraries, built as the tests build them (cargo, same
/// # // target folder and profile as this doctest), so that a fresh checkout passes too.
/// # let mut cargo = std::process::Command::new(env!("CARGO"));
/// # cargo.arg("build").arg("--manifest-path");
/// # cargo.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
/// # for p in ["rinseq-step-functions", "rinseq-aggregators", "rinseq-gradient-methods",
/// #           "rinseq-internals-methods", "rinseq-perturbation-methods"] {
/// #     cargo.args(["-p", p]);
/// # }
/// # if !cfg!(debug_assertions) {
/// #     cargo.arg("--release");
/// # }
/// # assert!(cargo.status().unwrap().success(), "building the plugins failed");
/// // A tiny random GPT-2 of the test fixtures; plugins from the built-in registry.toml
/// // (built with `cargo build --workspace`).
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/gpt2");
/// let model = load_model(path, "saliency")?;
/// let out = model
///     .attribute(["The capital of France is"])
///     .generation_kwargs(GenerationKwargs {
///         max_new_tokens: Some(3),
///         ..Default::default()
///     })
///     .step_scores(["probability"])
///     .run()?;
/// assert_eq!(out.len(), 1);
/// let seq = &out.sequences()[0];
/// assert!(seq.target.len() > seq.attr_pos_start);
///
/// let dir = tempfile::tempdir().unwrap();
/// let written = out.save(dir.path().join("out.json"))?;
/// assert_eq!(written.len(), 1);
/// let aggregated = out.aggregate(&AggregationSpec::default())?;
/// assert_eq!(aggregated.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn load_model(model: &str, method: &str) -> Result<AttributionModel, ApiError> {
    AttributionModel::load_with(model, method, LoadOptions::default())
}
