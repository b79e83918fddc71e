//! The gradient-method plugins (plugins/gradient-methods) run end to end across the ABI boundary
//! against the analytic toy model of `gradient_support.rs`: integrated gradients against closed
//! forms and completeness, quadrature rules against Captum's definitions, GradientSHAP against
//! IG, SIG against IG on one token, layer methods at the toy's `tanh` taps, DeepLIFT with the
//! toy's rescale rule, and parameter errors.

mod gradient_support;
mod plugin_support;

use gradient_support::{LayerToy, Score, D};
use plugin_support::build::workspace_plugin;
use rinseq::plugins::{PluginRegistry, PluginSources};
use rinseq_sdk::{ErrorCode, GradientRule, SequenceScores, Side, Tensor, Wrt};
use serde_json::{json, Value};

const IDS: [u32; 5] = [1, 2, 3, 4, 5];
const PROMPT: usize = 2;

fn registry() -> PluginRegistry {
    PluginRegistry::load(&PluginSources {
        extra: vec![workspace_plugin("rinseq_gradient_methods")],
        ..Default::default()
    })
    .unwrap()
}

fn run(reg: &PluginRegistry, host: &LayerToy, method: &str, params: Value) -> SequenceScores {
    let m = reg.attribution(method, &params).unwrap();
    let out = m.attribute(host.as_ref(), &host.request).unwrap();
    assert_eq!(out.sequences.len(), 1);
    out.sequences.into_iter().next().unwrap()
}

fn run_err(
    reg: &PluginRegistry,
    host: &LayerToy,
    method: &str,
    params: Value,
) -> rinseq_sdk::PluginError {
    let m = reg.attribution(method, &params).unwrap();
    m.attribute(host.as_ref(), &host.request).unwrap_err()
}

fn target(s: &SequenceScores) -> Tensor {
    s.target.clone().expect("target attributions")
}

fn deltas(s: &SequenceScores) -> Vec<f32> {
    s.step_scores
        .iter()
        .find(|t| t.name.as_str() == "deltas")
        .expect("deltas step score")
        .tensor
        .data
        .to_vec()
}

/// `(len, steps, D)` value at token `i`, step column `j`, dim `k`.
fn at(t: &Tensor, i: usize, j: usize, k: usize) -> f32 {
    let steps = t.shape[1];
    t.data[(i * steps + j) * D + k]
}

fn steps() -> impl Iterator<Item = (usize, usize)> {
    (PROMPT..IDS.len()).enumerate()
}

/// Checks every visible entry of a decoder-only target tensor against `want(i, p, k)` and that
/// invisible ones are NaN.
fn check_target(t: &Tensor, tol: f64, want: impl Fn(usize, usize, usize) -> f64) {
    assert_eq!(&t.shape[..], &[IDS.len(), IDS.len() - PROMPT, D]);
    for (j, p) in steps() {
        for i in 0..IDS.len() {
            for k in 0..D {
                let got = at(t, i, j, k);
                if i >= p {
                    assert!(got.is_nan(), "token {i} is not visible at step {p}");
                    continue;
                }
                let w = want(i, p, k);
                assert!(
                    (got as f64 - w).abs() <= tol,
                    "step {p} token {i} dim {k}: {got} vs {w}"
                );
            }
        }
    }
}

/// Reference integrated gradients (f64, midpoint rule with many points) of the toy's target side
/// from `base` to its actual embeddings: `(x − x′) ⊙ ∫ ∂f`.
fn ig_reference(host: &LayerToy, base: &[f32], p: usize, n: usize) -> Vec<f64> {
    let x = host.actual(Side::Target);
    let mut acc = vec![0f64; x.len()];
    for s in 0..n {
        let alpha = (s as f64 + 0.5) / n as f64;
        let pt: Vec<f64> = x
            .iter()
            .zip(base)
            .map(|(x, b)| *b as f64 + alpha * (*x as f64 - *b as f64))
            .collect();
        let mut h = [0f64; D];
        for i in 0..p {
            for k in 0..D {
                h[k] += pt[i * D + k].tanh();
            }
        }
        let (_, dh) = host.score_h(&h, p);
        for i in 0..p {
            for k in 0..D {
                acc[i * D + k] += dh[k] * (1.0 - pt[i * D + k].tanh().powi(2)) / n as f64;
            }
        }
    }
    acc.iter()
        .enumerate()
        .map(|(j, a)| a * (x[j] as f64 - base[j] as f64))
        .collect()
}

/// `W[t_p] ⊙ (tanh x − tanh x′)`: the exact attribution of every path method for the logit score.
fn logit_closed_form(host: &LayerToy) -> impl Fn(usize, usize, usize) -> f64 + '_ {
    let x = host.actual(Side::Target);
    let b = host.baseline(Side::Target);
    move |i, p, k| host.w_row(p)[k] * ((x[i * D + k] as f64).tanh() - (b[i * D + k] as f64).tanh())
}

#[test]
fn integrated_gradients_of_a_logit_is_the_closed_form() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    let s = run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"return_convergence_delta": true}),
    );
    assert!(s.source.is_none(), "decoder-only: no source attributions");
    check_target(&target(&s), 1e-5, logit_closed_form(&host));
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "completeness: delta {d}");
    }
}

#[test]
fn integrated_gradients_converges_to_the_integral_and_is_complete() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let base = host.baseline(Side::Target);
    let refs: Vec<Vec<f64>> = (0..IDS.len())
        .map(|p| ig_reference(&host, &base, p, 4000))
        .collect();
    let s = run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"n_steps": 100, "return_convergence_delta": true}),
    );
    check_target(&target(&s), 2e-6, |i, p, k| refs[p][i * D + k]);
    // Completeness: Σ attributions = f(x) − f(x′), and the step score says so.
    let t = target(&s);
    let (x, ds) = (host.actual(Side::Target), deltas(&s));
    assert_eq!(ds.len(), IDS.len() - PROMPT);
    for (j, p) in steps() {
        let sum: f64 = (0..p)
            .flat_map(|i| (0..D).map(move |k| (i, k)))
            .map(|(i, k)| at(&t, i, j, k) as f64)
            .sum();
        let gap = host.score_at(&[], &x, p) - host.score_at(&[], &base, p);
        assert!((sum - gap).abs() < 1e-5, "step {p}: Σ {sum} vs Δf {gap}");
        assert!(
            ((sum - gap) - ds[j] as f64).abs() < 1e-5,
            "delta {} vs {}",
            ds[j],
            sum - gap
        );
    }
    // The default 50 Gauss-Legendre points are already accurate.
    let s = run(&reg, &host, "integrated_gradients", json!({}));
    check_target(&target(&s), 1e-5, |i, p, k| refs[p][i * D + k]);
    assert!(s.step_scores.is_empty(), "no deltas unless asked");
}

#[test]
fn riemann_rules_follow_captum_definitions() {
    // With 2 points the rules are easy to write down: IG = (x − x′) ⊙ Σ_k w_k g(α_k).
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let (x, b) = (host.actual(Side::Target), host.baseline(Side::Target));
    let grad_at = |alpha: f64, p: usize| -> Vec<f64> {
        let pt: Vec<f64> = x
            .iter()
            .zip(&b)
            .map(|(x, b)| *b as f64 + alpha * (*x as f64 - *b as f64))
            .collect();
        let mut h = [0f64; D];
        for i in 0..p {
            for k in 0..D {
                h[k] += pt[i * D + k].tanh();
            }
        }
        let (_, dh) = host.score_h(&h, p);
        (0..x.len())
            .map(|j| dh[j % D] * (1.0 - pt[j].tanh().powi(2)))
            .collect()
    };
    let rules: [(&str, [f64; 2], [f64; 2]); 4] = [
        ("riemann_left", [0.5, 0.5], [0.0, 0.5]),
        ("riemann_right", [0.5, 0.5], [0.5, 1.0]),
        ("riemann_middle", [0.5, 0.5], [0.25, 0.75]),
        // Captum's trapezoid: weights 1/n with both ends halved.
        ("riemann_trapezoid", [0.25, 0.25], [0.0, 1.0]),
    ];
    for (method, w, a) in rules {
        let s = run(
            &reg,
            &host,
            "integrated_gradients",
            json!({"n_steps": 2, "method": method}),
        );
        check_target(&target(&s), 1e-6, |i, p, k| {
            let j = i * D + k;
            let g = w[0] * grad_at(a[0], p)[j] + w[1] * grad_at(a[1], p)[j];
            g * (x[j] as f64 - b[j] as f64)
        });
        // With many points every rule approaches the integral.
        let refs: Vec<Vec<f64>> = (0..IDS.len())
            .map(|p| ig_reference(&host, &b, p, 4000))
            .collect();
        let s = run(
            &reg,
            &host,
            "integrated_gradients",
            json!({"n_steps": 400, "method": method}),
        );
        let tol = if method == "riemann_middle" {
            1e-5
        } else {
            2e-3
        };
        check_target(&target(&s), tol, |i, p, k| refs[p][i * D + k]);
    }
}

#[test]
fn integrated_gradients_chunks_points_and_reports_progress() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let whole = target(&run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"n_steps": 10}),
    ));
    {
        let seen = host.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one request for all points and steps");
        assert_eq!(seen[0].points, 10);
        assert_eq!(seen[0].wrt, Wrt::InputEmbeddings);
    }
    host.seen.lock().unwrap().clear();
    host.progress.lock().unwrap().clear();
    let chunked = target(&run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"n_steps": 10, "internal_batch_size": 4}),
    ));
    let sizes: Vec<usize> = host.seen.lock().unwrap().iter().map(|s| s.points).collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(*host.progress.lock().unwrap(), [(1, 3), (2, 3), (3, 3)]);
    for (a, b) in whole.data.iter().zip(chunked.data.iter()) {
        assert!(
            (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6,
            "{a} vs {b}"
        );
    }
}

#[test]
fn integrated_gradients_without_multiplying_returns_the_path_gradient() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    let (x, b) = (host.actual(Side::Target), host.baseline(Side::Target));
    let s = run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"multiply_by_inputs": false}),
    );
    let closed = logit_closed_form(&host);
    check_target(&target(&s), 1e-4, |i, p, k| {
        let j = i * D + k;
        closed(i, p, k) / (x[j] as f64 - b[j] as f64)
    });
}

#[test]
fn integrated_gradients_on_encoder_decoder_sides() {
    let reg = registry();
    let src = [2, 4, 3];
    let tgt = [0, 5, 1, 2];
    // Source only.
    let host = LayerToy::encoder_decoder(&src, &tgt, Score::Logit, false);
    let s = run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"return_convergence_delta": true}),
    );
    assert!(
        s.target.is_none(),
        "target not attributed without attribute_target"
    );
    let so = s.source.clone().unwrap();
    assert_eq!(&so.shape[..], &[3, 3, D]);
    let (xs, bs) = (host.actual(Side::Source), host.baseline(Side::Source));
    for (j, p) in (1..tgt.len()).enumerate() {
        for i in 0..src.len() {
            for k in 0..D {
                let want = host.w_row(p)[k]
                    * ((xs[i * D + k] as f64).tanh() - (bs[i * D + k] as f64).tanh());
                let got = so.data[(i * 3 + j) * D + k] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "source {i} step {p}: {got} vs {want}"
                );
            }
        }
    }
    // The target stays at its actual value, so source attributions alone are complete.
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "{d}");
    }
    // Both sides, interpolated together.
    let host = LayerToy::encoder_decoder(&src, &tgt, Score::Prob, true);
    let s = run(
        &reg,
        &host,
        "integrated_gradients",
        json!({"return_convergence_delta": true}),
    );
    let t = target(&s);
    assert_eq!(&t.shape[..], &[4, 3, D]);
    assert!(at(&t, 1, 0, 0).is_nan() && !at(&t, 0, 0, 0).is_nan());
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "completeness over both sides: {d}");
    }
}

#[test]
fn gradient_shap_without_noise_approaches_integrated_gradients() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let ig = target(&run(&reg, &host, "integrated_gradients", json!({})));
    let params = json!({"n_samples": 4000, "seed": 7, "return_convergence_delta": true});
    let s = run(&reg, &host, "gradient_shap", params.clone());
    let gs = target(&s);
    let scale = ig
        .data
        .iter()
        .filter(|v| !v.is_nan())
        .fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in ig.data.iter().zip(gs.data.iter()) {
        assert_eq!(a.is_nan(), b.is_nan());
        if !a.is_nan() {
            assert!(
                (a - b).abs() < 0.03 * scale,
                "IG {a} vs GradientSHAP {b} (scale {scale})"
            );
        }
    }
    // With stdevs = 0 the inputs are exact, so the sampled deltas are small too.
    for d in deltas(&s) {
        assert!(d.abs() < 0.05 * scale, "{d}");
    }
    // Seeded: reproducible; another seed gives other samples.
    let again = target(&run(&reg, &host, "gradient_shap", params));
    assert_eq!(
        gs.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        again.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let other = target(&run(
        &reg,
        &host,
        "gradient_shap",
        json!({"n_samples": 5, "seed": 8}),
    ));
    let first = target(&run(
        &reg,
        &host,
        "gradient_shap",
        json!({"n_samples": 5, "seed": 7}),
    ));
    assert!(other
        .data
        .iter()
        .zip(first.data.iter())
        .any(|(a, b)| !a.is_nan() && a != b));
}

#[test]
fn gradient_shap_with_noise_and_chunks() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    let s = run(
        &reg,
        &host,
        "gradient_shap",
        json!({"n_samples": 6, "stdevs": 0.1, "seed": 1, "internal_batch_size": 4, "return_convergence_delta": true}),
    );
    let sizes: Vec<usize> = host.seen.lock().unwrap().iter().map(|s| s.points).collect();
    assert_eq!(sizes, [4, 2]);
    // One delta per step (the mean of the per-sample deltas).
    let ds = deltas(&s);
    assert_eq!(ds.len(), IDS.len() - PROMPT);
    assert!(ds.iter().all(|d| d.is_finite()));
    assert_eq!(
        target(&s).shape.as_slice(),
        &[IDS.len(), IDS.len() - PROMPT, D]
    );
}

#[test]
fn sequential_integrated_gradients_is_ig_of_one_token_at_a_time() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let sig = target(&run(
        &reg,
        &host,
        "sequential_integrated_gradients",
        json!({"n_steps": 30}),
    ));
    // One request per token path (the last token is seen by no step: not run).
    let seen: Vec<usize> = host.seen.lock().unwrap().iter().map(|s| s.points).collect();
    assert_eq!(seen, [30; 4]);
    let (x, b) = (host.actual(Side::Target), host.baseline(Side::Target));
    for tok in 0..IDS.len() - 1 {
        // IG whose baseline differs from the input at token `tok` only.
        let mut one = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
        let mut base = x.clone();
        base[tok * D..(tok + 1) * D].copy_from_slice(&b[tok * D..(tok + 1) * D]);
        one.target_baseline = Some(base);
        let ig = target(&run(
            &reg,
            &one,
            "integrated_gradients",
            json!({"n_steps": 30}),
        ));
        for (j, p) in steps() {
            for k in 0..D {
                let (got, want) = (at(&sig, tok, j, k), at(&ig, tok, j, k));
                if tok >= p {
                    assert!(got.is_nan());
                } else {
                    assert!(
                        (got - want).abs() < 1e-6,
                        "token {tok} step {p}: SIG {got} vs IG {want}"
                    );
                }
            }
        }
    }
    // For an additive score (the logit), SIG equals IG.
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    let s = run(
        &reg,
        &host,
        "sequential_integrated_gradients",
        json!({"internal_batch_size": 64, "return_convergence_delta": true}),
    );
    check_target(&target(&s), 1e-5, logit_closed_form(&host));
    let sizes: Vec<usize> = host.seen.lock().unwrap().iter().map(|s| s.points).collect();
    assert_eq!(
        sizes,
        [64, 64, 64, 8],
        "4 tokens x 50 points in chunks of 64"
    );
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5);
    }
}

#[test]
fn layer_integrated_gradients_at_a_tap() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    // Output of tanh: f is linear in it, so any rule is exact.
    let s = run(
        &reg,
        &host,
        "layer_integrated_gradients",
        json!({"target_layer": "decoder.tanh", "n_steps": 3, "return_convergence_delta": true}),
    );
    check_target(&target(&s), 1e-5, logit_closed_form(&host));
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5);
    }
    let seen = host.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].wrt,
        Wrt::Layer {
            name: "decoder.tanh".into(),
            input: false
        }
    );
    // Probability: the tap determines the output, so layer IG is complete.
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let s = run(
        &reg,
        &host,
        "layer_integrated_gradients",
        json!({"target_layer": "decoder.tanh", "return_convergence_delta": true}),
    );
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "{d}");
    }
    // The tap's input is the embedding: same as integrated gradients; so is the default layer.
    let ig = target(&run(&reg, &host, "integrated_gradients", json!({})));
    for params in [
        json!({"target_layer": "decoder.tanh", "attribute_to_layer_input": true}),
        json!({}),
    ] {
        let l = target(&run(
            &reg,
            &host,
            "layer_integrated_gradients",
            params.clone(),
        ));
        for (a, b) in ig.data.iter().zip(l.data.iter()) {
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-6,
                "{params}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn layer_gradient_x_activation_at_a_tap() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Prob);
    let x = host.actual(Side::Target);
    let s = run(
        &reg,
        &host,
        "layer_gradient_x_activation",
        json!({"target_layer": "decoder.tanh"}),
    );
    assert!(s.step_scores.is_empty());
    check_target(&target(&s), 1e-6, |i, p, k| {
        let mut h = [0f64; D];
        for r in 0..p {
            for kk in 0..D {
                h[kk] += (x[r * D + kk] as f64).tanh();
            }
        }
        let (_, dh) = host.score_h(&h, p);
        (x[i * D + k] as f64).tanh() * dh[k]
    });
    let seen = host.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].points, 1);
}

#[test]
fn deeplift_uses_the_rescale_rule_against_the_baseline() {
    let reg = registry();
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    // Rescale multipliers through tanh: (tanh x − tanh x′)/(x − x′), so the logit is exact.
    let s = run(
        &reg,
        &host,
        "deeplift",
        json!({"return_convergence_delta": true}),
    );
    check_target(&target(&s), 1e-5, logit_closed_form(&host));
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "{d}");
    }
    let seen = host.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].points, seen[0].rule),
        (2, GradientRule::DeepLiftRescale)
    );
    // At the tap's output (no non-linearity above it) the multipliers are plain gradients.
    let host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    let s = run(
        &reg,
        &host,
        "layer_deeplift",
        json!({"target_layer": "decoder.tanh", "return_convergence_delta": true}),
    );
    check_target(&target(&s), 1e-5, logit_closed_form(&host));
    for d in deltas(&s) {
        assert!(d.abs() < 1e-5, "{d}");
    }
}

#[test]
fn layer_methods_reject_attribute_target_on_encoder_decoder() {
    let reg = registry();
    let host = LayerToy::encoder_decoder(&[2, 4], &[0, 5, 1], Score::Logit, true);
    for m in [
        "layer_integrated_gradients",
        "layer_gradient_x_activation",
        "layer_deeplift",
    ] {
        let e = run_err(&reg, &host, m, json!({"target_layer": "encoder.tanh"}));
        assert_eq!(e.code, ErrorCode::Unsupported, "{m}");
        assert!(
            e.to_string()
                .contains("do not support attribute_target=True"),
            "{e}"
        );
    }
    // Without attribute_target, an encoder tap attributes the source positions.
    let host = LayerToy::encoder_decoder(&[2, 4], &[0, 5, 1], Score::Logit, false);
    let s = run(
        &reg,
        &host,
        "layer_integrated_gradients",
        json!({"target_layer": "encoder.tanh"}),
    );
    assert!(s.target.is_none());
    assert_eq!(s.source.unwrap().shape.as_slice(), &[2, 2, D]);
}

#[test]
fn unknown_layers_are_reported_with_the_taps() {
    let reg = registry();
    let mut host = LayerToy::decoder_only(&IDS, PROMPT, Score::Logit);
    host.taps = vec!["decoder.tanh".into()];
    let e = run_err(
        &reg,
        &host,
        "layer_gradient_x_activation",
        json!({"target_layer": "decoder.tahn"}),
    );
    assert_eq!(e.code, ErrorCode::InvalidParams);
    assert!(
        e.to_string()
            .contains("unknown target_layer 'decoder.tahn'")
            && e.to_string().contains("decoder.tanh"),
        "{e}"
    );
    let e = run_err(
        &reg,
        &host,
        "layer_integrated_gradients",
        json!({"attribute_to_layer_input": true}),
    );
    assert!(
        e.to_string()
            .contains("attribute_to_layer_input needs a target_layer"),
        "{e}"
    );
}

#[test]
fn parameter_errors_are_clear() {
    let reg = registry();
    let err = |method: &str, params: Value| {
        let e = reg
            .attribution(method, &params)
            .err()
            .unwrap_or_else(|| panic!("{method} {params} accepted"));
        e.to_string()
    };
    let e = err("integrated_gradients", json!({"n_steps": 0}));
    assert!(
        e.contains("n_steps must be at least 1 with method 'gausslegendre', got 0"),
        "{e}"
    );
    let e = err(
        "integrated_gradients",
        json!({"n_steps": 1, "method": "riemann_left"}),
    );
    assert!(
        e.contains("n_steps must be at least 2 with method 'riemann_left'"),
        "{e}"
    );
    let e = err("integrated_gradients", json!({"method": "simpson"}));
    assert!(
        e.contains("unknown variant `simpson`") && e.contains("riemann_trapezoid"),
        "{e}"
    );
    let e = err("integrated_gradients", json!({"internal_batch_size": 0}));
    assert!(e.contains("internal_batch_size must be at least 1"), "{e}");
    let e = err("integrated_gradients", json!({"n_step": 3}));
    assert!(e.contains("unknown field `n_step`"), "{e}");
    let e = err("sequential_integrated_gradients", json!({"n_steps": 0}));
    assert!(e.contains("n_steps must be at least 1"), "{e}");
    let e = err("layer_integrated_gradients", json!({"n_steps": 0}));
    assert!(e.contains("n_steps must be at least 1"), "{e}");
    let e = err("gradient_shap", json!({"n_samples": 0}));
    assert!(e.contains("n_samples must be at least 1, got 0"), "{e}");
    let e = err("gradient_shap", json!({"stdevs": -1.0}));
    assert!(
        e.contains("stdevs must be a finite number >= 0, got -1"),
        "{e}"
    );
    let e = err("deeplift", json!({"custom_attribution_func": "x"}));
    assert!(e.contains("unknown field `custom_attribution_func`"), "{e}");
}

#[test]
fn capabilities_and_defaults() {
    use rinseq_sdk::{Flags, OutputKind};
    let reg = registry();
    let caps = |name: &str| {
        let p = reg
            .plugins()
            .iter()
            .find(|p| p.descriptor.name.as_str() == name);
        let c = &p
            .unwrap_or_else(|| panic!("{name} registered"))
            .descriptor
            .capabilities;
        (c.flags, c.output, c.default_aggregation.join(","))
    };
    let g = Flags::USES_GRADIENTS;
    let b = Flags::USES_BASELINES;
    let l = Flags::LAYER_METHOD;
    for (name, flags) in [
        ("integrated_gradients", g | b),
        ("gradient_shap", g | b),
        ("sequential_integrated_gradients", g | b),
        ("deeplift", g | b),
        ("layer_integrated_gradients", g | b | l),
        ("layer_gradient_x_activation", g | l),
        ("layer_deeplift", g | b | l),
        ("saliency", g),
        ("input_x_gradient", g),
    ] {
        assert_eq!(
            caps(name),
            (flags, Some(OutputKind::Granular), "vnorm".to_string()),
            "{name}"
        );
    }
}
