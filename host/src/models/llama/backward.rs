//! The Llama family's hand-written backward (see [`crate::models::backward`]): the input-gradient
//! rules of a layer's ops, last op first.

use candle_core::{Result, Tensor};

use super::{Layer, Llama, Saved};
use crate::models::backward::{self, Streams};
use crate::models::causal::{merge_heads, split_heads, CausalBackward};

/// What a layer's backward reads besides the residuals and the attention.
pub struct Rest {
    /// MLP gate before the activation, and the up projection.
    pub(super) gate: Tensor,
    pub(super) up: Tensor,
    /// The rotary table `(rows, 1, len, head_dim / 2)`.
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
}

impl CausalBackward for Llama {
    /// The rules know SiLU only (every Llama / Qwen2 / Mistral checkpoint).
    fn has_backward(&self) -> bool {
        matches!(self.cfg.hidden_act.as_str(), "silu" | "swish")
    }

    fn norm_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        backward::rms_norm(x, &self.norm, self.cfg.rms_norm_eps, dy)
    }

    fn backward(&self, l: &Layer, s: &Saved, streams: &Streams, dy: &Tensor) -> Result<Tensor> {
        let eps = self.cfg.rms_norm_eps;
        let cut = |x: &Tensor, dim: usize| streams.gather(x, dim);
        let dgu = l.down.input_grad(dy)?;
        let (dg, du) = backward::swiglu(&cut(&s.rest.gate, 1)?, &cut(&s.rest.up, 1)?, &dgu)?;
        let dxn = (l.gate.input_grad(&dg)? + l.up.input_grad(&du)?)?;
        let dx_mid = (dy + backward::rms_norm(&cut(&s.x_mid, 1)?, &l.ln2, eps, &dxn)?)?;
        let d_out = split_heads(&l.o.input_grad(&dx_mid)?, self.cfg.num_attention_heads)?;
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let (dq, dk, dv) = s.attn.backward(streams, scale, &d_out)?;
        let (cos, sin) = (cut(&s.rest.cos, 2)?, cut(&s.rest.sin, 2)?);
        let dq = merge_heads(&backward::rope_half(&dq, &cos, &sin)?)?;
        let dk = merge_heads(&backward::rope_half(&dk, &cos, &sin)?)?;
        let dxn = ((l.q.input_grad(&dq)? + l.k.input_grad(&dk)?)?
            + l.v.input_grad(&merge_heads(&dv)?)?)?;
        dx_mid + backward::rms_norm(&cut(&s.x_in, 1)?, &l.ln1, eps, &dxn)?
    }
}
