//! `rinseq attribute`: Inseq's `inseq attribute` command, flags in kebab-case.
//!
//! ```text
//! rinseq attribute -m smollm2-135m -a saliency -i "The capital of France is"
//! ```

use serde_json::{Map, Value};

use super::aggregation_args::AggregationArgs;
use super::attributor::{AttributionPlugins, Attributor};
use super::paths::check_writable;
use super::progress::{Bars, Interrupted};
use crate::aggregation::{aggregate_for_view, AggregationSpec};
use crate::models::load::LoadedModel;
use crate::output::SaveOptions;
use crate::plugins::{PluginKind, PluginRegistry, PluginSources};
use crate::views;

/// Arguments of `rinseq attribute`: the inputs and the shared [`AttributionFlags`]. The flag
/// fields are reached through `Deref` (`args.model`), as before the split.
#[derive(Debug, Clone, clap::Args)]
pub struct AttributeArgs {
    /// Input text (repeat for a batch).
    #[arg(short = 'i', long = "input-texts", required = true, num_args = 1..)]
    pub input_texts: Vec<String>,
    /// Forced targets instead of generation (one per input; decoder-only: prompt included).
    #[arg(short = 'g', long = "generated-texts", num_args = 1..)]
    pub generated_texts: Vec<String>,
    /// Everything but the inputs.
    #[command(flatten)]
    pub flags: AttributionFlags,
}

impl std::ops::Deref for AttributeArgs {
    type Target = AttributionFlags;
    fn deref(&self) -> &AttributionFlags {
        &self.flags
    }
}

/// The flags of `rinseq attribute` other than the inputs (`-i`/`-g`), shared with
/// `rinseq attribute-dataset` through `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttributionFlags {
    /// Model: a local HF-format folder, a .gguf file, a hub id org/name, or an alias (smollm2-135m).
    #[arg(short = 'm', long = "model-name-or-path")]
    pub model: String,
    /// Attribution method (see `rinseq plugins list`).
    #[arg(short = 'a', long = "attribution-method", default_value = "saliency")]
    pub method: String,
    /// Step functions to record at every step.
    #[arg(long = "step-scores", num_args = 1..)]
    pub step_scores: Vec<String>,
    /// The step function whose value is attributed.
    #[arg(long = "attributed-fn", default_value = "probability")]
    pub attributed_fn: String,
    /// Method, attributed-function and step-function arguments as a JSON object; each key goes
    /// to the plugins whose parameters have that name.
    #[arg(long = "attribution-kwargs")]
    pub attribution_kwargs: Option<String>,
    /// HF `generate` arguments as a JSON object.
    #[arg(long = "generation-kwargs")]
    pub generation_kwargs: Option<String>,
    /// Model loading arguments as a JSON object (supported: `dtype`: f32 | f16 | bf16).
    #[arg(long = "model-kwargs")]
    pub model_kwargs: Option<String>,
    /// Also attribute the target prefix (encoder-decoder models).
    #[arg(long = "attribute-target")]
    pub attribute_target: bool,
    /// Use UNK for EOS positions of the baseline too.
    #[arg(long = "include-eos-baseline")]
    pub include_eos_baseline: bool,
    /// First attributed target position (negative: from the end).
    #[arg(short = 's', long = "start-pos", allow_hyphen_values = true)]
    pub start_pos: Option<i64>,
    /// End of the attributed target positions (exclusive; negative: from the end).
    #[arg(short = 'e', long = "end-pos", allow_hyphen_values = true)]
    pub end_pos: Option<i64>,
    /// Sequences per batch.
    #[arg(long = "batch-size")]
    pub batch_size: Option<usize>,
    /// Also keep per-step attributions in the output.
    #[arg(long = "output-step-attributions")]
    pub output_step_attributions: bool,
    /// Write the output here, in Inseq's JSON format (loads with
    /// `inseq.FeatureAttributionOutput.load`); an existing file is replaced, as Inseq's CLI does.
    #[arg(short = 'o', long = "save-path")]
    pub save_path: Option<std::path::PathBuf>,
    /// Gzip the saved JSON (Inseq's `compress=True`).
    #[arg(long = "compress")]
    pub compress: bool,
    /// Precision of saved scores: float32, float16 or float8.
    #[arg(long = "scores-precision", default_value = "float32")]
    pub scores_precision: String,
    /// Save one file per sequence (`<stem>_<i>.json`).
    #[arg(long = "split-sequences")]
    pub split_sequences: bool,
    /// Don't print the heatmap.
    #[arg(long = "hide-attributions")]
    pub hide_attributions: bool,
    /// Also write the heatmaps as a self-contained HTML page here (Inseq's `--viz-path`).
    #[arg(long = "viz-path")]
    pub viz_path: Option<std::path::PathBuf>,
    /// No progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// The aggregation of the shown heatmaps (the saved file keeps the raw scores, as Inseq's).
    #[command(flatten)]
    pub aggregation: AggregationArgs,
}

/// The JSON object of a `--…-kwargs` flag (empty when absent).
pub fn parse_object(flag: &str, json: &Option<String>) -> Result<Map<String, Value>, String> {
    match json {
        None => Ok(Map::new()),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!(
                "{flag} must be a JSON object, e.g. '{{\"n_steps\": 10}}'"
            )),
            Err(e) => Err(format!("{flag} is not valid JSON: {e}")),
        },
    }
}

/// Splits `--attribution-kwargs` among the plugins whose parameters have each key (Inseq routes
/// by signature the same way); a key no plugin takes is an error.
pub fn route(
    kwargs: &Map<String, Value>,
    targets: &[(PluginKind, &str)],
    reg: &PluginRegistry,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let names: Vec<Vec<String>> = targets
        .iter()
        .map(|(k, n)| reg.param_names(*k, n))
        .collect::<Result<_, _>>()?;
    let mut out = vec![Map::new(); targets.len()];
    for (key, value) in kwargs {
        let mut used = false;
        for (i, params) in names.iter().enumerate() {
            if params.contains(key) {
                out[i].insert(key.clone(), value.clone());
                used = true;
            }
        }
        if !used {
            let plugins: Vec<&str> = targets.iter().map(|(_, n)| *n).collect();
            return Err(format!(
                "--attribution-kwargs key '{key}' is not a parameter of {} (see `rinseq plugins info NAME`)",
                plugins.join(", ")
            )
            .into());
        }
    }
    Ok(out.into_iter().map(Value::Object).collect())
}

/// Runs `rinseq attribute`.
pub fn run(
    args: &AttributeArgs,
    sources: &PluginSources,
) -> Result<(), Box<dyn std::error::Error>> {
    // Bad output paths and flags fail before any model work.
    if let Some(p) = &args.save_path {
        check_writable("--save-path", p)?;
    }
    if let Some(p) = &args.viz_path {
        check_writable("--viz-path", p)?;
    }
    let user_spec = args.aggregation.spec()?;
    let plugins = AttributionPlugins::prepare(&args.flags, sources)?;
    let attributor = Attributor::new(&args.flags, plugins)?;
    let bars = Bars::start(args.quiet, None);
    let rows: Vec<usize> = (0..args.input_texts.len()).collect();
    let result = attributor.attribute(&args.input_texts, &args.generated_texts, &rows);
    bars.finish();
    let attributed = match result {
        Err(_) if crate::progress::is_cancelled() => {
            return Err(Interrupted::new("nothing was saved; run the command again").into())
        }
        r => r?,
    };
    let out = &attributed.output;
    if !args.hide_attributions || args.viz_path.is_some() {
        let spec = shown_aggregation(user_spec, attributor.plugins.default_aggregation());
        let shown = aggregate_for_view(&attributor.plugins.registry, out, &spec)?;
        if !args.hide_attributions {
            print!("{}", views::console(&shown, views::console_color_wanted()));
        }
        if let Some(path) = &args.viz_path {
            let html = views::render(&shown, views::Format::Html, &Default::default())?;
            std::fs::write(path, html)
                .map_err(|e| format!("cannot write --viz-path {}: {e}", path.display()))?;
            eprintln!("saved {}", path.display());
        }
    }
    if let Some(path) = &args.save_path {
        let out = attributed.output_with_steps(args.output_step_attributions);
        for written in out.save(path, &save_options(&args.flags)?)? {
            eprintln!("saved {}", written.display());
        }
    }
    Ok(())
}

/// How `-o` files are written: `--compress`, `--split-sequences`, `--scores-precision`.
pub fn save_options(flags: &AttributionFlags) -> Result<SaveOptions, Box<dyn std::error::Error>> {
    Ok(SaveOptions {
        overwrite: true,
        compress: flags.compress,
        split_sequences: flags.split_sequences,
        scores_precision: flags.scores_precision.parse()?,
        ..Default::default()
    })
}

/// The aggregation of the shown heatmaps: the user's, else the method's declared default
/// aggregation (a comma-separated aggregator list), else the output class's default.
pub fn shown_aggregation(user: AggregationSpec, method_default: &str) -> AggregationSpec {
    if !user.is_default() {
        return user;
    }
    let aggregators: Vec<String> = method_default
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    AggregationSpec {
        aggregators,
        ..user
    }
}

/// The `--generation-kwargs` object.
pub fn generation_kwargs(flags: &AttributionFlags) -> Result<Map<String, Value>, String> {
    parse_object("--generation-kwargs", &flags.generation_kwargs)
}

/// Inseq's `info` record of a run on `input_texts` (with `generated_texts` forced, if any).
pub fn info(
    args: &AttributionFlags,
    texts: (&[String], &[String]),
    loaded: &LoadedModel,
    params: &[Value],
    generation_args: &Map<String, Value>,
) -> Map<String, Value> {
    let mut m = Map::new();
    let (input_texts, generated_texts) = texts;
    let forced = !generated_texts.is_empty();
    let step_args: Map<String, Value> = args
        .step_scores
        .iter()
        .zip(&params[2..])
        .map(|(n, p)| (n.clone(), p.clone()))
        .collect();
    let entries: [(&str, Value); 18] = [
        ("attribution_method", args.method.clone().into()),
        ("attribute_target", args.attribute_target.into()),
        (
            "output_step_attributions",
            args.output_step_attributions.into(),
        ),
        ("step_scores", args.step_scores.clone().into()),
        ("model_name", args.model.clone().into()),
        (
            "model_class",
            format!("{}ForGeneration", loaded.spec.model_type).into(),
        ),
        ("tokenizer_name", args.model.clone().into()),
        ("tokenizer_class", "tokenizers.Tokenizer".into()),
        ("include_eos_baseline", args.include_eos_baseline.into()),
        ("attributed_fn", format!("{}_fn", args.attributed_fn).into()),
        ("attribution_args", params[0].clone()),
        ("attributed_fn_args", params[1].clone()),
        ("step_scores_args", Value::Object(step_args)),
        ("input_texts", input_texts.to_vec().into()),
        ("generated_texts", generated_texts.to_vec().into()),
        (
            "generation_args",
            if forced {
                Value::Object(Map::new())
            } else {
                Value::Object(generation_args.clone())
            },
        ),
        ("constrained_decoding", forced.into()),
        ("generate_from_target_prefix", false.into()),
    ];
    for (k, v) in entries {
        m.insert(k.to_string(), v);
    }
    m
}

/// The host-level contrastive arguments of `--attribution-kwargs` (Inseq's names).
#[derive(Debug, Clone, Default)]
pub struct Contrast {
    /// `contrast_targets`, one per input.
    pub targets: Vec<String>,
    /// `contrast_sources`, one per input.
    pub sources: Vec<String>,
    /// `contrast_targets_alignments`, one list per input.
    pub alignments: Vec<Vec<(usize, usize)>>,
    /// `contrast_force_inputs`.
    pub force_inputs: bool,
}

impl Contrast {
    /// Removes the contrastive keys from `kwargs`.
    pub fn take(kwargs: &mut Map<String, Value>) -> Result<Self, String> {
        let texts = |v: Option<Value>, key: &str| -> Result<Vec<String>, String> {
            match v {
                None => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s]),
                Some(v) => serde_json::from_value(v)
                    .map_err(|_| format!("{key} must be a string or a list of strings")),
            }
        };
        let alignments = match kwargs.remove("contrast_targets_alignments") {
            None => Vec::new(),
            Some(v) => {
                let err = |_| {
                    "contrast_targets_alignments must be [[orig, contrast], ...] or one such list per input".to_string()
                };
                match serde_json::from_value::<Vec<(usize, usize)>>(v.clone()) {
                    Ok(pairs) => vec![pairs],
                    Err(_) => serde_json::from_value(v).map_err(err)?,
                }
            }
        };
        let force_inputs = match kwargs.remove("contrast_force_inputs") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err("contrast_force_inputs must be true or false".into()),
        };
        Ok(Self {
            targets: texts(kwargs.remove("contrast_targets"), "contrast_targets")?,
            sources: texts(kwargs.remove("contrast_sources"), "contrast_sources")?,
            alignments,
            force_inputs,
        })
    }
}
