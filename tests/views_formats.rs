//! Every view format through the public API on a small two-sequence output. With
//! `RINSEQ_VIEWS_OUT=<dir>` the files are also written there, to look at.

#[path = "views_fixture.rs"]
mod fixture;

use rinseq::views::{console, console_color_wanted, render, Format, ViewOptions};

fn keep(format: Format, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("RINSEQ_VIEWS_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("attributions.{}", format.extension())),
            bytes,
        )
        .unwrap();
    }
}

#[test]
fn every_format_renders_every_sequence() {
    let out = fixture::output();
    for format in Format::ALL {
        let bytes = render(&out, format, &ViewOptions::default()).unwrap();
        keep(format, &bytes);
        if format == Format::Png {
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        match format {
            Format::Csv => {
                // Visible cells: 9 (decoder-only) + 9 (source) + 6 (target).
                assert_eq!(text.lines().count(), 1 + 9 + 9 + 6, "{text}");
            }
            Format::Svg => assert!(text.starts_with("<svg") && text.contains("Sequence 1")),
            _ => assert!(text.contains("Sequence 1"), "{format}: {text}"),
        }
    }
}

#[test]
fn console_is_plain_without_colour_and_honours_no_color() {
    let out = fixture::output();
    let plain = console(&out, false);
    assert!(!plain.contains('\x1b'));
    let ansi = render(&out, Format::Console, &ViewOptions { color: true }).unwrap();
    assert!(String::from_utf8(ansi).unwrap().contains("\x1b[48;2;"));
    // Test output is captured (not a terminal), and NO_COLOR turns colour off anyway.
    assert!(!console_color_wanted());
    std::env::set_var("NO_COLOR", "1");
    assert!(!console_color_wanted());
}

/// A decoder-only sequence of 30 prompt and 24 generated tokens, some long, with scores of
/// mixed sign (a realistic size for a figure).
fn long_output() -> rinseq::output::FeatureAttributionOutput {
    use rinseq::output::{FeatureAttributionSequenceOutput, SequenceClass, TokenWithId};
    let (prompt, generated) = (30, 24);
    let n = prompt + generated;
    let target: Vec<TokenWithId> = (0..n)
        .map(|i| {
            let text = match i % 7 {
                0 => "Ġinternationalization".to_string(),
                3 => "Ċ".to_string(),
                _ => format!("Ġw{i}"),
            };
            TokenWithId::new(text, i as i64)
        })
        .collect();
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        target[..prompt].to_vec(),
        target.clone(),
        prompt,
        n,
    );
    let data: Vec<f32> = (0..n * generated)
        .map(|k| {
            let (i, j) = (k / generated, k % generated);
            if i >= prompt + j {
                f32::NAN
            } else {
                ((i * 7 + j * 3) as f32).sin() * 0.5
            }
        })
        .collect();
    seq.target_attributions = Some(rinseq_sdk::Tensor::new(vec![n, generated], data).unwrap());
    let p: Vec<f32> = (0..generated).map(|j| 1.0 / (1.0 + j as f32)).collect();
    seq.step_scores.insert(
        "probability".into(),
        rinseq_sdk::Tensor::new(vec![generated], p).unwrap(),
    );
    rinseq::output::FeatureAttributionOutput::new(vec![seq], Default::default())
}

#[test]
fn a_long_sequence_makes_a_reasonable_figure() {
    let out = long_output();
    let svg = render(&out, Format::Svg, &ViewOptions::default()).unwrap();
    let png = render(&out, Format::Png, &ViewOptions::default()).unwrap();
    if let Some(dir) = std::env::var_os("RINSEQ_VIEWS_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("long.svg"), &svg).unwrap();
        std::fs::write(dir.join("long.png"), &png).unwrap();
    }
    // PNG header: width and height, big-endian, at bytes 16..24.
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(
        (1000..6000).contains(&w) && (1000..8000).contains(&h),
        "{w}×{h}"
    );
}
