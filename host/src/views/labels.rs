//! How tokens and numbers read in every view: tokenizer markers made visible, labels clipped,
//! and a number format picked from the magnitude of the values it shows.

use unicode_width::UnicodeWidthStr;

/// A token as shown: byte-level BPE (`Ġ`, `Ċ`, `ĉ`) and SentencePiece (`▁`) markers and real
/// whitespace as visible signs (`␣`, `⏎`, `⇥`), other control characters as `�`, so that every
/// token is visible and none breaks a table, a terminal or an XML file.
pub(crate) fn show(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            'Ġ' | '▁' | ' ' => '␣',
            'Ċ' | '\n' | '\r' => '⏎',
            'ĉ' | '\t' => '⇥',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// Display width of `s` in terminal columns (wide CJK characters count 2).
pub(crate) fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` columns, with `…` where it was cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if width(&out) + width(c.encode_utf8(&mut [0; 4])) + 1 > max {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// `s` right-aligned in `cols` terminal columns.
pub(crate) fn pad_left(s: &str, cols: usize) -> String {
    format!("{}{s}", " ".repeat(cols.saturating_sub(width(s))))
}

/// How a group of numbers is written: fixed decimals, or scientific when the largest magnitude
/// is so small (or large) that fixed decimals would print zeros (or overflow a cell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumberFormat {
    /// `{:.N}`.
    Fixed(usize),
    /// `{:.Ne}`, e.g. `1.50e-5`.
    Scientific(usize),
}

impl NumberFormat {
    /// The format for `values` (NaN ignored) with `decimals` decimals in the usual range:
    /// one more decimal below 0.1, scientific below 0.01 and from 100 000 on.
    pub(crate) fn for_values(values: impl Iterator<Item = f32>, decimals: usize) -> Self {
        let m = values
            .filter(|v| v.is_finite())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        if m == 0.0 {
            Self::Fixed(decimals)
        } else if !(0.01..1e5).contains(&m) {
            Self::Scientific(2)
        } else if m < 0.1 {
            Self::Fixed(decimals + 1)
        } else {
            Self::Fixed(decimals)
        }
    }

    /// The format for a row of independent scores (step scores: each generated token's own
    /// probability, often orders of magnitude apart): like [`for_values`](Self::for_values),
    /// but scientific as soon as a non-zero value would print as zero.
    pub(crate) fn for_scores(values: &[f32], decimals: usize) -> Self {
        let f = Self::for_values(values.iter().copied(), decimals);
        let vanishes = |v: &f32| {
            v.is_finite()
                && *v != 0.0
                && f.format(*v)
                    .trim_start_matches('-')
                    .chars()
                    .all(|c| matches!(c, '0' | '.'))
        };
        if matches!(f, Self::Fixed(_)) && values.iter().any(vanishes) {
            Self::Scientific(2)
        } else {
            f
        }
    }

    /// `v` in this format; NaN as an empty string.
    pub(crate) fn format(self, v: f32) -> String {
        if v.is_nan() {
            return String::new();
        }
        let s = match self {
            Self::Fixed(d) => format!("{v:.d$}"),
            Self::Scientific(d) => format!("{v:.d$e}"),
        };
        // A tiny negative score rounds to "-0.00": show it as zero.
        match s.strip_prefix('-') {
            Some(rest) if rest.chars().all(|c| matches!(c, '0' | '.')) => rest.to_string(),
            _ => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_show_markers_and_whitespace() {
        assert_eq!(show("ĠHello"), "␣Hello");
        assert_eq!(show("▁world"), "␣world");
        assert_eq!(show("Ċ\n\t\u{1b}x"), "⏎⏎⇥\u{fffd}x");
    }

    #[test]
    fn clip_and_pad_count_columns() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(width("日本"), 4);
        assert_eq!(pad_left("日", 4), "  日");
    }

    #[test]
    fn step_scores_orders_of_magnitude_apart_stay_readable() {
        let f = NumberFormat::for_scores(&[0.0268, 0.0101, 3.2e-5], 3);
        assert_eq!(f, NumberFormat::Scientific(2));
        assert_eq!(f.format(3.2e-5), "3.20e-5");
        assert_eq!(
            NumberFormat::for_scores(&[0.5, 0.25, 0.0], 3),
            NumberFormat::Fixed(3)
        );
    }

    #[test]
    fn number_format_keeps_small_scores_readable() {
        let f = NumberFormat::for_values([1.5e-5, -3e-5, f32::NAN].into_iter(), 2);
        assert_eq!(f, NumberFormat::Scientific(2));
        assert_eq!(f.format(1.5e-5), "1.50e-5");
        let f = NumberFormat::for_values([0.05, 0.01].into_iter(), 2);
        assert_eq!(f.format(0.05), "0.050");
        let f = NumberFormat::for_values([0.5, 1.25].into_iter(), 2);
        assert_eq!(f.format(0.126), "0.13");
        assert_eq!(f.format(f32::NAN), "");
        assert_eq!(f.format(-0.001), "0.00");
        assert_eq!(f.format(-0.01), "-0.01");
        let f = NumberFormat::for_values([2e6].into_iter(), 2);
        assert_eq!(f.format(2e6), "2.00e6");
        assert_eq!(
            NumberFormat::for_values([0.0].into_iter(), 3).format(0.0),
            "0.000"
        );
    }
}
