//! Plugins run end to end across the ABI boundary against a toy analytic model: a method calls
//! the host, the host calls a step-function plugin for the target and its gradient, and an
//! aggregator plugin reduces the result. Gradients are checked against finite differences.

mod plugin_support;

use plugin_support::build::workspace_plugin;
use plugin_support::toy_host::{ToyHost, D, V};
use rinseq::plugins::{PluginRegistry, PluginSources};
use rinseq_sdk::{ErrorCode, SequenceAttribution, StepInput, TensorView};
use serde_json::{json, Value};

const IDS: [u32; 5] = [1, 2, 3, 4, 5];
const PROMPT: usize = 2;

fn registry() -> PluginRegistry {
    PluginRegistry::load(&PluginSources {
        extra: vec![
            workspace_plugin("rinseq_step_functions"),
            workspace_plugin("rinseq_aggregators"),
            workspace_plugin("rinseq_gradient_methods"),
            workspace_plugin("rinseq_test_faulty"),
        ],
        ..Default::default()
    })
    .unwrap()
}

fn toy(reg: &PluginRegistry, step: &str, params: Value) -> ToyHost {
    ToyHost::new(
        &IDS,
        PROMPT,
        reg.step_function(step, &params).unwrap().plugin,
    )
}

/// Central finite difference of the attributed score at position `p` w.r.t. every input value.
fn fd_grad(host: &ToyHost, p: usize) -> Vec<f32> {
    let x = host.actual();
    let h = 1e-3f32;
    (0..x.len())
        .map(|i| {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            let fa = host.score(&a, p, false).unwrap().0 as f64;
            let fb = host.score(&b, p, false).unwrap().0 as f64;
            ((fa - fb) / (2.0 * h as f64)) as f32
        })
        .collect()
}

fn run(
    reg: &PluginRegistry,
    host: &ToyHost,
    method: &str,
    params: Value,
) -> rinseq_sdk::SequenceScores {
    let m = reg.attribution(method, &params).unwrap();
    let out = m.attribute(host.as_ref(), &host.request).unwrap();
    assert_eq!(out.sequences.len(), 1);
    out.sequences.into_iter().next().unwrap()
}

#[test]
fn saliency_matches_finite_differences() {
    let reg = registry();
    let host = toy(&reg, "probability", json!({}));
    let scores = run(&reg, &host, "saliency", json!({}));
    assert!(
        scores.source.is_none(),
        "decoder-only: no source attributions"
    );
    let t = scores.target.unwrap();
    let (len, steps) = (IDS.len(), IDS.len() - PROMPT);
    assert_eq!(&t.shape[..], &[len, steps, D]);
    for (j, p) in (PROMPT..IDS.len()).enumerate() {
        let fd = fd_grad(&host, p);
        for i in 0..len {
            for k in 0..D {
                let got = t.data[(i * steps + j) * D + k];
                if i >= p {
                    assert!(got.is_nan(), "position {i} is not visible at step {p}");
                } else {
                    let want = fd[i * D + k].abs();
                    assert!(
                        (got - want).abs() < 1e-3,
                        "step {p} token {i} dim {k}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn input_x_gradient_is_input_times_gradient() {
    let reg = registry();
    let host = toy(&reg, "probability", json!({"logprob": true}));
    let t = run(&reg, &host, "input_x_gradient", json!({}))
        .target
        .unwrap();
    let x = host.actual();
    let steps = IDS.len() - PROMPT;
    for (j, p) in (PROMPT..IDS.len()).enumerate() {
        let fd = fd_grad(&host, p);
        for i in 0..p {
            for k in 0..D {
                let got = t.data[(i * steps + j) * D + k];
                let want = x[i * D + k] * fd[i * D + k];
                assert!((got - want).abs() < 1e-3, "{got} vs {want}");
            }
        }
    }
}

#[test]
fn every_step_function_gradient_matches_finite_differences() {
    let reg = registry();
    for (name, params) in [
        ("logit", json!({})),
        ("probability", json!({})),
        ("probability", json!({"logprob": true})),
        ("entropy", json!({})),
        ("crossentropy", json!({})),
        ("perplexity", json!({})),
    ] {
        let f = reg.step_function(name, &params).unwrap();
        let z: Vec<f32> = (0..V).map(|i| (i as f32 * 0.7).cos() * 2.0).collect();
        let shape = [1usize, V];
        let eval = |z: &[f32], grad: bool| {
            f.compute(&StepInput {
                logits: TensorView::new(&shape, z).unwrap(),
                target_ids: &[3u32],
                contrast_logits: None,
                contrast_target_ids: &[],
                dropout_logits: Vec::new(),
                want_grad: grad,
            })
            .unwrap()
        };
        let out = eval(&z, true);
        let g = out.grad_logits.unwrap();
        for j in 0..V {
            let h = 1e-3;
            let (mut a, mut b) = (z.clone(), z.clone());
            a[j] += h;
            b[j] -= h;
            let fd = (eval(&a, false).scores[0] - eval(&b, false).scores[0]) / (2.0 * h);
            assert!(
                (g.data[j] - fd).abs() < 2e-3,
                "{name} {params}: d/dz{j} {} vs {fd}",
                g.data[j]
            );
        }
        assert!(
            eval(&z, false).grad_logits.is_none(),
            "{name}: no gradient unless asked"
        );
    }
}

#[test]
fn step_function_values_follow_inseq_formulas() {
    let reg = registry();
    let z = [1.0f32, 2.0, 3.0];
    let shape = [1usize, 3];
    let value = |name: &str, params: Value| {
        reg.step_function(name, &params)
            .unwrap()
            .compute(&StepInput {
                logits: TensorView::new(&shape, &z).unwrap(),
                target_ids: &[1u32],
                contrast_logits: None,
                contrast_target_ids: &[],
                dropout_logits: Vec::new(),
                want_grad: false,
            })
            .unwrap()
            .scores[0] as f64
    };
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    let p: Vec<f64> = [1.0, 2.0, 3.0]
        .iter()
        .map(|v: &f64| (v - lse).exp())
        .collect();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    close(value("logit", json!({})), 2.0);
    close(value("probability", json!({})), p[1]);
    close(value("probability", json!({"logprob": true})), p[1].ln());
    close(
        value("entropy", json!({})),
        -p.iter().map(|q| q * q.ln()).sum::<f64>(),
    );
    close(value("crossentropy", json!({})), -p[1].ln());
    close(value("perplexity", json!({})), 2f64.powf(-p[1].ln()));
}

#[test]
fn mean_aggregator_reduces_and_normalises_columns() {
    let reg = registry();
    let host = toy(&reg, "probability", json!({}));
    let scores = run(&reg, &host, "saliency", json!({}));
    let seq = SequenceAttribution {
        source: Default::default(),
        target: host.request.sequences[0].target.clone(),
        attr_pos_start: PROMPT,
        attr_pos_end: IDS.len(),
        scores: scores.clone(),
    };
    let raw = scores.target.unwrap();
    let agg = reg.aggregator("mean", &json!({})).unwrap();
    let out = agg.aggregate(seq.clone()).unwrap();
    let t = out.scores.target.clone().unwrap();
    let steps = IDS.len() - PROMPT;
    assert_eq!(&t.shape[..], &[IDS.len(), steps]);
    for j in 0..steps {
        let col: Vec<f32> = (0..IDS.len()).map(|i| t.data[i * steps + j]).collect();
        let sum: f32 = col.iter().filter(|v| !v.is_nan()).map(|v| v.abs()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "column {j} sums to {sum}");
        // Before normalisation each entry is the mean over the hidden dimension.
        let means: Vec<f32> = (0..IDS.len())
            .map(|i| {
                (0..D)
                    .map(|k| raw.data[(i * steps + j) * D + k])
                    .sum::<f32>()
                    / D as f32
            })
            .collect();
        let norm: f32 = means.iter().filter(|v| !v.is_nan()).map(|v| v.abs()).sum();
        for i in 0..IDS.len() {
            if means[i].is_nan() {
                assert!(col[i].is_nan());
            } else {
                assert!((col[i] - means[i] / norm).abs() < 1e-5);
            }
        }
    }
    // A second aggregation has nothing left to reduce.
    let again = reg.aggregator("mean", &json!({})).unwrap();
    let e = again.aggregate(out).unwrap_err();
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(e.to_string().contains("already (tokens, steps)"), "{e}");
}

#[test]
fn plugin_panics_become_errors() {
    let reg = registry();
    let host = toy(&reg, "probability", json!({}));
    let m = reg.attribution("panicking_method", &json!({})).unwrap();
    let e = m.attribute(host.as_ref(), &host.request).unwrap_err();
    assert_eq!(e.code, ErrorCode::Panic);
    let msg = e.to_string();
    assert!(
        msg.starts_with("[panic] panicking_method panicked: index out of bounds"),
        "{msg}"
    );
    assert!(
        msg.ends_with("(while running attribution method 'panicking_method')"),
        "{msg}"
    );

    let e = reg
        .attribution("panicking_method", &json!({"panic_in_new": true}))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "attribution plugin 'panicking_method' failed to start: [panic] panicking_method panicked: constructor exploded"
    );

    // A panicking step function used as the target surfaces through the method as an error.
    let host = ToyHost::new(
        &IDS,
        PROMPT,
        reg.step_function("panicking_step", &json!({}))
            .unwrap()
            .plugin,
    );
    let m = reg.attribution("saliency", &json!({})).unwrap();
    let e = m
        .attribute(host.as_ref(), &host.request)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("panicking_step panicked: step function exploded"),
        "{e}"
    );
    assert!(e.contains("running attribution method 'saliency'"), "{e}");
}
