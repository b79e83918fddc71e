//! `rinseq attribute`: Inseq's `inseq attribute` command, flags in kebab-case.
//!
//! ```text
//! rinseq attribute -m smollm2-135m -a saliency -i "The capital of France is"
//! ```

use serde_json::{Map, Value};

use super::aggregation_args::{check_writable, AggregationArgs};
use super::generate::DtypeArg;
use super::load::load_with_defaults;
use crate::aggregation::{aggregate_for_view, AggregationSpec};
use crate::attribution::result::{sequence_class, to_output};
use crate::attribution::{attribute, encode_batch, AttributeOptions};
use crate::generation::{GenerationConfig, GenerationParams};
use crate::models::load::LoadedModel;
use crate::models::ModelKind;
use crate::output::SaveOptions;
use crate::plugins::{PluginKind, PluginRegistry, PluginSources};
use crate::source::SourceConfig;
use crate::views;

/// Arguments of `rinseq attribute`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttributeArgs {
    /// Model: a local HF-format folder, a .gguf file, a hub id org/name, or an alias (smollm2-135m).
    #[arg(short = 'm', long = "model-name-or-path")]
    pub model: String,
    /// Attribution method (see `rinseq plugins list`).
    #[arg(short = 'a', long = "attribution-method", default_value = "saliency")]
    pub method: String,
    /// Input text (repeat for a batch).
    #[arg(short = 'i', long = "input-texts", required = true, num_args = 1..)]
    pub input_texts: Vec<String>,
    /// Forced targets instead of generation (one per input; decoder-only: prompt included).
    #[arg(short = 'g', long = "generated-texts", num_args = 1..)]
    pub generated_texts: Vec<String>,
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
    /// The aggregation of the shown heatmaps (the saved file keeps the raw scores, as Inseq's).
    #[command(flatten)]
    pub aggregation: AggregationArgs,
}

fn parse_object(flag: &str, json: &Option<String>) -> Result<Map<String, Value>, String> {
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

/// Parameter names of a plugin, from its JSON Schema.
fn param_names(
    reg: &PluginRegistry,
    kind: PluginKind,
    name: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let p = reg.find(kind, name)?;
    let schema: Value =
        serde_json::from_str(p.descriptor.params_schema.as_str()).unwrap_or(Value::Null);
    Ok(schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default())
}

/// Splits `--attribution-kwargs` among the plugins whose parameters have each key (Inseq routes
/// by signature the same way); a key no plugin takes is an error.
fn route(
    kwargs: &Map<String, Value>,
    targets: &[(PluginKind, &str)],
    reg: &PluginRegistry,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let names: Vec<Vec<String>> = targets
        .iter()
        .map(|(k, n)| param_names(reg, *k, n))
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
    let reg = PluginRegistry::load(sources)?;
    let kwargs = parse_object("--attribution-kwargs", &args.attribution_kwargs)?;
    let model_kwargs = parse_object("--model-kwargs", &args.model_kwargs)?;
    let dtype = match model_kwargs.get("dtype").and_then(Value::as_str) {
        None | Some("f32") | Some("float32") => DtypeArg::F32,
        Some("f16") | Some("float16") => DtypeArg::F16,
        Some("bf16") | Some("bfloat16") => DtypeArg::Bf16,
        Some(other) => {
            return Err(
                format!("--model-kwargs dtype '{other}' is not one of f32, f16, bf16").into(),
            )
        }
    };
    if let Some(k) = model_kwargs.keys().find(|k| k.as_str() != "dtype") {
        return Err(format!("--model-kwargs key '{k}' is not supported (supported: dtype)").into());
    }
    let mut targets = vec![
        (PluginKind::Attribution, args.method.as_str()),
        (PluginKind::StepFunction, args.attributed_fn.as_str()),
    ];
    targets.extend(
        args.step_scores
            .iter()
            .map(|s| (PluginKind::StepFunction, s.as_str())),
    );
    let mut kwargs = kwargs;
    let contrast = Contrast::take(&mut kwargs)?;
    let params = route(&kwargs, &targets, &reg)?;
    let method = reg.attribution(&args.method, &params[0])?;
    let target_fn = reg.step_function(&args.attributed_fn, &params[1])?;
    let step_fns = args
        .step_scores
        .iter()
        .zip(&params[2..])
        .map(|(n, p)| Ok((n.clone(), reg.step_function(n, p)?)))
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;

    let (loaded, defaults) =
        load_with_defaults(&args.model, dtype.into(), &SourceConfig::from_env())?;
    let user = match &args.generation_kwargs {
        Some(json) => GenerationConfig::from_kwargs_json(json)?,
        None => GenerationConfig::default(),
    };
    let generation = GenerationParams::resolve(&defaults.merged_with(&user), &loaded.spec)?;
    let opts = AttributeOptions {
        generated_texts: args.generated_texts.clone(),
        attribute_target: args.attribute_target,
        attr_pos_start: args.start_pos,
        attr_pos_end: args.end_pos,
        include_eos_baseline: args.include_eos_baseline,
        batch_size: args.batch_size,
        contrast_targets: contrast.targets,
        contrast_sources: contrast.sources,
        contrast_targets_alignments: contrast.alignments,
        contrast_force_inputs: contrast.force_inputs,
    };
    let sequences = encode_batch(&loaded, &args.input_texts, &opts, &generation)?;
    let run = attribute(
        &loaded,
        &args.model,
        sequences,
        &method,
        &target_fn,
        &step_fns,
        &opts,
    )?;
    let decoder_only = loaded.spec.kind == ModelKind::DecoderOnly;
    let capabilities = &reg
        .find(PluginKind::Attribution, &args.method)?
        .descriptor
        .capabilities;
    let class = sequence_class(capabilities.output);
    let mut info = info(args, &loaded, &params, &generation_kwargs(args)?);
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
    let mut out = to_output(&run, decoder_only, class, info);
    if !args.hide_attributions || args.viz_path.is_some() {
        let spec = shown_aggregation(user_spec, capabilities.default_aggregation.as_str());
        let shown = aggregate_for_view(&reg, &out, &spec)?;
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
        if args.output_step_attributions {
            let positions: Vec<Vec<usize>> = run
                .sequences
                .iter()
                .map(|a| a.sequence.steps.clone())
                .collect();
            out.step_attributions = Some(crate::output::steps::step_outputs(
                &out.sequence_attributions,
                &positions,
            ));
        }
        let options = SaveOptions {
            overwrite: true,
            compress: args.compress,
            split_sequences: args.split_sequences,
            scores_precision: args.scores_precision.parse()?,
            ..Default::default()
        };
        for written in out.save(path, &options)? {
            eprintln!("saved {}", written.display());
        }
    }
    Ok(())
}

/// The aggregation of the shown heatmaps: the user's, else the method's declared default
/// aggregation (a comma-separated aggregator list), else the output class's default.
fn shown_aggregation(user: AggregationSpec, method_default: &str) -> AggregationSpec {
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

fn generation_kwargs(args: &AttributeArgs) -> Result<Map<String, Value>, String> {
    parse_object("--generation-kwargs", &args.generation_kwargs)
}

/// Inseq's `info` record of a run.
fn info(
    args: &AttributeArgs,
    loaded: &LoadedModel,
    params: &[Value],
    generation_args: &Map<String, Value>,
) -> Map<String, Value> {
    let mut m = Map::new();
    let forced = !args.generated_texts.is_empty();
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
        ("input_texts", args.input_texts.clone().into()),
        ("generated_texts", args.generated_texts.clone().into()),
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
#[derive(Default)]
struct Contrast {
    targets: Vec<String>,
    sources: Vec<String>,
    alignments: Vec<Vec<(usize, usize)>>,
    force_inputs: bool,
}

impl Contrast {
    /// Removes the contrastive keys from `kwargs`.
    fn take(kwargs: &mut Map<String, Value>) -> Result<Self, String> {
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
