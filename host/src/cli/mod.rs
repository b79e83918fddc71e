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
pub mod new_plugin;
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
    /// Write a new out-of-tree plugin crate (method, step function or aggregator) that builds
    /// and loads with --plugin.
    NewPlugin(new_plugin::NewPluginArgs),
    /// List or describe the loaded plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run an experiment file: a sweep of dataset attributions, locally or on Slurm.
    Run(run::RunArgs),
}

/// `X (rinseq-sdk Y)`, as `rinseq --version` prints it (Y is the SDK crate's own version).
pub fn version_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        format!(
            "{} (rinseq-sdk {})",
            env!("CARGO_PKG_VERSION"),
            rinseq_sdk::SDK_VERSION
        )
    })
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
    // Errors are one line: candle attaches a backtrace to its errors whenever RUST_BACKTRACE is
    // set, unless RUST_LIB_BACKTRACE says otherwise (panics keep RUST_BACKTRACE's setting).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
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
            eprintln!("error: {}", without_backtrace(&e.to_string()));
            1
        }
        Err(payload) => {
            eprintln!(
                "error: internal error: {} (please report this)",
                rinseq_sdk::abi::guest::panic_message(&*payload)
            );
            101
        }
    }
}

/// `message` without backtrace lines (`stack backtrace:`, numbered frames, `at file:line`),
/// which some library errors append when backtraces are enabled.
pub fn without_backtrace(message: &str) -> String {
    let frame = |l: &str| {
        let t = l.trim_start();
        t.starts_with("stack backtrace:")
            || t.starts_with("at ")
            || t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    message
        .lines()
        .filter(|l| !frame(l) && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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
        Command::NewPlugin(args) => new_plugin::run(args),
        Command::Plugins(cmd) => plugins::run(cmd, &cli.plugin_sources()),
        Command::Run(args) => run::run(args, &cli.plugin_sources()),
    }
}

#[cfg(test)]
mod tests {
    use super::without_backtrace;

    #[test]
    fn backtraces_are_cut_from_messages() {
        let msg = "shape mismatch in cat for dim 1\nstack backtrace:\n   0: candle_core::error::Error::bt\n             at /src/error.rs:260:25\n   1: rinseq::main";
        assert_eq!(without_backtrace(msg), "shape mismatch in cat for dim 1");
        assert_eq!(without_backtrace("plain: one line"), "plain: one line");
    }
}
