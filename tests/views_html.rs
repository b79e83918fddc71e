//! The HTML view in a real browser: Debian's headless Chromium renders the page of a small
//! two-sequence output; the screenshot must show the heatmap's red and blue, and the rendered
//! DOM must hold every token. In CI (`CI` set) a missing Chromium fails the test; elsewhere it
//! is skipped with a message. `RINSEQ_VIEWS_OUT=<dir>` keeps the page and the screenshot there.

#[path = "views_fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rinseq::views::{render, Format, ViewOptions};

const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];
const TIMEOUT: Duration = Duration::from_secs(120);

/// The first browser on `PATH`.
fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| BROWSERS.iter().map(move |b| dir.join(b)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `extra` flags and a fresh profile, killed after
/// [`TIMEOUT`].
fn chromium(browser: &Path, page: &Path, profile: &Path, extra: &[String]) -> Output {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    while child.try_wait().expect("wait for chromium").is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("chromium output")
}

/// RGBA pixels, width and height of a PNG file.
fn decode(path: &Path) -> (Vec<u8>, u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("screenshot"));
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgba);
    (buf, info.width, info.height)
}

#[test]
fn chromium_renders_the_heatmaps() {
    let Some(browser) = find_browser() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed: CI must install it (.ci/run: apt-get install chromium)"
            );
        }
        eprintln!(
            "skipped: chromium is not installed (apt-get install chromium fonts-dejavu-core)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("attributions.html");
    let out = fixture::output();
    let html = render(&out, Format::Html, &ViewOptions::default()).unwrap();
    std::fs::write(&page, &html).unwrap();

    let shot = dir.path().join("screenshot.png");
    let run = chromium(
        &browser,
        &page,
        &dir.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display())],
    );
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    if let Some(keep) = std::env::var_os("RINSEQ_VIEWS_OUT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("attributions.html")).unwrap();
        std::fs::copy(&shot, keep.join("attributions-html.png")).unwrap();
    }
    let (px, w, h) = decode(&shot);
    assert_eq!((w, h), (1200, 900));
    let pixels: Vec<&[u8]> = px.chunks(4).collect();
    let white = pixels
        .iter()
        .filter(|p| p[0] > 245 && p[1] > 245 && p[2] > 245)
        .count();
    assert!(white < pixels.len() * 99 / 100, "the page is blank");
    // Inseq's red (178, 24, 43) and blue (33, 102, 172), nearly opaque at the extremes.
    let red = pixels
        .iter()
        .filter(|p| p[0] > 150 && p[1] < 90 && p[2] < 100)
        .count();
    let blue = pixels
        .iter()
        .filter(|p| p[2] > 140 && p[0] < 100 && p[1] < 140)
        .count();
    assert!(red > 300, "too few red pixels: {red}");
    assert!(blue > 300, "too few blue pixels: {blue}");

    let run = chromium(
        &browser,
        &page,
        &dir.path().join("profile-dom"),
        &["--dump-dom".into()],
    );
    let dom = String::from_utf8_lossy(&run.stdout);
    assert!(
        dom.contains("<table"),
        "no DOM: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (token, shown) in fixture::SHOWN {
        let text = shown.replace('<', "&lt;").replace('>', "&gt;");
        assert!(
            dom.contains(&format!(">{text}</th>")),
            "{token} ({shown}) not in the DOM"
        );
    }
    for heading in [
        "Sequence 0",
        "Sequence 1",
        "Source Saliency Heatmap",
        "probability",
    ] {
        assert!(dom.contains(heading), "{heading} not in the DOM");
    }
}
