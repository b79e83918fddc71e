//! `rinseq aggregate`, `rinseq diff` and `rinseq show` on saved Inseq files: results, the
//! aggregation history, and one-line errors (before any work) for bad inputs.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use plugin_support::build::{root, workspace_plugin};
use rinseq::output::FeatureAttributionOutput;

fn rinseq(args: &[&str]) -> (i32, String, String) {
    workspace_plugin("rinseq_aggregators");
    let out = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .args(args)
        .current_dir(root())
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("RINSEQ_REGISTRY")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/inseq_json")
        .join(name)
        .display()
        .to_string()
}

fn out_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn aggregate_saves_a_two_dimensional_file_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(dir.path(), "agg.json");
    let (code, _, err) = rinseq(&[
        "aggregate",
        &fixture("gpt2_saliency.json"),
        "--aggregator",
        "scores",
        "--aggregate-fn",
        "sum",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let agg = FeatureAttributionOutput::load(&out).unwrap();
    let raw = FeatureAttributionOutput::load(fixture("gpt2_saliency.json")).unwrap();
    let (a, r) = (&agg.sequence_attributions[0], &raw.sequence_attributions[0]);
    let t = a.target_attributions.as_ref().unwrap();
    let rt = r.target_attributions.as_ref().unwrap();
    assert_eq!(&t.shape[..], &rt.shape[..2]);
    assert_eq!(a.target, r.target);
    // Each generated-token column is L1-normalised (sum over hidden, then normalise).
    let (rows, cols) = (t.shape[0], t.shape[1]);
    for j in 0..cols {
        let s: f32 = (0..rows)
            .map(|i| t.data[i * cols + j])
            .filter(|v| !v.is_nan())
            .map(f32::abs)
            .sum();
        assert!((s - 1.0).abs() < 1e-4, "column {j} sums to {s}");
    }
    let hist = &agg.info["aggregation"][0];
    assert_eq!(hist["aggregators"], serde_json::json!(["scores"]));
    assert_eq!(hist["aggregate_fn"], serde_json::json!(["sum"]));
}

#[test]
fn diff_of_a_file_with_itself_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(dir.path(), "diff.json");
    let f = fixture("gpt2_saliency.json");
    let (code, _, err) = rinseq(&["diff", &f, &f, "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let d = FeatureAttributionOutput::load(&out).unwrap();
    let t = d.sequence_attributions[0]
        .target_attributions
        .as_ref()
        .unwrap();
    assert!(t.data.iter().all(|v| v.is_nan() || *v == 0.0));
}

#[test]
fn show_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("marian_saliency.json.gz");
    for format in ["html", "svg", "png", "csv", "tex"] {
        let out = out_path(dir.path(), &format!("view.{format}"));
        let (code, _, err) = rinseq(&[
            "show",
            &f,
            "--aggregator",
            "subwords",
            "--aggregator",
            "vnorm",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{format}: {err}");
        let bytes = std::fs::read(&out).unwrap();
        assert!(!bytes.is_empty(), "{format}");
    }
    let csv = std::fs::read_to_string(out_path(dir.path(), "view.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "sequence,step,generated_token,attributed_side,attributed_index,attributed_token,score"
    );
    let (code, out, err) = rinseq(&["show", &f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("▁") || out.contains("␣"), "{out}");
    assert!(!out.contains("\x1b["), "piped output is plain");
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let f = fixture("gpt2_saliency.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "aggregate",
                &f,
                "--aggregator",
                "spanz",
                "-o",
                "/tmp/x.json",
            ],
            "spans",
        ),
        (
            vec![
                "aggregate",
                &f,
                "--aggregator",
                "scores",
                "--aggregator-kwargs",
                "{\"source_span\": [1, 2]}",
                "-o",
                "/tmp/x.json",
            ],
            "source_span",
        ),
        (
            vec![
                "aggregate",
                &f,
                "--aggregator",
                "spans",
                "--aggregator",
                "scores",
                "--aggregate-fn",
                "sum",
                "-o",
                "/tmp/x.json",
            ],
            "one --aggregate-fn per --aggregator",
        ),
        (
            vec!["aggregate", &f, "-o", "/no/such/folder/x.json"],
            "does not exist",
        ),
        // Fails before loading the model or any plugin work.
        (
            vec![
                "attribute",
                "-m",
                "tests/fixtures/models/gpt2",
                "-i",
                "Hello",
                "-o",
                "/no/such/folder/out.json",
            ],
            "does not exist",
        ),
        (
            vec!["aggregate", "/no/such/file.json", "-o", "/tmp/x.json"],
            "/no/such/file.json",
        ),
        (
            vec![
                "show",
                &f,
                "--aggregator",
                "spans",
                "--aggregator-kwargs",
                "{\"target_spans\": [[3, 1]]}",
            ],
            "spans",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = rinseq(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
