//! `rinseq aggregate` and `rinseq diff`: aggregate a saved Inseq file, or subtract two.
//!
//! ```text
//! rinseq aggregate out.json --aggregator spans --aggregator scores --aggregate-fn absmax \
//!     --aggregate-fn vnorm --aggregator-kwargs '{"target_spans": [[2, 4]]}' -o agg.json
//! rinseq diff a.json b.json -o diff.json
//! ```

use std::path::PathBuf;

use super::aggregation_args::AggregationArgs;
use super::paths::check_writable;
use crate::aggregation::{aggregate_output, diff};
use crate::output::{FeatureAttributionOutput, SaveOptions};
use crate::plugins::{PluginRegistry, PluginSources};

/// Arguments of `rinseq aggregate`.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregateArgs {
    /// An Inseq JSON file (written by rinseq or Python inseq; `.gz` files are read too).
    pub input: PathBuf,
    /// The aggregation.
    #[command(flatten)]
    pub aggregation: AggregationArgs,
    /// Write the aggregated output here (Inseq's JSON format; replaced if it exists).
    #[arg(short = 'o', long = "save-path", required = true)]
    pub save_path: PathBuf,
    /// Save options.
    #[command(flatten)]
    pub save: SaveArgs,
}

/// Arguments of `rinseq diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The first output (a).
    pub a: PathBuf,
    /// The second output (b), same tokens count and shapes as a.
    pub b: PathBuf,
    /// Write `a - b` here (Inseq's pair aggregation: b's scores minus a's, differing tokens as
    /// "a → b").
    #[arg(short = 'o', long = "save-path", required = true)]
    pub save_path: PathBuf,
    /// Save options.
    #[command(flatten)]
    pub save: SaveArgs,
}

/// How aggregated files are saved.
#[derive(Debug, Clone, clap::Args)]
pub struct SaveArgs {
    /// Gzip the saved JSON (Inseq's `compress=True`).
    #[arg(long = "compress")]
    pub compress: bool,
    /// Precision of saved scores: float32, float16 or float8.
    #[arg(long = "scores-precision", default_value = "float32")]
    pub scores_precision: String,
}

impl SaveArgs {
    fn options(&self) -> Result<SaveOptions, Box<dyn std::error::Error>> {
        Ok(SaveOptions {
            overwrite: true,
            compress: self.compress,
            scores_precision: self.scores_precision.parse()?,
            ..Default::default()
        })
    }
}

fn save(
    out: &FeatureAttributionOutput,
    path: &PathBuf,
    save: &SaveArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    for written in out.save(path, &save.options()?)? {
        eprintln!("saved {}", written.display());
    }
    Ok(())
}

/// Runs `rinseq aggregate`.
pub fn run(
    args: &AggregateArgs,
    sources: &PluginSources,
) -> Result<(), Box<dyn std::error::Error>> {
    check_writable("--save-path", &args.save_path)?;
    let spec = args.aggregation.spec()?;
    let input = FeatureAttributionOutput::load(&args.input)?;
    let reg = PluginRegistry::load(sources)?;
    let out = aggregate_output(&reg, &input, &spec)?;
    save(&out, &args.save_path, &args.save)
}

/// Runs `rinseq diff`.
pub fn run_diff(
    args: &DiffArgs,
    sources: &PluginSources,
) -> Result<(), Box<dyn std::error::Error>> {
    check_writable("--save-path", &args.save_path)?;
    let a = FeatureAttributionOutput::load(&args.a)?;
    let b = FeatureAttributionOutput::load(&args.b)?;
    let reg = PluginRegistry::load(sources)?;
    let out = diff(&reg, &a, &b)?;
    save(&out, &args.save_path, &args.save)
}
