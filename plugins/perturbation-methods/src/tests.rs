//! Property tests of the perturbation methods on the SDK's toy host and on a host whose score
//! is linear in which tokens are kept.

use rinseq_sdk::prelude::*;
use rinseq_sdk::testing::ToyHost;
use rinseq_sdk::toolkit::Occlusion as ToolkitOcclusion;
use rinseq_sdk::HostApi;

use std::sync::Mutex;

use crate::{FeatureAblation, Lime, Occlusion, Reagent, ShapleyValueSampling};

fn params<P: serde::de::DeserializeOwned>(v: serde_json::Value) -> P {
    serde_json::from_value(v).unwrap()
}

fn toy() -> ToyHost {
    ToyHost::new(&[1, 2, 3, 4, 5, 2, 3], 3)
}

fn target(out: &AttributionOutput) -> Tensor {
    out.sequences[0].target.clone().unwrap()
}

/// A decoder-only host whose score at step `p` is `Σ_{k<p} w[k] · [ids[k] is the actual id]`:
/// LIME must recover `w`, Shapley values are exactly `w` (kept tokens add up). Its planted
/// ranks: the target is the top prediction when the kept tokens carry 90% or more of the
/// step's weight, rank 100 otherwise.
struct LinearHost {
    request: AttributionRequest,
    w: Vec<f32>,
    special: Vec<TokenId>,
    /// Rank requests served.
    rank_requests: Mutex<usize>,
}

impl LinearHost {
    fn new(ids: &[TokenId], w: &[f32], prompt: usize) -> Self {
        let target: Vec<Token> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                Token::new(
                    if i % 2 == 0 {
                        format!("Ġw{i}")
                    } else {
                        format!("p{i}")
                    },
                    id,
                )
            })
            .collect();
        Self {
            request: AttributionRequest {
                sequences: vec![SequenceInput {
                    source: vec![],
                    target,
                    steps: (prompt as u32..ids.len() as u32).collect(),
                    source_baseline_ids: vec![],
                    target_baseline_ids: vec![0; ids.len()],
                }],
                attribute_target: true,
            },
            w: w.to_vec(),
            special: vec![],
            rank_requests: Mutex::new(0),
        }
    }
}

impl HostApi for LinearHost {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "linear".into(),
            model_type: "linear".into(),
            kind: ModelKind::DecoderOnly,
            vocab_size: 50,
            hidden_size: 3,
            num_layers: 1,
            encoder_layers: 0,
            num_heads: 1,
            tap_names: vec![],
            special_token_ids: self.special.clone(),
        }
    }
    fn embed(&self, _: Side, _: &[TokenId]) -> Result<Tensor, PluginError> {
        Err(PluginError::unsupported("no embeddings"))
    }
    fn inputs(&self, _: usize, _: &Wrt) -> Result<SidePair, PluginError> {
        Err(PluginError::unsupported("no inputs"))
    }
    fn baselines(&self, _: usize, _: &Wrt) -> Result<SidePair, PluginError> {
        Err(PluginError::unsupported("no baselines"))
    }
    fn gradients(&self, _: GradientRequest) -> Result<GradientResponse, PluginError> {
        Err(PluginError::unsupported("no gradients"))
    }
    fn internals(&self, _: InternalsRequest) -> Result<InternalsResponse, PluginError> {
        Err(PluginError::unsupported("no internals"))
    }
    fn scores(&self, r: ScoreRequest) -> Result<Tensor, PluginError> {
        let rank = r.output == ScoreOutput::TargetRank;
        if rank {
            *self.rank_requests.lock().unwrap() += 1;
        }
        let actual: Vec<TokenId> = self.request.sequences[0]
            .target
            .iter()
            .map(|t| t.id.unwrap())
            .collect();
        let mut out = Vec::new();
        for p in &r.points {
            let ids = match &p.target {
                PointSide::Actual => actual.clone(),
                PointSide::Ids(ids) => {
                    assert_eq!(ids.len(), actual.len());
                    ids.clone()
                }
                PointSide::Values(_) => panic!("values"),
            };
            for &s in &r.steps {
                let kept: f32 = (0..s as usize)
                    .filter(|&k| ids[k] == actual[k])
                    .map(|k| self.w[k])
                    .sum();
                let all: f32 = self.w[..s as usize].iter().sum();
                out.push(match (rank, kept >= 0.9 * all) {
                    (false, _) => kept,
                    (true, true) => 1.0,
                    (true, false) => 100.0,
                });
            }
        }
        Tensor::new(vec![r.points.len(), r.steps.len()], out)
    }
}

#[test]
fn feature_ablation_on_tokens_is_signed_occlusion_and_leave_one_out() {
    let toy = toy();
    let host = toy.host();
    let occ = toy
        .attribute(&Occlusion::new(Default::default()).unwrap())
        .unwrap();
    let abl = toy
        .attribute(&FeatureAblation::new(Default::default()).unwrap())
        .unwrap();
    let (o, a) = (target(&occ), target(&abl));
    assert_eq!(o.shape, vec![7, 4]);
    assert_eq!(a.shape, o.shape);
    for (x, y) in o.data.iter().zip(&a.data) {
        assert!((x - y.abs()).abs() < 1e-6, "{x} vs |{y}|");
    }
    // The toolkit's leave-one-out drops, on the visible positions.
    let seq = &toy.request().sequences[0];
    let loo =
        ToolkitOcclusion::leave_one_out(seq, AttributedSides::of(&host, toy.request())).unwrap();
    let scores = host
        .scores(ScoreRequest {
            sequence: 0,
            points: loo.points.clone(),
            steps: seq.steps.clone(),
            ..Default::default()
        })
        .unwrap();
    let want = loo.drops(&scores).unwrap().target.unwrap();
    for (k, (x, y)) in a.data.iter().zip(&want.data).enumerate() {
        let (p, j) = (k / 4, k % 4);
        if p < seq.steps[j] as usize {
            assert!((x - y).abs() < 1e-6, "({p}, {j}): {x} vs {y}");
        }
    }
    assert!(a.data.iter().any(|v| *v < 0.0) || a.data.iter().all(|v| *v >= 0.0));
}

#[test]
fn occlusion_windows_average_the_drops_of_the_windows_covering_a_token() {
    let toy = toy();
    let occ = Occlusion::new(params(serde_json::json!({"sliding_window_shapes": [2, 4]}))).unwrap();
    let t = target(&toy.attribute(&occ).unwrap());
    assert_eq!(t.shape, vec![7, 4]);
    assert!(t.data.iter().all(|v| v.is_finite() && *v >= 0.0));
    let bad = Occlusion::new(params(serde_json::json!({"sliding_window_shapes": [1, 3]}))).unwrap();
    let err = toy.attribute(&bad).unwrap_err();
    assert!(
        err.message.contains("embedding dimensions"),
        "{}",
        err.message
    );
}

#[test]
fn one_shapley_permutation_sums_to_the_score_change_from_the_baseline() {
    for granularity in ["token", "word", "sentence"] {
        let toy = toy();
        let host = toy.host();
        let seq = &toy.request().sequences[0];
        let m = ShapleyValueSampling::new(params(serde_json::json!({
            "n_samples": 1, "seed": 7, "granularity": granularity
        })))
        .unwrap();
        let t = target(&toy.attribute(&m).unwrap());
        let f = host
            .scores(ScoreRequest {
                sequence: 0,
                points: vec![
                    InputPoint::actual(),
                    InputPoint::with_ids(Side::Target, seq.target_baseline_ids.clone()),
                ],
                steps: seq.steps.clone(),
                ..Default::default()
            })
            .unwrap();
        let ns = seq.steps.len();
        let feats_of = |p: usize| {
            crate::group_tokens(
                &seq.target,
                0..6,
                params(serde_json::json!(granularity)),
                &[],
            )
            .into_iter()
            .position(|g| g.contains(&p))
            .unwrap()
        };
        for (j, &step) in seq.steps.iter().enumerate() {
            // One value per feature: sum over features (each group's first position).
            let mut seen = std::collections::BTreeSet::new();
            let mut sum = 0.0;
            for p in 0..6 {
                if seen.insert(feats_of(p)) {
                    sum += t.data[p * ns + j];
                }
            }
            let want = f.data[j] - f.data[ns + j];
            assert!(
                (sum - want).abs() < 1e-5,
                "{granularity} step {step}: {sum} vs {want}"
            );
        }
    }
}

#[test]
fn groups_share_one_value_and_spans_group_positions() {
    let lin = LinearHost::new(&[5, 6, 7, 8, 9, 10], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2);
    let host = Host::local(&lin);
    // Tokens "Ġw0 p1 Ġw2 p3 Ġw4 p5": words [0, 1], [2, 3], [4, 5].
    let m = FeatureAblation::new(params(serde_json::json!({"granularity": "word"}))).unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    let ns = 4;
    // At the last step (position 5), word [2, 3] drops 0.3 + 0.4 and word [4] (visible part) 0.5.
    assert!((t.data[2 * ns + 3] - 0.7).abs() < 1e-6);
    assert_eq!(t.data[2 * ns + 3], t.data[3 * ns + 3]);
    assert!((t.data[4 * ns + 3] - 0.5).abs() < 1e-6);
    let m = FeatureAblation::new(params(serde_json::json!({"spans": [[0, 3]]}))).unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    assert!((t.data[3] - 0.6).abs() < 1e-6, "{:?}", t.data);
    assert!((t.data[3 * ns + 3] - 0.4).abs() < 1e-6);
    // Shapley values of an additive score are its weights, for every permutation.
    let m =
        ShapleyValueSampling::new(params(serde_json::json!({"n_samples": 3, "seed": 1}))).unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    for p in 0..5 {
        assert!((t.data[p * ns + 3] - lin.w[p]).abs() < 1e-6);
    }
    let bad = FeatureAblation::new(params(serde_json::json!({"spans": [[0, 9]]}))).unwrap();
    assert!(bad.attribute(&host, &lin.request).is_err());
}

#[test]
fn lime_recovers_a_planted_linear_scorer() {
    let w = [0.5, -0.3, 0.8, 0.1, -0.6, 0.2, 0.4, -0.2];
    let lin = LinearHost::new(&[5, 6, 7, 8, 9, 10, 11, 12], &w, 7);
    let host = Host::local(&lin);
    let m = Lime::new(params(serde_json::json!({
        "n_samples": 400, "seed": 3, "alpha": 1e-6
    })))
    .unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    assert_eq!(t.shape, vec![8, 1, 3]);
    for (p, &wp) in w.iter().enumerate().take(7) {
        for h in 0..3 {
            assert!(
                (t.data[p * 3 + h] - wp).abs() < 1e-3,
                "{p}: {} vs {wp}",
                t.data[p * 3 + h]
            );
        }
    }
    // Default alpha (1.0) shrinks but keeps the order.
    let m = Lime::new(params(serde_json::json!({"n_samples": 400, "seed": 3}))).unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    assert!(t.data[2 * 3] > t.data[0] && t.data[0] > t.data[3 * 3] && t.data[4 * 3] < t.data[3]);
}

#[test]
fn randomised_methods_are_deterministic_for_a_seed() {
    let toy = toy();
    fn run<M: AttributionPlugin>(toy: &ToyHost, v: serde_json::Value) -> Vec<f32> {
        let m = M::new(serde_json::from_value(v).unwrap()).unwrap();
        target(&toy.attribute(&m).unwrap()).data
    }
    let eq = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    let lime = |s: u64| run::<Lime>(&toy, serde_json::json!({"seed": s}));
    assert!(eq(&lime(1), &lime(1)));
    assert!(!eq(&lime(1), &lime(2)));
    let shap =
        |s: u64| run::<ShapleyValueSampling>(&toy, serde_json::json!({"seed": s, "n_samples": 3}));
    assert!(eq(&shap(4), &shap(4)));
    let rea = |s: u64| {
        run::<Reagent>(
            &toy,
            serde_json::json!({"seed": s, "max_probe_steps": 20, "num_probes": 4}),
        )
    };
    assert!(eq(&rea(5), &rea(5)));
    assert!(!eq(&rea(5), &rea(6)));
}

#[test]
fn reagent_importance_is_a_distribution_over_the_tokens_a_step_sees() {
    let lin = LinearHost::new(&[5, 6, 7, 8, 9, 10], &[0.05, 0.02, 0.6, 0.01, 0.03, 0.0], 4);
    let host = Host::local(&lin);
    let m = Reagent::new(params(serde_json::json!({
        "seed": 0, "keep_top_n": 1, "max_probe_steps": 200, "num_probes": 8
    })))
    .unwrap();
    let t = m.attribute(&host, &lin.request).unwrap().sequences[0]
        .target
        .clone()
        .unwrap();
    assert_eq!(t.shape, vec![6, 2, 3]);
    for (j, step) in [4usize, 5].iter().enumerate() {
        let sum: f32 = (0..*step).map(|p| t.data[(p * 2 + j) * 3]).sum();
        assert!((sum - 1.0).abs() < 1e-5, "step {step}: {sum}");
        // The token that carries the score is the most important.
        let best = (0..*step)
            .max_by(|&a, &b| t.data[(a * 2 + j) * 3].total_cmp(&t.data[(b * 2 + j) * 3]))
            .unwrap();
        assert_eq!(best, 2);
    }
    assert!(Reagent::new(params(serde_json::json!({"keep_top_n": 0}))).is_err());
}

/// The stopping check reads the target's rank: a probe stops once its top token (the one that
/// carries most of the score) keeps the target first; where no single token carries 90% of
/// the score the target never ranks within k and every probing step runs.
#[test]
fn reagent_stops_on_the_target_rank() {
    let run = |w: &[f32]| {
        let lin = LinearHost::new(&[5, 6, 7, 8, 9, 10], w, 4);
        let host = Host::local(&lin);
        let m = Reagent::new(params(serde_json::json!({
            "seed": 1, "keep_top_n": 1, "max_probe_steps": 50, "num_probes": 4,
            "stopping_condition_top_k": 3
        })))
        .unwrap();
        m.attribute(&host, &lin.request).unwrap();
        let served = *lin.rank_requests.lock().unwrap();
        served
    };
    // One rank request per step (2 steps) and probing step.
    let stopped = run(&[0.01, 0.01, 0.9, 0.01, 0.02, 0.0]);
    assert!(
        stopped < 2 * 50,
        "no probe stopped: {stopped} rank requests"
    );
    assert_eq!(run(&[0.1; 6]), 2 * 50);
}

#[test]
fn bad_parameters_are_refused() {
    assert!(Lime::new(params(serde_json::json!({"mask_prob": 2.0}))).is_err());
    let e = Lime::new(params(serde_json::json!({"mask_token": "pad"})))
        .err()
        .unwrap();
    assert!(e.message.contains("mask_token_id"));
    assert!(ShapleyValueSampling::new(params(serde_json::json!({"n_samples": 0}))).is_err());
    assert!(Occlusion::new(params(serde_json::json!({"strides": 0}))).is_err());
}
