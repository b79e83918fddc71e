//! The SVG figure rasterised in Rust (resvg: usvg parses, tiny-skia paints) at twice its size,
//! with the system's fonts.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{fontdb, Options, Tree};

use crate::output::FeatureAttributionOutput;

use super::svg;
use super::ViewError;

/// Pixels per SVG unit: 2× reads well on screens and prints at about 200 dpi.
const SCALE: f32 = 2.0;
/// The longest side a PNG may have; larger figures are drawn at a smaller scale.
const MAX_SIDE: f32 = 16_384.0;
/// Below this scale the text is unreadable: refuse instead.
const MIN_SCALE: f32 = 0.5;
/// Preferred families for the generic `sans-serif`, first installed wins.
const SANS: [&str; 4] = ["DejaVu Sans", "Liberation Sans", "Arial", "Noto Sans"];

/// The PNG bytes of the figure.
pub(crate) fn render(out: &FeatureAttributionOutput) -> Result<Vec<u8>, ViewError> {
    let text = svg::render(out)?;
    let opts = usvg_options()?;
    let tree = Tree::from_str(&text, &opts).map_err(|e| ViewError::Rasterise(e.to_string()))?;
    let size = tree.size();
    let scale = SCALE.min(MAX_SIDE / size.width().max(size.height()));
    let (width, height) = (
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    );
    let too_large = ViewError::TooLarge {
        width: (size.width() * SCALE).ceil() as u32,
        height: (size.height() * SCALE).ceil() as u32,
    };
    if scale < MIN_SCALE {
        return Err(too_large);
    }
    let mut pixmap = Pixmap::new(width, height).ok_or(too_large)?;
    resvg::render(
        &tree,
        Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| ViewError::Rasterise(e.to_string()))
}

/// usvg options with the system fonts (loaded once per process).
pub(crate) fn usvg_options() -> Result<Options<'static>, ViewError> {
    let fonts = system_fonts();
    if fonts.is_empty() {
        return Err(ViewError::NoFonts);
    }
    Ok(Options {
        fontdb: fonts,
        font_family: SANS[0].to_string(),
        ..Options::default()
    })
}

fn system_fonts() -> Arc<fontdb::Database> {
    static FONTS: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = fontdb::Database::new();
            db.load_system_fonts();
            let installed = |name: &str| {
                db.faces()
                    .any(|f| f.families.iter().any(|(n, _)| n == name))
            };
            if let Some(sans) = SANS.into_iter().find(|s| installed(s)) {
                db.set_sans_serif_family(sans);
            }
            Arc::new(db)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    /// Decoded RGBA pixels, width and height.
    fn decode(bytes: &[u8]) -> (Vec<u8>, u32, u32) {
        let mut decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(::png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, ::png::ColorType::Rgba);
        buf.truncate(info.buffer_size());
        (buf, info.width, info.height)
    }

    #[test]
    fn signed_scores_draw_red_and_blue() {
        let bytes = render(&test_data::two_sequences()).unwrap();
        let (px, w, h) = decode(&bytes);
        assert!(w > 100 && h > 100, "{w}×{h}");
        let pixels: Vec<&[u8]> = px.chunks(4).collect();
        let red = pixels
            .iter()
            .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 90)
            .count();
        let blue = pixels
            .iter()
            .filter(|p| p[2] > 140 && p[0] < 80 && p[1] < 130)
            .count();
        let dark = pixels
            .iter()
            .filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60)
            .count();
        assert!(red > 200 && blue > 200, "red {red}, blue {blue}");
        // Text was drawn (labels are black).
        assert!(dark > 500, "dark {dark}");
    }
}
