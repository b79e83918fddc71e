//! The perturbation methods (plugins/perturbation-methods) and the host's score requests:
//! - `occlusion` through the library API, as `rinseq attribute` runs it, against Python inseq
//!   0.7.1 on the tiny fixture models (gpt2, llama, bart, marian; forced and greedy targets,
//!   `attribute_target`, a 2-token window) and on SmolLM2-135M-Instruct (skipped when its GGUF is
//!   absent: set RINSEQ_SMOLLM2_GGUF): same target ids and attributed steps, step scores and
//!   default-aggregated maps (none: Coarse) within 1e-3 with the same NaN pattern. References:
//!   tests/fixtures/perturbation/reference.json, made by make_reference.py there (no Python at
//!   test time).
//! - score requests: the batched no-gradient path gives the scores of the gradient path, on
//!   decoder-only and encoder-decoder fixtures, and malformed requests get one-line SDK-level
//!   errors naming the request, the rule and the fix;
//! - target ranks (`ScoreOutput::TargetRank`, ReAGent's stopping rule) equal the ranks read
//!   off a direct model forward, on both model kinds, with and without the prefix cache;
//! - every perturbation method runs end to end on a fixture (shapes, finite values, the
//!   declared default aggregation) and `feature_ablation` is signed occlusion.

mod parity_support;
mod plugin_support;

use parity_support::{
    aggregated_map_mismatches, api_case_model, fixture_model, score_mismatches, smollm2_gguf,
    test_host, MAP_TOL,
};
use plugin_support::build::root;
use rinseq::attribution::serve::PrefixReuse;
use rinseq::attribution::{encode_batch, AttributeOptions};
use rinseq::models::{ForwardInput, LogitPositions, Side as ModelSide, SideInput, Taps};
use rinseq::{Attribution, AttributionModel};
use rinseq_sdk::{
    GradientRequest, GradientRule, HostApi, InputPoint, PointSide, ScoreOutput, ScoreRequest, Side,
    Tensor, Wrt,
};
use serde_json::{json, Value};

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn run_case(m: &AttributionModel, case: &Value) -> Attribution {
    let generation = match &case["generation_args"] {
        Value::Null => json!({}),
        v => v.clone(),
    };
    m.attribute(strings(&case["inputs"]))
        .generation_kwargs_json(generation)
        .options(AttributeOptions {
            generated_texts: strings(&case["generated_texts"]),
            attribute_target: case["attribute_target"].as_bool().unwrap(),
            ..Default::default()
        })
        .step_scores(strings(&case["step_scores"]))
        .attribution_args(case["call_kwargs"].clone())
        .run()
        .unwrap()
}

fn cases() -> Vec<Value> {
    let path = root().join("tests/fixtures/perturbation/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The largest difference of a case's maps from the reference (for the report).
fn max_diff(scores: &rinseq_sdk::SequenceScores, want: &Value) -> f32 {
    let mut m = 0f32;
    for (side, got) in [
        ("source_attributions", &scores.source),
        ("target_attributions", &scores.target),
    ] {
        let (Some(t), Some(w)) = (got, want.get(side).filter(|v| !v.is_null())) else {
            continue;
        };
        let w = parity_support::nullable_matrix(w);
        for (a, b) in t.data.iter().zip(w.iter().flatten()) {
            if !a.is_nan() && !b.is_nan() {
                m = m.max((a - b).abs());
            }
        }
    }
    m
}

/// Runs the reference cases of the models `which` accepts; fails with every difference.
fn occlusion_cases(which: impl Fn(&str) -> bool) {
    let mut bad = Vec::new();
    let mut ran = 0;
    for case in cases()
        .iter()
        .filter(|c| which(c["model"].as_str().unwrap()))
    {
        let id = case["id"].as_str().unwrap();
        let Some(m) = api_case_model(case["model"].as_str().unwrap(), "occlusion") else {
            eprintln!("skipped {id}: SmolLM2 GGUF not found (set RINSEQ_SMOLLM2_GGUF)");
            continue;
        };
        ran += 1;
        let out = run_case(&m, case);
        let want = case["sequences"].as_array().unwrap();
        assert_eq!(out.len(), want.len(), "{id}");
        for (i, (s, w)) in out.encoded().zip(want).enumerate() {
            let at = format!("{id} seq {i}");
            let ids: Vec<u32> = serde_json::from_value(w["target_ids"].clone()).unwrap();
            let steps: Vec<usize> = serde_json::from_value(w["steps"].clone()).unwrap();
            if s.target_ids != ids || s.steps != steps {
                bad.push(format!(
                    "{at}: target ids {:?} / steps {:?} vs {ids:?} / {steps:?}",
                    s.target_ids, s.steps
                ));
                continue;
            }
            let view = out.sequence_view(i).unwrap();
            for s in view.scores.step_scores.iter() {
                if let Some(ws) = w["step_scores"].get(s.name.as_str()) {
                    let ws: Vec<f64> = serde_json::from_value::<Vec<Option<f64>>>(ws.clone())
                        .unwrap()
                        .into_iter()
                        .map(|v| v.unwrap_or(f64::NAN))
                        .collect();
                    bad.extend(score_mismatches(
                        &format!("{at} {}", s.name),
                        &s.tensor.data,
                        &ws,
                        1e-4,
                    ));
                }
            }
            let agg = out.aggregate_view(i, out.default_aggregation()).unwrap();
            eprintln!(
                "{at}: max |rinseq − inseq| = {:.2e}",
                max_diff(&agg.scores, w)
            );
            bad.extend(aggregated_map_mismatches(&at, &agg.scores, w, MAP_TOL));
        }
    }
    let shown: Vec<&str> = bad.iter().take(40).map(String::as_str).collect();
    assert!(
        bad.is_empty(),
        "{} difference(s) from inseq:\n{}",
        bad.len(),
        shown.join("\n")
    );
    eprintln!("{ran} case(s) checked");
}

#[test]
fn occlusion_matches_inseq_on_the_fixtures() {
    occlusion_cases(|m| m != "smollm2");
}

#[test]
fn occlusion_matches_inseq_on_smollm2() {
    if smollm2_gguf().is_none() {
        eprintln!("SKIPPED: SmolLM2 GGUF not found (set RINSEQ_SMOLLM2_GGUF)");
        return;
    }
    occlusion_cases(|m| m == "smollm2");
}

/// The score-request cases: a decoder-only and an encoder-decoder fixture with a forced target.
const SCORE_CASES: [(&str, &str, &str); 2] = [
    (
        "gpt2",
        "The capital of France is",
        "The capital of France is the city of",
    ),
    (
        "bart",
        "The capital of France is Paris.",
        "La capitale della Francia è Parigi.",
    ),
];

/// Fixture `name` and its one sequence, `prompt` with the target `forced`.
fn score_case(
    name: &str,
    prompt: &str,
    forced: &str,
    attribute_target: bool,
) -> (
    rinseq::models::load::LoadedModel,
    Vec<rinseq::attribution::EncodedSequence>,
) {
    let (loaded, generation) = fixture_model(name, &json!({}));
    let opts = AttributeOptions {
        generated_texts: vec![forced.to_string()],
        attribute_target,
        ..Default::default()
    };
    let seqs = encode_batch(&loaded, &[prompt.to_string()], &opts, &generation).unwrap();
    (loaded, seqs)
}

/// Scores of perturbed inputs from the score path equal those of the gradient path, and bad
/// requests get SDK-level messages.
#[test]
fn score_requests_are_batched_checked_and_match_the_gradient_path() {
    let reg = parity_support::registry();
    let target_fn = reg.step_function("probability", &json!({})).unwrap();
    for (name, prompt, forced) in SCORE_CASES {
        let (loaded, seqs) = score_case(name, prompt, forced, true);
        let host = rinseq::attribution::ModelHost {
            tokens_per_forward: 16,
            ..test_host(&loaded, &seqs, &target_fn.plugin)
        };
        let seq = &seqs[0];
        let steps: Vec<u32> = seq.steps.iter().map(|&s| s as u32).collect();
        // Leave-one-out on both sides: many points, several batches.
        let mut points = vec![InputPoint::actual()];
        for p in 0..seq.target_ids.len() {
            let mut ids = seq.target_ids.clone();
            ids[p] = seq.target_baseline[p];
            points.push(InputPoint::with_ids(Side::Target, ids));
        }
        for p in 0..seq.source_ids.len() {
            let mut ids = seq.source_ids.clone();
            ids[p] = seq.source_baseline[p];
            points.push(InputPoint::with_ids(Side::Source, ids));
        }
        let scores = host
            .scores(ScoreRequest {
                sequence: 0,
                points: points.clone(),
                steps: steps.clone(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(scores.shape, vec![points.len(), steps.len()]);
        let grads = host
            .gradients(GradientRequest {
                sequence: 0,
                wrt: Wrt::InputEmbeddings,
                points,
                steps: steps.clone(),
                rule: GradientRule::Standard,
            })
            .unwrap();
        for (i, (a, b)) in scores.data.iter().zip(&grads.scores.data).enumerate() {
            assert!(
                (a - b).abs() < 1e-5,
                "{name} [{i}]: scores {a} vs gradient path {b}"
            );
        }
        // Malformed requests: one line naming the request, the rule and the fix.
        let bad = |points: Vec<InputPoint>, steps: Vec<u32>| {
            host.scores(ScoreRequest {
                sequence: 0,
                points,
                steps,
                ..Default::default()
            })
            .unwrap_err()
            .message
        };
        let short = InputPoint::with_ids(Side::Target, seq.target_ids[1..].to_vec());
        let e = bad(vec![short], steps.clone());
        assert!(
            e.starts_with("score request: point 0 has")
                && e.contains("give one id per token")
                && !e.contains("shape mismatch"),
            "{e}"
        );
        let mut big = seq.target_ids.clone();
        big[0] = loaded.spec.vocab_size as u32;
        let e = bad(vec![InputPoint::with_ids(Side::Target, big)], steps.clone());
        assert!(e.contains("outside the vocabulary"), "{e}");
        let e = bad(vec![InputPoint::actual()], vec![0]);
        assert!(
            e.contains("is not one of sequence 0's attributed steps"),
            "{e}"
        );
        let wrong = InputPoint {
            source: PointSide::Actual,
            target: PointSide::Values(Tensor::zeros(vec![2, 3])),
        };
        let e = bad(vec![wrong], steps.clone());
        assert!(e.contains("values of shape [2, 3]"), "{e}");
        assert!(!e.contains('\n'));
    }
}

/// `ScoreOutput::TargetRank` is 1 + the number of vocabulary entries whose logit beats the
/// target's, read here off a direct forward of each point (no host, no scoring code).
#[test]
fn target_ranks_equal_the_ranks_of_a_direct_forward() {
    use candle_core::{DType, Device, Tensor as CTensor};
    let reg = parity_support::registry();
    let target_fn = reg.step_function("probability", &json!({})).unwrap();
    for (name, prompt, forced) in SCORE_CASES {
        let (loaded, seqs) = score_case(name, prompt, forced, false);
        let seq = &seqs[0];
        let steps: Vec<u32> = seq.steps.iter().map(|&s| s as u32).collect();
        let enc_dec = name == "bart";
        // The actual input, then each target token (and for bart each source token) replaced.
        let mut points = vec![(seq.source_ids.clone(), seq.target_ids.clone())];
        for p in 0..seq.target_ids.len() {
            let mut ids = seq.target_ids.clone();
            ids[p] = (ids[p] + 7) % loaded.spec.vocab_size as u32;
            points.push((seq.source_ids.clone(), ids));
        }
        if enc_dec {
            for p in 0..seq.source_ids.len() {
                let mut ids = seq.source_ids.clone();
                ids[p] = (ids[p] + 7) % loaded.spec.vocab_size as u32;
                points.push((ids, seq.target_ids.clone()));
            }
        }
        let side_input = |side: ModelSide, ids: &[u32]| {
            let t = CTensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            SideInput {
                embeds: loaded.model.embed(side, &t).unwrap(),
                mask: CTensor::ones((1, ids.len()), DType::U8, &Device::Cpu).unwrap(),
            }
        };
        let mut expected = Vec::new();
        for (src, tgt) in &points {
            let input = ForwardInput {
                encoder: enc_dec.then(|| side_input(ModelSide::Encoder, src)),
                decoder: side_input(ModelSide::Decoder, tgt),
                logits_at: LogitPositions::All,
            };
            let logits = loaded
                .model
                .forward(&input, &mut Taps::none())
                .unwrap()
                .logits;
            let rows: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
            for &s in &steps {
                let z = &rows[s as usize - 1];
                let t = z[seq.target_ids[s as usize] as usize];
                expected.push((1 + z.iter().filter(|&&v| v > t).count()) as f32);
            }
        }
        let request_points: Vec<InputPoint> = points
            .iter()
            .map(|(src, tgt)| InputPoint {
                source: match enc_dec {
                    true => PointSide::Ids(src.clone()),
                    false => PointSide::Actual,
                },
                target: PointSide::Ids(tgt.clone()),
            })
            .collect();
        for reuse in [PrefixReuse::Never, PrefixReuse::Always] {
            let host = rinseq::attribution::ModelHost {
                prefix_reuse: reuse,
                ..test_host(&loaded, &seqs, &target_fn.plugin)
            };
            let ranks = host
                .scores(ScoreRequest {
                    sequence: 0,
                    points: request_points.clone(),
                    steps: steps.clone(),
                    output: ScoreOutput::TargetRank,
                })
                .unwrap();
            assert_eq!(ranks.shape, vec![points.len(), steps.len()]);
            assert_eq!(ranks.data, expected, "{name} {reuse:?}");
            assert!(
                ranks.data.iter().any(|&r| r > 1.0),
                "{name}: every rank is 1"
            );
        }
    }
}

/// Every perturbation method end to end on gpt2 and bart: shapes, finite visible values.
#[test]
fn every_perturbation_method_runs_on_the_fixtures() {
    for method in [
        ("occlusion", json!({})),
        ("feature_ablation", json!({"granularity": "word"})),
        ("shapley_value_sampling", json!({"n_samples": 3, "seed": 0})),
        ("lime", json!({"seed": 0, "n_samples": 20})),
        (
            "reagent",
            json!({"seed": 0, "max_probe_steps": 5, "num_probes": 4}),
        ),
    ] {
        for (name, attribute_target) in [("gpt2", false), ("bart", false), ("bart", true)] {
            let m = api_case_model(name, method.0).unwrap();
            let case = json!({
                "inputs": [if name == "gpt2" { "The capital of France is" } else { "The capital of France is Paris." }],
                "generated_texts": null,
                "generation_args": {"max_new_tokens": 3, "do_sample": false},
                "attribute_target": attribute_target,
                "step_scores": [],
                "call_kwargs": method.1,
            });
            let out = run_case(&m, &case);
            let view = out.sequence_view(0).unwrap();
            let what = format!(
                "{} on {name} (attribute_target {attribute_target})",
                method.0
            );
            let finite = |t: &Option<Tensor>| {
                t.as_ref().is_some_and(|t| {
                    t.data.iter().any(|v| v.is_finite()) && !t.data.iter().any(|v| v.is_infinite())
                })
            };
            if name == "bart" {
                assert!(finite(&view.scores.source), "{what}: source");
            }
            if name == "gpt2" || attribute_target {
                assert!(finite(&view.scores.target), "{what}: target");
            }
            out.aggregate_view(0, out.default_aggregation())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// `feature_ablation` over tokens is signed occlusion.
#[test]
fn feature_ablation_is_signed_occlusion() {
    let case = json!({
        "inputs": ["The capital of France is"],
        "generated_texts": ["The capital of France is the city"],
        "generation_args": null,
        "attribute_target": false,
        "step_scores": [],
        "call_kwargs": {},
    });
    let occ = run_case(&api_case_model("gpt2", "occlusion").unwrap(), &case);
    let abl = run_case(&api_case_model("gpt2", "feature_ablation").unwrap(), &case);
    let (o, a) = (
        occ.sequence_view(0).unwrap().scores.target.unwrap(),
        abl.sequence_view(0).unwrap().scores.target.unwrap(),
    );
    assert_eq!(o.shape, a.shape);
    for (x, y) in o.data.iter().zip(&a.data) {
        assert!(x.is_nan() == y.is_nan() && (x.is_nan() || (x - y.abs()).abs() < 1e-6));
    }
}
