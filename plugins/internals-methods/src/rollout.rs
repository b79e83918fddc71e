//! `attention_rollout` (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
//! attention propagated through the layers with the residual connection accounted for.
//!
//! Per layer the heads are averaged and the residual is added as half of the mixing,
//! `Â = rownorm(0.5 · mean_heads(A) + 0.5 · I)`, and the layers are multiplied in forward order:
//! `R = Â_L · … · Â_1`. `R[q, k]` is how much of input token `k` reaches position `q` at the top.
//! Like `attention`, a step at target position `p` gets row `p − 1`; the output is coarse,
//! `(len, n_steps)`, one forward per sequence.
//!
//! **Decoder-only (causal)**: `R` over the target tokens; row `p − 1` is non-zero on keys `< p`
//! only and sums to 1 there.
//!
//! **Encoder-decoder**: the encoder's own rollout `R_enc = Â^enc_L · … · Â^enc_1` (source ×
//! source) says how the encoder outputs mix the source tokens. The decoder keeps two relevance
//! maps per target position, over the target tokens `R_tt` (start: `I`) and over the source
//! tokens `R_ts` (start: 0). In decoder layer `l`, the self-attention mixes target positions:
//! `R_tt ← Â^self_l R_tt`, `R_ts ← Â^self_l R_ts`; the cross-attention sub-layer then adds, as
//! half of the mixing (the residual keeps the other half), the cross-attention `C_l` (heads
//! averaged, target × source) over the encoder outputs, themselves rolled out to the source
//! tokens: `R_ts ← 0.5 · R_ts + 0.5 · C_l · R_enc`, `R_tt ← 0.5 · R_tt`. This is the rollout of
//! the joint source + target token graph in which every cross-attention edge points at an
//! encoder output (the composition used for encoder-decoder rollout in the literature, e.g.
//! Ferrando et al. 2022's treatment of cross-attention). Each row of `[R_ts | R_tt]` sums to 1:
//! `source` = `R_ts` rows, `target` (with `attribute_target`) = `R_tt` rows; without
//! `attribute_target` the target share is left out, so source columns sum to `1 − target share`.
//!
//! On deep decoder-only LLMs with an attention sink (e.g. SmolLM2, whose heads park most of
//! their attention on the first token), the rollout concentrates almost all of every row on the
//! first token: that is what the definition gives, not a numerical problem.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{heads_of, hqk, step_queries, Attentions};

/// Parameters of `attention_rollout`: none.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RolloutParams {}

/// Attention rollout with residual adjustment, `(len, n_steps)`.
pub struct AttentionRollout;

impl PluginInfo for AttentionRollout {
    const NAME: &'static str = "attention_rollout";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Attention rollout (Abnar & Zuidema 2020): residual-adjusted attention multiplied through layers.";
    type Params = RolloutParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_INTERNALS | Flags::OUTPUT_AGNOSTIC,
            OutputKind::Coarse,
            &[],
        )
    }
}

/// A dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Values, row-major (f64 for the products).
    pub data: Vec<f64>,
}

impl Mat {
    /// Zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The identity.
    pub fn eye(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// `self[r, c]`.
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Mat) -> Mat {
        assert_eq!(self.cols, other.rows);
        let mut out = Mat::zeros(self.rows, other.cols);
        for r in 0..self.rows {
            for k in 0..self.cols {
                let a = self.data[r * self.cols + k];
                if a == 0.0 {
                    continue;
                }
                let row = &other.data[k * other.cols..(k + 1) * other.cols];
                let dst = &mut out.data[r * other.cols..(r + 1) * other.cols];
                for (d, b) in dst.iter_mut().zip(row) {
                    *d += a * b;
                }
            }
        }
        out
    }

    /// `a · self + b · other`.
    pub fn mix(&self, a: f64, other: &Mat, b: f64) -> Mat {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(x, y)| a * x + b * y)
                .collect(),
        }
    }

    /// `a · self`.
    pub fn scale(&self, a: f64) -> Mat {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|x| a * x).collect(),
        }
    }
}

/// The heads' mean of a `(heads, q, k)` attention, over the first `q` queries and `k` keys.
pub fn mean_heads(t: &Tensor, q: usize, k: usize) -> Mat {
    let h = t.shape[0];
    let mut m = Mat::zeros(q, k);
    for r in 0..q {
        for c in 0..k {
            let s: f64 = (0..h).map(|hh| hqk(t, hh, r, c) as f64).sum();
            m.data[r * k + c] = s / h as f64;
        }
    }
    m
}

/// `rownorm(0.5 · A + 0.5 · I)` of a square attention `A`.
pub fn residual_adjusted(a: &Mat) -> Mat {
    let n = a.rows;
    let mut m = a.mix(0.5, &Mat::eye(n), 0.5);
    for r in 0..n {
        let row = &mut m.data[r * n..(r + 1) * n];
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    m
}

/// The rollout `Â_L · … · Â_1` of square per-layer attentions over `n` positions.
pub fn rollout(layers: &[NamedTensor], n: usize) -> Mat {
    layers.iter().fold(Mat::eye(n), |r, t| {
        residual_adjusted(&mean_heads(&t.tensor, n, n)).matmul(&r)
    })
}

/// The encoder-decoder rollout: `(R_ts, R_tt)` over `t` target and `s` source positions (see
/// the module docs).
pub fn rollout_seq2seq(att: &Attentions, s: usize, t: usize) -> Result<(Mat, Mat), PluginError> {
    if att.cross.len() != att.decoder.len() {
        return Err(PluginError::shape(format!(
            "{} decoder self-attention layers but {} cross-attention layers",
            att.decoder.len(),
            att.cross.len()
        )));
    }
    let r_enc = rollout(&att.encoder, s);
    let mut r_tt = Mat::eye(t);
    let mut r_ts = Mat::zeros(t, s);
    for (sa, ca) in att.decoder.iter().zip(&att.cross) {
        let a = residual_adjusted(&mean_heads(&sa.tensor, t, t));
        r_tt = a.matmul(&r_tt);
        r_ts = a.matmul(&r_ts);
        let c = mean_heads(&ca.tensor, t, s).matmul(&r_enc);
        r_ts = r_ts.mix(0.5, &c, 0.5);
        r_tt = r_tt.scale(0.5);
    }
    Ok((r_ts, r_tt))
}

/// `(keys, n_steps)`: row `q` of `m` for each step's query (NaN at keys `> q` when `causal`).
fn columns(m: &Mat, queries: &[usize], causal: bool) -> Result<Tensor, PluginError> {
    let n = queries.len();
    let mut data = vec![f32::NAN; m.cols * n];
    for (j, &q) in queries.iter().enumerate() {
        let visible = if causal { (q + 1).min(m.cols) } else { m.cols };
        for k in 0..visible {
            data[k * n + j] = m.at(q, k) as f32;
        }
    }
    Tensor::new(vec![m.cols, n], data)
}

impl AttributionPlugin for AttentionRollout {
    fn new(_: RolloutParams) -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let info = host.info();
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let att = Attentions::of(host, i)?;
            heads_of(&att.decoder)?;
            let queries = step_queries(seq)?;
            let t = seq.target.len();
            let mut scores = SequenceScores::default();
            if info.kind == ModelKind::DecoderOnly {
                scores.target = Some(columns(&rollout(&att.decoder, t), &queries, true)?);
            } else {
                let s = seq.source.len();
                let (r_ts, r_tt) = rollout_seq2seq(&att, s, t)?;
                scores.source = Some(columns(&r_ts, &queries, false)?);
                if request.attribute_target {
                    scores.target = Some(columns(&r_tt, &queries, true)?);
                }
            }
            out.sequences.push(scores);
            host.progress(i as u64 + 1, request.sequences.len() as u64)?;
        }
        Ok(out)
    }
}
