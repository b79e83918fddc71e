//! `discretized_integrated_gradients` against Python inseq 0.7.1 on the tiny fixture models:
//! same target ids, same step scores (probability, convergence deltas; within 1e-6 + 1e-3
//! relative), same aggregated maps (within 1e-4), with both path strategies
//! (tests/fixtures/dig/reference.json, made by make_reference.py there; no Python at test time).
//!
//! The reference's `deltas_standard` is Captum's `Σ attributions − (f(x) − f(x′))`, which rinseq
//! reports; inseq 0.7.1 swaps the endpoints (its `deltas`, see make_reference.py).

mod parity_support;
mod plugin_support;

use parity_support::{aggregated_map_mismatches, api_model};
use plugin_support::build::root;
use serde_json::{json, Value};

/// DIG's maps are checked within 1e-4 (tighter than the other parity tests' 1e-3).
const DIG_MAP_TOL: f32 = 1e-4;

fn reference() -> Value {
    let path = root().join("tests/fixtures/dig/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Runs one reference case through the library API (attribute → sequence view → aggregate),
/// with `extra` method parameters on top of the case's.
fn check_case(case: &Value, extra: Value) {
    let model = case["model"].as_str().unwrap();
    let name = format!(
        "{model} {} k={} mbi={} target={} {extra}",
        case["strategy"], case["n_neighbors"], case["multiply_by_inputs"], case["attribute_target"]
    );
    // Targets are forced: generation settings do not matter.
    let dig = api_model(model, "discretized_integrated_gradients");
    let mut params = json!({
        "n_steps": case["n_steps"],
        "method": case["strategy"],
        "n_neighbors": case["n_neighbors"],
        "multiply_by_inputs": case["multiply_by_inputs"],
        "return_convergence_delta": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let out = dig
        .attribute([case["input"].as_str().unwrap()])
        .generated_texts([case["generated"].as_str().unwrap()])
        .attribute_target(case["attribute_target"].as_bool().unwrap())
        .step_scores(["probability"])
        .attribution_args(params)
        .run()
        .unwrap();
    let seqs: Vec<_> = out.encoded().collect();
    assert_eq!(
        seqs[0].target_ids,
        ids(&case["target_ids"]),
        "{name}: target ids"
    );
    assert_eq!(
        seqs[0].source_ids,
        ids(&case["source_ids"]),
        "{name}: source ids"
    );
    assert_eq!(
        seqs[0].steps[0],
        case["attr_pos_start"].as_u64().unwrap() as usize,
        "{name}: first step"
    );
    let view = out.sequence_view(0).unwrap();

    for (score, key) in [
        ("probability", "probability"),
        ("deltas", "deltas_standard"),
    ] {
        let got = &view
            .scores
            .step_scores
            .iter()
            .find(|t| t.name.as_str() == score)
            .unwrap_or_else(|| panic!("{name}: no step score {score}"))
            .tensor
            .data;
        let want: Vec<f32> = serde_json::from_value(case["step_scores"][key].clone()).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: {score} steps");
        // The tiny models' scores are about 1e-3: a relative bound (well within 1e-4).
        for (a, b) in got.iter().zip(&want) {
            let tol = 1e-6 + 1e-3 * b.abs();
            assert!((a - b).abs() <= tol, "{name}: {score} {a} vs {b}");
        }
    }

    let agg = out.aggregate_view(0, "vnorm").unwrap();
    let bad = aggregated_map_mismatches(&name, &agg.scores, &case["aggregated"], DIG_MAP_TOL);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn cases(model: &str) -> Vec<Value> {
    reference()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["model"] == model)
        .cloned()
        .collect()
}

#[test]
fn dig_matches_inseq_on_gpt2() {
    for case in cases("gpt2") {
        check_case(&case, json!({}));
    }
}

#[test]
fn dig_matches_inseq_on_bart() {
    for case in cases("bart") {
        check_case(&case, json!({}));
    }
}

/// Chunking the path points over several host requests changes nothing (inseq 0.7.1's DIG
/// raises with `internal_batch_size`, so this is checked against its unbatched reference), and
/// neither does the kNN graph mode.
#[test]
fn dig_internal_batch_size_and_mode_do_not_change_results() {
    let case = &cases("bart")[0];
    check_case(
        case,
        json!({"internal_batch_size": 3, "mode": "connectivity"}),
    );
}

/// The special tokens inferred from token texts are those of the tokenizer here; giving them
/// explicitly gives the same result.
#[test]
fn dig_explicit_special_tokens_match_inferred_ones() {
    let case = &cases("bart")[0];
    check_case(
        case,
        json!({"special_token_ids": case["special_token_ids"].clone()}),
    );
}

#[test]
fn dig_rejects_bad_parameters() {
    let dig = api_model("gpt2", "discretized_integrated_gradients");
    for (params, msg) in [
        (json!({"n_steps": 1}), "n_steps must be at least 2"),
        (json!({"n_neighbors": 0}), "n_neighbors must be at least 1"),
        (json!({"internal_batch_size": 0}), "internal_batch_size"),
        (json!({"method": "shortest"}), "shortest"),
        (json!({"mode": "nearest"}), "nearest"),
    ] {
        let run = dig
            .attribute(["Hello"])
            .generated_texts(["Hello world"])
            .attribution_args(params.clone())
            .run();
        let err = match run {
            Ok(_) => panic!("{params} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(msg), "{params}: {err}");
    }
}
