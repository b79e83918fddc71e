//! The attribution flags on the library API ([`crate::api`]): the plugins of
//! [`AttributionFlags`] (`--attribution-kwargs` routed by parameter name), then the model and
//! one [`AttributeRequest`](crate::api::AttributeRequest) per run. `rinseq attribute` runs it
//! once, `rinseq attribute-dataset` once per batch of examples.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::attribute::{parse_object, AttributionFlags};
use crate::api::options::model_dtype;
use crate::api::{Attribution, AttributionModel, LoadOptions, PluginChoice, Plugins};
use crate::generation::GenerationConfig;
use crate::plugins::{PluginRegistry, PluginSources};

type BoxError = Box<dyn std::error::Error>;

/// The plugins of a run (the API's [`Plugins`]).
pub type AttributionPlugins = Plugins;

/// Loads the registry and instantiates the plugins `flags` name (no model yet: cheap, so bad
/// flags fail first).
pub fn prepare(flags: &AttributionFlags, sources: &PluginSources) -> Result<Plugins, BoxError> {
    let registry = PluginRegistry::load(sources)?;
    let kwargs = parse_object("--attribution-kwargs", &flags.attribution_kwargs)?;
    // Checked here too so that a bad --model-kwargs fails before any plugin error, as before.
    model_kwargs_dtype(flags)?;
    let choice = PluginChoice {
        method: flags.method.clone(),
        attributed_fn: flags.attributed_fn.clone(),
        step_scores: flags.step_scores.clone(),
        kwargs,
    };
    Ok(Plugins::prepare(Arc::new(registry), choice)?)
}

/// The model precision of `--model-kwargs` (only `dtype` is supported).
fn model_kwargs_dtype(flags: &AttributionFlags) -> Result<candle_core::DType, BoxError> {
    let model_kwargs = parse_object("--model-kwargs", &flags.model_kwargs)?;
    Ok(model_dtype(&model_kwargs)?)
}

/// Plugins, model and generation parameters, ready to attribute any inputs.
pub struct Attributor {
    /// The plugins.
    pub plugins: Plugins,
    /// The model.
    pub model: AttributionModel,
    flags: AttributionFlags,
    generation: Map<String, Value>,
}

impl Attributor {
    /// Loads the model of `flags` (with the registry of `plugins`) and checks its generation
    /// parameters.
    pub fn new(flags: &AttributionFlags, plugins: Plugins) -> Result<Self, BoxError> {
        let options = LoadOptions::default()
            .dtype(model_kwargs_dtype(flags)?)
            .registry(plugins.registry.clone());
        let model = AttributionModel::load_with(&flags.model, &flags.method, options)?;
        if let Some(json) = &flags.generation_kwargs {
            GenerationConfig::from_kwargs_json(json)?;
        }
        let generation = parse_object("--generation-kwargs", &flags.generation_kwargs)?;
        Ok(Self {
            plugins,
            model,
            flags: flags.clone(),
            generation,
        })
    }

    /// Attributes `inputs` (with forced `generated` targets when not empty). `rows[k]` is the
    /// position of input `k` in the lists of `contrast_targets` / `contrast_sources` /
    /// `contrast_targets_alignments` given in `--attribution-kwargs`.
    pub fn attribute(
        &self,
        inputs: &[String],
        generated: &[String],
        rows: &[usize],
    ) -> Result<Attribution, BoxError> {
        let f = &self.flags;
        let request = self
            .model
            .attribute(inputs.iter().cloned())
            .generated_texts(generated.iter().cloned())
            .plugins(&self.plugins)
            .rows(rows.to_vec())
            .generation_kwargs_json(Value::Object(self.generation.clone()))
            .attribute_target(f.attribute_target)
            .attr_pos_start(f.start_pos)
            .attr_pos_end(f.end_pos)
            .include_eos_baseline(f.include_eos_baseline)
            .batch_size(f.batch_size)
            .tokens_per_forward(f.tokens_per_forward)
            .per_row_forward(f.per_row_forward)
            .max_memory(f.max_memory)
            .output_step_attributions(f.output_step_attributions);
        Ok(request.run()?)
    }
}
