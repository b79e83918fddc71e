//! A LaTeX snippet: per sequence, one line per generated token with the tokens it attends to
//! in `\colorbox`es (Inseq's `red_transparent_blue` on Inseq's range, flattened onto white
//! since LaTeX boxes are opaque), source tokens then target tokens, and its step scores.

use std::fmt::Write;

use crate::output::FeatureAttributionOutput;

use super::colors::{red_transparent_blue, Range};
use super::labels::{show, NumberFormat};
use super::matrix::{self, SequenceView};
use super::ViewError;

const PREAMBLE: &str = "\
% Attributions as LaTeX, written by rinseq.
% Needs in the preamble: \\usepackage{xcolor} and \\usepackage[T1]{fontenc}
% (for \\textvisiblespace, \\textless, ...). Tokens outside Latin scripts need XeLaTeX or LuaLaTeX.
% Each line: a generated token, then the tokens it was attributed to, coloured from blue
% (negative) through white (0) to red (positive); source and target tokens are split by a bar.
";

/// The snippet for every sequence of `out`.
pub(crate) fn render(out: &FeatureAttributionOutput) -> Result<String, ViewError> {
    let views = matrix::sequences(out)?;
    let scores: Vec<f32> = views.iter().flat_map(|v| v.scores()).collect();
    let range = Range::inseq(scores.into_iter());
    let mut tex = String::from(PREAMBLE);
    let f = NumberFormat::for_values([range.max].into_iter(), 3);
    let _ = writeln!(
        tex,
        "% Colour range: {} (blue) to {} (red).",
        f.format(range.min),
        f.format(range.max)
    );
    for view in &views {
        sequence(&mut tex, view, range);
    }
    Ok(tex)
}

fn sequence(tex: &mut String, view: &SequenceView<'_>, range: Range) {
    let _ = writeln!(
        tex,
        "\n% Sequence {i}\n\\par\\medskip\\noindent\\textbf{{Sequence {i}}}\\par\n\\begingroup\\setlength{{\\fboxsep}}{{1pt}}%",
        i = view.index
    );
    let formats: Vec<NumberFormat> = view
        .step_scores
        .iter()
        .map(|s| NumberFormat::for_values(s.values.iter().copied(), 3))
        .collect();
    for (j, generated) in view.generated.iter().enumerate() {
        let _ = write!(tex, "\\noindent\\textbf{{{}}}:", escape(&generated.token));
        for (k, heatmap) in view.heatmaps.iter().enumerate() {
            if k > 0 {
                tex.push_str(" \\textbar{}");
            }
            for (i, tok) in heatmap.rows.iter().enumerate() {
                let v = heatmap.get(i, j);
                // Tokens not visible at this step are left out.
                if v.is_nan() {
                    continue;
                }
                let c = red_transparent_blue(range.scaled(v)).over_white();
                let _ = write!(
                    tex,
                    " \\colorbox[RGB]{{{},{},{}}}{{\\strut {}}}",
                    c.0,
                    c.1,
                    c.2,
                    escape(&tok.token)
                );
            }
        }
        let scores: Vec<String> = view
            .step_scores
            .iter()
            .zip(&formats)
            .map(|(s, f)| format!("{}~{}", escape(s.name), f.format(s.values[j])))
            .collect();
        if !scores.is_empty() {
            let _ = write!(tex, " \\hfill{{\\small {}}}", scores.join(", "));
        }
        tex.push_str("\\par\n");
    }
    tex.push_str("\\endgroup\n");
}

/// `token` readable (see [`show`]) and safe in LaTeX text mode.
fn escape(token: &str) -> String {
    let mut out = String::new();
    for c in show(token).chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '|' => out.push_str("\\textbar{}"),
            '␣' => out.push_str("\\textvisiblespace{}"),
            '⏎' => out.push_str("\\textbackslash{}n"),
            '⇥' => out.push_str("\\textbackslash{}t"),
            '\u{fffd}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    #[test]
    fn specials_are_escaped() {
        assert_eq!(
            escape(r"50%_$#{x}~^\&"),
            r"50\%\_\$\#\{x\}\textasciitilde{}\textasciicircum{}\textbackslash{}\&"
        );
        assert_eq!(
            escape("Ġa<b>"),
            r"\textvisiblespace{}a\textless{}b\textgreater{}"
        );
        let tex = render(&test_data::special_tokens()).unwrap();
        assert!(
            tex.contains(r"{\strut \textless{}b\textgreater{}}"),
            "{tex}"
        );
        assert!(
            tex.contains(r"\textbf{\{x\}\textasciitilde{}\textasciicircum{}\textbackslash{}}:"),
            "{tex}"
        );
        // No raw special outside commands: every % starts a comment line or is escaped.
        for line in tex.lines().filter(|l| !l.starts_with('%')) {
            let bare = line.replace(r"\%", "");
            assert!(!bare.trim_end_matches('%').contains('%'), "{line}");
        }
    }

    #[test]
    fn one_line_per_generated_token_with_visible_tokens_only() {
        let tex = render(&test_data::two_sequences()).unwrap();
        assert!(tex.starts_with("% Attributions as LaTeX"));
        assert!(tex.contains(r"\usepackage{xcolor}"));
        assert!(tex.contains(r"\textbf{Sequence 0}") && tex.contains(r"\textbf{Sequence 1}"));
        // Decoder-only, step 0 (`Ġthere`) sees `ĠHi` only, with score 1.0: Inseq's red.
        let line = tex
            .lines()
            .find(|l| l.starts_with(r"\noindent\textbf{\textvisiblespace{}there}"))
            .unwrap();
        assert_eq!(line.matches("\\colorbox").count(), 1, "{line}");
        assert!(line.contains(r"\colorbox[RGB]{178,24,43}{\strut \textvisiblespace{}Hi}"));
        assert!(
            line.ends_with(r"\hfill{\small probability~0.500}\par"),
            "{line}"
        );
        // Encoder-decoder: 3 source tokens, a bar, then the visible target prefix.
        let line = tex
            .lines()
            .find(|l| l.starts_with(r"\noindent\textbf{\textvisiblespace{}mondo}"))
            .unwrap();
        assert_eq!(line.matches("\\colorbox").count(), 5, "{line}");
        assert!(line.contains(r"\textbar{}"));
        assert_eq!(
            tex.matches("\\begingroup").count(),
            tex.matches("\\endgroup").count()
        );
    }
}
