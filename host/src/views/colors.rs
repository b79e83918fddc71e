//! Every colour of every view: Inseq's colour range and maps (reference §5.2,
//! `inseq/utils/viz_utils.py`), and the diverging / sequential maps of the figures.

/// Inseq's red for positive scores.
pub(crate) const RED: Rgb = Rgb(178, 24, 43);
/// Inseq's blue for negative scores.
pub(crate) const BLUE: Rgb = Rgb(33, 102, 172);
/// Inseq's near-white middle of its opaque maps.
pub(crate) const BEIGE: Rgb = Rgb(247, 252, 253);
/// Inseq's green (step-score highlights).
pub(crate) const GREEN: Rgb = Rgb(0, 109, 44);

/// An opaque 8-bit colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub(crate) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Black or white, whichever reads better on this colour.
    pub(crate) fn ink(self) -> Rgb {
        let luma =
            0.299 * f32::from(self.0) + 0.587 * f32::from(self.1) + 0.114 * f32::from(self.2);
        if luma < 140.0 {
            Rgb(255, 255, 255)
        } else {
            Rgb(0, 0, 0)
        }
    }

    /// ANSI 24-bit background with this colour and readable foreground text.
    pub(crate) fn ansi_background(self) -> String {
        let ink = self.ink();
        format!(
            "\x1b[48;2;{};{};{}m\x1b[38;2;{};{};{}m",
            self.0, self.1, self.2, ink.0, ink.1, ink.2
        )
    }

    fn lerp(self, to: Rgb, t: f32) -> Rgb {
        let c = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
        Rgb(c(self.0, to.0), c(self.1, to.1), c(self.2, to.2))
    }
}

/// A colour with opacity: channels in `0..=255`, alpha in `0..=1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rgba {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub a: f32,
}

impl Rgba {
    /// CSS `rgba(r, g, b, a)`.
    pub(crate) fn css(self) -> String {
        format!(
            "rgba({}, {}, {}, {:.3})",
            self.r.round(),
            self.g.round(),
            self.b.round(),
            self.a
        )
    }

    /// The colour as seen on a white page (for media without transparency, e.g. LaTeX).
    pub(crate) fn over_white(self) -> Rgb {
        let c = |v: f32| {
            (v * self.a + 255.0 * (1.0 - self.a))
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Rgb(c(self.r), c(self.g), c(self.b))
    }
}

/// The score interval mapped onto a colour map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Range {
    /// The score shown with the map's first colour.
    pub min: f32,
    /// The score shown with the map's last colour.
    pub max: f32,
}

impl Range {
    /// Inseq's range: `max` = the largest score shown (NaN as 0) and `min = -max`. Where Inseq
    /// would divide by zero (no positive score) the largest magnitude is used instead, or 1.
    pub(crate) fn inseq(scores: impl Iterator<Item = f32> + Clone) -> Self {
        let max = scores
            .clone()
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::max);
        let max = if max > 0.0 { max } else { magnitude(scores) };
        Self { min: -max, max }
    }

    /// The figures' range: symmetric `[-m, m]` for signed scores, `[0, max]` otherwise.
    pub(crate) fn figure(scores: impl Iterator<Item = f32> + Clone) -> Self {
        let signed = scores.clone().any(|v| v.is_finite() && v < 0.0);
        let m = magnitude(scores);
        Self {
            min: if signed { -m } else { 0.0 },
            max: m,
        }
    }

    /// Whether the range holds negative scores (a diverging map fits).
    pub(crate) fn is_signed(self) -> bool {
        self.min < 0.0
    }

    /// `score` as a fraction of the range (Inseq's `(score - min) / (max - min)`), unclamped.
    pub(crate) fn scaled(self, score: f32) -> f32 {
        (score - self.min) / (self.max - self.min)
    }
}

/// The largest finite magnitude, or 1 when there is none (so ranges never collapse).
fn magnitude(scores: impl Iterator<Item = f32>) -> f32 {
    let m = scores
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// Inseq's `red_transparent_blue` map as matplotlib samples it: 200 anchors (blue fading out,
/// then red fading in) resampled into a 256-entry table, looked up at `floor(t * 256)`. NaN is
/// fully transparent (matplotlib's "bad" colour).
pub(crate) fn red_transparent_blue(t: f32) -> Rgba {
    const ANCHORS: usize = 200;
    const LUT: usize = 256;
    if t.is_nan() {
        return Rgba {
            r: 0.0,
            g: 0.0,
            b: 0.0,
            a: 0.0,
        };
    }
    let anchor = |i: usize| -> [f32; 4] {
        let half = ANCHORS / 2;
        let (c, a) = if i < half {
            (BLUE, 1.0 - i as f32 / (half - 1) as f32)
        } else {
            (RED, (i - half) as f32 / (half - 1) as f32)
        };
        [f32::from(c.0), f32::from(c.1), f32::from(c.2), a]
    };
    let k = ((t * LUT as f32).floor() as isize).clamp(0, LUT as isize - 1) as f32;
    // The table entry's position among the anchors.
    let pos = k / (LUT - 1) as f32 * (ANCHORS - 1) as f32;
    let i = (pos.floor() as usize).min(ANCHORS - 2);
    let f = pos - i as f32;
    let (lo, hi) = (anchor(i), anchor(i + 1));
    let mix = |c: usize| lo[c] + (hi[c] - lo[c]) * f;
    Rgba {
        r: mix(0),
        g: mix(1),
        b: mix(2),
        a: mix(3),
    }
}

/// The figures' diverging map (Inseq's treescope `blue_to_red`): blue → near-white → red.
pub(crate) fn diverging(t: f32) -> Rgb {
    let t = clamp01(t);
    if t < 0.5 {
        BLUE.lerp(BEIGE, t * 2.0)
    } else {
        BEIGE.lerp(RED, (t - 0.5) * 2.0)
    }
}

/// The figures' sequential map for non-negative scores: near-white → red.
pub(crate) fn sequential(t: f32) -> Rgb {
    BEIGE.lerp(RED, clamp01(t))
}

/// The step-score map (Inseq's treescope `greens`): near-white → green.
pub(crate) fn greens(t: f32) -> Rgb {
    BEIGE.lerp(GREEN, clamp01(t))
}

/// The colour of `score` in a figure: diverging for a signed range, sequential otherwise.
pub(crate) fn figure_color(range: Range, score: f32) -> Rgb {
    if range.is_signed() {
        diverging(range.scaled(score))
    } else {
        sequential(range.scaled(score))
    }
}

/// The colour stops of the figure map for `range` (for gradients): position in `0..=1`, colour.
pub(crate) fn figure_stops(range: Range) -> Vec<(f32, Rgb)> {
    if range.is_signed() {
        vec![(0.0, BLUE), (0.5, BEIGE), (1.0, RED)]
    } else {
        vec![(0.0, BEIGE), (1.0, RED)]
    }
}

fn clamp01(t: f32) -> f32 {
    if t.is_nan() {
        0.5
    } else {
        t.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_transparent_blue_matches_inseq_ends_and_middle() {
        let lo = red_transparent_blue(0.0);
        assert_eq!((lo.r, lo.g, lo.b, lo.a), (33.0, 102.0, 172.0, 1.0));
        let hi = red_transparent_blue(1.0);
        assert_eq!((hi.r, hi.g, hi.b, hi.a), (178.0, 24.0, 43.0, 1.0));
        // matplotlib: cmap(0.5) is table entry 128, between the two clear anchors.
        let mid = red_transparent_blue(0.5);
        assert!(mid.a < 0.01, "{mid:?}");
        assert_eq!(red_transparent_blue(f32::NAN).a, 0.0);
        assert_eq!(red_transparent_blue(7.0), hi);
        let half = red_transparent_blue(0.75);
        assert!((half.a - 0.5).abs() < 0.01 && half.r == 178.0, "{half:?}");
    }

    #[test]
    fn ranges_follow_inseq_and_never_collapse() {
        let r = Range::inseq([0.5, -2.0, f32::NAN].into_iter());
        assert_eq!((r.min, r.max), (-0.5, 0.5));
        let r = Range::inseq([-2.0, f32::NAN].into_iter());
        assert_eq!((r.min, r.max), (-2.0, 2.0));
        let r = Range::figure([0.5, 0.25].into_iter());
        assert_eq!((r.min, r.max, r.is_signed()), (0.0, 0.5, false));
        let r = Range::figure([0.5, -2.0].into_iter());
        assert_eq!((r.min, r.max, r.is_signed()), (-2.0, 2.0, true));
        let r = Range::figure([f32::NAN, 0.0].into_iter());
        assert_eq!((r.min, r.max), (0.0, 1.0));
    }

    #[test]
    fn figure_maps_are_blue_white_red() {
        let signed = Range {
            min: -1.0,
            max: 1.0,
        };
        assert_eq!(figure_color(signed, -1.0), BLUE);
        assert_eq!(figure_color(signed, 0.0), BEIGE);
        assert_eq!(figure_color(signed, 1.0), RED);
        let positive = Range { min: 0.0, max: 2.0 };
        assert_eq!(figure_color(positive, 0.0), BEIGE);
        assert_eq!(figure_color(positive, 2.0), RED);
        assert_eq!(RED.hex(), "#b2182b");
        assert_eq!(BEIGE.ink(), Rgb(0, 0, 0));
        assert_eq!(BLUE.ink(), Rgb(255, 255, 255));
    }
}
