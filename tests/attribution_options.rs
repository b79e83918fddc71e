//! The loop's options and host services beyond plain gradients, on the tiny fixtures: plan
//! refusals, Monte Carlo dropout, `attribute_to_layer_input`, internals interventions and
//! per-step outputs.

mod parity_support;
mod plugin_support;

use parity_support::{
    api_folder_model, api_model, fixture_model, fixture_variant, registry, test_host,
};
use rinseq::attribution::{encode_batch, AttributeOptions, AttributionRun, ModelHost};
use rinseq::output::steps::step_outputs;
use rinseq::{Attribution, AttributionModel};
use serde_json::{json, Value};

const PROMPT: &str = "The capital of France is";
const FORCED: &str = "The capital of France is the city";

fn forced(text: &str) -> AttributeOptions {
    AttributeOptions {
        generated_texts: vec![text.to_string()],
        ..Default::default()
    }
}

/// Runs `method(params)` with `target(target_params)` and `step_scores` on `input` through
/// the library API (the parameters are routed to the plugins that take them, as
/// `--attribution-kwargs`).
fn run(
    model: &AttributionModel,
    input: &str,
    (method, params): (&str, Value),
    (target, target_params): (&str, Value),
    step_scores: &[(&str, Value)],
    opts: &AttributeOptions,
) -> Result<Attribution, String> {
    let mut args = params.as_object().unwrap().clone();
    args.extend(target_params.as_object().unwrap().clone());
    for (_, p) in step_scores {
        args.extend(p.as_object().unwrap().clone());
    }
    model
        .attribute([input])
        .method(method)
        .attributed_fn(target)
        .step_scores(step_scores.iter().map(|(n, _)| *n))
        .attribution_args(args.into())
        .options(opts.clone())
        .run()
        .map_err(|e| e.to_string())
}

#[test]
fn plans_that_cannot_work_are_refused_with_one_line() {
    let gpt2 = api_model("gpt2", "saliency");
    let err = run(
        &gpt2,
        PROMPT,
        ("saliency", json!({})),
        ("top_p_size", json!({"top_p": 0.9})),
        &[],
        &forced(FORCED),
    )
    .unwrap_err();
    assert!(
        err.contains("'top_p_size' cannot be the attributed function"),
        "{err}"
    );
    let contrast = AttributeOptions {
        contrast_targets: vec!["The capital of Italy is a town".into()],
        ..forced(FORCED)
    };
    let err = run(
        &gpt2,
        PROMPT,
        ("saliency", json!({})),
        ("kl_divergence", json!({})),
        &[],
        &contrast,
    )
    .unwrap_err();
    assert!(err.contains("needs contrast_force_inputs=true"), "{err}");
    let forced_contrast = AttributeOptions {
        contrast_force_inputs: true,
        ..contrast.clone()
    };
    run(
        &gpt2,
        PROMPT,
        ("saliency", json!({})),
        ("kl_divergence", json!({})),
        &[],
        &forced_contrast,
    )
    .unwrap();
    let err = run(
        &gpt2,
        PROMPT,
        ("saliency", json!({})),
        ("probability", json!({})),
        &[("contrast_prob", json!({}))],
        &forced(FORCED),
    )
    .unwrap_err();
    assert!(
        err.contains("'contrast_prob' needs a contrastive input"),
        "{err}"
    );
    let bart = api_model("bart", "saliency");
    let opts = AttributeOptions {
        attribute_target: true,
        ..forced("La capitale della Francia è Parigi.")
    };
    let params = json!({"target_layer": "model.encoder.layers.0"});
    let err = run(
        &bart,
        "The capital of France is Paris.",
        ("layer_gradient_x_activation", params),
        ("probability", json!({})),
        &[],
        &opts,
    )
    .unwrap_err();
    assert!(err.contains("does not support attribute_target"), "{err}");
}

/// The fixture's GPT-2 with dropout probabilities set (the fixture has none).
fn gpt2_with_dropout(p: f64, dir: &std::path::Path) -> AttributionModel {
    let folder = fixture_variant("gpt2", dir, |cfg| {
        for k in ["embd_pdrop", "attn_pdrop", "resid_pdrop"] {
            cfg[k] = json!(p);
        }
    });
    api_folder_model(&folder, "saliency")
}

#[test]
fn mc_dropout_prob_avg_gets_dropout_samples_as_step_score_and_target() {
    let tmp = tempfile::tempdir().unwrap();
    let model = gpt2_with_dropout(0.3, tmp.path());
    let mcd = ("mc_dropout_prob_avg", json!({"n_mcd_steps": 4}));
    let r = run(
        &model,
        PROMPT,
        ("saliency", json!({})),
        mcd.clone(),
        std::slice::from_ref(&mcd),
        &forced(FORCED),
    )
    .unwrap();
    let r = r.run();
    let (name, scores) = &r.sequences[0].step_scores[0];
    assert_eq!(name, "mc_dropout_prob_avg");
    assert!(scores.iter().all(|v| v.is_finite()), "{scores:?}");
    let target = r.sequences[0].scores.target.as_ref().unwrap();
    assert!(target.data.iter().any(|v| v.is_finite() && *v != 0.0));
    // Without dropout probabilities the samples equal the clean forward: zero spread, as torch.
    let plain = api_model("gpt2", "saliency");
    let r = run(
        &plain,
        PROMPT,
        ("saliency", json!({})),
        ("probability", json!({})),
        &[mcd],
        &forced(FORCED),
    )
    .unwrap();
    assert!(r.run().sequences[0].step_scores[0]
        .1
        .iter()
        .all(|v| !v.is_finite()));
}

/// Sum of the raw target attributions of a run.
fn total(r: &Attribution) -> Vec<f32> {
    let r: &AttributionRun = r.run();
    r.sequences[0].scores.target.as_ref().unwrap().data.to_vec()
}

#[test]
fn a_block_input_is_the_previous_block_output() {
    let gpt2 = api_model("gpt2", "saliency");
    let lig = |layer: &str, input: bool| {
        let params =
            json!({"target_layer": layer, "attribute_to_layer_input": input, "n_steps": 6});
        total(
            &run(
                &gpt2,
                PROMPT,
                ("layer_integrated_gradients", params),
                ("probability", json!({})),
                &[],
                &forced(FORCED),
            )
            .unwrap(),
        )
    };
    let (a, b) = (lig("transformer.h.1", true), lig("transformer.h.0", false));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-5,
            "{x} vs {y}"
        );
    }
    let err = run(
        &gpt2,
        PROMPT,
        (
            "layer_integrated_gradients",
            json!({"target_layer": "transformer.h.0.ln_1", "attribute_to_layer_input": true}),
        ),
        ("probability", json!({})),
        &[],
        &forced(FORCED),
    )
    .unwrap_err();
    assert!(
        err.contains("serves no input of 'transformer.h.0.ln_1'"),
        "{err}"
    );
}

#[test]
fn step_outputs_slice_the_sequence_matrices() {
    let bart = api_model("bart", "saliency");
    let opts = AttributeOptions {
        attribute_target: true,
        ..forced("La capitale della Francia è Parigi.")
    };
    let r = run(
        &bart,
        "The capital of France is Paris.",
        ("saliency", json!({})),
        ("probability", json!({})),
        &[("probability", json!({}))],
        &opts,
    )
    .unwrap();
    let view = r.sequence_view(0).unwrap();
    let seq = rinseq::output::FeatureAttributionSequenceOutput::from_sdk(
        view,
        rinseq::output::SequenceClass::Granular,
    );
    let steps = step_outputs(
        std::slice::from_ref(&seq),
        std::slice::from_ref(&r.run().sequences[0].sequence.steps),
    );
    assert_eq!(steps.len(), seq.n_steps());
    let src = seq.source_attributions.as_ref().unwrap();
    let (len, n, hidden) = (src.shape[0], src.shape[1], src.shape[2]);
    for (j, step) in steps.iter().enumerate() {
        let s = step.source_attributions.as_ref().unwrap();
        assert_eq!(s.shape.to_vec(), vec![1, len, hidden]);
        for r in 0..len {
            for h in 0..hidden {
                assert_eq!(s.data[r * hidden + h], src.data[(r * n + j) * hidden + h]);
            }
        }
        let t = step.target_attributions.as_ref().unwrap();
        assert_eq!(t.shape[1], seq.attr_pos_start + j, "prefix of step {j}");
        assert!(t.data.iter().all(|v| v.is_finite()));
        let p = seq.step_scores["probability"].data[j];
        assert_eq!(step.step_scores["probability"].data[0], p);
    }
}

#[test]
fn internals_record_taps_after_interventions() {
    use rinseq_sdk::{HostApi, InternalsRequest, Intervention, InterventionOp};
    let (gpt2, generation) = fixture_model("gpt2", &json!({}));
    let reg = registry();
    let seqs = encode_batch(&gpt2, &[PROMPT.to_string()], &forced(FORCED), &generation).unwrap();
    let target_fn = reg.step_function("probability", &json!({})).unwrap();
    let host = test_host(&gpt2, &seqs, &target_fn.plugin);
    let tap = "transformer.h.0.mlp";
    let ask = |interventions: Vec<Intervention>| {
        host.internals(InternalsRequest {
            sequence: 0,
            attentions: false,
            hidden_states: false,
            record: vec![tap.into()],
            interventions,
        })
    };
    let clean = ask(vec![]).unwrap().recorded[0].tensor.clone();
    let zero = Intervention {
        tap: tap.into(),
        op: InterventionOp::Zero {
            positions: vec![1u32],
            columns: vec![(0u32, 4u32)],
        },
    };
    let edited = ask(vec![zero]).unwrap().recorded[0].tensor.clone();
    let width = clean.shape[1];
    for (i, (a, b)) in clean.data.iter().zip(edited.data.iter()).enumerate() {
        let (row, col) = (i / width, i % width);
        if row == 1 && col < 4 {
            assert_eq!(*b, 0.0);
        } else {
            assert_eq!(a, b, "({row}, {col})");
        }
    }
    let bad = Intervention {
        tap: "transformer.h.9.mlp".into(),
        op: InterventionOp::Zero {
            positions: vec![0u32],
            columns: Vec::new(),
        },
    };
    let err = ask(vec![bad]).unwrap_err().to_string();
    assert!(err.contains("no tap named 'transformer.h.9.mlp'"), "{err}");
}

#[test]
fn small_chunks_run_in_parallel_give_the_single_forward_results() {
    use rinseq_sdk::{GradientRequest, GradientRule, HostApi, InputPoint, PointSide, Wrt};
    let (gpt2, generation) = fixture_model("gpt2", &json!({}));
    let reg = registry();
    let seqs = encode_batch(&gpt2, &[PROMPT.to_string()], &forced(FORCED), &generation).unwrap();
    let target_fn = reg.step_function("probability", &json!({})).unwrap();
    let host = |tokens_per_forward| ModelHost {
        tokens_per_forward,
        ..test_host(&gpt2, &seqs, &target_fn.plugin)
    };
    // Five points (the actual input and scaled copies of it) at every step.
    let actual = host(64).inputs(0, &Wrt::InputEmbeddings).unwrap().target;
    let points: Vec<InputPoint> = (1..=5)
        .map(|k| {
            let mut t = actual.clone();
            t.data.iter_mut().for_each(|v| *v *= k as f32 / 5.0);
            InputPoint {
                source: PointSide::Actual,
                target: PointSide::Values(t),
            }
        })
        .collect();
    let request = GradientRequest {
        sequence: 0,
        wrt: Wrt::InputEmbeddings,
        points,
        steps: seqs[0].steps.iter().map(|&s| s as u32).collect(),
        rule: GradientRule::Standard,
    };
    // 8 tokens per forward: one or two rows per chunk, many chunks, run two at a time.
    let small = host(8).gradients(request.clone()).unwrap();
    let whole = host(100_000).gradients(request).unwrap();
    // Chunks run on different prefix lengths: equal up to float summation order.
    let close = |a: &rinseq_sdk::Tensor, b: &rinseq_sdk::Tensor| {
        assert_eq!(a.shape, b.shape);
        for (x, y) in a.data.iter().zip(b.data.iter()) {
            assert!((x - y).abs() <= 1e-5 * (1e-3 + y.abs()), "{x} vs {y}");
        }
    };
    close(&small.scores, &whole.scores);
    close(&small.target.unwrap(), &whole.target.unwrap());
}
