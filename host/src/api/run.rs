//! [`AttributeRequest::run`]: plugins, generation parameters and contrastive inputs of a
//! request, then the attribution loop and Inseq's output.

use serde_json::{Map, Value};

use super::info::{info, InfoFields};
use super::output::Attribution;
use super::plugins::{PluginChoice, Plugins};
use super::request::AttributeRequest;
use super::ApiError;
use crate::attribution::result::to_output;
use crate::attribution::{attribute, encode_batch, AttributeOptions, AttributionRun};
use crate::generation::{GenerationConfig, GenerationParams};
use crate::models::load::LoadedModel;
use crate::output::TokenWithId;

impl AttributeRequest<'_> {
    /// The plugins this request names (method, functions, args); the args must be a JSON object
    /// (or null).
    pub fn plugin_choice(&self) -> Result<PluginChoice, ApiError> {
        let kwargs = match &self.attribution_args {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            other => {
                return Err(ApiError::Invalid(format!(
                    "attribution args must be a JSON object, not {other}"
                )))
            }
        };
        Ok(PluginChoice {
            method: self
                .method
                .clone()
                .unwrap_or_else(|| self.model.method().to_string()),
            attributed_fn: self.attributed_fn.clone(),
            step_scores: self.step_scores.clone(),
            kwargs,
        })
    }

    /// Generates (or forces) the targets, attributes every step and returns Inseq's output.
    pub fn run(self) -> Result<Attribution, ApiError> {
        let owned;
        let plugins = match self.plugins {
            Some(p) => p,
            None => {
                let registry = self.model.registry().clone();
                owned = Plugins::prepare(registry, self.plugin_choice()?)?;
                &owned
            }
        };
        let model = self.model;
        let loaded = model.loaded();
        let user = GenerationConfig::from_kwargs_value(self.generation.clone())?;
        let merged = model.generation_defaults().merged_with(&user);
        let generation = GenerationParams::resolve(&merged, &loaded.spec)?;
        let opts = self.attribute_options(plugins);
        let sequences = encode_batch(loaded, &self.inputs, &opts, &generation)?;
        let run = attribute(
            loaded,
            model.name(),
            sequences,
            &plugins.method,
            &plugins.target_fn,
            &plugins.step_fns,
            &opts,
        )?;
        let no_args = Map::new();
        let mut info = info(&InfoFields {
            choice: &plugins.choice,
            model: model.name(),
            model_type: &loaded.spec.model_type,
            options: &opts,
            output_step_attributions: self.output_step_attributions,
            input_texts: &self.inputs,
            generated_texts: &self.generated_texts,
            params: &plugins.params,
            generation_args: self.generation.as_object().unwrap_or(&no_args),
        });
        info.insert("generated_texts".into(), target_texts(loaded, &run)?.into());
        let plain_targets = run
            .sequences
            .iter()
            .map(|a| {
                let t = &a.sequence.target_tokens;
                t.iter().map(TokenWithId::from).collect()
            })
            .collect();
        let decoder_only = model.is_decoder_only();
        Ok(Attribution {
            output: to_output(&run, decoder_only, plugins.class, info),
            plain_targets,
            run,
            decoder_only,
            step_attributions: self.output_step_attributions,
            registry: plugins.registry.clone(),
            default_aggregation: plugins.default_aggregation().to_string(),
        })
    }

    /// The loop's options: the request's, with its contrastive inputs, else those of the
    /// attribution args for the request's rows.
    fn attribute_options(&self, plugins: &Plugins) -> AttributeOptions {
        let contrast = match &self.contrast {
            Some(c) => c.clone(),
            None => {
                let rows = self
                    .rows
                    .clone()
                    .unwrap_or_else(|| (0..self.inputs.len()).collect());
                plugins.contrast.pick(&rows)
            }
        };
        AttributeOptions {
            generated_texts: self.generated_texts.clone(),
            contrast_targets: contrast.targets,
            contrast_sources: contrast.sources,
            contrast_targets_alignments: contrast.alignments,
            contrast_force_inputs: contrast.force_inputs,
            ..self.options.clone()
        }
    }
}

/// The decoded targets of a run (special tokens skipped), Inseq's `generated_texts`.
fn target_texts(loaded: &LoadedModel, run: &AttributionRun) -> Result<Vec<String>, ApiError> {
    let tok = loaded
        .target_tokenizer
        .as_ref()
        .unwrap_or(&loaded.tokenizer);
    Ok(run
        .sequences
        .iter()
        .map(|a| tok.decode(&a.sequence.target_ids, true))
        .collect::<Result<Vec<_>, _>>()?)
}
