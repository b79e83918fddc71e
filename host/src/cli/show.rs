//! `rinseq show`: aggregate a saved Inseq file and show it — coloured console heatmap, a
//! self-contained HTML page, an SVG/PNG figure, tidy CSV or a LaTeX snippet.
//!
//! ```text
//! rinseq show out.json --aggregator subwords --format html -o out.html
//! ```

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::aggregation_args::AggregationArgs;
use super::paths::check_writable;
use crate::aggregation::aggregate_for_view;
use crate::output::FeatureAttributionOutput;
use crate::plugins::{PluginRegistry, PluginSources};
use crate::views::{console_color_wanted, render, Format, ViewOptions};

/// Arguments of `rinseq show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// An Inseq JSON file (written by rinseq or Python inseq).
    pub input: PathBuf,
    /// The aggregation applied before showing (default: the output class's default).
    #[command(flatten)]
    pub aggregation: AggregationArgs,
    /// What to produce: console, html, svg, png, csv or tex.
    #[arg(long = "format", default_value = "console")]
    pub format: Format,
    /// Write here instead of standard output (required for png on a terminal).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

/// Runs `rinseq show`.
pub fn run(args: &ShowArgs, sources: &PluginSources) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &args.output {
        check_writable("--output", path)?;
    } else if args.format == Format::Png && std::io::stdout().is_terminal() {
        return Err("--format png writes binary data: add -o FILE.png".into());
    }
    let spec = args.aggregation.spec()?;
    let input = FeatureAttributionOutput::load(&args.input)?;
    let reg = PluginRegistry::load(sources)?;
    let out = aggregate_for_view(&reg, &input, &spec)?;
    let color = args.output.is_none() && console_color_wanted();
    let bytes = render(&out, args.format, &ViewOptions { color })?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("saved {}", path.display());
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}
