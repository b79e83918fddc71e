//! [`AttributeRequest`]: the arguments of one attribution (Inseq's `model.attribute(...)`),
//! set with builder methods and run with [`AttributeRequest::run`] (in [`super::run`]).

use serde_json::{Map, Value};

use super::contrast::Contrast;
use super::plugins::Plugins;
use super::AttributionModel;
use crate::attribution::AttributeOptions;
use crate::generation::GenerationConfig;

/// One attribution of [`AttributionModel::attribute`]: inputs, forced targets, plugins and
/// options. Defaults are Inseq's: generation, the model's method, `probability` attributed.
pub struct AttributeRequest<'m> {
    pub(super) model: &'m AttributionModel,
    pub(super) inputs: Vec<String>,
    pub(super) generated_texts: Vec<String>,
    pub(super) method: Option<String>,
    pub(super) attributed_fn: String,
    pub(super) step_scores: Vec<String>,
    pub(super) attribution_args: Value,
    pub(super) generation: Value,
    pub(super) options: AttributeOptions,
    pub(super) output_step_attributions: bool,
    pub(super) contrast: Option<Contrast>,
    pub(super) rows: Option<Vec<usize>>,
    pub(super) plugins: Option<&'m Plugins>,
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
            attribution_args: Value::Object(Map::new()),
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
        self.attribution_args = args;
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

    /// Tokens (rows × length) per batched differentiable forward (memory vs speed).
    pub fn tokens_per_forward(mut self, n: impl Into<Option<usize>>) -> Self {
        self.options.tokens_per_forward = n.into();
        self
    }

    /// The memory budget in bytes (default: half of the machine's memory).
    pub fn max_memory(mut self, bytes: impl Into<Option<u64>>) -> Self {
        self.options.max_memory = bytes.into();
        self
    }

    /// One differentiable forward per (point, step) instead of one shared forward per point, and
    /// one whole forward per perturbed point instead of the unperturbed prefix's KV cache.
    pub fn per_row_forward(mut self, on: bool) -> Self {
        self.options.per_row_forward = on;
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

    /// Keep Inseq's per-step attributions in
    /// [`Attribution::into_output`](super::Attribution::into_output) and saved files.
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
}
