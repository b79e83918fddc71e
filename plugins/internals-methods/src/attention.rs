//! `attention`: the raw attention weights of every layer and head (Inseq 0.7.1's
//! `AttentionWeightsAttribution`).
//!
//! One forward of the whole sequence (forced or generated targets alike: the method is output
//! agnostic) records every attention module. A step at target position `p` gets the attention
//! of query `p − 1`: over the target keys `< p` (decoder self-attention) and over every source
//! key (cross-attention). Per sequence the layout is `(attributed_len, n_steps, n_layers,
//! n_heads)`, as Inseq's. Encoder-decoder models: `source` = cross-attention, `target` = decoder
//! self-attention with `attribute_target`, else the decoder self-attention goes to the sequence
//! score `decoder_self_attentions`; `encoder_self_attentions` is always there. Both sequence
//! scores are `(keys, queries, n_layers, n_heads)` (Inseq's `permute(0, 4, 3, 1, 2)`), the
//! decoder one over the `last step` first target positions (the prefix Inseq's final-step
//! forward sees). Decoder-only models: only `target`.
//!
//! Head and layer selection is Inseq's: the method takes no parameter (Inseq 0.7.1 dropped
//! `layers`, `heads`, `aggregate_heads_fn`, `aggregate_layers_fn`); select with the aggregation,
//! e.g. `--aggregator scores --aggregator-kwargs '{"select_idx": 3}'` for head 3, and the
//! default aggregation `["mean", "mean"]` averages heads, then layers.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{hqk, keys_by_queries, step_queries, Attentions};

/// Parameters of `attention`: none (Inseq 0.7.1 takes none either; select heads and layers
/// with the aggregation's `select_idx`).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct AttentionParams {}

/// Raw attention weights, `(len, n_steps, n_layers, n_heads)`.
pub struct Attention;

impl PluginInfo for Attention {
    const NAME: &'static str = "attention";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Attention weights of every layer and head (query p-1 for step p), from one forward.";
    type Params = AttentionParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_INTERNALS | Flags::OUTPUT_AGNOSTIC,
            OutputKind::MultiDimensional { extra_dims: 2 },
            &["mean", "mean"],
        )
    }
}

/// `(keys, n_steps, layers, heads)`: for each step the row of its query over `keys` keys (NaN
/// at keys `>= p` when `causal`).
fn step_map(
    layers: &[NamedTensor],
    keys: usize,
    queries: &[usize],
    causal: bool,
) -> Result<Tensor, PluginError> {
    let nl = layers.len();
    let nh = crate::common::heads_of(layers)?;
    let n = queries.len();
    let mut data = vec![f32::NAN; keys * n * nl * nh];
    for (l, t) in layers.iter().enumerate() {
        let t = &t.tensor;
        if t.shape[2] < keys {
            return Err(PluginError::shape(format!(
                "attention has {} keys, the sequence {keys}",
                t.shape[2]
            )));
        }
        for (j, &q) in queries.iter().enumerate() {
            if q >= t.shape[1] {
                return Err(PluginError::shape(format!(
                    "attention has {} queries, step needs query {q}",
                    t.shape[1]
                )));
            }
            let visible = if causal { (q + 1).min(keys) } else { keys };
            for k in 0..visible {
                for h in 0..nh {
                    data[((k * n + j) * nl + l) * nh + h] = hqk(t, h, q, k);
                }
            }
        }
    }
    Tensor::new(vec![keys, n, nl, nh], data)
}

impl AttributionPlugin for Attention {
    fn new(_: AttentionParams) -> Result<Self, PluginError> {
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
            let queries = step_queries(seq)?;
            let tlen = seq.target.len();
            let decoder_map = step_map(&att.decoder, tlen, &queries, true)?;
            let mut scores = SequenceScores::default();
            if info.kind == ModelKind::DecoderOnly {
                scores.target = Some(decoder_map);
            } else {
                let slen = seq.source.len();
                scores.source = Some(step_map(&att.cross, slen, &queries, false)?);
                if request.attribute_target {
                    scores.target = Some(decoder_map);
                } else {
                    // The prefix Inseq's final-step forward sees: target[..last step].
                    let m = seq.steps.last().map_or(0, |&p| p as usize).min(tlen);
                    scores.sequence_scores.push(NamedTensor::new(
                        "decoder_self_attentions",
                        keys_by_queries(&att.decoder, m, m)?,
                    ));
                }
                scores.sequence_scores.push(NamedTensor::new(
                    "encoder_self_attentions",
                    keys_by_queries(&att.encoder, slen, slen)?,
                ));
            }
            out.sequences.push(scores);
            host.progress(i as u64 + 1, request.sequences.len() as u64)?;
        }
        Ok(out)
    }
}
