//! DeepLIFT's rescale rule against Python inseq 0.7.1 (Captum `DeepLift` / `LayerDeepLift`) on
//! ReLU variants of the tiny fixtures, where the rule changes the result: same step scores and
//! convergence deltas (1e-4), same aggregated maps (1e-3). References:
//! tests/fixtures/deeplift/reference.json, made by make_reference.py there.

mod parity_support;
mod plugin_support;

use candle_core::DType;
use parity_support::registry;
use plugin_support::build::root;
use rinseq::attribution::result::sequence_view;
use rinseq::attribution::{attribute, encode_batch, AttributeOptions};
use rinseq::cli::attribute::aggregate;
use rinseq::generation::{GenerationConfig, GenerationParams};
use rinseq::models::load::{load_model, ModelFiles};
use rinseq::models::ModelKind;
use serde_json::{json, Value};

/// The fixture `name` with `activation_function = "relu"` (same weights), in `dir`.
fn relu_variant(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let from = root().join("tests/fixtures/models").join(name);
    let to = dir.join(format!("{name}-relu"));
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
    let cfg_path = to.join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["activation_function"] = json!("relu");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    to
}

fn rows(t: &rinseq_sdk::Tensor) -> Vec<Vec<f32>> {
    t.data.chunks(t.shape[1]).map(|c| c.to_vec()).collect()
}

fn assert_close(what: &str, got: &[Vec<f32>], want: &Value) {
    let want: Vec<Vec<Option<f32>>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {i}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            match b {
                None => assert!(a.is_nan(), "{what}: ({i}, {j}) {a} vs NaN"),
                Some(b) => assert!((a - b).abs() < 1e-3, "{what}: ({i}, {j}) {a} vs {b}"),
            }
        }
    }
}

#[test]
fn deeplift_rescale_matches_captum_on_relu_models() {
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/deeplift/reference.json")).unwrap(),
    )
    .unwrap();
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    for case in &cases {
        let (model, method) = (
            case["model"].as_str().unwrap(),
            case["method"].as_str().unwrap(),
        );
        let what = format!("{model} {method}");
        let folder = relu_variant(model, tmp.path());
        let loaded = load_model(&ModelFiles::HfFolder(folder.clone()), DType::F32).unwrap();
        let defaults = GenerationConfig::from_model_dir(&folder).unwrap();
        let generation = GenerationParams::resolve(&defaults, &loaded.spec).unwrap();
        let call = &case["call"];
        let opts = AttributeOptions {
            generated_texts: vec![case["generated"].as_str().unwrap().to_string()],
            attribute_target: call["attribute_target"].as_bool().unwrap_or(false),
            ..Default::default()
        };
        let mut params = case["init"].clone();
        if let Some(d) = call.get("return_convergence_delta") {
            params["return_convergence_delta"] = d.clone();
        }
        let input = case["input"].as_str().unwrap().to_string();
        let seqs = encode_batch(&loaded, &[input], &opts, &generation).unwrap();
        let ids: Vec<i64> = seqs[0].target_ids.iter().map(|&i| i as i64).collect();
        let want_ids: Vec<i64> = serde_json::from_value(case["target_ids"].clone()).unwrap();
        assert_eq!(ids, want_ids, "{what}: target ids");
        let m = reg.attribution(method, &params).unwrap();
        let target_fn = reg.step_function("probability", &json!({})).unwrap();
        let steps = vec![(
            "probability".to_string(),
            reg.step_function("probability", &json!({})).unwrap(),
        )];
        let run = attribute(&loaded, model, seqs, &m, &target_fn, &steps, &opts).unwrap();
        let view = sequence_view(
            &run.sequences[0],
            loaded.spec.kind == ModelKind::DecoderOnly,
        );
        let want_scores = case["step_scores"].as_object().unwrap();
        assert_eq!(
            view.scores.step_scores.len(),
            want_scores.len(),
            "{what}: step scores"
        );
        for s in view.scores.step_scores.iter() {
            let want: Vec<f64> =
                serde_json::from_value(want_scores[s.name.as_str()].clone()).unwrap();
            assert_eq!(s.tensor.data.len(), want.len(), "{what}: {}", s.name);
            for (a, b) in s.tensor.data.iter().zip(&want) {
                let tol = 1e-4 * (1.0 + b.abs());
                assert!((*a as f64 - b).abs() < tol, "{what} {}: {a} vs {b}", s.name);
            }
        }
        let agg = aggregate(&reg, "vnorm", view).unwrap();
        let maps = &case["aggregated"];
        match agg.scores.source.as_ref().into_option() {
            Some(src) => assert_close(
                &format!("{what} source"),
                &rows(src),
                &maps["source_attributions"],
            ),
            None => assert!(
                maps.get("source_attributions").is_none(),
                "{what}: no source map"
            ),
        }
        match agg.scores.target.as_ref().into_option() {
            Some(t) => assert_close(
                &format!("{what} target"),
                &rows(t),
                &maps["target_attributions"],
            ),
            None => assert!(
                maps.get("target_attributions").is_none(),
                "{what}: no target map"
            ),
        }
    }
}
