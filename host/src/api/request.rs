//! [`AttributeRequest`]: the arguments of one attribution (Inseq's `model.attribute(...)`),
//! set with builder methods and run with [`AttributeRequest::run`].

use serde_json::{Map, Value};

use super::contrast::Contrast;
use super::info::{info, InfoFields};
use super::output::Attribution;
use super::plugins::{PluginChoice, Plugins};
use super::{ApiError, AttributionModel};
use crate::attribution::result::to_output;
use crate::attribution::{attribute, encode_batch, AttributeOptions};
use crate::generation::{GenerationConfig, GenerationParams};
use crate::output::TokenWithId;

/// One attribution of [`AttributionModel::attribute`]: inputs, forced targets, plugins and
/// options. Defaults are Inseq's: generation, the model's method, `probability` attributed.
pub struct AttributeRequest<'m> {
    model: &'m AttributionModel,
    inputs: Vec<String>,
    generated_texts: Vec<String>,
    method: Option<String>,
    attributed_fn: String,
    step_scores: Vec<String>,
    attribution_args: Map<String, Value>,
    generation: Value,
    options: AttributeOptions,
    output_step_attributions: bool,
    contrast: Option<Contrast>,
    rows: Option<Vec<usize>>,
    plugins: Option<&'m Plugins>,
}

impl<'m> AttributeRequest<'m> {
    /// A request for `inputs` with every default.
    pub(super) fn new(model: &'m AttributionModel, inputs: Vec<String>) -> Self {
        Self {
            model,
            inputs,
            generated_texts: Vec::new(),
            method: None,
            attributed_fn: "probability".into(),
            step_scores: Vec::new(),
            attribution_args: Map::new(),
            generation: Value::Object(Map::new()),
            options: AttributeOptions::default(),
            output_step_attributions: false,
            contrast: None,
            rows: None,
            plugins: None,
        }
    }

    /// Forced targets instead of generation, one per input (decoder-only: prompt included).
    pub fn generated_texts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, texts: I) -> Self {
        self.generated_texts = texts.into_iter().map(Into::into).collect();
        self
    }

    /// Another attribution method than the model's.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// The step function whose value is attributed (default `probability`).
    pub fn attributed_fn(mut self, name: impl Into<String>) -> Self {
        self.attributed_fn = name.into();
        self
    }

    /// Step functions to record at every step.
    pub fn step_scores<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.step_scores = names.into_iter().map(Into::into).collect();
        self
    }

    /// Method, attributed-function and step-function arguments as a JSON object (each key
    /// goes to the plugins with a parameter of that name; contrastive keys to the host). A
    /// value that is not an object fails in [`AttributeRequest::run`].
    pub fn attribution_args(mut self, args: Value) -> Self {
        self.attribution_args = match args {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([(NOT_AN_OBJECT.to_string(), other)]),
        };
        self
    }

    /// Generation parameters (HF `generate` kwargs) over the model's defaults.
    pub fn generation_kwargs(mut self, kwargs: GenerationConfig) -> Self {
        let value = serde_json::to_value(kwargs).unwrap_or_default();
        self.generation = match value {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
            }
            _ => Value::Object(Map::new()),
        };
        self
    }

    /// Generation parameters as a JSON object of HF `generate` kwargs (checked when run).
    pub fn generation_kwargs_json(mut self, kwargs: Value) -> Self {
        self.generation = kwargs;
        self
    }

    /// Also attribute the target prefix (encoder-decoder models; always on for decoder-only).
    pub fn attribute_target(mut self, on: bool) -> Self {
        self.options.attribute_target = on;
        self
    }

    /// First attributed target position (negative: from the end).
    pub fn attr_pos_start(mut self, pos: impl Into<Option<i64>>) -> Self {
        self.options.attr_pos_start = pos.into();
        self
    }

    /// End of the attributed target positions (exclusive; negative: from the end).
    pub fn attr_pos_end(mut self, pos: impl Into<Option<i64>>) -> Self {
        self.options.attr_pos_end = pos.into();
        self
    }

    /// Use UNK for EOS positions of the baseline too.
    pub fn include_eos_baseline(mut self, on: bool) -> Self {
        self.options.include_eos_baseline = on;
        self
    }

    /// Sequences per method call (all at once by default).
    pub fn batch_size(mut self, size: impl Into<Option<usize>>) -> Self {
        self.options.batch_size = size.into();
        self
    }

    /// Contrastive targets, one per input (decoder-only: prompt included).
    pub fn contrast_targets<I: IntoIterator<Item = S>, S: Into<String>>(mut self, t: I) -> Self {
        self.contrast_mut().targets = t.into_iter().map(Into::into).collect();
        self
    }

    /// Contrastive sources, one per input (encoder-decoder models).
    pub fn contrast_sources<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.contrast_mut().sources = s.into_iter().map(Into::into).collect();
        self
    }

    /// Explicit `(target position, contrast position)` pairs, one list per input.
    pub fn contrast_targets_alignments(mut self, pairs: Vec<Vec<(usize, usize)>>) -> Self {
        self.contrast_mut().alignments = pairs;
        self
    }

    /// Run the contrast input when the attributed function is contrastive.
    pub fn contrast_force_inputs(mut self, on: bool) -> Self {
        self.contrast_mut().force_inputs = on;
        self
    }

    /// Every option of `options` at once: forced targets, target attribution, positions, EOS
    /// baseline, batch size and (when any is set) the contrastive inputs.
    pub fn options(mut self, options: AttributeOptions) -> Self {
        let contrast = Contrast {
            targets: options.contrast_targets.clone(),
            sources: options.contrast_sources.clone(),
            alignments: options.contrast_targets_alignments.clone(),
            force_inputs: options.contrast_force_inputs,
        };
        let any = !contrast.targets.is_empty()
            || !contrast.sources.is_empty()
            || !contrast.alignments.is_empty()
            || contrast.force_inputs;
        self.contrast = any.then_some(contrast);
        self.generated_texts = options.generated_texts.clone();
        self.options = options;
        self
    }

    /// Keep Inseq's per-step attributions in [`Attribution::into_output`] and saved files.
    pub fn output_step_attributions(mut self, on: bool) -> Self {
        self.output_step_attributions = on;
        self
    }

    /// Plugins prepared beforehand ([`Plugins::prepare`], e.g. once for many batches); their
    /// choice replaces the method, attributed function, step scores and attribution args.
    pub fn plugins(mut self, plugins: &'m Plugins) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// The positions of the inputs in the per-row contrastive lists of the attribution args
    /// (dataset rows; default `0..inputs`).
    pub fn rows(mut self, rows: Vec<usize>) -> Self {
        self.rows = Some(rows);
        self
    }

    fn contrast_mut(&mut self) -> &mut Contrast {
        self.contrast.get_or_insert_with(Contrast::default)
    }

    /// The plugins this request names (method, functions, args).
    pub fn plugin_choice(&self) -> PluginChoice {
        PluginChoice {
            method: self
                .method
                .clone()
                .unwrap_or_else(|| self.model.method().to_string()),
            attributed_fn: self.attributed_fn.clone(),
            step_scores: self.step_scores.clone(),
            kwargs: self.attribution_args.clone(),
        }
    }

    /// Generates (or forces) the targets, attributes every step and returns Inseq's output.
    pub fn run(self) -> Result<Attribution, ApiError> {
        if let Some(v) = self.attribution_args.get(NOT_AN_OBJECT) {
            return Err(ApiError::Invalid(format!(
                "attribution args must be a JSON object, not {v}"
            )));
        }
        let owned;
        let plugins = match self.plugins {
            Some(p) => p,
            None => {
                let registry = self.model.registry().clone();
                owned = Plugins::prepare(registry, self.plugin_choice())?;
                &owned
            }
        };
        let model = self.model;
        let loaded = model.loaded();
        let user = GenerationConfig::from_kwargs_value(self.generation.clone())?;
        let no_args = Map::new();
        let generation_args = self.generation.as_object().unwrap_or(&no_args);
        let merged = model.generation_defaults().merged_with(&user);
        let generation = GenerationParams::resolve(&merged, &loaded.spec)?;
        let rows = self
            .rows
            .clone()
            .unwrap_or_else(|| (0..self.inputs.len()).collect());
        let contrast = match &self.contrast {
            Some(c) => c.clone(),
            None => plugins.contrast.pick(&rows),
        };
        let opts = AttributeOptions {
            generated_texts: self.generated_texts.clone(),
            contrast_targets: contrast.targets,
            contrast_sources: contrast.sources,
            contrast_targets_alignments: contrast.alignments,
            contrast_force_inputs: contrast.force_inputs,
            ..self.options.clone()
        };
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
        let choice = &plugins.choice;
        let mut info = info(&InfoFields {
            choice,
            model: model.name(),
            model_type: &loaded.spec.model_type,
            options: &opts,
            output_step_attributions: self.output_step_attributions,
            input_texts: &self.inputs,
            generated_texts: &self.generated_texts,
            params: &plugins.params,
            generation_args,
        });
        let tok = loaded
            .target_tokenizer
            .as_ref()
            .unwrap_or(&loaded.tokenizer);
        let texts = run
            .sequences
            .iter()
            .map(|a| tok.decode(&a.sequence.target_ids, true))
            .collect::<Result<Vec<_>, _>>()?;
        info.insert("generated_texts".into(), texts.into());
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
}

/// The key under which a non-object `attribution_args` waits for [`AttributeRequest::run`].
const NOT_AN_OBJECT: &str = "\u{0}not an object";
