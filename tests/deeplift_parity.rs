//! DeepLIFT's rescale rule against Python inseq 0.7.1 (Captum `DeepLift` / `LayerDeepLift`) on
//! ReLU variants of the tiny fixtures, where the rule changes the result: same step scores and
//! convergence deltas (1e-4), same aggregated maps (1e-3). References:
//! tests/fixtures/deeplift/reference.json, made by make_reference.py there.

mod parity_support;
mod plugin_support;

use parity_support::{
    aggregated_map_mismatches, api_folder_model, fixture_variant, score_mismatches, MAP_TOL,
    STEP_SCORE_TOL,
};
use plugin_support::build::root;
use serde_json::{json, Value};

#[test]
fn deeplift_rescale_matches_captum_on_relu_models() {
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/deeplift/reference.json")).unwrap(),
    )
    .unwrap();
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
        let model = api_folder_model(&folder, method);
        let call = &case["call"];
        let mut params = case["init"].clone();
        if let Some(d) = call.get("return_convergence_delta") {
            params["return_convergence_delta"] = d.clone();
        }
        let input = case["input"].as_str().unwrap().to_string();
        let out = model
            .attribute([input])
            .generated_texts([case["generated"].as_str().unwrap()])
            .attribute_target(call["attribute_target"].as_bool().unwrap_or(false))
            .step_scores(["probability"])
            .attribution_args(params)
            .run()
            .unwrap();
        let seq = out.encoded().next().unwrap();
        let ids: Vec<i64> = seq.target_ids.iter().map(|&i| i as i64).collect();
        let want_ids: Vec<i64> = serde_json::from_value(case["target_ids"].clone()).unwrap();
        assert_eq!(ids, want_ids, "{what}: target ids");
        let view = out.sequence_view(0).unwrap();
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
        let agg = out.aggregate_view(0, "vnorm").unwrap();
        let bad = aggregated_map_mismatches(&what, &agg.scores, &case["aggregated"], MAP_TOL);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
