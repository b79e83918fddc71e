//! One self-contained HTML page (no scripts, fonts or anything fetched) with Inseq's heatmap
//! tables: per sequence a heading, then per side a table of attributed tokens × generated tokens
//! whose cells are coloured with Inseq's `red_transparent_blue` map on Inseq's range, the exact
//! score on hover, and the step scores as outlined rows.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde_json::Value;

use crate::output::{FeatureAttributionOutput, TokenWithId};

use super::colors::{red_transparent_blue, Range, BLUE, RED};
use super::labels::{show, NumberFormat};
use super::matrix::{self, Heatmap, SequenceView, Side};
use super::ViewError;

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px;
       color: #222; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 6px; }
.info { color: #555; margin: 0 0 12px; }
.legend { display: flex; align-items: center; gap: 8px; margin: 8px 0 16px; font-size: 13px; }
.legend .bar { width: 240px; height: 14px; border: 1px solid #999; }
.heatmap { padding: 15px; border: 2px solid #444; margin: 5px 0 16px; overflow-x: auto; }
.title { font-weight: bold; margin-bottom: 8px; }
.title span { font-size: 20px; }
table { border-collapse: separate; border-spacing: 3px; font-size: 14px; }
th, td { padding: 5px 7px; border: 1px solid #ccc; text-align: center; white-space: pre; }
th { background: #f4f4f4; }
td.score { font-variant-numeric: tabular-nums; min-width: 3.2em; }
tr.step-score { outline: thin solid; }
tr.step-score th, tr.step-score td { background: #fafafa; }
"#;

/// The page for every sequence of `out`.
pub(crate) fn render(out: &FeatureAttributionOutput) -> Result<String, ViewError> {
    let views = matrix::sequences(out)?;
    let scores: Vec<f32> = views.iter().flat_map(|v| v.scores()).collect();
    let range = Range::inseq(scores.into_iter());
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        page,
        "<title>Attributions</title>\n<style>{STYLE}</style>\n</head>\n<body>"
    );
    page.push_str("<h1>Attributions</h1>\n");
    info(&mut page, out);
    legend(&mut page, range);
    if views.is_empty() {
        page.push_str("<p>No sequences to show.</p>\n");
    }
    for view in &views {
        sequence(&mut page, view, range);
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// A line with the method and model, when the run recorded them.
fn info(page: &mut String, out: &FeatureAttributionOutput) {
    let field = |key: &str| match out.info.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let parts: Vec<String> = [("Method", "attribution_method"), ("Model", "model_name")]
        .into_iter()
        .filter_map(|(label, key)| field(key).map(|v| format!("{label}: {}", text(v))))
        .collect();
    if !parts.is_empty() {
        let _ = writeln!(page, "<p class=\"info\">{}</p>", parts.join(" · "));
    }
}

/// The colour bar: Inseq's map from `min` (blue) through clear at 0 to `max` (red).
fn legend(page: &mut String, range: Range) {
    let f = NumberFormat::for_values([range.max].into_iter(), 3);
    let (b, r) = (BLUE, RED);
    let _ = writeln!(
        page,
        "<div class=\"legend\"><span>{}</span><span class=\"bar\" style=\"background: linear-gradient(to right, \
         rgba({}, {}, {}, 1), rgba({}, {}, {}, 0) 50%, rgba({}, {}, {}, 0) 50%, rgba({}, {}, {}, 1))\"></span>\
         <span>{}</span><span>(0 is clear; hover a cell for its exact score)</span></div>",
        f.format(range.min),
        b.0, b.1, b.2, b.0, b.1, b.2, r.0, r.1, r.2, r.0, r.1, r.2,
        f.format(range.max),
    );
}

fn sequence(page: &mut String, view: &SequenceView<'_>, range: Range) {
    let _ = writeln!(
        page,
        "<section class=\"sequence\">\n<h2>Sequence {}</h2>",
        view.index
    );
    if view.heatmaps.is_empty() {
        // Inseq shows a target table with only the step scores.
        table(page, view, None, Side::Target, range);
    }
    for heatmap in &view.heatmaps {
        table(page, view, Some(heatmap), heatmap.side, range);
    }
    page.push_str("</section>\n");
}

fn table(
    page: &mut String,
    view: &SequenceView<'_>,
    heatmap: Option<&Heatmap<'_>>,
    side: Side,
    range: Range,
) {
    let _ = writeln!(
        page,
        "<div class=\"heatmap\">\n<div class=\"title\"><span>{} Saliency Heatmap</span><br>\
         → : Generated tokens, ↓ : Attributed tokens</div>\n<table>",
        side.title()
    );
    page.push_str("<tr><th></th><th></th>");
    for j in 0..view.generated.len() {
        let _ = write!(page, "<th>{j}</th>");
    }
    page.push_str("</tr>\n<tr><th></th><th></th>");
    for t in view.generated {
        token_cell(page, t);
    }
    page.push_str("</tr>\n");
    if let Some(h) = heatmap {
        let format = NumberFormat::for_values(h.values.iter().copied(), 3);
        for (i, tok) in h.rows.iter().enumerate() {
            let _ = write!(page, "<tr><th>{i}</th>");
            token_cell(page, tok);
            for &v in h.row(i) {
                if v.is_nan() {
                    page.push_str("<td class=\"score\"></td>");
                    continue;
                }
                let bg = red_transparent_blue(range.scaled(v));
                let ink = bg.over_white().ink().hex();
                let _ = write!(
                    page,
                    "<td class=\"score\" style=\"background:{}; color:{ink}\" title=\"{v}\">{}</td>",
                    bg.css(),
                    format.format(v)
                );
            }
            page.push_str("</tr>\n");
        }
    }
    for s in &view.step_scores {
        let format = NumberFormat::for_values(s.values.iter().copied(), 3);
        let _ = write!(
            page,
            "<tr class=\"step-score\"><th></th><th><b>{}</b></th>",
            text(s.name)
        );
        for &v in s.values {
            let value = format.format(v);
            // Inseq bolds step scores of magnitude 0.5 or more.
            if v.abs() >= 0.5 {
                let _ = write!(page, "<td title=\"{v}\"><b>{value}</b></td>");
            } else {
                let _ = write!(page, "<td title=\"{v}\">{value}</td>");
            }
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n</div>\n");
}

/// A token header cell: the readable form, the raw token and id on hover.
fn token_cell(page: &mut String, t: &TokenWithId) {
    let _ = write!(
        page,
        "<th title=\"{} (id {})\">{}</th>",
        attr(&t.token),
        t.id,
        text(&show(&t.token))
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    #[test]
    fn every_sequence_and_side_has_a_table() {
        let html = render(&test_data::two_sequences()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<h2>Sequence 0</h2>") && html.contains("<h2>Sequence 1</h2>"));
        assert_eq!(html.matches("Target Saliency Heatmap").count(), 2);
        assert_eq!(html.matches("Source Saliency Heatmap").count(), 1);
        // Step scores: one row per table.
        assert_eq!(html.matches("<b>probability</b>").count(), 3);
        // Self-contained: nothing is fetched.
        for needle in [
            "<script", "<link", "src=", "http://", "https://", "@import", "url(",
        ] {
            assert!(!html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn cells_use_inseq_colors_and_exact_values_on_hover() {
        let html = render(&test_data::two_sequences()).unwrap();
        // Range [-1, 1]: 1.0 is Inseq's opaque red, -0.9 nearly opaque blue.
        assert!(
            html.contains("background:rgba(178, 24, 43, 1.000)"),
            "{html}"
        );
        assert!(html.contains("background:rgba(33, 102, 172, 0.9"), "{html}");
        assert!(html.contains("title=\"0.25\">0.250</td>"), "{html}");
        // NaN cells are empty and uncoloured.
        assert!(html.contains("<td class=\"score\"></td>"));
        assert!(!html.contains("NaN"));
        assert!(
            html.contains("<td title=\"0.9\"><b>0.900</b></td>"),
            "{html}"
        );
    }

    #[test]
    fn tokens_are_escaped() {
        let html = render(&test_data::special_tokens()).unwrap();
        assert!(!html.contains("><b></th>") && !html.contains(">a&b<"));
        assert!(html.contains(">&lt;b&gt;</th>"), "{html}");
        assert!(html.contains(">a&amp;b</th>"), "{html}");
        assert!(html.contains("title=\"&quot;q&quot; (id 2)\""), "{html}");
    }

    #[test]
    fn tiny_scores_keep_their_digits() {
        let html = render(&test_data::tiny_scores()).unwrap();
        assert!(html.contains(">1.50e-5</td>"), "{html}");
    }
}
