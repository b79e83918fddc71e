//! What the internals methods share: which attention module is which (encoder self-attention,
//! decoder self-attention, cross-attention), the layer (block) a module belongs to, and small
//! tensor helpers.

use rinseq_sdk::prelude::*;

/// The three kinds of attention modules of a transformer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttnKind {
    /// Encoder self-attention (encoder-decoder models).
    EncoderSelf,
    /// Decoder self-attention (causal; every attention module of a decoder-only model).
    DecoderSelf,
    /// Decoder cross-attention over the encoder output.
    Cross,
}

/// The kind of the attention module at HF path `name`.
pub fn attn_kind(info: &ModelInfo, name: &str) -> AttnKind {
    if info.kind == ModelKind::DecoderOnly {
        return AttnKind::DecoderSelf;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if matches!(
        last,
        "encoder_attn" | "EncDecAttention" | "crossattention" | "cross_attention"
    ) {
        AttnKind::Cross
    } else if name.starts_with("model.encoder.") || name.starts_with("encoder.") {
        AttnKind::EncoderSelf
    } else {
        AttnKind::DecoderSelf
    }
}

/// The layer (block) that holds the module at `name`: the path up to its first numeric
/// component (`model.layers.3.self_attn` → `model.layers.3`, `transformer.h.0.attn` →
/// `transformer.h.0`).
pub fn block_of(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let at = parts.iter().position(|p| p.parse::<usize>().is_ok())?;
    Some(parts[..=at].join("."))
}

/// Attention probabilities of one forward, `(heads, queries, keys)` per layer, by kind, each
/// with its module path.
#[derive(Default, Debug)]
pub struct Attentions {
    /// Encoder self-attention per layer.
    pub encoder: Vec<NamedTensor>,
    /// Decoder self-attention per layer.
    pub decoder: Vec<NamedTensor>,
    /// Cross-attention per layer.
    pub cross: Vec<NamedTensor>,
}

impl Attentions {
    /// One forward of sequence `sequence` recording every attention module.
    pub fn of(host: &Host<'_>, sequence: usize) -> Result<Self, PluginError> {
        let info = host.info();
        let resp = host.internals(InternalsRequest {
            sequence,
            attentions: true,
            ..Default::default()
        })?;
        let mut out = Self::default();
        for a in resp.attentions {
            if a.tensor.ndim() != 3 {
                return Err(PluginError::shape(format!(
                    "attention '{}' has shape {:?}, expected (heads, queries, keys)",
                    a.name, a.tensor.shape
                )));
            }
            match attn_kind(&info, &a.name) {
                AttnKind::EncoderSelf => out.encoder.push(a),
                AttnKind::DecoderSelf => out.decoder.push(a),
                AttnKind::Cross => out.cross.push(a),
            }
        }
        if out.decoder.is_empty() {
            return Err(PluginError::new(
                ErrorCode::Unsupported,
                "the host recorded no decoder attention: the model does not expose its attention \
                 weights",
            ));
        }
        Ok(out)
    }
}

/// Heads of a list of per-layer `(heads, q, k)` tensors (all layers must agree).
pub fn heads_of(layers: &[NamedTensor]) -> Result<usize, PluginError> {
    let h = layers.first().map_or(0, |t| t.tensor.shape[0]);
    if layers.iter().any(|t| t.tensor.shape[0] != h) {
        return Err(PluginError::shape(
            "attention layers have different numbers of heads",
        ));
    }
    Ok(h)
}

/// `t[h, q, k]` of a `(heads, queries, keys)` tensor.
#[inline]
pub fn hqk(t: &Tensor, h: usize, q: usize, k: usize) -> f32 {
    let (nq, nk) = (t.shape[1], t.shape[2]);
    t.data[(h * nq + q) * nk + k]
}

/// `keys × queries` maps of every layer and head, `(keys, queries, layers, heads)` (Inseq's
/// `permute(0, 4, 3, 1, 2)` of `(layers, heads, queries, keys)`), over the first `queries`
/// queries and the first `keys` keys.
pub fn keys_by_queries(
    layers: &[NamedTensor],
    keys: usize,
    queries: usize,
) -> Result<Tensor, PluginError> {
    let (nl, nh) = (layers.len(), heads_of(layers)?);
    let mut data = vec![0f32; keys * queries * nl * nh];
    for (l, t) in layers.iter().enumerate() {
        for h in 0..nh {
            for q in 0..queries {
                for k in 0..keys {
                    data[((k * queries + q) * nl + l) * nh + h] = hqk(&t.tensor, h, q, k);
                }
            }
        }
    }
    Tensor::new(vec![keys, queries, nl, nh], data)
}

/// The query position of each step: a step at target position `p` reads query `p − 1`.
pub fn step_queries(seq: &SequenceInput) -> Result<Vec<usize>, PluginError> {
    seq.steps
        .iter()
        .map(|&p| {
            (p as usize).checked_sub(1).ok_or_else(|| {
                PluginError::invalid_params("step 0 has no query position before it")
            })
        })
        .collect()
}
