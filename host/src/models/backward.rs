//! Hand-written input-gradient rules, and the shared-forward reverse pass built from them.
//!
//! With the generated tokens fixed, a causal decoder's activations at positions `< t` are the
//! same whether its input stops at `t` or goes on. One forward over the longest prefix therefore
//! serves every attribution step; only the backward (one per step, over that step's prefix) is
//! per step. candle's autograd keeps one graph per forward and runs one backward over all of it,
//! so an architecture that offers this path ([`crate::models::Model::prefix_forward`]) writes its
//! backward out from the rules below: input gradients only (the weights are constants), the same
//! formulas autograd applies to the composite ops of `ops` (checked against it in the tests).
//! Each architecture's forward keeps what its backward needs (a `save` argument), so that the
//! backward never re-implements the forward: decoder-only models through the shared stack
//! (`causal/stack.rs`), the BART family by carrying the cross-attention gradient through the
//! whole encoder (`seq2seq/backward.rs`).

use candle_core::{Result, Tensor, D};

use super::ops::{repeat_kv, upcast, ConstLinear};

/// Which scores one backward serves: stream `i` is the target scored at position
/// `positions[i]` of row `rows[i]` of a shared forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streams {
    /// The shared forward's row of each stream.
    pub rows: Vec<usize>,
    /// The position whose logits each stream scores.
    pub positions: Vec<usize>,
}

impl Streams {
    /// The positions one batched backward covers: the longest stream's prefix. Shorter streams
    /// are zero-padded: causality keeps their gradients exactly zero past their own position.
    pub fn span(&self) -> usize {
        self.positions.iter().copied().max().map_or(0, |p| p + 1)
    }

    /// A saved activation `x` `(forward rows, len, ...)` (time along `time`) for every stream,
    /// over the first [`Streams::span`] positions: `(streams, span, ...)`.
    pub fn gather(&self, x: &Tensor, time: usize) -> Result<Tensor> {
        self.select(x)?.narrow(time, 0, self.span())
    }

    /// A saved tensor `(forward rows, ...)` for every stream, whole: `(streams, ...)` (encoder
    /// activations, which every decoder position sees).
    pub fn select(&self, x: &Tensor) -> Result<Tensor> {
        let identity =
            self.rows.len() == x.dim(0)? && self.rows.iter().enumerate().all(|(i, &r)| i == r);
        if identity {
            return Ok(x.clone());
        }
        let idx: Vec<u32> = self.rows.iter().map(|&r| r as u32).collect();
        x.contiguous()?
            .index_select(&Tensor::new(idx.as_slice(), x.device())?, 0)
    }

    /// The scored position of each stream in `x` `(forward rows, len, d)`: `(streams, d)`.
    pub fn pick(&self, x: &Tensor) -> Result<Tensor> {
        let (_, len, d) = x.dims3()?;
        let idx: Vec<u32> = self
            .rows
            .iter()
            .zip(&self.positions)
            .map(|(&r, &p)| (r * len + p) as u32)
            .collect();
        x.reshape(((), d))?
            .index_select(&Tensor::new(idx.as_slice(), x.device())?, 0)
    }

    /// Puts each stream's gradient row `(streams, d)` at its scored position of zeros
    /// `(streams, span, d)`.
    pub fn place(&self, g: &Tensor) -> Result<Tensor> {
        let (n, d) = g.dims2()?;
        let span = self.span();
        let idx: Vec<u32> = self
            .positions
            .iter()
            .enumerate()
            .map(|(i, &p)| (i * span + p) as u32)
            .collect();
        Tensor::zeros((n * span, d), g.dtype(), g.device())?
            .index_add(&Tensor::new(idx.as_slice(), g.device())?, g, 0)?
            .reshape((n, span, d))
    }
}

/// The input gradients of a batch of streams.
pub struct PrefixGrads {
    /// d score / d target (decoder) embeddings, `(streams, span, hidden)`, zero past each
    /// stream's position.
    pub target: Tensor,
    /// d score / d source (encoder) embeddings, `(streams, src_len, hidden)` (encoder-decoder
    /// models).
    pub source: Option<Tensor>,
}

/// One forward over many rows (input points) whose activations are kept for the backward of any
/// prefix: what [`crate::models::Model::prefix_forward`] returns.
pub trait PrefixBackward: Send + Sync {
    /// Logits `(streams, vocab)` at each stream's position.
    fn logits_at(&self, streams: &Streams) -> Result<Tensor>;

    /// The gradient of `Σ_i <grad_logits[i], logits_at(streams)[i]>` with respect to each
    /// stream's input embeddings (see [`Streams::span`]).
    fn backward(&self, streams: &Streams, grad_logits: &Tensor) -> Result<PrefixGrads>;
}

/// What [`crate::models::Model::prefix_forward`] returns: `None` where the model has no shared
/// forward.
pub type Shared<'a> = Option<Result<Box<dyn PrefixBackward + 'a>>>;

/// A built (or failed) shared forward, boxed for [`crate::models::Model::prefix_forward`].
pub fn shared<'a, P: PrefixBackward + 'a>(built: Result<P>) -> Shared<'a> {
    Some(built.map(|p| Box::new(p) as Box<dyn PrefixBackward + 'a>))
}

/// Which positions of an attention the streams' backward covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKind {
    /// Causal self-attention: queries and keys up to the streams' span.
    Causal,
    /// Decoder queries up to the span over every encoder key (cross-attention).
    Cross,
    /// Every query and key (encoder self-attention).
    Full,
}

/// What an attention's backward keeps from the forward: per-head queries and keys (after any
/// rotary embedding), values `(rows, heads or kv heads, len, head_dim)` and probabilities
/// `(rows, heads, q_len, k_len)`.
pub struct SavedAttention {
    kind: AttentionKind,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
}

impl SavedAttention {
    /// Keeps the forward's tensors (contiguous, so that streams can gather their rows).
    pub fn new(
        kind: AttentionKind,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        probs: &Tensor,
    ) -> Result<Self> {
        Ok(Self {
            kind,
            q: q.contiguous()?,
            k: k.contiguous()?,
            v: v.contiguous()?,
            probs: probs.contiguous()?,
        })
    }

    /// [`attention`]'s input gradients `(dq, dk, dv)` for the streams' output gradient `d_out`
    /// `(streams, heads, q positions, head_dim)`.
    pub fn backward(
        &self,
        streams: &Streams,
        scale: f64,
        d_out: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let span = streams.span();
        let (q, k, v, probs) = match self.kind {
            AttentionKind::Causal => (
                streams.gather(&self.q, 2)?,
                streams.gather(&self.k, 2)?,
                streams.gather(&self.v, 2)?,
                streams.gather(&self.probs, 2)?.narrow(3, 0, span)?,
            ),
            AttentionKind::Cross => (
                streams.gather(&self.q, 2)?,
                streams.select(&self.k)?,
                streams.select(&self.v)?,
                streams.gather(&self.probs, 2)?,
            ),
            AttentionKind::Full => (
                streams.select(&self.q)?,
                streams.select(&self.k)?,
                streams.select(&self.v)?,
                streams.select(&self.probs)?,
            ),
        };
        attention(&q, &k, &v, &probs, scale, d_out)
    }
}

impl ConstLinear {
    /// The input gradient `g @ w` of [`ConstLinear::forward`] for the output gradient `g`
    /// `(..., out)`: `(..., in)`.
    pub fn input_grad(&self, g: &Tensor) -> Result<Tensor> {
        let out = self.w.dim(0)?;
        let n = g.elem_count() / out.max(1);
        let mut dims = g.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.w.dim(1)?;
        }
        g.contiguous()?
            .reshape((n, out))?
            .matmul(&self.w)?
            .reshape(dims)
    }
}

/// Input gradient of [`super::ops::rms_norm`] (`w * x / sqrt(mean(x^2) + eps)`) at `x`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, dy: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = upcast(x)?;
    let dyw = upcast(&dy.broadcast_mul(w)?)?;
    let r = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    // d/dx (x r) = r - x r^3 mean(dy w x)
    let proj = ((&dyw * &xf)?.mean_keepdim(D::Minus1)? * r.powf(3.0)?)?;
    (dyw.broadcast_mul(&r)? - xf.broadcast_mul(&proj)?)?.to_dtype(dt)
}

/// Input gradient of [`super::ops::layer_norm`] (`(x - mean) / sqrt(var + eps) * w + b`) at `x`.
pub fn layer_norm(x: &Tensor, w: &Tensor, eps: f64, dy: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = upcast(x)?;
    let dyw = upcast(&dy.broadcast_mul(w)?)?;
    let centered = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let r = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let xhat = centered.broadcast_mul(&r)?;
    // dx = r (dyw - mean(dyw) - xhat mean(dyw xhat))
    let proj = (&dyw * &xhat)?.mean_keepdim(D::Minus1)?;
    let inner = dyw
        .broadcast_sub(&dyw.mean_keepdim(D::Minus1)?)?
        .sub(&xhat.broadcast_mul(&proj)?)?;
    inner.broadcast_mul(&r)?.to_dtype(dt)
}

/// Input gradient of the element-wise [`super::ops::activation`] `name` at `x`, from candle's
/// autograd on that one op (exact for every activation `ops` knows).
pub fn activation(name: &str, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let v = candle_core::Var::from_tensor(x)?;
    let y = super::ops::activation(name, v.as_tensor())?;
    let grads = (y * dy.detach())?.sum_all()?.backward()?;
    match grads.get(v.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => x.zeros_like(),
    }
}

/// Input gradient of [`super::ops::rope_half`]: the rotation by minus the angle.
pub fn rope_half(dy: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = dy.dim(D::Minus1)?;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?;
    // y = x cos + [-x2, x1] sin  =>  dx = dy cos + [z2, -z1] with z = dy sin.
    let z = dy.broadcast_mul(&sin)?;
    let z1 = z.narrow(D::Minus1, 0, d / 2)?;
    let z2 = z.narrow(D::Minus1, d / 2, d / 2)?;
    dy.broadcast_mul(&cos)? + Tensor::cat(&[&z2, &z1.neg()?], D::Minus1)?
}

/// Input gradients of the SwiGLU product `silu(g) * u`: `(dg, du)`.
pub fn swiglu(g: &Tensor, u: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = candle_nn::ops::sigmoid(g)?;
    let silu = (g * &s)?;
    // silu'(g) = s (1 + g (1 - s))
    let dsilu = (&s * ((g * (1.0 - &s)?)? + 1.0)?)?;
    Ok((((dy * u)? * dsilu)?, (dy * silu)?))
}

/// Sums the gradients of the query heads that share a key/value head (the reverse of
/// [`repeat_kv`]): `(b, kv * n_rep, t, d)` -> `(b, kv, t, d)`.
fn sum_groups(x: &Tensor, kv: usize) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    if h == kv {
        return Ok(x.clone());
    }
    x.reshape((b, kv, h / kv, t, d))?.sum(2)
}

/// Input gradients `(dq, dk, dv)` of [`super::ops::attention`] (no dropout) from its
/// probabilities `p` `(b, heads, q, k)` and the output gradient `d_out` `(b, heads, q, d)`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: &Tensor,
    scale: f64,
    d_out: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let kv = k.dim(1)?;
    let n_rep = q.dim(1)? / kv;
    let k_rep = repeat_kv(k, n_rep)?.contiguous()?;
    let v_rep = repeat_kv(v, n_rep)?.contiguous()?;
    let p = p.contiguous()?;
    let d_out = d_out.contiguous()?;
    let p_t = p.t()?.contiguous()?;
    let dv = p_t.matmul(&d_out)?;
    let dp = d_out.matmul(&v_rep.t()?.contiguous()?)?;
    // softmax: ds = p (dp - Σ_k dp p), then the score scale.
    let ds = ((&p * dp.broadcast_sub(&(&dp * &p)?.sum_keepdim(D::Minus1)?)?)? * scale)?;
    let dq = ds.matmul(&k_rep)?;
    let dk = ds.t()?.contiguous()?.matmul(&q.contiguous()?)?;
    Ok((dq, sum_groups(&dk, kv)?, sum_groups(&dv, kv)?))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::super::ops;

    /// d Σ f(x) ⊙ dy / dx by candle's autograd.
    fn autograd(
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        x: &Tensor,
        dy: &Tensor,
    ) -> Tensor {
        let v = Var::from_tensor(x).unwrap();
        let y = f(v.as_tensor()).unwrap();
        let g = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
        g.get(v.as_tensor()).unwrap().clone()
    }

    fn assert_close(a: &Tensor, b: &Tensor) {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let d: f64 = d.to_scalar().unwrap();
        assert!(d < 1e-10, "max difference {d}");
    }

    fn randn(shape: &[usize]) -> Tensor {
        Tensor::randn(0f64, 1.0, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn norms_rope_and_activations_match_autograd() {
        let (x, dy, w) = (randn(&[2, 3, 8]), randn(&[2, 3, 8]), randn(&[8]));
        let rms = autograd(|x| ops::rms_norm(x, &w, 1e-6), &x, &dy);
        assert_close(&super::rms_norm(&x, &w, 1e-6, &dy).unwrap(), &rms);
        let b = randn(&[8]);
        let ln = autograd(|x| ops::layer_norm(x, &w, Some(&b), 1e-5), &x, &dy);
        assert_close(&super::layer_norm(&x, &w, 1e-5, &dy).unwrap(), &ln);
        let (cos, sin) = (randn(&[2, 1, 3, 4]), randn(&[2, 1, 3, 4]));
        let dy4 = randn(&[2, 2, 3, 8]);
        let x4 = randn(&[2, 2, 3, 8]);
        let rope = autograd(|x| ops::rope_half(x, &cos, &sin), &x4, &dy4);
        assert_close(&super::rope_half(&dy4, &cos, &sin).unwrap(), &rope);
        let u = randn(&[2, 3, 8]);
        let (dg, du) = super::swiglu(&x, &u, &dy).unwrap();
        assert_close(&dg, &autograd(|g| ops::silu(g)? * &u, &x, &dy));
        assert_close(&du, &autograd(|u| ops::silu(&x)? * u, &u, &dy));
        let gelu = autograd(|x| ops::activation("gelu_new", x), &x, &dy);
        assert_close(&super::activation("gelu_new", &x, &dy).unwrap(), &gelu);
    }

    #[test]
    fn attention_with_grouped_heads_matches_autograd() {
        let (q, k, v) = (
            randn(&[2, 4, 5, 6]),
            randn(&[2, 2, 5, 6]),
            randn(&[2, 2, 5, 6]),
        );
        let mask = Tensor::ones((2, 5), candle_core::DType::U8, &Device::Cpu).unwrap();
        let bias = ops::attention_bias(&mask, 5, 0, true, candle_core::DType::F64).unwrap();
        let taps = super::super::Taps::none();
        let d_out = randn(&[2, 4, 5, 6]);
        let run = |q: &Tensor, k: &Tensor, v: &Tensor| {
            ops::attention(q, k, v, &bias, 0.3, (&taps, 0.0)).map(|(o, _)| o)
        };
        let (_, probs) = ops::attention(&q, &k, &v, &bias, 0.3, (&taps, 0.0)).unwrap();
        let (dq, dk, dv) = super::attention(&q, &k, &v, &probs, 0.3, &d_out).unwrap();
        assert_close(&dq, &autograd(|q| run(q, &k, &v), &q, &d_out));
        assert_close(&dk, &autograd(|k| run(&q, k, &v), &k, &d_out));
        assert_close(&dv, &autograd(|v| run(&q, &k, v), &v, &d_out));
    }
}
