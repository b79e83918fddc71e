//! The library API (`rinseq::load_model(...).attribute(...)`): the file `Attribution::save`
//! writes is the one `rinseq attribute -o` writes, step attributions and aggregation follow the
//! request, and bad arguments fail with one line.

mod parity_support;
mod plugin_support;

use std::process::Command;

use parity_support::{api_model, workspace_sources};
use plugin_support::build::root;
use rinseq::{AggregationSpec, AttributionModel, FeatureAttributionOutput, LoadOptions};
use serde_json::json;

const PROMPT: &str = "The capital of France is";
const FORCED: &str = "The capital of France is the city";

/// A saved file, loaded back, without the run time (as text: NaN scores compare equal).
fn saved(path: &std::path::Path) -> String {
    let mut out = FeatureAttributionOutput::load(path).unwrap();
    out.info.remove("exec_time");
    format!("{out:?}")
}

#[test]
fn save_writes_what_the_cli_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = root().join("tests/fixtures/models/gpt2");
    let model_arg = model_dir.to_str().unwrap();
    let model = AttributionModel::load_with(
        model_arg,
        "saliency",
        LoadOptions::default().plugin_sources(workspace_sources()),
    )
    .unwrap();
    let out = model
        .attribute([PROMPT])
        .generation_kwargs_json(json!({"max_new_tokens": 3}))
        .step_scores(["probability"])
        .output_step_attributions(true)
        .run()
        .unwrap();
    let api_path = tmp.path().join("api.json");
    assert_eq!(out.save(&api_path).unwrap(), vec![api_path.clone()]);
    let cli_path = tmp.path().join("cli.json");
    let plugins: Vec<String> = workspace_sources()
        .extra
        .iter()
        .flat_map(|p| ["--plugin".to_string(), p.display().to_string()])
        .collect();
    let status = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .args(["--registry", "/dev/null"])
        .args(&plugins)
        .args(["attribute", "-m", model_arg, "-i", PROMPT, "--step-scores"])
        .args([
            "probability",
            "--output-step-attributions",
            "--hide-attributions",
        ])
        .args([
            "--generation-kwargs",
            r#"{"max_new_tokens": 3}"#,
            "--quiet",
            "-o",
        ])
        .arg(&cli_path)
        .env_remove("RINSEQ_PLUGIN_PATH")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        saved(&api_path) == saved(&cli_path),
        "the API and the CLI saved different files"
    );
    let with_steps = out.into_output();
    assert_eq!(with_steps.step_attributions.map(|s| s.len()), Some(3));
}

#[test]
fn aggregate_and_views_follow_the_request() {
    let model = api_model("gpt2", "saliency");
    let out = model
        .attribute([PROMPT])
        .generated_texts([FORCED])
        .run()
        .unwrap();
    assert_eq!(out.len(), 1);
    assert!(out.info()["constrained_decoding"].as_bool().unwrap());
    let agg = out.aggregate(&AggregationSpec::default()).unwrap();
    let seq = &agg.sequence_attributions[0];
    let target = seq.target_attributions.as_ref().unwrap();
    assert_eq!(target.shape.len(), 2, "aggregated to one score per token");
    let view = out.aggregate_view(0, out.default_aggregation()).unwrap();
    assert_eq!(view.target.len(), out.sequences()[0].target.len());
    assert!(out.into_output().step_attributions.is_none());
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let sources = LoadOptions::default().plugin_sources(workspace_sources());
    let folder = root().join("tests/fixtures/models/gpt2");
    let unknown_method =
        AttributionModel::load_with(folder.to_str().unwrap(), "no_such_method", sources)
            .unwrap_err()
            .to_string();
    let model = api_model("gpt2", "saliency");
    let run = |args: serde_json::Value| {
        model
            .attribute([PROMPT])
            .generated_texts([FORCED])
            .attribution_args(args)
            .run()
            .unwrap_err()
            .to_string()
    };
    for (err, want) in [
        (unknown_method, "no_such_method"),
        (
            run(json!({"no_such_arg": 1})),
            "'no_such_arg' is not a parameter",
        ),
        (run(json!([1])), "must be a JSON object"),
    ] {
        assert!(err.contains(want), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
