//! The `rinseq` command line: one file per subcommand.

pub mod aggregate;
pub mod aggregation_args;
pub mod attribute;
pub mod attribute_context;
pub mod attribute_dataset;
pub mod attributor;
pub mod generate;
pub mod load;
pub mod merge;
pub mod paths;
pub mod plugins;
pub mod progress;
pub mod run;
pub mod show;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::plugins::PluginSources;

/// Explain what text-generation models do, token by token.
#[derive(Debug, Parser)]
#[command(name = "rinseq", version = version_line(), about, propagate_version = true)]
pub struct Cli {
    /// A user plugin registry, layered over the built-in one (the registry.toml of the rinseq
    /// source tree this binary was built from): it adds libraries, and an entry named like a
    /// built-in library disables (`enabled = false`) or changes it (default: $RINSEQ_REGISTRY,
    /// else ./registry.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub registry: Option<PathBuf>,
    /// Load this plugin library too (repeatable).
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attribute the generation of a model to its inputs, step by step.
    Attribute(Box<attribute::AttributeArgs>),
    /// Find the generated tokens that depend on the context and the context tokens behind them
    /// (Inseq's attribute-context, PECoRe).
    AttributeContext(Box<attribute_context::AttributeContextArgs>),
    /// Attribute a dataset split (Inseq's attribute-dataset); with --out-dir: resumable,
    /// shardable (--shard I/N), one file per example.
    AttributeDataset(Box<attribute_dataset::AttributeDatasetArgs>),
    /// Merge the example files of an attribute-dataset --out-dir into one Inseq file.
    Merge(merge::MergeArgs),
    /// Print a model's continuation of input texts.
    Generate(generate::GenerateArgs),
    /// Aggregate a saved attribution file (Inseq's `aggregate`) and save the result.
    Aggregate(aggregate::AggregateArgs),
    /// Subtract two saved attributions (Inseq's `a - b`, pair aggregation) and save the result.
    Diff(aggregate::DiffArgs),
    /// Show a saved attribution file: console heatmap, HTML, SVG, PNG, CSV or LaTeX.
    Show(show::ShowArgs),
    /// List or describe the loaded plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run an experiment file: a sweep of dataset attributions, locally or on Slurm.
    Run(run::RunArgs),
}

/// `rinseq X (rinseq-sdk Y)`.
fn version_line() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (rinseq-sdk ",
        env!("RINSEQ_SDK_VERSION"),
        ")"
    )
}

impl Cli {
    /// Where plugins come from, in layers: the built-in registry, the user registry, then
    /// `RINSEQ_PLUGIN_PATH`, then `--plugin`.
    pub fn plugin_sources(&self) -> PluginSources {
        let defaults = crate::api::default_plugin_sources();
        PluginSources {
            registry: self.registry.clone().or(defaults.registry),
            extra: self.plugins.clone(),
            ..defaults
        }
    }
}

/// The registry of the rinseq source tree this binary was built from, if it is still there.
pub use crate::api::options::builtin_registry;

/// Runs the CLI and returns the process exit code. Errors print as one line on stderr; a panic
/// is caught and reported rather than shown as a backtrace.
pub fn main() -> i32 {
    crate::models::ops::init_cpu_threads();
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(|| run(&cli));
    match result {
        Ok(Ok(())) => 0,
        // Ctrl-C: a one-line note on how to resume, and the shell's exit code for SIGINT.
        Ok(Err(e)) if e.is::<progress::Interrupted>() => {
            eprintln!("{e}");
            progress::INTERRUPTED_EXIT_CODE
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(payload) => {
            eprintln!(
                "error: internal error: {} (please report this)",
                rinseq_sdk::author::panic_message(&*payload)
            );
            101
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    match &cli.command {
        Command::Attribute(args) => attribute::run(args, &cli.plugin_sources()),
        Command::AttributeContext(args) => attribute_context::run(args, &cli.plugin_sources()),
        Command::AttributeDataset(args) => attribute_dataset::run(args, &cli.plugin_sources()),
        Command::Merge(args) => merge::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Aggregate(args) => aggregate::run(args, &cli.plugin_sources()),
        Command::Diff(args) => aggregate::run_diff(args, &cli.plugin_sources()),
        Command::Show(args) => show::run(args, &cli.plugin_sources()),
        Command::Plugins(cmd) => plugins::run(cmd, &cli.plugin_sources()),
        Command::Run(args) => run::run(args, &cli.plugin_sources()),
    }
}
