//! The shared-forward path (one forward per input point, a hand-written backward per step) gives
//! the gradients and scores of the per-row path (one autograd forward per (point, step)), on
//! the tiny decoder fixtures: GPT-2, grouped-query attention, Qwen2's q/k/v biases, Mistral's
//! sliding window, BART / Marian / mBART (source gradients through the encoder), plain and
//! contrastive targets, several point groups. Score requests through the KV cache of the
//! unperturbed prefix match whole forwards, for points that change any position.

mod parity_support;
mod plugin_support;

use parity_support::{fixture_model, fixture_variant, folder_model, registry, test_host};
use rinseq::attribution::serve::PrefixReuse;
use rinseq::attribution::{encode_batch, AttributeOptions, ModelHost};
use rinseq::models::load::LoadedModel;
use rinseq_sdk::{
    GradientRequest, GradientRule, HostApi, InputPoint, PointSide, ScoreRequest, Tensor, Wrt,
};
use serde_json::{json, Value};

const PROMPT: &str = "The capital of France is";
const FORCED: &str = "The capital of France is the city of";

fn close(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape, b.shape, "{what}");
    let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.data.iter().zip(b.data.iter()).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: shared {x} vs per-row {y} (max |value| {scale})"
        );
    }
}

/// Compares both paths on `loaded` for `target(params)`, with `tokens_per_forward` small
/// enough to split the points into several groups.
fn check(model: &str, loaded: &LoadedModel, (target, params): (&str, Value), contrast: bool) {
    let reg = registry();
    let generation = fixture_model("gpt2", &json!({})).1;
    let opts = AttributeOptions {
        generated_texts: vec![FORCED.to_string()],
        contrast_targets: if contrast {
            vec!["The capital of France is a big town".into()]
        } else {
            vec![]
        },
        ..Default::default()
    };
    let seqs = encode_batch(loaded, &[PROMPT.to_string()], &opts, &generation).unwrap();
    let target_fn = reg.step_function(target, &params).unwrap();
    let host = |share_forward| ModelHost {
        tokens_per_forward: 8,
        share_forward,
        prefix_reuse: match share_forward {
            true => PrefixReuse::Always,
            false => PrefixReuse::Never,
        },
        ..test_host(loaded, &seqs, &target_fn.plugin)
    };
    let actual = host(false).inputs(0, &Wrt::InputEmbeddings).unwrap();
    let actual = [actual.source, actual.target];
    let enc_dec = !actual[0].data.is_empty();
    let scaled = |t: &Tensor, k: usize| {
        let mut t = t.clone();
        t.data.iter_mut().for_each(|v| *v *= k as f32 / 4.0);
        PointSide::Values(t)
    };
    let points: Vec<InputPoint> = (0..=4)
        .map(|k| InputPoint {
            source: if enc_dec {
                scaled(&actual[0], 4 - k)
            } else {
                PointSide::Actual
            },
            target: scaled(&actual[1], k),
        })
        .collect();
    let steps: Vec<u32> = seqs[0].steps.iter().rev().map(|&s| s as u32).collect();
    let request = GradientRequest {
        sequence: 0,
        wrt: Wrt::InputEmbeddings,
        points: points.clone(),
        steps: steps.clone(),
        rule: GradientRule::Standard,
    };
    let what = format!("{model} {target}");
    let shared = host(true).gradients(request.clone()).unwrap();
    let per_row = host(false).gradients(request.clone()).unwrap();
    close(&format!("{what} scores"), &shared.scores, &per_row.scores);
    let (s, p) = (shared.target.unwrap(), per_row.target.unwrap());
    assert!(
        p.data.iter().any(|v| *v != 0.0),
        "{what}: all-zero gradients"
    );
    close(&format!("{what} gradients"), &s, &p);
    match (shared.source, per_row.source) {
        (Some(s), Some(p)) => {
            assert!(
                enc_dec && p.data.iter().any(|v| *v != 0.0),
                "{what}: source"
            );
            close(&format!("{what} source gradients"), &s, &p);
        }
        (None, None) => assert!(!enc_dec, "{what}: no source gradients"),
        _ => panic!("{what}: only one path returned source gradients"),
    }
    // Perturbations from every position on (occlusion-like ids, a zeroed embedding row): the
    // KV-cached path restarts each point at its first change.
    let ids = &seqs[0].target_ids;
    let mut points = points;
    for i in 0..ids.len() {
        let mut changed = ids.clone();
        changed[i] = (ids[i] + 1) % loaded.model.spec().vocab_size as u32;
        points.push(InputPoint {
            source: PointSide::Actual,
            target: PointSide::Ids(changed),
        });
        let mut zeroed = actual[1].clone();
        let width = zeroed.shape[1];
        zeroed.data[i * width..(i + 1) * width].fill(0.0);
        points.push(InputPoint {
            source: PointSide::Actual,
            target: PointSide::Values(zeroed),
        });
    }
    let scores = ScoreRequest {
        sequence: 0,
        points,
        steps,
        ..Default::default()
    };
    close(
        &format!("{what} score request"),
        &host(true).scores(scores.clone()).unwrap(),
        &host(false).scores(scores.clone()).unwrap(),
    );
}

#[test]
fn shared_forward_matches_the_per_row_path() {
    for model in ["llama", "qwen2", "gpt2"] {
        let (loaded, _) = fixture_model(model, &json!({}));
        check(model, &loaded, ("probability", json!({})), false);
        check(model, &loaded, ("entropy", json!({})), false);
        check(model, &loaded, ("contrast_prob_diff", json!({})), true);
    }
}

#[test]
fn shared_forward_matches_the_per_row_path_on_encoder_decoder_models() {
    // BART and Marian are post-norm; mBART is pre-norm with final LayerNorms.
    for model in ["bart", "marian", "mbart"] {
        let (loaded, _) = fixture_model(model, &json!({}));
        check(model, &loaded, ("probability", json!({})), false);
        check(model, &loaded, ("contrast_prob_diff", json!({})), true);
    }
}

#[test]
fn shared_forward_keeps_the_sliding_window() {
    let dir = tempfile::tempdir().unwrap();
    let folder = fixture_variant("mistral", dir.path(), |c| c["sliding_window"] = json!(3));
    let (loaded, _) = folder_model(&folder, &json!({}));
    check("mistral", &loaded, ("logit", json!({})), false);
}
