//! The terminal heatmap (Inseq's rich console tables): per sequence and side, a table of
//! attributed tokens × generated tokens, blank where a token is not visible yet, then the step
//! scores under the sequence's last table. With `color`, cells get a 24-bit background from the
//! diverging map on Inseq's colour range.

use std::fmt::Write;

use crate::output::FeatureAttributionOutput;

use super::colors::{diverging, Range};
use super::labels::{clip, pad_left, show, width, NumberFormat};
use super::matrix::{self, Heatmap, SequenceView};

/// Widest row label and column label, in terminal columns.
const MAX_ROW_LABEL: usize = 16;
const MAX_COL_LABEL: usize = 12;
const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

/// The console view of every sequence (a line saying why in place of a sequence that cannot be
/// shown).
pub(crate) fn render(out: &FeatureAttributionOutput, color: bool) -> String {
    let views: Vec<_> = out
        .sequence_attributions
        .iter()
        .enumerate()
        .map(|(i, seq)| matrix::sequence(i, seq))
        .collect();
    let range = Range::inseq(
        views
            .iter()
            .flatten()
            .flat_map(|v| v.scores())
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let mut text = String::new();
    if views.is_empty() {
        text.push_str("No sequences to show.\n");
    }
    for (i, view) in views.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        match view {
            Ok(view) => sequence(&mut text, view, range, color),
            Err(e) => {
                let _ = writeln!(text, "{e}");
            }
        }
    }
    text
}

/// Column layout shared by a sequence's tables, so that step scores line up with all of them.
struct Layout {
    index: usize,
    label: usize,
    cell: usize,
    formats: Vec<NumberFormat>,
}

fn sequence(text: &mut String, view: &SequenceView<'_>, range: Range, color: bool) {
    let formats: Vec<NumberFormat> = view
        .heatmaps
        .iter()
        .map(|h| NumberFormat::for_values(h.values.iter().copied(), 2))
        .collect();
    let step_formats: Vec<NumberFormat> = view
        .step_scores
        .iter()
        .map(|s| NumberFormat::for_scores(s.values, 3))
        .collect();
    let cells = view
        .heatmaps
        .iter()
        .zip(&formats)
        .flat_map(|(h, f)| h.values.iter().map(|v| width(&f.format(*v))))
        .chain(
            view.step_scores
                .iter()
                .zip(&step_formats)
                .flat_map(|(s, f)| s.values.iter().map(|v| width(&f.format(*v)))),
        );
    let col_labels = view
        .generated
        .iter()
        .map(|t| width(&clip(&show(&t.token), MAX_COL_LABEL)));
    let row_labels = view
        .heatmaps
        .iter()
        .flat_map(|h| h.rows.iter().map(|t| width(&show(&t.token))))
        .chain(view.step_scores.iter().map(|s| width(s.name)));
    let rows = view
        .heatmaps
        .iter()
        .map(|h| h.rows.len())
        .max()
        .unwrap_or(0);
    let layout = Layout {
        index: rows.saturating_sub(1).to_string().len(),
        label: row_labels.max().unwrap_or(0).clamp(4, MAX_ROW_LABEL),
        cell: cells.chain(col_labels).max().unwrap_or(0).max(4),
        formats,
    };
    let _ = writeln!(text, "Sequence {}", view.index);
    if view.heatmaps.is_empty() {
        header(text, view, &layout, "Target", color);
    }
    for (k, heatmap) in view.heatmaps.iter().enumerate() {
        if k > 0 {
            text.push('\n');
        }
        header(text, view, &layout, heatmap.side.title(), color);
        table(text, heatmap, &layout, k, range, color);
    }
    for (s, f) in view.step_scores.iter().zip(&step_formats) {
        let _ = write!(
            text,
            "{} {} ",
            " ".repeat(layout.index),
            pad_left(&clip(s.name, layout.label), layout.label)
        );
        for v in s.values {
            let cell = pad_left(&f.format(*v), layout.cell);
            // Inseq bolds step scores of magnitude 0.5 or more.
            if color && v.abs() >= 0.5 {
                let _ = write!(text, " {BOLD}{cell}{RESET}");
            } else {
                let _ = write!(text, " {cell}");
            }
        }
        text.push('\n');
    }
}

fn header(text: &mut String, view: &SequenceView<'_>, layout: &Layout, side: &str, color: bool) {
    let title = format!("{side} Saliency Heatmap");
    if color {
        let _ = writeln!(text, "{BOLD}{title}{RESET}");
    } else {
        let _ = writeln!(text, "{title}");
    }
    let _ = writeln!(text, "→ : Generated tokens, ↓ : Attributed tokens");
    let indent = " ".repeat(layout.index + layout.label + 2);
    text.push_str(&indent);
    for j in 0..view.generated.len() {
        let _ = write!(text, " {}", pad_left(&j.to_string(), layout.cell));
    }
    text.push('\n');
    text.push_str(&indent);
    for t in view.generated {
        let label = clip(&show(&t.token), MAX_COL_LABEL);
        let _ = write!(text, " {}", pad_left(&label, layout.cell));
    }
    text.push('\n');
}

fn table(
    text: &mut String,
    heatmap: &Heatmap<'_>,
    layout: &Layout,
    k: usize,
    range: Range,
    color: bool,
) {
    let format = layout.formats[k];
    for (i, tok) in heatmap.rows.iter().enumerate() {
        let label = clip(&show(&tok.token), layout.label);
        let _ = write!(
            text,
            "{} {} ",
            pad_left(&i.to_string(), layout.index),
            pad_left(&label, layout.label)
        );
        for &v in heatmap.row(i) {
            let cell = pad_left(&format.format(v), layout.cell);
            if color && !v.is_nan() {
                let bg = diverging(range.scaled(v)).ansi_background();
                let _ = write!(text, " {bg}{cell}{RESET}");
            } else {
                let _ = write!(text, " {cell}");
            }
        }
        // No trailing blanks on rows that end with hidden cells.
        let trimmed = text.trim_end_matches(' ').len();
        text.truncate(trimmed);
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    /// Ported from `cli/heatmap.rs`: tokens, scores, blank NaN cells and step scores.
    #[test]
    fn renders_tokens_scores_and_blank_nan_cells() {
        let out =
            FeatureAttributionOutput::new(vec![test_data::decoder_only()], Default::default());
        let text = render(&out, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Sequence 0");
        assert_eq!(lines[1], "Target Saliency Heatmap");
        assert!(lines[2].contains("Generated tokens"));
        assert!(lines[4].contains("␣there") && lines[4].contains('!'));
        assert!(
            lines[5].contains("␣Hi") && lines[5].contains("1.00") && lines[5].contains("0.25"),
            "{text}"
        );
        assert!(lines[6].contains("0.75") && !lines[6].contains("NaN"));
        assert!(
            lines[7].starts_with("2 ") && lines[7].ends_with('!'),
            "{text}"
        );
        assert!(
            lines[8].contains("probability")
                && lines[8].contains("0.500")
                && lines[8].contains("0.125"),
            "{text}"
        );
    }

    #[test]
    fn plain_output_has_no_escape_codes_and_color_has_them() {
        let out = test_data::two_sequences();
        let plain = render(&out, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("Source Saliency Heatmap") && plain.contains("Sequence 1"));
        let colored = render(&out, true);
        assert!(colored.contains("\x1b[48;2;"), "{colored}");
        // The largest score (1.0, Inseq's range is [-1, 1]) is Inseq's red.
        assert!(colored.contains("\x1b[48;2;178;24;43m"), "{colored}");
        assert_eq!(crate::views::console(&out, false), plain);
    }

    #[test]
    fn tiny_scores_are_not_zeros() {
        let text = render(&test_data::tiny_scores(), false);
        assert!(
            text.contains("1.50e-5") && text.contains("-3.00e-5"),
            "{text}"
        );
        assert!(!text.contains("0.00"), "{text}");
    }

    #[test]
    fn rows_and_columns_line_up() {
        let text = render(&test_data::two_sequences(), false);
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "Source Saliency Heatmap")
            .skip(2)
            .take(5)
            .collect();
        let ends: Vec<usize> = table.iter().map(|l| width(l)).collect();
        assert!(ends.iter().all(|e| *e == ends[0]), "{table:#?}");
    }
}
