//! A tiny analytic decoder-only "model" served through the SDK's host callback trait, so that
//! plugins can be run end to end without the candle runtime:
//! `z_p = W · Σ_{i<p} tanh(x_i)` are the logits that predict target token `p`, and the
//! attributed score is any step-function plugin applied to them.

use rinseq_sdk::abi_stable::sabi_trait::TD_Opaque;
use rinseq_sdk::abi_stable::std_types::{RResult, RStr, RString, RVec};
use rinseq_sdk::{
    AttributionRequest, EmbedRequest, ErrorCode, GradientRequest, GradientResponse, HostModel,
    HostModelRef, HostModel_TO, InternalsRequest, InternalsResponse, ModelInfo, ModelKind,
    PluginError, PointSide, ScoreRequest, SequenceInput, StepFunctionBox, StepInput, Tensor,
    TensorView, Token, Wrt,
};

/// Vocabulary size.
pub const V: usize = 6;
/// Hidden size.
pub const D: usize = 4;

/// The toy model, one sequence, and the step function it attributes.
pub struct ToyHost {
    /// Embedding table `(V, D)`.
    pub table: Vec<f32>,
    /// Output matrix `(V, D)`.
    pub w: Vec<f32>,
    /// The request being served.
    pub request: AttributionRequest,
    /// The attributed function.
    pub step: StepFunctionBox,
}

impl ToyHost {
    /// A toy host for the target ids `ids` with a prompt of `prompt_len` tokens.
    pub fn new(ids: &[u32], prompt_len: usize, step: StepFunctionBox) -> Self {
        let f = |i: usize, k: f32| (i as f32 * k).sin() * 0.9;
        let table = (0..V * D).map(|i| f(i + 1, 1.7)).collect();
        let w = (0..V * D).map(|i| f(i + 3, 0.61) * 1.5).collect();
        let target: RVec<Token> = ids
            .iter()
            .map(|&i| Token::new(format!("t{i}"), i as i64))
            .collect();
        let request = AttributionRequest {
            sequences: vec![SequenceInput {
                source: RVec::new(),
                target,
                steps: (prompt_len as u32..ids.len() as u32).collect(),
                source_baseline_ids: RVec::new(),
                target_baseline_ids: vec![0; ids.len()].into(),
            }]
            .into(),
            attribute_target: true,
        };
        Self {
            table,
            w,
            request,
            step,
        }
    }

    /// The borrowed callback object plugins receive.
    pub fn as_ref(&self) -> HostModelRef<'_> {
        HostModel_TO::from_ptr(self, TD_Opaque)
    }

    /// Embeddings of the target ids `(len, D)`.
    pub fn actual(&self) -> Vec<f32> {
        let seq = &self.request.sequences[0];
        seq.target
            .iter()
            .flat_map(|t| self.row(t.id as usize).to_vec())
            .collect()
    }

    fn row(&self, id: usize) -> &[f32] {
        &self.table[id * D..(id + 1) * D]
    }

    fn point(&self, side: &PointSide) -> Result<Vec<f32>, PluginError> {
        match side {
            PointSide::Actual => Ok(self.actual()),
            PointSide::Values(t) => Ok(t.data.to_vec()),
            PointSide::Ids(ids) => Ok(ids
                .iter()
                .flat_map(|&i| self.row(i as usize).to_vec())
                .collect()),
        }
    }

    /// Logits that predict position `p` from embeddings `x` `(len, D)`.
    pub fn logits(&self, x: &[f32], p: usize) -> Vec<f32> {
        let mut h = [0f32; D];
        for i in 0..p {
            for k in 0..D {
                h[k] += x[i * D + k].tanh();
            }
        }
        (0..V)
            .map(|v| (0..D).map(|k| self.w[v * D + k] * h[k]).sum())
            .collect()
    }

    /// The attributed score and d score / d logits at position `p`.
    pub fn score(
        &self,
        x: &[f32],
        p: usize,
        want_grad: bool,
    ) -> Result<(f32, Vec<f32>), PluginError> {
        let z = self.logits(x, p);
        let target = [self.request.sequences[0].target[p].id as u32];
        let shape = [1usize, V];
        let out = self
            .step
            .compute(StepInput {
                logits: TensorView::new(&shape, &z)?,
                target_ids: target.as_slice().into(),
                contrast_logits: None.into(),
                contrast_target_ids: [].as_slice().into(),
                dropout_logits: [].as_slice().into(),
                want_grad,
            })
            .into_result()?;
        let g = out
            .grad_logits
            .into_option()
            .map(|t| t.data.to_vec())
            .unwrap_or_default();
        Ok((out.scores[0], g))
    }
}

fn err<T>(msg: &str) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::new(ErrorCode::UNSUPPORTED, msg))
}

impl HostModel for ToyHost {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "toy".into(),
            model_type: "toy".into(),
            kind: ModelKind::DECODER_ONLY,
            vocab_size: V,
            hidden_size: D,
            num_layers: 1,
            encoder_layers: 0,
            num_heads: 1,
            tap_names: RVec::new(),
        }
    }

    fn embed(&self, r: &EmbedRequest) -> RResult<Tensor, PluginError> {
        let data: Vec<f32> = r
            .ids
            .iter()
            .flat_map(|&i| self.row(i as usize).to_vec())
            .collect();
        Tensor::new(vec![r.ids.len(), D], data).into()
    }

    fn inputs(&self, _: u32, _: &Wrt) -> RResult<RVec<Tensor>, PluginError> {
        let len = self.request.sequences[0].target.len();
        RResult::ROk(
            vec![
                Tensor::zeros(vec![0, D]),
                Tensor::new(vec![len, D], self.actual()).unwrap(),
            ]
            .into(),
        )
    }

    fn baselines(&self, _: u32, _: &Wrt) -> RResult<RVec<Tensor>, PluginError> {
        let len = self.request.sequences[0].target.len();
        let data: Vec<f32> = (0..len).flat_map(|_| self.row(0).to_vec()).collect();
        RResult::ROk(
            vec![
                Tensor::zeros(vec![0, D]),
                Tensor::new(vec![len, D], data).unwrap(),
            ]
            .into(),
        )
    }

    fn gradients(&self, r: &GradientRequest) -> RResult<GradientResponse, PluginError> {
        let run = || -> Result<GradientResponse, PluginError> {
            let len = self.request.sequences[0].target.len();
            let (np, ns) = (r.points.len(), r.steps.len());
            let mut scores = Vec::new();
            let mut grads = vec![0f32; np * ns * len * D];
            for (pi, point) in r.points.iter().enumerate() {
                let x = self.point(&point.target)?;
                for (si, &p) in r.steps.iter().enumerate() {
                    let p = p as usize;
                    let (s, g) = self.score(&x, p, true)?;
                    scores.push(s);
                    // d/dh = W^T g; d/dx_i = d/dh * (1 - tanh^2 x_i) for i < p
                    let dh: Vec<f32> = (0..D)
                        .map(|k| (0..V).map(|v| self.w[v * D + k] * g[v]).sum())
                        .collect();
                    for i in 0..p {
                        for k in 0..D {
                            let t = x[i * D + k].tanh();
                            grads[((pi * ns + si) * len + i) * D + k] = dh[k] * (1.0 - t * t);
                        }
                    }
                }
            }
            Ok(GradientResponse {
                scores: Tensor::new(vec![np, ns], scores)?,
                source: None.into(),
                target: Some(Tensor::new(vec![np, ns, len, D], grads)?).into(),
            })
        };
        run().into()
    }

    fn scores(&self, r: &ScoreRequest) -> RResult<Tensor, PluginError> {
        let run = || -> Result<Tensor, PluginError> {
            let mut out = Vec::new();
            for point in r.points.iter() {
                let x = self.point(&point.target)?;
                for &p in r.steps.iter() {
                    out.push(self.score(&x, p as usize, false)?.0);
                }
            }
            Tensor::new(vec![r.points.len(), r.steps.len()], out)
        };
        run().into()
    }

    fn internals(&self, _: &InternalsRequest) -> RResult<InternalsResponse, PluginError> {
        err("the toy model has no internals")
    }

    fn progress(&self, _: u64, _: u64) -> bool {
        true
    }

    fn extension(&self, name: RStr<'_>, _: RStr<'_>) -> RResult<RString, PluginError> {
        err(&format!("unknown extension {name}"))
    }
}
