//! `rinseq attribute-context`: Inseq's `inseq attribute-context` (PECoRe), flags in kebab-case.
//!
//! ```text
//! rinseq attribute-context -m smollm2-135m -a saliency \
//!   --input-context-text "Paris is the capital of France. Rome is the capital of Italy." \
//!   --input-current-text "The capital of Italy is" --output-current-text "Rome" -o ctx.json
//! ```

use serde_json::{Map, Value};

use super::aggregation_args::AggregationArgs;

use super::attribute::parse_object;
use super::paths::check_writable;
use crate::aggregation::AggregationSpec;
use crate::api::load_with_defaults;
use crate::api::options::model_dtype;
use crate::api::plugins::route;
use crate::context::run::ContextRun;
use crate::context::{attribute_context, view, ContextPlugins, ContextSettings};
use crate::generation::{GenerationConfig, GenerationParams};
use crate::plugins::{PluginKind, PluginRegistry, PluginSources};
use crate::source::SourceConfig;
use crate::views;

/// Arguments of `rinseq attribute-context`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttributeContextArgs {
    /// Model: a local HF-format folder, a .gguf file, a hub id org/name, or an alias (smollm2-135m).
    #[arg(short = 'm', long = "model-name-or-path")]
    pub model: String,
    /// CCI attribution method (see `rinseq plugins list`).
    #[arg(short = 'a', long = "attribution-method", default_value = "saliency")]
    pub method: String,
    /// CCI attributed function (default probability); a contrastive one (e.g. contrast_prob_diff)
    /// contrasts each context-sensitive token with the contextless output.
    #[arg(long = "attributed-fn")]
    pub attributed_fn: Option<String>,
    /// The current input: the prompt (decoder-only) or the source (encoder-decoder); `{current}`
    /// of the input template.
    #[arg(long = "input-current-text", required = true)]
    pub input_current_text: String,
    /// The input context (`{context}` of the input template).
    #[arg(long = "input-context-text")]
    pub input_context_text: Option<String>,
    /// Input template (default "{context} {current}" with an input context, else "{current}").
    #[arg(long = "input-template")]
    pub input_template: Option<String>,
    /// The output context (forced; `{context}` of the output template).
    #[arg(long = "output-context-text")]
    pub output_context_text: Option<String>,
    /// The current output (forced; generated when absent).
    #[arg(long = "output-current-text")]
    pub output_current_text: Option<String>,
    /// Output template (default "{context} {current}" with an output context, else "{current}").
    #[arg(long = "output-template")]
    pub output_template: Option<String>,
    /// Contextless input template (default "{current}").
    #[arg(long = "contextless-input-current-text")]
    pub contextless_input_current_text: Option<String>,
    /// Contextless output template (default "{current}").
    #[arg(long = "contextless-output-current-text")]
    pub contextless_output_current_text: Option<String>,
    /// CTI metric: any contrastive step function plugin.
    #[arg(long = "context-sensitivity-metric", default_value = "kl_divergence")]
    pub metric: String,
    /// How a generated output context is split off: manual (confirm on a terminal), auto, pre
    /// (never: a {context} output template needs --output-context-text).
    #[arg(long = "handle-output-context-strategy", default_value = "manual")]
    pub strategy: String,
    /// Forced next contextless tokens, one per context-sensitive token.
    #[arg(long = "contextless-output-next-tokens", num_args = 1..)]
    pub contextless_output_next_tokens: Vec<String>,
    /// Special tokens kept in the texts (e.g. <brk>).
    #[arg(long = "special-tokens-to-keep", num_args = 1..)]
    pub special_tokens_to_keep: Vec<String>,
    /// Separator between a decoder-only model's input and output.
    #[arg(
        long = "decoder-input-output-separator",
        default_value = " ",
        allow_hyphen_values = true
    )]
    pub separator: String,
    /// CTI: standard deviations above the mean score for a token to be context-sensitive.
    #[arg(
        long = "context-sensitivity-std-threshold",
        default_value_t = 1.0,
        allow_hyphen_values = true
    )]
    pub cti_std: f64,
    /// CTI: keep at most this many context-sensitive tokens.
    #[arg(long = "context-sensitivity-topk")]
    pub cti_topk: Option<usize>,
    /// Shown cues: standard deviations above the mean score.
    #[arg(
        long = "attribution-std-threshold",
        default_value_t = 1.0,
        allow_hyphen_values = true
    )]
    pub cci_std: f64,
    /// Shown cues: at most this many per context.
    #[arg(long = "attribution-topk")]
    pub cci_topk: Option<usize>,
    /// Also print the CTI step scores and each CCI attribution.
    #[arg(long = "show-intermediate-outputs")]
    pub show_intermediate_outputs: bool,
    /// Write Inseq's attribute-context JSON here.
    #[arg(short = 'o', long = "save-path")]
    pub save_path: Option<std::path::PathBuf>,
    /// Write the view as a self-contained HTML page here.
    #[arg(long = "viz-path")]
    pub viz_path: Option<std::path::PathBuf>,
    /// Don't print the view (Inseq's --show_viz, inverted).
    #[arg(long = "hide-viz")]
    pub hide_viz: bool,
    /// Keep the arguments in the saved JSON's `info` (true | false).
    #[arg(long = "add-output-info", default_value_t = true, action = clap::ArgAction::Set)]
    pub add_output_info: bool,
    /// Method and attributed-function arguments as a JSON object (each key goes to the plugins
    /// that have that parameter).
    #[arg(long = "attribution-kwargs")]
    pub attribution_kwargs: Option<String>,
    /// HF `generate` arguments as a JSON object.
    #[arg(long = "generation-kwargs")]
    pub generation_kwargs: Option<String>,
    /// Model loading arguments as a JSON object (supported: `dtype`: f32 | f16 | bf16).
    #[arg(long = "model-kwargs")]
    pub model_kwargs: Option<String>,
    /// The aggregation of the CCI attributions before the context scores are read (default:
    /// the method's, without normalisation, as Inseq).
    #[command(flatten)]
    pub aggregation: AggregationArgs,
}

/// The settings of the run from the flags.
pub fn settings(
    args: &AttributeContextArgs,
) -> Result<ContextSettings, Box<dyn std::error::Error>> {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    Ok(ContextSettings {
        model_name_or_path: args.model.clone(),
        attribution_method: args.method.clone(),
        attributed_fn: args.attributed_fn.clone(),
        input_current_text: args.input_current_text.clone(),
        input_context_text: args.input_context_text.clone(),
        input_template: args.input_template.clone(),
        output_context_text: args.output_context_text.clone(),
        output_current_text: args.output_current_text.clone(),
        output_template: args.output_template.clone(),
        contextless_input_current_text: args.contextless_input_current_text.clone(),
        contextless_output_current_text: args.contextless_output_current_text.clone(),
        context_sensitivity_metric: args.metric.clone(),
        handle_output_context_strategy: args.strategy.parse()?,
        contextless_output_next_tokens: args.contextless_output_next_tokens.clone(),
        special_tokens_to_keep: args.special_tokens_to_keep.clone(),
        decoder_input_output_separator: args.separator.clone(),
        context_sensitivity_std_threshold: Some(args.cti_std),
        context_sensitivity_topk: args.cti_topk,
        attribution_std_threshold: Some(args.cci_std),
        attribution_topk: args.cci_topk,
        show_intermediate_outputs: args.show_intermediate_outputs,
        generation_kwargs: parse_object("--generation-kwargs", &args.generation_kwargs)?,
        attribution_kwargs: parse_object("--attribution-kwargs", &args.attribution_kwargs)?,
        model_kwargs: parse_object("--model-kwargs", &args.model_kwargs)?,
        add_output_info: args.add_output_info,
        save_path: path(&args.save_path),
        viz_path: path(&args.viz_path),
        show_viz: !args.hide_viz,
    })
}

/// Builds the plugins of a run: the method and attributed function with their routed
/// `--attribution-kwargs`, the CTI metric (which must be contrastive), the CCI aggregation.
pub fn plugins(
    reg: PluginRegistry,
    s: &ContextSettings,
    user_aggregation: AggregationSpec,
) -> Result<ContextPlugins, Box<dyn std::error::Error>> {
    use rinseq_sdk::Flags;
    let metric_fn = reg.step_function(&s.context_sensitivity_metric, &Value::Object(Map::new()))?;
    if !metric_fn.capabilities.flags.contains(Flags::NEEDS_CONTRAST) {
        return Err(format!(
            "--context-sensitivity-metric '{}' is not a contrastive step function: use kl_divergence, contrast_prob_diff, pcxmi, ...",
            s.context_sensitivity_metric
        )
        .into());
    }
    let target_name = s
        .attributed_fn
        .clone()
        .unwrap_or_else(|| "probability".into());
    let targets = [
        (PluginKind::Attribution, s.attribution_method.as_str()),
        (PluginKind::StepFunction, target_name.as_str()),
    ];
    let params = route(&s.attribution_kwargs, &targets, &reg)?;
    let method = reg.attribution(&s.attribution_method, &params[0])?;
    let target_fn = reg.step_function(&target_name, &params[1])?;
    // Inseq aggregates CCI with `out.aggregate(aggregator, normalize=False)`.
    let mut aggregation = if user_aggregation.is_default() {
        let aggregators = method.capabilities.default_aggregation.clone();
        AggregationSpec {
            aggregators,
            ..user_aggregation
        }
    } else {
        user_aggregation
    };
    aggregation
        .kwargs
        .entry("normalize")
        .or_insert(Value::Bool(false));
    Ok(ContextPlugins {
        registry: reg,
        method,
        target_fn,
        attributed_fn_given: s.attributed_fn.is_some(),
        metric: vec![(s.context_sensitivity_metric.clone(), metric_fn)],
        aggregation,
    })
}

/// Runs `rinseq attribute-context`.
pub fn run(
    args: &AttributeContextArgs,
    sources: &PluginSources,
) -> Result<(), Box<dyn std::error::Error>> {
    for (flag, p) in [
        ("--save-path", &args.save_path),
        ("--viz-path", &args.viz_path),
    ] {
        if let Some(p) = p {
            check_writable(flag, p)?;
        }
    }
    let v = settings(args)?.validate()?;
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    let reg = PluginRegistry::load(sources)?;
    let plugins = plugins(reg, &v.s, args.aggregation.spec()?)?;
    let dtype = model_dtype(&v.s.model_kwargs)?;
    let (loaded, defaults) = load_with_defaults(
        &args.model,
        dtype,
        &crate::api::options::default_device(),
        &SourceConfig::from_env(),
    )?;
    let user = GenerationConfig::from_kwargs_value(Value::Object(v.s.generation_kwargs.clone()))?;
    let generation = GenerationParams::resolve(&defaults.merged_with(&user), &loaded.spec)?;
    let ContextRun {
        output,
        cti_threshold,
        cti_intermediate,
        cci_intermediate,
    } = attribute_context(&loaded, &v, &plugins, &generation)?;
    let color = views::console_color_wanted();
    if let Some(cti) = &cti_intermediate {
        print!("{}", views::console(cti, color));
    }
    for cci in &cci_intermediate {
        print!("{}", views::console(cci, color));
    }
    if v.s.show_viz {
        print!("{}", view::console(&output, &v, cti_threshold, color));
    }
    if let Some(path) = &args.viz_path {
        std::fs::write(path, view::html(&output, &v, cti_threshold))
            .map_err(|e| format!("cannot write --viz-path {}: {e}", path.display()))?;
        eprintln!("saved {}", path.display());
    }
    if let Some(path) = &args.save_path {
        std::fs::write(path, output.to_json()?)
            .map_err(|e| format!("cannot write --save-path {}: {e}", path.display()))?;
        eprintln!("saved {}", path.display());
    }
    Ok(())
}
