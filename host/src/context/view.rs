//! Views of a context attribution, laid out as Inseq's rich console view
//! (`attribute_context_viz_helpers.py`): the procedure, then for each context-sensitive token the
//! generated output with that token highlighted (blue, with its CTI score) and the context with
//! its cues highlighted (green, with their CCI scores). Console (ANSI colours only when asked)
//! and a self-contained HTML page.

use super::select;
use super::settings::Validated;
use super::text::Texts;
use super::{AttributeContextOutput, CciOutput};

/// Inseq's `dodger_blue1`: context-sensitive tokens.
const BLUE: (u8, u8, u8) = (0, 135, 255);
/// Inseq's `green`: context cues.
const GREEN: (u8, u8, u8) = (0, 128, 0);

/// A piece of the view: plain text, bold text, or a highlighted token.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Bold(String),
    Mark(String, (u8, u8, u8)),
}

/// `λ`/top-k comment of a selection (Inseq's `format_comment`).
fn comment(std: Option<f64>, topk: Option<usize>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = std.filter(|s| *s != 0.0) {
        parts.push(format!("std λ={s:.2}"));
    }
    if let Some(k) = topk.filter(|k| *k > 0) {
        parts.push(format!("top {k}"));
    }
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(", ")
    }
}

/// The context tokens with their cues marked.
fn context_line(
    kind: &str,
    tokens: &[String],
    scores: &[f64],
    all_scores: &[f32],
    v: &Validated,
) -> Vec<Piece> {
    let mine: Vec<f32> = scores.iter().map(|&x| x as f32).collect();
    // Inseq's threshold spans both contexts' scores; the ranking is per context.
    let t = select::threshold(all_scores, v.s.attribution_std_threshold);
    let (ranked, _) = select::rank(&mine, Some(0.0), None);
    let mut kept: Vec<usize> = ranked
        .into_iter()
        .filter(|&i| mine[i].abs() >= t as f32)
        .collect();
    if let Some(k) = v.s.attribution_topk.filter(|k| *k > 0) {
        kept.truncate(k);
    }
    let mut out = vec![
        Piece::Bold(format!("\n{kind} context (CCI > {t:.3}):")),
        Piece::Text("\t".into()),
    ];
    for (i, tok) in tokens.iter().enumerate() {
        let shown = Texts::display(tok);
        match (kept.contains(&i), scores.get(i)) {
            (true, Some(s)) => out.push(Piece::Mark(format!("{shown}({s:.3})"), GREEN)),
            _ => out.push(Piece::Text(shown)),
        }
    }
    out
}

/// The pieces of the whole view.
fn pieces(out: &AttributeContextOutput, v: &Validated, cti_threshold: f64) -> Vec<Piece> {
    let s = &v.s;
    let mut p = vec![
        Piece::Text("\nContext with ".into()),
        Piece::Mark("contextual cues".into(), GREEN),
        Piece::Text(format!(
            " ({}) followed by output sentence with ",
            comment(s.attribution_std_threshold, s.attribution_topk)
        )),
        Piece::Mark("context-sensitive target spans".into(), BLUE),
        Piece::Text(format!(
            " ({})\n(CTI = \"{}\", CCI = \"{}\" w/ \"{}\" target)\n",
            comment(
                s.context_sensitivity_std_threshold,
                s.context_sensitivity_topk
            ),
            s.context_sensitivity_metric,
            s.attribution_method,
            s.attributed_fn.as_deref().unwrap_or("None"),
        )),
    ];
    if v.has_input_context {
        p.push(Piece::Bold("\nInput context:".into()));
        p.push(Piece::Text(format!(
            "\t{}",
            out.input_context.as_deref().unwrap_or_default()
        )));
    }
    p.push(Piece::Bold("\nInput current:".into()));
    p.push(Piece::Text(format!(" {}", s.input_current_text)));
    if v.has_output_context {
        p.push(Piece::Bold("\nOutput context:".into()));
        p.push(Piece::Text(format!(
            "\t{}",
            out.output_context.as_deref().unwrap_or_default()
        )));
    }
    p.push(Piece::Bold("\nOutput current:".into()));
    p.push(Piece::Text(format!(
        "\t{}\n\n",
        out.output_current.as_deref().unwrap_or_default()
    )));
    let current = out.output_current_tokens.clone().unwrap_or_default();
    if out.cci_scores.is_empty() {
        p.push(Piece::Text(format!(
            "No context-sensitive token (CTI > {cti_threshold:.3}).\n"
        )));
    }
    for (n, cci) in out.cci_scores.iter().enumerate() {
        p.extend(one_token(out, v, cti_threshold, &current, n, cci));
    }
    p
}

/// The lines of one context-sensitive token.
fn one_token(
    out: &AttributeContextOutput,
    v: &Validated,
    cti_threshold: f64,
    current: &[String],
    n: usize,
    cci: &CciOutput,
) -> Vec<Piece> {
    let mut p = vec![
        Piece::Text(format!("#{}.", n + 1)),
        Piece::Bold(format!("\nGenerated output (CTI > {cti_threshold:.3}):")),
        Piece::Text("\t".into()),
    ];
    for (i, tok) in current.iter().enumerate() {
        let shown = Texts::display(tok);
        if i == cci.cti_idx {
            p.push(Piece::Mark(format!("{shown}({:.3})", cci.cti_score), BLUE));
        } else {
            p.push(Piece::Text(shown));
        }
    }
    let all: Vec<f32> = cci
        .input_context_scores
        .iter()
        .flatten()
        .chain(cci.output_context_scores.iter().flatten())
        .map(|&x| x as f32)
        .collect();
    if let (Some(tokens), Some(scores)) = (&out.input_context_tokens, &cci.input_context_scores) {
        p.extend(context_line("Input", tokens, scores, &all, v));
    }
    if let (Some(tokens), Some(scores)) = (&out.output_context_tokens, &cci.output_context_scores) {
        p.extend(context_line("Output", tokens, scores, &all, v));
    }
    if let (Some(c), Some(t)) = (&cci.contextless_output, &cci.contrast_token) {
        p.push(Piece::Bold("\nContextless output:".into()));
        p.push(Piece::Text(format!(
            "\t{c} (contrast token {})",
            Texts::display(t).trim()
        )));
    }
    p.push(Piece::Text("\n".into()));
    p
}

/// The console view; ANSI bold and colours when `color`.
pub fn console(
    out: &AttributeContextOutput,
    v: &Validated,
    cti_threshold: f64,
    color: bool,
) -> String {
    let mut s = String::new();
    for piece in pieces(out, v, cti_threshold) {
        match piece {
            Piece::Text(t) => s.push_str(&t),
            Piece::Bold(t) if color => s.push_str(&format!("\x1b[1m{t}\x1b[0m")),
            Piece::Bold(t) => s.push_str(&t),
            Piece::Mark(t, (r, g, b)) if color => {
                s.push_str(&format!("\x1b[1;38;2;{r};{g};{b}m{t}\x1b[0m"))
            }
            Piece::Mark(t, _) => s.push_str(&t),
        }
    }
    s
}

/// A self-contained HTML page of the view (Inseq writes its console's HTML export).
pub fn html(out: &AttributeContextOutput, v: &Validated, cti_threshold: f64) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = String::new();
    for piece in pieces(out, v, cti_threshold) {
        match piece {
            Piece::Text(t) => body.push_str(&esc(&t)),
            Piece::Bold(t) => body.push_str(&format!("<b>{}</b>", esc(&t))),
            Piece::Mark(t, (r, g, b)) => body.push_str(&format!(
                "<b style=\"color: rgb({r}, {g}, {b})\">{}</b>",
                esc(&t)
            )),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"UTF-8\">\n<title>rinseq attribute-context</title>\n<style>\nbody {{ color: #000; background: #fff; }}\npre {{ font-family: Menlo, 'DejaVu Sans Mono', consolas, 'Courier New', monospace; tab-size: 8; }}\n</style>\n</head>\n<body>\n<pre><code>{body}</code></pre>\n</body>\n</html>\n"
    )
}
