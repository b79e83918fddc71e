//! Tests of the step functions: values and gradients against Inseq 0.7.1 / torch autograd
//! (`reference.json`, written by `make_reference.py`), gradients against central finite
//! differences, filtering masks, capabilities and error messages.

use rinseq_sdk::abi::Descriptor;
use rinseq_sdk::author::parse_params;
use rinseq_sdk::prelude::*;
use rinseq_step_functions::*;
use serde_json::Value;

/// Owned inputs of one step.
#[derive(Clone)]
struct Inputs {
    shape: Vec<usize>,
    logits: Vec<f32>,
    targets: Vec<u32>,
    contrast: Option<Vec<f32>>,
    contrast_targets: Vec<u32>,
    dropout: Vec<Vec<f32>>,
}

impl Inputs {
    fn new(logits: &[Vec<f32>], targets: &[u32]) -> Self {
        Self {
            shape: vec![logits.len(), logits[0].len()],
            logits: logits.concat(),
            targets: targets.to_vec(),
            contrast: None,
            contrast_targets: vec![],
            dropout: vec![],
        }
    }

    fn with_contrast(mut self, logits: &[Vec<f32>], targets: &[u32]) -> Self {
        self.contrast = Some(logits.concat());
        self.contrast_targets = targets.to_vec();
        self
    }

    fn with_dropout(mut self, samples: &[Vec<Vec<f32>>]) -> Self {
        self.dropout = samples.iter().map(|s| s.concat()).collect();
        self
    }
}

/// The descriptor the host reads for `T`.
fn step_function<T: StepFunctionPlugin>() -> Descriptor {
    rinseq_sdk::abi::guest::step_function::<T>().into()
}

/// Builds the plugin from JSON parameters and runs it, as the host does (minus the FFI).
fn run<T: StepFunctionPlugin>(
    params: &str,
    x: &Inputs,
    want_grad: bool,
) -> Result<StepOutput, PluginError> {
    let f = T::new(parse_params::<T::Params>(T::NAME, params)?)?;
    let views: Vec<TensorView<'_>> = x
        .dropout
        .iter()
        .map(|d| TensorView::new(&x.shape, d).unwrap())
        .collect();
    let input = StepInput {
        logits: TensorView::new(&x.shape, &x.logits)?,
        target_ids: &x.targets,
        contrast_logits: match &x.contrast {
            Some(c) => Some(TensorView::new(&x.shape, c)?),
            None => None,
        },
        contrast_target_ids: &x.contrast_targets,
        dropout_logits: views,
        want_grad,
    };
    f.compute(&input)
}

/// Runs the step function named `name` (the plugin's registered name).
fn run_named(
    name: &str,
    params: &str,
    x: &Inputs,
    want_grad: bool,
) -> Result<StepOutput, PluginError> {
    match name {
        "logit" => run::<Logit>(params, x, want_grad),
        "probability" => run::<Probability>(params, x, want_grad),
        "entropy" => run::<Entropy>(params, x, want_grad),
        "crossentropy" => run::<CrossEntropy>(params, x, want_grad),
        "perplexity" => run::<Perplexity>(params, x, want_grad),
        "contrast_logits" => run::<ContrastLogits>(params, x, want_grad),
        "contrast_prob" => run::<ContrastProb>(params, x, want_grad),
        "contrast_logits_diff" => run::<ContrastLogitsDiff>(params, x, want_grad),
        "contrast_prob_diff" => run::<ContrastProbDiff>(params, x, want_grad),
        "pcxmi" => run::<Pcxmi>(params, x, want_grad),
        "kl_divergence" => run::<KlDivergence>(params, x, want_grad),
        "in_context_pvi" => run::<InContextPvi>(params, x, want_grad),
        "mc_dropout_prob_avg" => run::<McDropoutProbAvg>(params, x, want_grad),
        "top_p_size" => run::<TopPSize>(params, x, want_grad),
        other => panic!("unknown step function {other}"),
    }
}

fn err(r: Result<StepOutput, PluginError>) -> PluginError {
    r.expect_err("expected an error")
}

// ---------------------------------------------------------------------------------------------
// Reference values (Inseq 0.7.1 + torch autograd, float64)

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference.json")).unwrap()
}

fn rows_f32(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn flat_f64(v: &Value) -> Vec<Option<f64>> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat_f64).collect(),
        Value::Null => vec![None],
        x => vec![Some(x.as_f64().unwrap())],
    }
}

/// `|a - b| <= 1e-6 * max(|a|, |b|)` (plus 1e-9 for values that are exactly zero on one side).
fn assert_close(what: &str, got: &[f32], want: &[Option<f64>]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, w)) in got.iter().zip(want).enumerate() {
        let w = w.unwrap_or_else(|| panic!("{what}[{i}]: reference is NaN"));
        let g = f64::from(g);
        let tol = 1e-6 * g.abs().max(w.abs()) + 1e-9;
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, reference {w}");
    }
}

#[test]
fn values_and_gradients_match_inseq() {
    let reference = reference();
    let shared = &reference["inputs"];
    let dropout: Vec<Vec<Vec<f32>>> = shared["dropout_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(rows_f32)
        .collect();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["function"].as_str().unwrap();
        let params = case["params"].to_string();
        let what = format!("{name} {params}");
        let inputs = case.get("inputs").unwrap_or(shared);
        let mut x = Inputs::new(&rows_f32(&inputs["logits"]), &ids(&inputs["target_ids"]))
            .with_contrast(
                &rows_f32(&inputs["contrast_logits"]),
                &inputs
                    .get("contrast_target_ids")
                    .map(ids)
                    .unwrap_or_default(),
            );
        if let Some(n) = case.get("n_dropout") {
            x = x.with_dropout(&dropout[..n.as_u64().unwrap() as usize]);
        }
        let want_grad = case.get("grad_logits").is_some();
        let out = run_named(name, &params, &x, want_grad).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_close(
            &format!("{what} scores"),
            &out.scores,
            &flat_f64(&case["scores"]),
        );
        if want_grad {
            let g = out.grad_logits.clone().expect("grad_logits");
            assert_eq!(&g.shape[..], &x.shape[..]);
            assert_close(
                &format!("{what} grad_logits"),
                &g.data,
                &flat_f64(&case["grad_logits"]),
            );
        }
        if let Some(want) = case.get("grad_contrast_logits") {
            if name == "mc_dropout_prob_avg" {
                continue;
            }
            let g = out.grad_contrast_logits.expect("grad_contrast_logits");
            assert_close(
                &format!("{what} grad_contrast_logits"),
                &g.data,
                &flat_f64(want),
            );
        }
    }
}

#[test]
fn unfiltered_kl_equals_inseq_and_filtered_inseq_is_nan() {
    // Where Inseq is well defined (no filtering) rinseq's intended value is Inseq's; with any
    // filtering Inseq 0.7.1 returns NaN (written as null), the divergence documented on
    // `KlDivergence`.
    for case in reference()["cases"].as_array().unwrap() {
        if case["function"] != "kl_divergence" {
            continue;
        }
        let p = &case["params"];
        let filtered = p.get("top_k").and_then(Value::as_i64).unwrap_or(0) > 0
            || p.get("top_p").and_then(Value::as_f64).unwrap_or(1.0) < 1.0;
        let inseq = flat_f64(&case["inseq_scores"]);
        if filtered {
            assert!(
                inseq.iter().all(Option::is_none),
                "{p}: Inseq is NaN when filtering"
            );
        } else {
            assert_eq!(inseq, flat_f64(&case["scores"]), "{p}");
        }
    }
}

#[test]
fn top_p_size_is_per_row_and_sums_to_inseq_batch_count() {
    let reference = reference();
    let x = Inputs::new(
        &rows_f32(&reference["inputs"]["logits"]),
        &ids(&reference["inputs"]["target_ids"]),
    );
    let mut n = 0;
    for case in reference["cases"].as_array().unwrap() {
        if case["function"] != "top_p_size" {
            continue;
        }
        n += 1;
        let out = run::<TopPSize>(&case["params"].to_string(), &x, false).unwrap();
        let want = flat_f64(&case["scores"]);
        assert_close(
            &format!("top_p_size {}", case["params"]),
            &out.scores,
            &want,
        );
        // Inseq's whole-batch count (shape [1]) is the sum of the per-row counts.
        let total: f32 = out.scores.iter().sum();
        assert_eq!(Some(f64::from(total)), flat_f64(&case["inseq_scores"])[0]);
    }
    assert!(n >= 5);
}

#[test]
fn filter_masks_match_inseq_filter_logits() {
    let reference = reference();
    let cases = reference["filter_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let z = rows_f32(&case["logits"]);
        let zc = (!case["contrast_logits"].is_null()).then(|| rows_f32(&case["contrast_logits"]));
        let kept: Vec<Vec<bool>> = case["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_bool().unwrap())
                    .collect()
            })
            .collect();
        let top_k = case["top_k"].as_u64().unwrap() as usize;
        let top_p = case["top_p"].as_f64().unwrap();
        let keep = case["min_tokens_to_keep"].as_u64().unwrap() as usize;
        for (r, want) in kept.iter().enumerate() {
            let got = filtering::filter_keep(
                &z[r],
                zc.as_ref().map(|c| c[r].as_slice()),
                top_k,
                top_p,
                keep,
            )
            .unwrap();
            assert_eq!(&got, want, "filter {case}");
        }
    }
}

#[test]
fn inseq_test_filter_logits_cases() {
    // tests/utils/test_torch_utils.py::test_filter_logits of Inseq 0.7.1.
    let z = [1.0f32, 2.0, 3.0, 4.0, 5.0];
    let zc = [15.0f32, 13.0, 11.0, 9.0, 7.0];
    let top_k = filtering::filter_keep(&z, None, 2, 1.0, 1).unwrap();
    assert_eq!(top_k, [false, false, false, true, true]);
    let top_p = filtering::filter_keep(&z, None, 0, 0.9, 1).unwrap();
    assert_eq!(top_p, [false, false, true, true, true]);
    let merged = filtering::filter_keep(&z, Some(&zc), 2, 1.0, 1).unwrap();
    assert_eq!(merged, [true, true, false, false, false]);
}

// ---------------------------------------------------------------------------------------------
// Gradients against central finite differences

fn fixture() -> Inputs {
    let z = vec![
        vec![1.5f32, -0.25, 2.125, 0.75, -1.0, 3.0, 0.5],
        vec![0.0, 2.5, -1.5, 1.25, 0.625, -0.375, 1.875],
    ];
    let zc = vec![
        vec![0.25f32, 1.75, -0.5, 2.5, 0.125, 1.0, -2.0],
        // Not the reference's -0.75: no ties in the merged logits z + z', whose filter masks
        // would change under the finite-difference perturbations.
        vec![1.125, -0.875, 2.0, 0.5, 3.25, -1.25, 0.375],
    ];
    let noise = |k: usize| -> Vec<Vec<f32>> {
        z.iter()
            .enumerate()
            .map(|(r, row)| {
                row.iter()
                    .enumerate()
                    .map(|(j, v)| v + 0.25 * (((r * 7 + j) * (k + 3)) as f32 * 0.37).sin())
                    .collect()
            })
            .collect()
    };
    let dropout: Vec<Vec<Vec<f32>>> = (0..5).map(noise).collect();
    Inputs::new(&z, &[2, 5])
        .with_contrast(&zc, &[5, 4])
        .with_dropout(&dropout)
}

/// Sum of the scores over rows (each row's score depends only on its own row).
fn total(name: &str, params: &str, x: &Inputs) -> f64 {
    let out = run_named(name, params, x, false).unwrap();
    out.scores.iter().map(|&s| f64::from(s)).sum()
}

/// Checks `grad` against a Richardson-extrapolated central difference of the scores w.r.t. the
/// logits (`contrast = false`) or the contrast logits (`contrast = true`). Inputs and outputs
/// are `f32`, so the step is a power of two (exact perturbations) and the tolerance is set by the
/// `f32` rounding of the scores.
fn check_fd(name: &str, params: &str, x: &Inputs, grad: &[f32], contrast: bool) {
    let h = 1.0 / 64.0;
    for i in 0..grad.len() {
        let at = |d: f32| {
            let mut y = x.clone();
            let v = if contrast {
                y.contrast.as_mut().unwrap()
            } else {
                &mut y.logits
            };
            v[i] += d;
            total(name, params, &y)
        };
        let diff = |h: f32| (at(h) - at(-h)) / (2.0 * f64::from(h));
        let fd = (4.0 * diff(h / 2.0) - diff(h)) / 3.0;
        let g = f64::from(grad[i]);
        assert!(
            (g - fd).abs() <= 2e-4 * (1.0 + g.abs()),
            "{name} {params}: d/d{}[{}] analytic {g}, finite difference {fd}",
            if contrast { "z'" } else { "z" },
            i
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let x = fixture();
    let cases: &[(&str, &str, bool)] = &[
        ("logit", "{}", false),
        ("probability", "{}", false),
        ("probability", r#"{"logprob": true}"#, false),
        ("entropy", "{}", false),
        ("crossentropy", "{}", false),
        ("perplexity", "{}", false),
        ("contrast_logits", "{}", true),
        ("contrast_prob", "{}", true),
        ("contrast_prob", r#"{"logprob": true}"#, true),
        ("contrast_logits_diff", "{}", true),
        ("contrast_prob_diff", "{}", true),
        ("contrast_prob_diff", r#"{"logprob": true}"#, true),
        ("pcxmi", "{}", true),
        ("in_context_pvi", "{}", true),
        ("kl_divergence", "{}", true),
        ("kl_divergence", r#"{"top_k": 2}"#, true),
        ("kl_divergence", r#"{"top_p": 0.8}"#, true),
        (
            "kl_divergence",
            r#"{"top_k": 4, "top_p": 0.95, "min_tokens_to_keep": 2}"#,
            true,
        ),
        ("mc_dropout_prob_avg", "{}", false),
        ("mc_dropout_prob_avg", r#"{"logprob": true}"#, false),
    ];
    for &(name, params, contrastive) in cases {
        let out = run_named(name, params, &x, true).unwrap();
        let g = out.grad_logits.expect("grad_logits");
        assert_eq!(&g.shape[..], &x.shape[..]);
        check_fd(name, params, &x, &g.data, false);
        match out.grad_contrast_logits {
            Some(gc) => {
                assert!(contrastive, "{name}: unexpected contrast gradient");
                check_fd(name, params, &x, &gc.data, true);
            }
            None => assert!(!contrastive, "{name}: missing contrast gradient"),
        }
    }
}

#[test]
fn no_gradients_unless_asked() {
    let x = fixture();
    for name in ["contrast_prob_diff", "kl_divergence", "mc_dropout_prob_avg"] {
        let out = run_named(name, "{}", &x, false).unwrap();
        assert_eq!(out.scores.len(), 2);
        assert!(
            out.grad_logits.is_none() && out.grad_contrast_logits.is_none(),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Semantics

#[test]
fn contrast_targets_default_to_the_original_targets() {
    // Inseq with `contrast_sources` only: the contrast target is the original target.
    let mut x = fixture();
    let with = x.clone();
    x.contrast_targets.clear();
    let mut same = with.clone();
    same.contrast_targets = same.targets.clone();
    let a = run::<ContrastProbDiff>("{}", &x, false).unwrap();
    let b = run::<ContrastProbDiff>("{}", &same, false).unwrap();
    assert_eq!(a.scores, b.scores);
    assert_ne!(
        a.scores,
        run::<ContrastProbDiff>("{}", &with, false).unwrap().scores
    );
}

#[test]
fn identical_contrast_gives_zero_divergences() {
    let mut x = fixture();
    x.contrast = Some(x.logits.clone());
    x.contrast_targets = x.targets.clone();
    for name in [
        "pcxmi",
        "in_context_pvi",
        "kl_divergence",
        "contrast_prob_diff",
        "contrast_logits_diff",
    ] {
        let out = run_named(name, "{}", &x, false).unwrap();
        assert!(
            out.scores.iter().all(|s| s.abs() < 1e-6),
            "{name}: {:?}",
            out.scores
        );
    }
}

#[test]
fn mc_dropout_uses_unbiased_std() {
    let x = Inputs::new(&[vec![0.0f32, 0.0]], &[0])
        .with_dropout(&[vec![vec![0.0f32, 0.0]], vec![vec![f32::ln(3.0), 0.0]]]);
    // p = 0.5; samples 0.5 and 0.75: mean 0.625, unbiased std = 0.25 / sqrt(2).
    let out = run::<McDropoutProbAvg>(r#"{"n_mcd_steps": 2}"#, &x, false).unwrap();
    let want = (0.5 - 0.625) / (0.25 / 2f64.sqrt());
    assert!(
        (f64::from(out.scores[0]) - want).abs() < 1e-6,
        "{:?}",
        out.scores
    );
}

#[test]
fn capabilities_and_registration() {
    let nc = Flags::NEEDS_CONTRAST;
    let expected: &[(Descriptor, Flags, &str)] = &[
        (step_function::<ContrastLogits>(), nc, "absmax"),
        (step_function::<ContrastProb>(), nc, "prod"),
        (step_function::<ContrastLogitsDiff>(), nc, "absmax"),
        (step_function::<ContrastProbDiff>(), nc, "prod"),
        (step_function::<Pcxmi>(), nc, "sum"),
        (
            step_function::<KlDivergence>(),
            nc | Flags::NEEDS_FORCED_CONTRAST,
            "sum",
        ),
        (step_function::<InContextPvi>(), nc, "absmax"),
        (
            step_function::<McDropoutProbAvg>(),
            Flags::NEEDS_DROPOUT_SAMPLES,
            "prod",
        ),
        (
            step_function::<TopPSize>(),
            Flags::NOT_DIFFERENTIABLE,
            "absmax",
        ),
    ];
    for (d, flags, agg) in expected {
        assert_eq!(d.capabilities.flags, *flags, "{}", d.name);
        assert_eq!(
            d.capabilities.span_aggregation.as_deref(),
            Some(*agg),
            "{}",
            d.name
        );
        assert!(!d.description.is_empty());
    }
    let schema = step_function::<KlDivergence>().params_schema;
    for field in ["top_k", "top_p", "min_tokens_to_keep", "merged logits"] {
        assert!(
            schema.contains(field),
            "kl_divergence schema lacks {field}: {schema}"
        );
    }
    let schema = step_function::<McDropoutProbAvg>().params_schema;
    assert!(
        schema.contains("n_mcd_steps") && schema.contains("logprob"),
        "{schema}"
    );
    assert!(step_function::<TopPSize>()
        .params_schema
        .contains("\"required\""));
}

// ---------------------------------------------------------------------------------------------
// Errors

fn message(e: &PluginError) -> String {
    e.to_string()
}

#[test]
fn contrastive_functions_need_contrast_inputs() {
    let mut x = fixture();
    x.contrast = None;
    x.contrast_targets.clear();
    for name in [
        "contrast_logits",
        "contrast_prob",
        "contrast_logits_diff",
        "contrast_prob_diff",
        "pcxmi",
        "kl_divergence",
        "in_context_pvi",
    ] {
        let e = err(run_named(name, "{}", &x, false));
        assert_eq!(e.code, ErrorCode::InvalidParams, "{name}");
        assert_eq!(
            message(&e),
            format!(
                "[invalid-params] '{name}' is contrastive and needs contrast inputs (pass \
                 `contrast_targets` and/or `contrast_sources`), but no contrast logits were given"
            )
        );
    }
}

#[test]
fn contrast_shape_errors() {
    let x = fixture();
    let mut bad = x.clone();
    bad.contrast_targets = vec![1];
    let e = err(run::<Pcxmi>("{}", &bad, false));
    assert_eq!(e.code, ErrorCode::ShapeMismatch);
    assert!(message(&e).contains("contrast target ids: expected one per row (2), got 1"));
    let mut bad = x.clone();
    bad.contrast_targets = vec![1, 7];
    let e = err(run::<Pcxmi>("{}", &bad, false));
    assert_eq!(
        message(&e),
        "[shape-mismatch] contrast target id 7 is outside the vocabulary of 7"
    );
}

#[test]
fn kl_parameter_errors_match_inseq() {
    let x = fixture();
    let cases = [
        (
            r#"{"top_k": -1}"#,
            "`top_k` has to be a positive integer < vocabulary size, but is -1",
        ),
        (
            r#"{"top_k": 8}"#,
            "`top_k` has to be a positive integer < 7, but is 8",
        ),
        (
            r#"{"top_p": 1.5}"#,
            "`top_p` has to be a float > 0 and < 1, but is 1.5",
        ),
        (
            r#"{"top_p": -0.5}"#,
            "`top_p` has to be a float > 0 and < 1, but is -0.5",
        ),
        (
            r#"{"top_p": 0.5, "min_tokens_to_keep": 0}"#,
            "`min_tokens_to_keep` has to be a positive integer, but is 0",
        ),
        (
            r#"{"top_k": 2, "min_tokens_to_keep": 9}"#,
            "top-k filtering keeps max(`top_k`, `min_tokens_to_keep`) = 9 tokens, more than the \
             vocabulary size 7",
        ),
    ];
    for (params, want) in cases {
        let e = err(run::<KlDivergence>(params, &x, false));
        assert_eq!(e.code, ErrorCode::InvalidParams, "{params}");
        assert_eq!(message(&e), format!("[invalid-params] {want}"), "{params}");
    }
    // top_k = vocab is allowed (keeps everything), as in Inseq.
    let all = run::<KlDivergence>(r#"{"top_k": 7}"#, &x, false).unwrap();
    assert_eq!(
        all.scores,
        run::<KlDivergence>("{}", &x, false).unwrap().scores
    );
    let e = err(run::<KlDivergence>(
        r#"{"top_k": 2, "logprob": true}"#,
        &x,
        false,
    ));
    assert!(message(&e).contains("unknown field `logprob`"), "{e}");
}

#[test]
fn top_p_size_errors() {
    let x = fixture();
    let e = err(run::<TopPSize>("{}", &x, false));
    assert!(message(&e).contains("missing field `top_p`"), "{e}");
    let e = err(run::<TopPSize>(r#"{"top_p": 2.0}"#, &x, false));
    assert_eq!(
        message(&e),
        "[invalid-params] `top_p` has to be a float > 0 and < 1, but is 2"
    );
    let e = err(run::<TopPSize>(r#"{"top_p": 0.5}"#, &x, true));
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(message(&e).contains("not differentiable"));
}

#[test]
fn mc_dropout_errors() {
    let x = fixture();
    let e = err(run::<McDropoutProbAvg>(r#"{"n_mcd_steps": 1}"#, &x, false));
    assert_eq!(e.code, ErrorCode::InvalidParams);
    assert!(
        message(&e).contains("`n_mcd_steps` has to be at least 2"),
        "{e}"
    );
    let e = err(run::<McDropoutProbAvg>(r#"{"n_mcd_steps": 3}"#, &x, false));
    assert_eq!(
        message(&e),
        "[shape-mismatch] 'mc_dropout_prob_avg' expects `n_mcd_steps` = 3 dropout forwards, got 5"
    );
    let mut none = x.clone();
    none.dropout.clear();
    let e = err(run::<McDropoutProbAvg>("{}", &none, false));
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(
        message(&e).contains("needs 5 Monte Carlo dropout forwards"),
        "{e}"
    );
}
