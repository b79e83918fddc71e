//! `rinseq merge DIR -o OUT.json`: one Inseq file of every example of an `--out-dir` of
//! `rinseq attribute-dataset`, in dataset order (Inseq's `merge_attributions`). Refuses, naming
//! them, when examples are missing.

use std::path::PathBuf;

use super::paths::check_writable;
use crate::dataset::merge::merge_dir;
use crate::output::{SaveOptions, ScorePrecision};

/// Arguments of `rinseq merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The --out-dir of `rinseq attribute-dataset`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The merged Inseq JSON file to write (replaced if it exists).
    #[arg(short = 'o', long = "save-path", value_name = "OUT.json")]
    pub save_path: PathBuf,
    /// Gzip the merged file (Inseq's `compress=True`).
    #[arg(long = "compress")]
    pub compress: bool,
    /// Precision of saved scores: float32, float16 or float8.
    #[arg(long = "scores-precision", default_value = "float32")]
    pub scores_precision: String,
}

/// Runs `rinseq merge`.
pub fn run(args: &MergeArgs) -> Result<(), Box<dyn std::error::Error>> {
    check_writable("--save-path", &args.save_path)?;
    let scores_precision: ScorePrecision = args.scores_precision.parse()?;
    let out = merge_dir(&args.dir)?;
    let options = SaveOptions {
        overwrite: true,
        compress: args.compress,
        scores_precision,
        ..Default::default()
    };
    for written in out.save(&args.save_path, &options)? {
        eprintln!("saved {} ({} examples)", written.display(), out.len());
    }
    Ok(())
}
