//! `rinseq attribute`: Inseq's `inseq attribute` command, flags in kebab-case.
//!
//! ```text
//! rinseq attribute -m smollm2-135m -a saliency -i "The capital of France is"
//! ```

use serde_json::{Map, Value};

use super::aggregation_args::AggregationArgs;
use super::attributor::{prepare, Attributor};
use super::paths::check_writable;
use super::progress::{Bars, Interrupted};
use crate::output::SaveOptions;
use crate::plugins::PluginSources;

pub use crate::api::output::shown_aggregation;
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
    /// Tokens (rows × length) per batched differentiable forward: lower bounds memory, higher
    /// can be faster (default 64).
    #[arg(long = "tokens-per-forward", value_name = "N")]
    pub tokens_per_forward: Option<usize>,
    /// Memory budget for the attribution's activations and the model (e.g. 4G, 512M; default:
    /// half of the machine's memory): sizes the batched forwards to stay under it.
    #[arg(long = "max-memory", value_name = "SIZE", value_parser = crate::attribution::memory::parse_size)]
    pub max_memory: Option<u64>,
    /// One differentiable forward per (point, step) instead of one shared forward per point, and
    /// one whole forward per perturbed input instead of reusing the unperturbed prefix's KV cache
    /// (for benchmarks and debugging: the same numbers up to float summation order).
    #[arg(long = "per-row-forward")]
    pub per_row_forward: bool,
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
    let plugins = prepare(&args.flags, sources)?;
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
    if !args.hide_attributions || args.viz_path.is_some() {
        let shown = attributed.aggregate_for_view(&user_spec)?;
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
        for written in attributed.save_with(path, &save_options(&args.flags)?)? {
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
