//! Inseq's `info` record of an attribution run (what was asked, with which arguments).

use serde_json::{Map, Value};

use super::plugins::PluginChoice;
use crate::attribution::AttributeOptions;

/// What [`info`] records.
pub struct InfoFields<'a> {
    /// The plugins asked for.
    pub choice: &'a PluginChoice,
    /// The model as named.
    pub model: &'a str,
    /// The model's architecture (`gpt2`...).
    pub model_type: &'a str,
    /// The run's options.
    pub options: &'a AttributeOptions,
    /// Whether step attributions are kept.
    pub output_step_attributions: bool,
    /// The inputs.
    pub input_texts: &'a [String],
    /// The forced targets (empty: generated).
    pub generated_texts: &'a [String],
    /// The routed plugin arguments: method, attributed function, then each step score.
    pub params: &'a [Value],
    /// The user's generation kwargs.
    pub generation_args: &'a Map<String, Value>,
}

/// Inseq's `info` record of a run (before `generated_texts` is replaced by the decoded targets).
pub fn info(f: &InfoFields<'_>) -> Map<String, Value> {
    let c = f.choice;
    let forced = !f.generated_texts.is_empty();
    let step_args: Map<String, Value> = c
        .step_scores
        .iter()
        .zip(&f.params[2..])
        .map(|(n, p)| (n.clone(), p.clone()))
        .collect();
    let entries: [(&str, Value); 18] = [
        ("attribution_method", c.method.clone().into()),
        ("attribute_target", f.options.attribute_target.into()),
        (
            "output_step_attributions",
            f.output_step_attributions.into(),
        ),
        ("step_scores", c.step_scores.clone().into()),
        ("model_name", f.model.into()),
        (
            "model_class",
            format!("{}ForGeneration", f.model_type).into(),
        ),
        ("tokenizer_name", f.model.into()),
        ("tokenizer_class", "tokenizers.Tokenizer".into()),
        (
            "include_eos_baseline",
            f.options.include_eos_baseline.into(),
        ),
        ("attributed_fn", format!("{}_fn", c.attributed_fn).into()),
        ("attribution_args", f.params[0].clone()),
        ("attributed_fn_args", f.params[1].clone()),
        ("step_scores_args", Value::Object(step_args)),
        ("input_texts", f.input_texts.to_vec().into()),
        ("generated_texts", f.generated_texts.to_vec().into()),
        (
            "generation_args",
            Value::Object(if forced {
                Map::new()
            } else {
                f.generation_args.clone()
            }),
        ),
        ("constrained_decoding", forced.into()),
        ("generate_from_target_prefix", false.into()),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
