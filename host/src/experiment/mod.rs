//! Experiments: `rinseq run EXP.toml` runs a sweep of dataset attributions described in one TOML
//! file, locally (in-process) or as a Slurm job array plus a merge job.
//!
//! - [`config`]: the TOML format, validated with `file:line:column` errors;
//! - [`plan`]: each attribution as the `rinseq attribute-dataset` and `rinseq merge` command
//!   lines that produce it, and what is already done;
//! - [`slurm`]: the sbatch scripts, their submission and the wait for the merge job.

pub mod config;
pub mod plan;
pub mod slurm;

use std::path::PathBuf;

pub use config::Experiment;
pub use plan::{Plan, PlannedAttribution};

/// Everything that can go wrong in `rinseq run`, one line each.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The experiment file cannot be read.
    #[error("cannot read experiment file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A problem at a place in the experiment file (syntax, unknown key, bad value).
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The dataset cannot be read as `attribute-dataset` would read it.
    #[error("{}: [dataset]: {message}", path.display())]
    Dataset {
        /// The experiment file.
        path: PathBuf,
        /// The loader's error.
        message: String,
    },
    /// A file or folder of the run cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An attribution's recorded command differs from the experiment's: its results would mix.
    #[error(
        "attribution '{name}' changed since its results in {dir} were started: delete {dir} \
         (and {merged}) to redo it, or give the changed attribution a new name"
    )]
    Changed {
        /// The attribution.
        name: String,
        /// Its per-example folder.
        dir: String,
        /// Its merged file.
        merged: String,
    },
    /// A step of a local run failed.
    #[error("attribution '{name}': {step} failed: {message}")]
    Step {
        /// The attribution.
        name: String,
        /// `attribute-dataset` or `merge`.
        step: &'static str,
        /// The command's error.
        message: String,
    },
    /// `sbatch` (or another Slurm command) is not on `PATH`.
    #[error("{program} not found on PATH: run --slurm on a Slurm login node, or drop --slurm to run locally")]
    SlurmMissing {
        /// The command looked for.
        program: String,
    },
    /// A Slurm command failed.
    #[error("{command} failed: {message}")]
    Slurm {
        /// The command line.
        command: String,
        /// Its stderr (one line) or exit status.
        message: String,
    },
    /// A Slurm job ended without success.
    #[error("{message}")]
    Job {
        /// What ended how, and where its log is.
        message: String,
    },
}
