//! DeepLIFT's rescale rule against Python inseq 0.7.1 (Captum `DeepLift` / `LayerDeepLift`) on
//! ReLU variants of the tiny fixtures, where the rule changes the result: same step scores and
//! convergence deltas (1e-4), same aggregated maps (1e-3). References:
//! tests/fixtures/deeplift/reference.json, made by make_reference.py there.

mod parity_support;
mod plugin_support;

use parity_support::{
    aggregated_map_mismatches, fixture_variant, folder_model, registry, score_mismatches, MAP_TOL,
    STEP_SCORE_TOL,
};
use plugin_support::build::root;
use rinseq::aggregation::apply_named as aggregate;
use rinseq::attribution::result::sequence_view;
use rinseq::attribution::{attribute, encode_batch, AttributeOptions};
use rinseq::models::ModelKind;
use serde_json::{json, Value};

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
        // Same weights, `activation_function = "relu"`.
        let folder = fixture_variant(model, tmp.path(), |cfg| {
            cfg["activation_function"] = json!("relu");
        });
        let (loaded, generation) = folder_model(&folder, &json!({}));
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
            let label = format!("{what} {}", s.name);
            let bad = score_mismatches(&label, &s.tensor.data, &want, STEP_SCORE_TOL);
            assert!(bad.is_empty(), "{}", bad.join("\n"));
        }
        let agg = aggregate(&reg, "vnorm", view).unwrap();
        let bad = aggregated_map_mismatches(&what, &agg.scores, &case["aggregated"], MAP_TOL);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
