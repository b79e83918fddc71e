//! [`ToyHost`]: a tiny analytic decoder-only model served through [`HostApi`].

use crate::data::{
    AttributionOutput, AttributionRequest, ModelInfo, ModelKind, SequenceInput, Side, Token,
    TokenId,
};
use crate::error::PluginError;
use crate::host::{Host, HostApi, SidePair};
use crate::requests::{
    GradientRequest, GradientResponse, InputPoint, InternalsRequest, InternalsResponse, PointSide,
    ScoreOutput, ScoreRequest, Wrt,
};
use crate::step::{StepInput, StepOutput};
use crate::tensor::{Tensor, TensorView};
use crate::{AttributionPlugin, StepFunctionPlugin};

/// The toy model's vocabulary size.
pub const TOY_VOCAB: usize = 6;
/// The toy model's hidden size.
pub const TOY_HIDDEN: usize = 4;
const V: usize = TOY_VOCAB;
const D: usize = TOY_HIDDEN;

type Scorer = Box<dyn Fn(&StepInput<'_>) -> Result<StepOutput, PluginError> + Send + Sync>;

/// A deterministic differentiable decoder-only "model" and one sequence to attribute:
/// `z_p = W · Σ_{i<p} tanh(x_i)` are the logits that predict target position `p` from the input
/// embeddings `x` (a fixed `(6, 4)` table; id 0 is the baseline token), and the attributed
/// score is a step function of them (the target's log-probability unless set). Requests are
/// checked as a real host checks them (sequence index, steps, point lengths and ids).
pub struct ToyHost {
    table: Vec<f32>,
    w: Vec<f32>,
    request: AttributionRequest,
    scorer: Scorer,
}

/// The target's log-probability and its gradient `onehot − softmax`.
fn log_prob(x: &StepInput<'_>) -> Result<StepOutput, PluginError> {
    let vocab = x.logits.shape[1];
    let mut scores = Vec::new();
    let mut grad = Vec::new();
    for (r, &t) in x.target_ids.iter().enumerate() {
        let row = x.logits.row(r);
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        scores.push(row[t as usize] - max - sum.ln());
        grad.extend(row.iter().enumerate().map(|(j, v)| {
            let p = (v - max).exp() / sum;
            if j == t as usize {
                1.0 - p
            } else {
                -p
            }
        }));
    }
    Ok(StepOutput {
        scores,
        grad_logits: x
            .want_grad
            .then(|| Tensor::new(vec![x.target_ids.len(), vocab], grad))
            .transpose()?,
        grad_contrast_logits: None,
    })
}

impl ToyHost {
    /// A toy host for the target ids `ids` (each below [`TOY_VOCAB`]) whose first `prompt_len`
    /// tokens are the prompt: steps `prompt_len..len` are attributed.
    pub fn new(ids: &[TokenId], prompt_len: usize) -> Self {
        let f = |i: usize, k: f32| (i as f32 * k).sin() * 0.9;
        let target: Vec<Token> = ids
            .iter()
            .map(|&i| Token::new(format!("t{i}"), i))
            .collect();
        Self {
            table: (0..V * D).map(|i| f(i + 1, 1.7)).collect(),
            w: (0..V * D).map(|i| f(i + 3, 0.61) * 1.5).collect(),
            request: AttributionRequest {
                sequences: vec![SequenceInput {
                    source: Vec::new(),
                    target,
                    steps: (prompt_len.max(1) as u32..ids.len() as u32).collect(),
                    source_baseline_ids: Vec::new(),
                    target_baseline_ids: vec![0; ids.len()],
                }],
                attribute_target: true,
            },
            scorer: Box::new(log_prob),
        }
    }

    /// Attributes the step function `f` instead of the log-probability.
    pub fn with_step_function<F: StepFunctionPlugin>(self, f: F) -> Self {
        self.with_scorer(move |x| f.compute(x))
    }

    /// Attributes any scoring function of the logits.
    pub fn with_scorer(
        mut self,
        f: impl Fn(&StepInput<'_>) -> Result<StepOutput, PluginError> + Send + Sync + 'static,
    ) -> Self {
        self.scorer = Box::new(f);
        self
    }

    /// The request a host would send a method for this sequence.
    pub fn request(&self) -> &AttributionRequest {
        &self.request
    }

    /// This host as a method sees it.
    pub fn host(&self) -> Host<'_> {
        Host::local(self)
    }

    /// Runs `method` on the request, as the rinseq host would.
    pub fn attribute<M: AttributionPlugin>(
        &self,
        method: &M,
    ) -> Result<AttributionOutput, PluginError> {
        method.attribute(&self.host(), &self.request)
    }

    fn len(&self) -> usize {
        self.request.sequences[0].target.len()
    }

    /// The embeddings `(len, hidden)` of the target ids.
    pub fn actual(&self) -> Vec<f32> {
        let ids: Vec<TokenId> = self.request.sequences[0]
            .target
            .iter()
            .map(|t| t.id.unwrap_or(0))
            .collect();
        self.rows(&ids)
    }

    fn rows(&self, ids: &[TokenId]) -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| self.table[i as usize * D..(i as usize + 1) * D].to_vec())
            .collect()
    }

    /// The logits that predict position `p` from embeddings `x` `(len, hidden)`.
    pub fn logits(&self, x: &[f32], p: usize) -> Vec<f32> {
        let mut h = [0f32; D];
        for i in 0..p {
            for (k, hk) in h.iter_mut().enumerate() {
                *hk += x[i * D + k].tanh();
            }
        }
        (0..V)
            .map(|v| (0..D).map(|k| self.w[v * D + k] * h[k]).sum())
            .collect()
    }

    /// The rank of the target token at position `p` among [`Self::logits`] (1 = the highest).
    pub fn target_rank(&self, x: &[f32], p: usize) -> f32 {
        let z = self.logits(x, p);
        let t = z[self.request.sequences[0].target[p].id.unwrap_or(0) as usize];
        (1 + z.iter().filter(|&&v| v > t).count()) as f32
    }

    /// The attributed score at position `p` for embeddings `x`, and d score / d logits.
    pub fn score(
        &self,
        x: &[f32],
        p: usize,
        want_grad: bool,
    ) -> Result<(f32, Vec<f32>), PluginError> {
        let z = self.logits(x, p);
        let target = [self.request.sequences[0].target[p].id.unwrap_or(0)];
        let out = (self.scorer)(&StepInput {
            logits: TensorView::new(&[1, V], &z)?,
            target_ids: &target,
            contrast_logits: None,
            contrast_target_ids: &[],
            dropout_logits: Vec::new(),
            want_grad,
        })?;
        let g = out.grad_logits.map(|t| t.data).unwrap_or_default();
        Ok((out.scores[0], g))
    }

    fn check(
        &self,
        sequence: usize,
        points: &[InputPoint],
        steps: &[u32],
    ) -> Result<(), PluginError> {
        if sequence != 0 {
            return Err(PluginError::host(format!(
                "sequence {sequence} is out of range (batch of 1)"
            )));
        }
        let known = &self.request.sequences[0].steps;
        if let Some(s) = steps.iter().find(|s| !known.contains(s)) {
            return Err(PluginError::host(format!(
                "step {s} is not one of the sequence's steps {known:?}"
            )));
        }
        for (i, p) in points.iter().enumerate() {
            let n = match &p.target {
                PointSide::Actual => continue,
                PointSide::Ids(ids) => {
                    if let Some(id) = ids.iter().find(|&&id| id as usize >= V) {
                        return Err(PluginError::host(format!(
                            "point {i}: id {id} is outside the vocabulary of {V}"
                        )));
                    }
                    ids.len()
                }
                PointSide::Values(t) => t.shape.first().copied().unwrap_or(0),
            };
            if n != self.len() {
                return Err(PluginError::host(format!(
                    "point {i} has {n} target positions, the sequence has {}",
                    self.len()
                )));
            }
        }
        Ok(())
    }

    fn point(&self, side: &PointSide) -> Vec<f32> {
        match side {
            PointSide::Actual => self.actual(),
            PointSide::Values(t) => t.data.clone(),
            PointSide::Ids(ids) => self.rows(ids),
        }
    }

    fn pair(&self, target: Vec<f32>) -> Result<SidePair, PluginError> {
        Ok(SidePair {
            source: Tensor::zeros(vec![0, D]),
            target: Tensor::new(vec![self.len(), D], target)?,
        })
    }
}

impl HostApi for ToyHost {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "toy".into(),
            model_type: "toy".into(),
            kind: ModelKind::DecoderOnly,
            vocab_size: V,
            hidden_size: D,
            num_layers: 1,
            encoder_layers: 0,
            num_heads: 1,
            tap_names: Vec::new(),
            special_token_ids: vec![0],
        }
    }

    fn embed(&self, side: Side, ids: &[TokenId]) -> Result<Tensor, PluginError> {
        if side == Side::Source {
            return Err(PluginError::unsupported("the toy model is decoder-only"));
        }
        Tensor::new(vec![ids.len(), D], self.rows(ids))
    }

    fn inputs(&self, sequence: usize, _: &Wrt) -> Result<SidePair, PluginError> {
        self.check(sequence, &[], &[])?;
        self.pair(self.actual())
    }

    fn baselines(&self, sequence: usize, _: &Wrt) -> Result<SidePair, PluginError> {
        self.check(sequence, &[], &[])?;
        self.pair(self.rows(&vec![0; self.len()]))
    }

    fn gradients(&self, r: GradientRequest) -> Result<GradientResponse, PluginError> {
        self.check(r.sequence, &r.points, &r.steps)?;
        let len = self.len();
        let (np, ns) = (r.points.len(), r.steps.len());
        let mut scores = Vec::new();
        let mut grads = vec![0f32; np * ns * len * D];
        for (pi, point) in r.points.iter().enumerate() {
            let x = self.point(&point.target);
            for (si, &p) in r.steps.iter().enumerate() {
                let p = p as usize;
                let (s, g) = self.score(&x, p, true)?;
                scores.push(s);
                // d/dh = Wᵀ g; d/dx_i = d/dh · (1 − tanh² x_i) for i < p.
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
            source: None,
            target: Some(Tensor::new(vec![np, ns, len, D], grads)?),
        })
    }

    fn scores(&self, r: ScoreRequest) -> Result<Tensor, PluginError> {
        self.check(r.sequence, &r.points, &r.steps)?;
        let mut out = Vec::new();
        for point in &r.points {
            let x = self.point(&point.target);
            for &p in &r.steps {
                out.push(match r.output {
                    ScoreOutput::AttributedFunction => self.score(&x, p as usize, false)?.0,
                    ScoreOutput::TargetRank => self.target_rank(&x, p as usize),
                });
            }
        }
        Tensor::new(vec![r.points.len(), r.steps.len()], out)
    }

    fn internals(&self, _: InternalsRequest) -> Result<InternalsResponse, PluginError> {
        Err(PluginError::unsupported("the toy model has no internals"))
    }
}
