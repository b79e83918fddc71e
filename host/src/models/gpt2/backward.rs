//! GPT-2's hand-written backward (see [`crate::models::backward`]): the input-gradient rules of
//! a block's ops, last op first.

use candle_core::{Result, Tensor, D};

use super::{Block, Gpt2, Saved};
use crate::models::backward::{self, Streams};
use crate::models::causal::{merge_heads, split_heads, CausalBackward};

impl CausalBackward for Gpt2 {
    fn norm_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        backward::layer_norm(x, &self.ln_f.w, self.cfg.layer_norm_epsilon, dy)
    }

    fn backward(&self, b: &Block, s: &Saved, streams: &Streams, dy: &Tensor) -> Result<Tensor> {
        let eps = self.cfg.layer_norm_epsilon;
        let cut = |x: &Tensor| streams.gather(x, 1);
        let d_act = b.mlp_proj.input_grad(dy)?;
        let d_fc = backward::activation(&self.cfg.activation_function, &cut(&s.rest)?, &d_act)?;
        let dxn = b.c_fc.input_grad(&d_fc)?;
        let dx_mid = (dy + backward::layer_norm(&cut(&s.x_mid)?, &b.ln2.w, eps, &dxn)?)?;
        let d_out = split_heads(&b.c_proj.input_grad(&dx_mid)?, self.cfg.n_head)?;
        let (dq, dk, dv) = s.attn.backward(streams, b.scale, &d_out)?;
        let dqkv = Tensor::cat(
            &[merge_heads(&dq)?, merge_heads(&dk)?, merge_heads(&dv)?],
            D::Minus1,
        )?;
        let dxn = b.c_attn.input_grad(&dqkv)?;
        dx_mid + backward::layer_norm(&cut(&s.x_in)?, &b.ln1.w, eps, &dxn)?
    }
}
