//! Differentiable building blocks, made of composite candle ops only.
//!
//! candle's fused kernels (`candle_nn::ops::{softmax_last_dim, rms_norm, layer_norm}`,
//! `candle_nn::rotary_emb::rope*`, `QMatMul`, `KvCache::append`) return tensors with no graph link:
//! the gradient is silently cut (or silently wrong with residual connections). Every function here
//! is built from ops whose backward is exact (checked against f64 finite differences in the tests),
//! and works in f32, f64 and f16. The only custom op, [`ConstLinear`], has its own backward that
//! returns the input gradient only (the weight is a constant): 1.3x to 3x faster backward passes.

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor, WithDType, D,
};

type Result<T> = candle_core::Result<T>;

/// Keeps candle's element-wise ops on the calling thread unless the user chose otherwise.
///
/// candle 0.11 runs every element-wise op on 64K+ elements on its own "barrier pool"
/// (`CANDLE_NUM_THREADS` workers, default: the physical cores) that *spin-waits* for work, next
/// to the rayon pool that runs the matmuls (`RAYON_NUM_THREADS`). On a small machine the two
/// pools fight for the same cores: a batched forward+backward (16 rows x 15 tokens, SmolLM2-135M,
/// 2 cores, load average 3-5) took 9-10 s with the pool and 2-2.8 s without it. Element-wise
/// results do not depend on the thread count. Call before the first tensor op (the pool reads the variable once);
/// `CANDLE_NUM_THREADS` and `RAYON_NUM_THREADS` already set are respected.
pub fn init_cpu_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        // candle asks for its thread count before every matmul; unless RAYON_NUM_THREADS is set
        // it re-parses /proc/cpuinfo each time (num_cpus::get_physical): about 6% of a
        // SmolLM2 forward+backward in a profile. Fix the count once, at the same value.
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let physical = candle_core::utils::get_num_threads();
            std::env::set_var("RAYON_NUM_THREADS", physical.to_string());
        }
    });
}

/// Softmax over the last dimension (max-shifted exp / sum), differentiable.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// Log-softmax over the last dimension, differentiable.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(x, D::Minus1)
}

/// RMSNorm as HF Llama computes it: `w * x / sqrt(mean(x^2) + eps)`, in f32 for f16 inputs.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = upcast(x)?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dt)?;
    normed.broadcast_mul(w)
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * w + b` (biased variance).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = upcast(x)?;
    let centered = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(dt)?;
    let y = normed.broadcast_mul(w)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `x` in f32 when it is f16 / bf16 (norms and softmax run in f32, as in HF).
pub(crate) fn upcast(x: &Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32),
        _ => Ok(x.clone()),
    }
}

/// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`), written out of `tanh`/`mul` so that
/// its gradient is exact (candle's `gelu` backward uses 6-digit constants).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = ((x + (x.powf(3.0)? * 0.044715)?)? * c)?;
    (x * 0.5)? * (inner.tanh()? + 1.0)?
}

/// GELU, exact erf form (`gelu`): `0.5 x (1 + erf(x / sqrt 2))`, with an exact gradient.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    let e = (x * std::f64::consts::FRAC_1_SQRT_2)?.erf()?;
    (x * 0.5)? * (e + 1.0)?
}

/// SiLU / swish: `x * sigmoid(x)` (candle's backward is exact).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x.silu()
}

/// Applies an HF activation by its config name (`hidden_act` / `activation_function`).
pub fn activation(name: &str, x: &Tensor) -> Result<Tensor> {
    match name {
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_tanh" => gelu_tanh(x),
        "gelu" => gelu_erf(x),
        "silu" | "swish" => silu(x),
        "relu" => x.relu(),
        "tanh" => x.tanh(),
        other => candle_core::bail!("unsupported activation function `{other}`"),
    }
}

/// The additive bias value for masked attention scores (HF uses `finfo(dtype).min`, not `-inf`,
/// so that fully masked rows give a uniform distribution instead of NaNs).
pub fn mask_min(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        DType::F64 => f64::MIN,
        _ => f32::MIN as f64,
    }
}

/// Additive attention bias `(batch, 1, q_len, k_len)`: 0 where query `i` (at absolute position
/// `offset + i`) may attend key `j` (`j <= offset + i` when `causal`, and `mask[b, j] == 1`),
/// [`mask_min`] elsewhere. `mask` is `(batch, k_len)`, any dtype, 1 = token, 0 = padding.
pub fn attention_bias(
    mask: &Tensor,
    q_len: usize,
    offset: usize,
    causal: bool,
    dtype: DType,
) -> Result<Tensor> {
    bias_impl(mask, q_len, offset, causal, None, dtype)
}

/// Causal attention bias with a sliding window (Mistral, Qwen2): query at absolute position `p`
/// sees keys `j` with `p - window < j <= p` (HF `sliding_window`). `None` = no window.
pub fn causal_bias_window(
    mask: &Tensor,
    q_len: usize,
    offset: usize,
    window: Option<usize>,
    dtype: DType,
) -> Result<Tensor> {
    bias_impl(mask, q_len, offset, true, window, dtype)
}

fn bias_impl(
    mask: &Tensor,
    q_len: usize,
    offset: usize,
    causal: bool,
    window: Option<usize>,
    dtype: DType,
) -> Result<Tensor> {
    let (b, k_len) = mask.dims2()?;
    let keep = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let min = mask_min(dtype);
    let mut data = vec![0f64; b * q_len * k_len];
    for (bi, row) in keep.iter().enumerate() {
        for i in 0..q_len {
            let p = offset + i;
            for (j, &m) in row.iter().enumerate() {
                let outside = window.is_some_and(|w| j + w <= p);
                let blocked = m == 0.0 || (causal && j > p) || outside;
                if blocked {
                    data[(bi * q_len + i) * k_len + j] = min;
                }
            }
        }
    }
    Tensor::from_vec(data, (b, 1, q_len, k_len), mask.device())?.to_dtype(dtype)
}

/// Position ids from a left-padded mask `(batch, len)`: `cumsum(mask) - 1`, with padding at 1, as
/// HF generation computes them, so that a padded row gets the positions of the unpadded one.
/// Returns `(batch, len)` u32 positions (the last `len` of them when `offset` tokens came before:
/// pass the mask of the whole sequence so far).
pub fn positions_from_mask(mask: &Tensor, len: usize) -> Result<Vec<Vec<u32>>> {
    let (_, total) = mask.dims2()?;
    let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut seen = 0u32;
        let mut pos = Vec::with_capacity(total);
        for m in row {
            if m != 0.0 {
                pos.push(seen);
                seen += 1;
            } else {
                pos.push(1);
            }
        }
        out.push(pos[total.saturating_sub(len)..].to_vec());
    }
    Ok(out)
}

/// Repeats key/value heads for grouped-query attention: `(b, kv, t, d)` -> `(b, kv * n_rep, t, d)`.
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, d) = x.dims4()?;
    Tensor::cat(&vec![x; n_rep], 2)?.reshape((b, kv * n_rep, t, d))
}

/// Scaled dot-product attention with an additive `bias` `(b, 1, q, k)` and GQA.
/// `q` is `(b, heads, q, d)`, `k`/`v` are `(b, kv_heads, k, d)`. Returns the output
/// `(b, heads, q, d)` and the probabilities `(b, heads, q, k)`; `dropout` = the forward's taps and
/// the model's attention-probability dropout (HF `attn_dropout`), active only under MC dropout.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
    dropout: (&super::Taps, f64),
) -> Result<(Tensor, Tensor)> {
    let n_rep = q.dim(1)? / k.dim(1)?;
    let k = repeat_kv(k, n_rep)?;
    let v = repeat_kv(v, n_rep)?;
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let scores = scores.broadcast_add(bias)?;
    let probs = if scores.dtype() == DType::F16 {
        softmax_last(&scores.to_dtype(DType::F32)?)?.to_dtype(DType::F16)?
    } else {
        softmax_last(&scores)?
    };
    let out = dropout
        .0
        .dropout(probs.clone(), dropout.1)?
        .matmul(&v.contiguous()?)?;
    Ok((out, probs))
}

/// Rotary-embedding tables: `inv_freq` per pair of dimensions, plus an attention factor.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
    /// Multiplies cos/sin (1.0 except for some scaled variants).
    pub attention_factor: f64,
}

impl Rope {
    /// Plain RoPE: `inv_freq[i] = 1 / theta^(2i / dim)`.
    pub fn new(dim: usize, theta: f64) -> Self {
        let inv_freq = (0..dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
            .collect();
        Self {
            inv_freq,
            attention_factor: 1.0,
        }
    }

    /// Builds the table from an `inv_freq` computed elsewhere (rope scaling variants).
    pub fn from_inv_freq(inv_freq: Vec<f64>) -> Self {
        Self {
            inv_freq,
            attention_factor: 1.0,
        }
    }

    /// The inverse frequencies.
    pub fn inv_freq(&self) -> &[f64] {
        &self.inv_freq
    }

    /// `(cos, sin)`, each `(batch, 1, len, dim/2)`, for per-row positions.
    pub fn cos_sin(
        &self,
        pos: &[Vec<u32>],
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let b = pos.len();
        let t = pos.first().map_or(0, |p| p.len());
        let h = self.inv_freq.len();
        let mut cos = Vec::with_capacity(b * t * h);
        let mut sin = Vec::with_capacity(b * t * h);
        for row in pos {
            for &p in row {
                for f in &self.inv_freq {
                    let a = p as f64 * f;
                    cos.push(a.cos() * self.attention_factor);
                    sin.push(a.sin() * self.attention_factor);
                }
            }
        }
        let mk = |v: Vec<f64>| Tensor::from_vec(v, (b, 1, t, h), dev)?.to_dtype(dtype);
        Ok((mk(cos)?, mk(sin)?))
    }
}

/// Half-split RoPE (HF `rotate_half`): pairs dimension `i` with `i + d/2`.
/// `x` is `(b, heads, t, d)`, `cos`/`sin` are `(b, 1, t, d/2)` from [`Rope::cos_sin`].
pub fn rope_half(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?
}

/// Interleaved RoPE (GPT-J / GGUF layout): pairs dimension `2i` with `2i + 1`.
/// Shapes as in [`rope_half`].
pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    let cos = cos.unsqueeze(D::Minus1)?;
    let sin = sin.unsqueeze(D::Minus1)?;
    let x = x.reshape((b, h, t, d / 2, 2))?;
    let x0 = x.narrow(D::Minus1, 0, 1)?;
    let x1 = x.narrow(D::Minus1, 1, 1)?;
    let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[y0, y1], D::Minus1)?.reshape((b, h, t, d))
}

/// A linear layer whose weight is a constant: forward `x @ w^T + b`, backward returns only the
/// input gradient `g @ w` (candle's matmul backward would also compute the weight gradient, which
/// costs most of the backward pass). `w` is `(out, in)` (PyTorch `nn.Linear` layout).
#[derive(Debug, Clone)]
pub struct ConstLinear {
    /// `(out, in)` weight.
    pub w: Tensor,
    /// Optional `(out,)` bias.
    pub b: Option<Tensor>,
}

impl ConstLinear {
    /// A linear layer from a PyTorch-layout weight `(out, in)` and an optional bias.
    pub fn new(w: Tensor, b: Option<Tensor>) -> Self {
        Self { w, b }
    }

    /// A linear layer from a GPT-2 `Conv1D` weight `(in, out)` (transposed once, at load time).
    pub fn from_conv1d(w: &Tensor, b: Option<Tensor>) -> Result<Self> {
        Ok(Self::new(w.t()?.contiguous()?, b))
    }

    /// Output features.
    pub fn out_dim(&self) -> Result<usize> {
        self.w.dim(0)
    }

    /// `x` `(..., in)` -> `(..., out)`, differentiable with respect to `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == self.w.dtype() {
            return x.contiguous()?.apply_op1(self.clone());
        }
        self.plain(x)
    }

    /// The same with ordinary candle ops (non-CPU devices; also the reference in tests).
    pub fn plain(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.w.t()?)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    fn compute<T: WithDType>(&self, v: &[T], shape: &Shape) -> Result<Tensor> {
        let in_dim = shape.dims().last().copied().unwrap_or(1);
        let n = shape.elem_count() / in_dim.max(1);
        let x = Tensor::from_slice(v, (n, in_dim), &Device::Cpu)?;
        let y = x.matmul(&self.w.t()?)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl CustomOp1 for ConstLinear {
    fn name(&self) -> &'static str {
        "const-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, z) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("const-linear: non-contiguous input".into()))?;
        let y = match s {
            CpuStorage::F32(v) => self.compute(&v[a..z], l.shape())?,
            CpuStorage::F64(v) => self.compute(&v[a..z], l.shape())?,
            CpuStorage::F16(v) => self.compute(&v[a..z], l.shape())?,
            CpuStorage::BF16(v) => self.compute(&v[a..z], l.shape())?,
            _ => candle_core::bail!("const-linear: unsupported dtype"),
        };
        let mut dims = l.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.w.dim(0)?;
        }
        let y = y.contiguous()?;
        let (st, yl) = y.storage_and_layout();
        match (&*st, yl.contiguous_offsets()) {
            (Storage::Cpu(c), Some((0, n))) if n == c.len_of() => {
                Ok((c.clone(), Shape::from(dims)))
            }
            _ => candle_core::bail!("const-linear: unexpected output storage"),
        }
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.input_grad(g)?.reshape(x.shape())?))
    }
}

trait LenOf {
    fn len_of(&self) -> usize;
}

impl LenOf for CpuStorage {
    fn len_of(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            _ => 0,
        }
    }
}
