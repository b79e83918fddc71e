//! Views of an aggregated attribution output: a terminal heatmap, a self-contained HTML page
//! (Inseq's heatmap tables), SVG and PNG figures, a tidy CSV and a LaTeX snippet.
//!
//! Every view shows every sequence of the output and, per sequence, its source and target
//! heatmaps (attributed tokens × generated tokens) and its step scores. Inputs must already be
//! aggregated to 2-D `(attributed tokens, generated steps)` matrices.
//!
//! One file per concept: [`Format`] and the entry points here, the checked view of the data in
//! `matrix.rs`, colours in `colors.rs`, token labels and number formats in `labels.rs`, and one
//! file per format.

mod colors;
mod console;
mod csv;
mod html;
mod labels;
mod matrix;
mod png;
mod svg;
mod tex;

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use crate::output::FeatureAttributionOutput;

/// An output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A text heatmap for the terminal (ANSI colours optional).
    Console,
    /// One self-contained HTML page with Inseq's heatmap tables.
    Html,
    /// A vector figure: one heatmap panel per sequence and side, with colour bars.
    Svg,
    /// The SVG figure rasterised at twice its size.
    Png,
    /// Tidy CSV, one row per visible score.
    Csv,
    /// A LaTeX snippet of `\colorbox`ed tokens (needs `xcolor`).
    Tex,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Self; 6] = [
        Self::Console,
        Self::Html,
        Self::Svg,
        Self::Png,
        Self::Csv,
        Self::Tex,
    ];

    /// The lowercase name, as parsed by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Console => "console",
            Self::Html => "html",
            Self::Svg => "svg",
            Self::Png => "png",
            Self::Csv => "csv",
            Self::Tex => "tex",
        }
    }

    /// The usual file extension (`txt` for the console view).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Console => "txt",
            other => other.name(),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ViewError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| ViewError::UnknownFormat(s.to_string()))
    }
}

/// Options of [`render`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewOptions {
    /// Console only: ANSI colours on or off (default off; see [`console_color_wanted`]).
    pub color: bool,
}

/// Why a view could not be made; each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A format name that is not one of [`Format::ALL`].
    #[error("unknown view format '{0}': use one of console, html, svg, png, csv, tex")]
    UnknownFormat(String),
    /// Scores with more (or fewer) than two dimensions.
    #[error(
        "sequence {sequence}: {side} scores have shape {shape:?}: aggregate them first, e.g. --aggregator scores"
    )]
    NotAggregated {
        /// Index of the sequence in the output.
        sequence: usize,
        /// `Source` or `Target`.
        side: &'static str,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A 2-D score matrix whose size does not match the tokens.
    #[error(
        "sequence {sequence}: {side} scores have shape {shape:?} but there are {rows} attributed tokens and {steps} generated steps: the output is inconsistent, re-run the attribution"
    )]
    ShapeMismatch {
        /// Index of the sequence in the output.
        sequence: usize,
        /// `Source` or `Target`.
        side: &'static str,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// Number of attributed tokens.
        rows: usize,
        /// Number of generated steps.
        steps: usize,
    },
    /// A step score that is not one value per generated step.
    #[error(
        "sequence {sequence}: step score '{name}' has shape {shape:?}, expected [{steps}] (one value per generated step): the output is inconsistent, re-run the attribution"
    )]
    StepScoreShape {
        /// Index of the sequence in the output.
        sequence: usize,
        /// The step score's name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Number of generated steps.
        steps: usize,
    },
    /// `attr_pos_start..attr_pos_end` outside the target tokens.
    #[error(
        "sequence {sequence}: attributed positions {start}..{end} are outside its {len} target tokens: the output is inconsistent, re-run the attribution"
    )]
    Positions {
        /// Index of the sequence in the output.
        sequence: usize,
        /// `attr_pos_start`.
        start: usize,
        /// `attr_pos_end`.
        end: usize,
        /// Number of target tokens.
        len: usize,
    },
    /// No font to draw the PNG's text with.
    #[error("no system fonts found to draw the PNG's text: install one, e.g. apt-get install fonts-dejavu-core")]
    NoFonts,
    /// A figure too large (or empty) for a raster image.
    #[error("the figure is too large to rasterise ({width}×{height} px): show fewer sequences or use --format svg")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The SVG figure could not be read back for rasterising (a bug: please report it).
    #[error("could not rasterise the figure ({0}): this is a bug, please report it; --format svg still works")]
    Rasterise(String),
    /// The CSV writer failed.
    #[error("could not write the CSV: {0}")]
    Csv(#[from] ::csv::Error),
}

/// Renders `out` in `format`: UTF-8 text for every format but PNG, which is the image's bytes.
pub fn render(
    out: &FeatureAttributionOutput,
    format: Format,
    opts: &ViewOptions,
) -> Result<Vec<u8>, ViewError> {
    match format {
        Format::Console => Ok(console::render(out, opts.color).into_bytes()),
        Format::Html => Ok(html::render(out)?.into_bytes()),
        Format::Svg => Ok(svg::render(out)?.into_bytes()),
        Format::Png => png::render(out),
        Format::Csv => csv::render(out),
        Format::Tex => Ok(tex::render(out)?.into_bytes()),
    }
}

/// The console view: the same as [`render`] with [`Format::Console`]. A sequence whose scores
/// cannot be shown gets one line saying why instead of its table.
pub fn console(out: &FeatureAttributionOutput, color: bool) -> String {
    console::render(out, color)
}

/// Whether the console view should be coloured: stdout is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>).
pub fn console_color_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

#[cfg(test)]
mod test_data;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_display() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        assert_eq!(" HTML ".parse::<Format>().unwrap(), Format::Html);
        let err = "pdf".parse::<Format>().unwrap_err().to_string();
        assert!(
            err.contains("'pdf'") && err.contains("console, html"),
            "{err}"
        );
    }

    #[test]
    fn non_2d_scores_are_refused_by_every_file_format() {
        let out = test_data::unaggregated();
        for f in [
            Format::Html,
            Format::Svg,
            Format::Png,
            Format::Csv,
            Format::Tex,
        ] {
            let err = render(&out, f, &ViewOptions::default()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("scores have shape [2, 2, 3]")
                    && msg.contains("aggregate them first, e.g. --aggregator scores"),
                "{f}: {msg}"
            );
        }
        let text = console(&out, false);
        assert!(
            text.contains("Target scores have shape [2, 2, 3]"),
            "{text}"
        );
    }
}
