//! A readable terminal heatmap of aggregated scores: attributed tokens × generated tokens, then
//! one row per step score (Inseq's console view).

use std::fmt::Write;

use rinseq_sdk::{SequenceAttribution, Tensor, Token};

/// Renders one sequence; `color` adds ANSI background colours (blue negative, red positive).
pub fn render(seq: &SequenceAttribution, color: bool) -> String {
    let mut out = String::new();
    let generated = &seq.target[seq.attr_pos_start..seq.attr_pos_end];
    let width = widest(generated.iter().map(show)).clamp(6, 12);
    let label = widest(
        seq.source
            .iter()
            .chain(seq.target.iter())
            .map(show)
            .chain(seq.scores.step_scores.iter().map(|s| s.name.to_string())),
    )
    .clamp(6, 16);
    let tables: [(&str, Option<&Tensor>, &[Token]); 2] = [
        (
            "Source",
            seq.scores.source.as_ref().into_option(),
            &seq.source,
        ),
        (
            "Target",
            seq.scores.target.as_ref().into_option(),
            &seq.target,
        ),
    ];
    for (title, t, rows) in tables {
        let Some(t) = t else { continue };
        if t.ndim() != 2 {
            let _ = writeln!(
                out,
                "{title} scores have shape {:?}: aggregate them to show a heatmap",
                t.shape.as_slice()
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{title} attributions (→ generated tokens, ↓ attributed tokens)"
        );
        let _ = write!(out, "{:>label$} ", "");
        for g in generated {
            let _ = write!(out, " {:>width$}", clip(&show(g), width));
        }
        out.push('\n');
        let steps = t.shape[1];
        for (i, tok) in rows.iter().enumerate().take(t.shape[0]) {
            let _ = write!(out, "{:>label$} ", clip(&show(tok), label));
            for j in 0..steps.min(generated.len()) {
                let _ = write!(out, " {}", cell(t.data[i * steps + j], width, color));
            }
            out.push('\n');
        }
    }
    for s in seq.scores.step_scores.iter() {
        let _ = write!(out, "{:>label$} ", clip(s.name.as_str(), label));
        for v in s.tensor.data.iter() {
            let _ = write!(out, " {v:>width$.3}");
        }
        out.push('\n');
    }
    out
}

fn widest(items: impl Iterator<Item = String>) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(4)
}

/// A token as shown: byte-level BPE and SentencePiece markers as visible spaces / newlines.
fn show(t: &Token) -> String {
    t.text.replace(['Ġ', '▁'], "␣").replace(['Ċ', '\n'], "⏎")
}

fn clip(s: &str, w: usize) -> String {
    s.chars().take(w).collect()
}

fn cell(v: f32, width: usize, color: bool) -> String {
    if v.is_nan() {
        return " ".repeat(width);
    }
    let text = format!("{v:>width$.2}");
    if !color {
        return text;
    }
    let a = v.abs().min(1.0);
    let fade = (255.0 * (1.0 - a)) as u8;
    let (r, g, b) = if v >= 0.0 {
        (255, fade, fade)
    } else {
        (fade, fade, 255)
    };
    format!("\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rinseq_sdk::{NamedTensor, SequenceScores};

    #[test]
    fn renders_tokens_scores_and_blank_nan_cells() {
        let tok = |s: &str, i| Token::new(s, i);
        let seq = SequenceAttribution {
            source: vec![tok("ĠHi", 1)].into(),
            target: vec![tok("ĠHi", 1), tok("Ġthere", 2), tok("!", 3)].into(),
            attr_pos_start: 1,
            attr_pos_end: 3,
            scores: SequenceScores {
                target: Some(
                    Tensor::new(
                        vec![3, 2],
                        vec![1.0, 0.25, f32::NAN, 0.75, f32::NAN, f32::NAN],
                    )
                    .unwrap(),
                )
                .into(),
                step_scores: vec![NamedTensor::new(
                    "probability",
                    Tensor::new(vec![2], vec![0.5, 0.125]).unwrap(),
                )]
                .into(),
                ..Default::default()
            },
        };
        let text = render(&seq, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Target attributions"));
        assert!(lines[1].contains("␣there") && lines[1].contains('!'));
        assert!(
            lines[2].trim_start().starts_with("␣Hi")
                && lines[2].contains("1.00")
                && lines[2].contains("0.25")
        );
        assert!(lines[3].contains("0.75") && !lines[3].contains("NaN"));
        assert!(
            lines[5].contains("probability")
                && lines[5].contains("0.500")
                && lines[5].contains("0.125")
        );
    }
}
