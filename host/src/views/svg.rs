//! A figure for a paper: per sequence and side a heatmap panel (attributed tokens down the left,
//! generated tokens rotated along the top, values in the cells, the exact value as a `<title>`),
//! a colour bar with ticks, and the step scores as an annotated strip under the sequence's last
//! panel. Signed scores use the diverging map on `[-m, m]`, non-negative ones the sequential map
//! on `[0, max]`; one range for the whole figure, so panels compare.

use svg::node::element::{Definitions, Group, Line, LinearGradient, Rectangle, Stop, Text, Title};
use svg::Document;

use crate::output::FeatureAttributionOutput;

use super::colors::{figure_color, figure_stops, greens, Range};
use super::labels::{clip, show, width, NumberFormat};
use super::matrix::{self, Heatmap, SequenceView, StepScore};
use super::ViewError;

/// Fonts in order of preference; the PNG renderer has DejaVu on the test machines.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
const MARGIN: f32 = 16.0;
const TITLE_H: f32 = 26.0;
const LABEL_SIZE: f32 = 12.0;
const VALUE_SIZE: f32 = 10.0;
const CELL_H: f32 = 22.0;
const MIN_CELL_W: f32 = 36.0;
const BAR_W: f32 = 12.0;
const MIN_BAR_H: f32 = 88.0;
const MAX_LABEL: usize = 24;
/// sin 45°: the rotated column labels' height (and overhang) per unit of length.
const DIAGONAL: f32 = std::f32::consts::FRAC_1_SQRT_2;
const GRADIENT_ID: &str = "colorbar";

/// The figure as SVG text.
pub(crate) fn render(out: &FeatureAttributionOutput) -> Result<String, ViewError> {
    Ok(document(out)?.to_string())
}

/// The figure as an SVG document.
pub(crate) fn document(out: &FeatureAttributionOutput) -> Result<Document, ViewError> {
    let views = matrix::sequences(out)?;
    let scores: Vec<f32> = views.iter().flat_map(|v| v.scores()).collect();
    let range = Range::figure(scores.into_iter());
    let mut figure = Group::new()
        .set("font-family", FONT_FAMILY)
        .set("font-size", LABEL_SIZE);
    // One label column for the whole figure, so that the panels' grids line up.
    let label_w = views
        .iter()
        .flat_map(|v| {
            let rows = v
                .heatmaps
                .iter()
                .flat_map(|h| h.rows.iter().map(|t| row_label(&t.token)));
            rows.chain(v.step_scores.iter().map(|s| s.name.to_string()))
        })
        .map(|l| text_width(&l, LABEL_SIZE))
        .fold(24.0, f32::max)
        + 8.0;
    let (mut y, mut w) = (MARGIN, 0.0f32);
    if views.is_empty() {
        figure = figure.add(text(MARGIN, y + LABEL_SIZE, "No sequences to show."));
        y += LABEL_SIZE + MARGIN;
        w = 200.0;
    }
    for view in &views {
        let panels = panels(view);
        for (k, panel) in panels.iter().enumerate() {
            let strip = if k + 1 == panels.len() {
                view.step_scores.as_slice()
            } else {
                &[]
            };
            let (group, pw, ph) = panel_group(view, *panel, strip, range, label_w, y);
            figure = figure.add(group);
            y += ph;
            w = w.max(pw);
        }
    }
    let (w, h) = (w.ceil(), (y + MARGIN).ceil());
    Ok(Document::new()
        .set("width", w)
        .set("height", h)
        .set("viewBox", (0, 0, w, h))
        .add(Definitions::new().add(gradient(range)))
        .add(
            Rectangle::new()
                .set("width", w)
                .set("height", h)
                .set("fill", "#ffffff"),
        )
        .add(figure))
}

/// The heatmaps of a sequence, or one empty target panel when it has only step scores.
fn panels<'a>(view: &SequenceView<'a>) -> Vec<Option<Heatmap<'a>>> {
    if view.heatmaps.is_empty() {
        if view.step_scores.is_empty() {
            return Vec::new();
        }
        return vec![None];
    }
    view.heatmaps.iter().copied().map(Some).collect()
}

fn text_width(s: &str, size: f32) -> f32 {
    // DejaVu Sans averages about 0.62 em per character.
    width(s) as f32 * size * 0.62
}

/// A token as a row or column label.
fn row_label(token: &str) -> String {
    clip(&show(token), MAX_LABEL)
}

fn text(x: f32, y: f32, content: &str) -> Text {
    Text::new(content).set("x", x).set("y", y)
}

/// One panel at height `top` with `label_w` for the row labels: the group, its width and its
/// height.
fn panel_group(
    view: &SequenceView<'_>,
    heatmap: Option<Heatmap<'_>>,
    strip: &[StepScore<'_>],
    range: Range,
    label_w: f32,
    top: f32,
) -> (Group, f32, f32) {
    let side = heatmap.map_or("Target", |h| h.side.title());
    let cols: Vec<String> = view.generated.iter().map(|t| row_label(&t.token)).collect();
    let rows: Vec<String> = heatmap
        .map(|h| h.rows.iter().map(|t| row_label(&t.token)).collect())
        .unwrap_or_default();
    let format =
        NumberFormat::for_values(heatmap.map(|h| h.values).unwrap_or(&[]).iter().copied(), 2);
    let strip_formats: Vec<NumberFormat> = strip
        .iter()
        .map(|s| NumberFormat::for_values(s.values.iter().copied(), 2))
        .collect();
    let value_w = heatmap
        .map(|h| h.values)
        .unwrap_or(&[])
        .iter()
        .map(|v| format.format(*v))
        .chain(
            strip
                .iter()
                .zip(&strip_formats)
                .flat_map(|(s, f)| s.values.iter().map(|v| f.format(*v))),
        )
        .map(|s| text_width(&s, VALUE_SIZE) + 8.0)
        .fold(MIN_CELL_W, f32::max);
    let cell_w = value_w;
    let col_label_w = cols
        .iter()
        .map(|c| text_width(c, LABEL_SIZE))
        .fold(0.0, f32::max);
    let grid_x = MARGIN + label_w;
    let grid_y = top + TITLE_H + col_label_w * DIAGONAL + 10.0;
    let grid_w = cols.len() as f32 * cell_w;
    let grid_h = rows.len() as f32 * CELL_H;

    let title = format!("Sequence {} · {side} attributions", view.index);
    // Bold 14 px runs wider than the labels' estimate.
    let title_right = MARGIN + text_width(&title, 14.0) * 1.15;
    let mut g = Group::new().add(
        text(MARGIN, top + 16.0, &title)
            .set("font-size", 14)
            .set("font-weight", "bold"),
    );
    // Generated tokens along the top, rotated 45° so that long tokens fit.
    for (j, label) in cols.iter().enumerate() {
        let (x, y) = (grid_x + (j as f32 + 0.5) * cell_w, grid_y - 5.0);
        g = g.add(text(x, y, label).set("transform", format!("rotate(-45 {x} {y})")));
    }
    let overhang = cols.last().map_or(0.0, |c| text_width(c, LABEL_SIZE)) * DIAGONAL;
    let mut right = title_right.max(grid_x + grid_w + overhang);
    if let Some(h) = heatmap {
        g = g.add(cells(&h, &rows, format, range, grid_x, grid_y, cell_w));
        let (bar, bar_right) =
            colorbar(range, grid_x + grid_w + 18.0, grid_y, grid_h.max(MIN_BAR_H));
        g = g.add(bar);
        right = right.max(bar_right);
    }
    let mut bottom = grid_y
        + if heatmap.is_some() {
            grid_h.max(MIN_BAR_H)
        } else {
            0.0
        };
    if !strip.is_empty() {
        let strip_y = bottom + 12.0;
        g = g.add(step_strip(strip, &strip_formats, grid_x, strip_y, cell_w));
        bottom = strip_y + strip.len() as f32 * CELL_H;
    }
    (g, right + MARGIN, bottom - top + 18.0)
}

/// The attributed tokens on the left and the coloured, annotated cells.
fn cells(
    h: &Heatmap<'_>,
    rows: &[String],
    format: NumberFormat,
    range: Range,
    x0: f32,
    y0: f32,
    cell_w: f32,
) -> Group {
    let mut g = Group::new();
    for (i, label) in rows.iter().enumerate() {
        let y = y0 + i as f32 * CELL_H;
        g = g.add(text(x0 - 6.0, y + CELL_H / 2.0 + 4.0, label).set("text-anchor", "end"));
        for (j, &v) in h.row(i).iter().enumerate() {
            // Cells not visible yet stay blank.
            if v.is_nan() {
                continue;
            }
            let x = x0 + j as f32 * cell_w;
            let fill = figure_color(range, v);
            g = g.add(
                Rectangle::new()
                    .set("x", x)
                    .set("y", y)
                    .set("width", cell_w)
                    .set("height", CELL_H)
                    .set("fill", fill.hex())
                    .set("stroke", "#ffffff")
                    .set("stroke-width", 1)
                    .add(Title::new(v.to_string())),
            );
            g = g.add(
                text(x + cell_w / 2.0, y + CELL_H / 2.0 + 3.5, &format.format(v))
                    .set("text-anchor", "middle")
                    .set("font-size", VALUE_SIZE)
                    .set("fill", fill.ink().hex()),
            );
        }
    }
    let frame = Rectangle::new()
        .set("x", x0)
        .set("y", y0)
        .set("width", h.n_cols as f32 * cell_w)
        .set("height", rows.len() as f32 * CELL_H)
        .set("fill", "none")
        .set("stroke", "#999999")
        .set("stroke-width", 0.5);
    g.add(frame)
}

/// The vertical colour bar at `(x, y)` with five ticks; also where its labels end.
fn colorbar(range: Range, x: f32, y: f32, h: f32) -> (Group, f32) {
    let format = NumberFormat::for_values([range.min, range.max].into_iter(), 2);
    let mut g = Group::new().add(
        Rectangle::new()
            .set("x", x)
            .set("y", y)
            .set("width", BAR_W)
            .set("height", h)
            .set("fill", format!("url(#{GRADIENT_ID})"))
            .set("stroke", "#666666")
            .set("stroke-width", 0.5),
    );
    let mut right = x + BAR_W;
    for k in 0..5 {
        let t = k as f32 / 4.0;
        let value = range.min + t * (range.max - range.min);
        let ty = y + h - t * h;
        let label = format.format(value);
        g = g
            .add(
                Line::new()
                    .set("x1", x + BAR_W)
                    .set("x2", x + BAR_W + 4.0)
                    .set("y1", ty)
                    .set("y2", ty)
                    .set("stroke", "#333333")
                    .set("stroke-width", 1),
            )
            .add(text(x + BAR_W + 6.0, ty + 4.0, &label).set("font-size", VALUE_SIZE));
        right = right.max(x + BAR_W + 6.0 + text_width(&label, VALUE_SIZE));
    }
    (g, right)
}

/// The colour bar's gradient, bottom (range minimum) to top (maximum).
fn gradient(range: Range) -> LinearGradient {
    figure_stops(range).into_iter().fold(
        LinearGradient::new()
            .set("id", GRADIENT_ID)
            .set("x1", 0)
            .set("y1", 1)
            .set("x2", 0)
            .set("y2", 0),
        |g, (offset, color)| {
            g.add(
                Stop::new()
                    .set("offset", offset)
                    .set("stop-color", color.hex()),
            )
        },
    )
}

/// Step scores, one annotated row each, shaded by magnitude within the row.
fn step_strip(
    strip: &[StepScore<'_>],
    formats: &[NumberFormat],
    x0: f32,
    y0: f32,
    cell_w: f32,
) -> Group {
    let mut g = Group::new();
    for (r, (s, f)) in strip.iter().zip(formats).enumerate() {
        let y = y0 + r as f32 * CELL_H;
        g = g.add(
            text(x0 - 6.0, y + CELL_H / 2.0 + 4.0, s.name)
                .set("text-anchor", "end")
                .set("font-style", "italic"),
        );
        let m = s
            .values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        for (j, &v) in s.values.iter().enumerate() {
            let x = x0 + j as f32 * cell_w;
            let fill = greens(if m > 0.0 { v.abs() / m } else { 0.0 });
            g = g
                .add(
                    Rectangle::new()
                        .set("x", x)
                        .set("y", y)
                        .set("width", cell_w)
                        .set("height", CELL_H)
                        .set("fill", fill.hex())
                        .set("stroke", "#ffffff")
                        .add(Title::new(v.to_string())),
                )
                .add(
                    text(x + cell_w / 2.0, y + CELL_H / 2.0 + 3.5, &f.format(v))
                        .set("text-anchor", "middle")
                        .set("font-size", VALUE_SIZE)
                        .set("fill", fill.ink().hex()),
                );
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{png, test_data};

    /// Every text of a parsed tree, in document order.
    fn texts(node: &resvg::usvg::Node, out: &mut Vec<String>) {
        match node {
            resvg::usvg::Node::Group(g) => g.children().iter().for_each(|c| texts(c, out)),
            resvg::usvg::Node::Text(t) => {
                out.extend(t.chunks().iter().map(|c| c.text().to_string()))
            }
            _ => {}
        }
    }

    fn parsed_texts(svg: &str) -> Vec<String> {
        let opts = png::usvg_options().expect("system fonts (fonts-dejavu-core)");
        let tree = resvg::usvg::Tree::from_str(svg, &opts).unwrap();
        let mut out = Vec::new();
        for c in tree.root().children() {
            texts(c, &mut out);
        }
        out
    }

    #[test]
    fn parses_back_with_every_token_label() {
        let out = test_data::two_sequences();
        let svg = render(&out).unwrap();
        let texts = parsed_texts(&svg);
        for seq in &out.sequence_attributions {
            for t in seq.source.iter().chain(&seq.target) {
                assert!(
                    texts.contains(&show(&t.token)),
                    "{} not in {texts:?}",
                    t.token
                );
            }
        }
        for title in [
            "Sequence 0 · Target attributions",
            "Sequence 1 · Source attributions",
            "probability",
        ] {
            assert!(texts.iter().any(|t| t == title), "{title} not in {texts:?}");
        }
        // Signed scores: the bar runs from -1 to 1; cells are annotated.
        assert!(texts.contains(&"-1.00".to_string()) && texts.contains(&"1.00".to_string()));
        assert!(texts.contains(&"0.25".to_string()));
        assert!(svg.contains("<title>0.25</title>"));
    }

    #[test]
    fn escapes_markup_and_picks_the_sequential_map_for_positive_scores() {
        let svg = render(&test_data::special_tokens()).unwrap();
        assert!(svg.contains("&lt;b&gt;") && svg.contains("a&amp;b"));
        let texts = parsed_texts(&svg);
        assert!(texts.contains(&"<b>".to_string()) && texts.contains(&"\"q\"".to_string()));
        // Non-negative: the bar starts at 0 and has two stops (near-white → red).
        assert!(texts.contains(&"0.00".to_string()) && !texts.iter().any(|t| t.starts_with('-')));
        assert_eq!(svg.matches("<stop").count(), 2);
    }

    #[test]
    fn tiny_scores_keep_their_digits() {
        let texts = parsed_texts(&render(&test_data::tiny_scores()).unwrap());
        assert!(texts.contains(&"1.50e-5".to_string()), "{texts:?}");
    }
}
