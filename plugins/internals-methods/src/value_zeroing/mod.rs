//! `value_zeroing` (Mohebbi et al. 2023, "Quantifying Context Mixing in Transformers"), with
//! Inseq 0.7.1's parameters, output layout and post-processing.
//!
//! For every token `i` and every layer `l`, the value vectors of token `i` (of the selected
//! heads) are set to zero in layer `l`'s attention, and the output of layer `l` is compared with
//! the clean one at every position `j`: `score[l, j, i] = 1 − cos(h_l[j], h̃_l[j])` (or the
//! euclidean distance `‖h_l[j] − h̃_l[j]‖`). Layers are corrupted independently: layer `l`
//! always receives the clean output of layer `l − 1`, as in the paper and in Inseq (which
//! patches every block's output back to its clean value). Scores below `min_score_threshold`
//! become 0, and each row `j` is normalised to sum 1 over the zeroed tokens `i` (NaN ignored; a
//! row of zeros stays zero). Decoder self-attention scores are causal (only `j ≥ i`).
//!
//! A step at target position `p` gets row `p − 1` (as `attention`). Output: `(len, n_steps,
//! n_layers)`, default aggregation a mean over layers. Decoder-only models: `target` (decoder
//! self-attention zeroing). Encoder-decoder models: `source` from zeroing the **cross-attention**
//! values of source token `i` (decoder layer outputs compared); `target` from the decoder
//! self-attention with `attribute_target`, else the sequence score `decoder_self_scores` (when
//! `output_decoder_self_scores`); `encoder_self_scores` (encoder self-attention zeroing, encoder
//! layer outputs, when `output_encoder_self_scores`). Sequence scores are `(i, j, n_layers)` (the
//! zeroed token first, Inseq's `permute(0, 3, 2, 1)`), the decoder one over the first `last step`
//! target positions.
//!
//! How it runs: the value vectors are zeroed with [`InterventionOp::Zero`] on the value
//! projection's output (`…v_proj`, or the value columns `[2·d, 3·d)` of GPT-2's fused
//! `…attn.c_attn`; a head is a `head_dim` column range, `head_dim = hidden / heads`, grouped
//! KV heads counted as in HF's `value_states`), which is what the attention reads as its
//! values. GPT-2 and the Llama family (pre-norm blocks, `out = (x + attn) + mlp`) take one
//! forward per token: every layer zeroed at once, every layer's output replaced by its clean
//! value, and each corrupted layer output rebuilt from the recorded `attn` and `mlp` outputs
//! and the clean layer input. Other models take one forward per (token, layer) that zeroes that
//! layer only and records its output.
//!
//! Differences from Inseq 0.7.1 (which cannot run it under transformers 5): the last layer is
//! compared on its output, not on the model's final hidden state (after the final norm, for
//! GPT-2 and Llama); `euclidean` is the distance itself (Inseq's `cdist` gives a pairwise matrix
//! and fails on the assignment).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{attn_kind, Attentions, AttnKind};

mod layer;
mod similarity;
mod units;

use layer::Layer;
use similarity::row_scores;
use units::{layer_heads, parse_span};
pub use units::{Heads, ZeroedUnits};

/// How hidden states are compared.
#[derive(
    Deserialize, serde::Serialize, schemars::JsonSchema, Debug, Clone, Copy, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum SimilarityMetric {
    /// `1 − cosine similarity`.
    #[default]
    Cosine,
    /// Euclidean distance.
    Euclidean,
}

/// Parameters of `value_zeroing` (Inseq 0.7.1's).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ValueZeroingParams {
    /// How clean and corrupted layer outputs are compared: "cosine" (1 − cosine similarity) or
    /// "euclidean" (distance).
    pub similarity_metric: SimilarityMetric,
    /// Heads zeroed in the encoder self-attention (encoder-decoder models): null = all heads of
    /// every layer; an int; a list; "start:end"; or {"layer": heads} (other layers untouched).
    pub encoder_zeroed_units_indices: Option<ZeroedUnits>,
    /// Heads zeroed in the decoder self-attention (same forms as encoder_zeroed_units_indices).
    pub decoder_zeroed_units_indices: Option<ZeroedUnits>,
    /// Heads zeroed in the cross-attention (same forms as encoder_zeroed_units_indices).
    pub cross_zeroed_units_indices: Option<ZeroedUnits>,
    /// Encoder-decoder models: also compute the decoder self-attention scores (sequence score
    /// `decoder_self_scores`; always computed with attribute_target).
    pub output_decoder_self_scores: bool,
    /// Encoder-decoder models: also compute the encoder self-attention scores (sequence score
    /// `encoder_self_scores`).
    pub output_encoder_self_scores: bool,
    /// Scores below this become 0 before the row normalisation.
    pub min_score_threshold: f64,
}

impl Default for ValueZeroingParams {
    fn default() -> Self {
        Self {
            similarity_metric: SimilarityMetric::Cosine,
            encoder_zeroed_units_indices: None,
            decoder_zeroed_units_indices: None,
            cross_zeroed_units_indices: None,
            output_decoder_self_scores: true,
            output_encoder_self_scores: true,
            min_score_threshold: 1e-5,
        }
    }
}

/// Value Zeroing: context mixing from zeroing one token's value vectors per layer.
pub struct ValueZeroing(ValueZeroingParams);

impl PluginInfo for ValueZeroing {
    const NAME: &'static str = "value_zeroing";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Value Zeroing (Mohebbi et al. 2023): 1 - similarity of layer outputs when a token's value vectors are zeroed.";
    type Params = ValueZeroingParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_INTERNALS | Flags::OUTPUT_AGNOSTIC,
            OutputKind::MultiDimensional { extra_dims: 1 },
            &["mean"],
        )
    }
}

/// Scores of one attention stack: `[layer][row j][zeroed token i]`, NaN where not computed.
type Scores = Vec<Vec<Vec<f32>>>;

/// What one stack needs for its zeroing runs.
struct Stack<'a> {
    layers: &'a [Layer],
    /// Clean output of each layer `(len, hidden)`.
    clean: &'a [Tensor],
    /// Clean input of the first layer (fast path only).
    first_input: Option<&'a Tensor>,
    /// Value heads per layer.
    n_heads: usize,
    head_dim: usize,
    units: Option<&'a ZeroedUnits>,
    /// Tokens zeroed (`i < zeroed`) and rows kept (`j < rows`).
    zeroed: usize,
    rows: usize,
    causal: bool,
}

impl ValueZeroing {
    fn stack_scores(
        &self,
        host: &Host<'_>,
        sequence: usize,
        st: &Stack<'_>,
    ) -> Result<Scores, PluginError> {
        let nl = st.layers.len();
        let heads: Vec<Option<Vec<usize>>> = (0..nl)
            .map(|l| layer_heads(st.units, l, st.n_heads))
            .collect::<Result<_, _>>()?;
        let mut scores: Scores = vec![vec![vec![f32::NAN; st.zeroed]; st.rows]; nl];
        let set = |scores: &mut Scores, l: usize, i: usize, row: &[f32]| {
            for (j, v) in row.iter().enumerate().take(st.rows) {
                if !st.causal || j >= i {
                    scores[l][j][i] = *v;
                }
            }
        };
        for i in 0..st.zeroed {
            if let Some(x0) = st.first_input {
                // Fast path: every layer zeroed at once, every layer output patched back.
                let mut interventions = Vec::new();
                let mut record = Vec::new();
                for (l, layer) in st.layers.iter().enumerate() {
                    if let Some(h) = &heads[l] {
                        interventions.push(Intervention {
                            tap: layer.v_tap.clone(),
                            op: InterventionOp::Zero {
                                positions: vec![i as u32],
                                columns: layer.columns(h, st.head_dim),
                            },
                        });
                    }
                    if l + 1 < nl {
                        interventions.push(Intervention {
                            tap: layer.block.clone(),
                            op: InterventionOp::Replace(st.clean[l].clone()),
                        });
                    }
                    record.push(layer.module.clone());
                    record.push(format!("{}.mlp", layer.block));
                }
                let resp = host.internals(InternalsRequest {
                    sequence,
                    record,
                    interventions,
                    ..Default::default()
                })?;
                for (l, _) in st.layers.iter().enumerate() {
                    let input = if l == 0 { x0 } else { &st.clean[l - 1] };
                    let attn = recorded(&resp, &st.layers[l].module)?;
                    let mlp = recorded(&resp, &format!("{}.mlp", st.layers[l].block))?;
                    let data = input
                        .data
                        .iter()
                        .zip(&attn.data)
                        .zip(&mlp.data)
                        .map(|((x, a), m)| (x + a) + m)
                        .collect();
                    let corrupt = Tensor::new(input.shape.clone(), data)?;
                    set(
                        &mut scores,
                        l,
                        i,
                        &row_scores(self.0.similarity_metric, &st.clean[l], &corrupt),
                    );
                }
            } else {
                for (l, layer) in st.layers.iter().enumerate() {
                    let row = match &heads[l] {
                        None => vec![0.0; st.rows],
                        Some(h) => {
                            let resp = host.internals(InternalsRequest {
                                sequence,
                                record: vec![layer.block.clone()],
                                interventions: vec![Intervention {
                                    tap: layer.v_tap.clone(),
                                    op: InterventionOp::Zero {
                                        positions: vec![i as u32],
                                        columns: layer.columns(h, st.head_dim),
                                    },
                                }],
                                ..Default::default()
                            })?;
                            row_scores(
                                self.0.similarity_metric,
                                &st.clean[l],
                                recorded(&resp, &layer.block)?,
                            )
                        }
                    };
                    set(&mut scores, l, i, &row);
                }
            }
        }
        // Threshold, then each row normalised over the zeroed tokens (NaN-aware).
        let thr = self.0.min_score_threshold as f32;
        for layer in scores.iter_mut() {
            for row in layer.iter_mut() {
                row.iter_mut()
                    .filter(|v| !v.is_nan() && **v < thr)
                    .for_each(|v| *v = 0.0);
                let s: f32 = row.iter().filter(|v| !v.is_nan()).sum();
                let s = if s == 0.0 { 1.0 } else { s };
                row.iter_mut().for_each(|v| *v /= s);
            }
        }
        Ok(scores)
    }
}

/// `(keys, n_steps, layers)`: the row of each step's query, over `keys` zeroed tokens.
fn step_layout(scores: &Scores, keys: usize, queries: &[usize]) -> Result<Tensor, PluginError> {
    let (nl, n) = (scores.len(), queries.len());
    let mut data = vec![f32::NAN; keys * n * nl];
    for (l, s) in scores.iter().enumerate() {
        for (j, &q) in queries.iter().enumerate() {
            let row = s
                .get(q)
                .ok_or_else(|| PluginError::shape(format!("no scores for query {q}")))?;
            for (k, v) in row.iter().enumerate().take(keys) {
                data[(k * n + j) * nl + l] = *v;
            }
        }
    }
    Tensor::new(vec![keys, n, nl], data)
}

/// `(i, j, layers)` over `zeroed × rows` (Inseq's sequence-score layout).
fn zeroed_by_rows(scores: &Scores, zeroed: usize, rows: usize) -> Result<Tensor, PluginError> {
    let nl = scores.len();
    let mut data = vec![f32::NAN; zeroed * rows * nl];
    for (l, s) in scores.iter().enumerate() {
        for (j, row) in s.iter().enumerate().take(rows) {
            for (i, v) in row.iter().enumerate().take(zeroed) {
                data[(i * rows + j) * nl + l] = *v;
            }
        }
    }
    Tensor::new(vec![zeroed, rows, nl], data)
}

/// The activation recorded at `tap`.
fn recorded<'r>(resp: &'r InternalsResponse, tap: &str) -> Result<&'r Tensor, PluginError> {
    resp.recorded
        .iter()
        .find(|t| t.name == tap)
        .map(|t| &t.tensor)
        .ok_or_else(|| PluginError::shape(format!("the host recorded nothing at '{tap}'")))
}

/// Clean layer outputs, value widths and the first hidden state (the embeddings' output).
type CleanRun = (Vec<Tensor>, Vec<usize>, Option<Tensor>);

/// Layer outputs of a clean forward and the value-projection widths, by tap.
fn clean_run(
    host: &Host<'_>,
    sequence: usize,
    layers: &[&Layer],
    hidden_states: bool,
) -> Result<CleanRun, PluginError> {
    let mut record: Vec<String> = layers.iter().map(|l| l.block.clone()).collect();
    record.extend(layers.iter().map(|l| l.v_tap.clone()));
    let resp = host.internals(InternalsRequest {
        sequence,
        hidden_states,
        record,
        ..Default::default()
    })?;
    let clean = layers
        .iter()
        .map(|l| recorded(&resp, &l.block).cloned())
        .collect::<Result<_, _>>()?;
    let widths = layers
        .iter()
        .map(|l| {
            let w = recorded(&resp, &l.v_tap)?
                .shape
                .get(1)
                .copied()
                .unwrap_or(0);
            Ok(if l.v_offset > 0 { w / 3 } else { w })
        })
        .collect::<Result<_, PluginError>>()?;
    let first = resp.hidden_states.first().map(|t| t.tensor.clone());
    Ok((clean, widths, first))
}

/// Model types whose layers are pre-norm `out = (x + attn) + mlp` with taps at `attn` and
/// `mlp` (the fast path).
const PRE_NORM_RESIDUAL: [&str; 4] = ["gpt2", "llama", "qwen2", "mistral"];

impl AttributionPlugin for ValueZeroing {
    fn new(p: ValueZeroingParams) -> Result<Self, PluginError> {
        if !(p.min_score_threshold.is_finite()) {
            return Err(PluginError::invalid_params(
                "min_score_threshold must be a finite number",
            ));
        }
        for u in [
            &p.encoder_zeroed_units_indices,
            &p.decoder_zeroed_units_indices,
            &p.cross_zeroed_units_indices,
        ]
        .into_iter()
        .flatten()
        {
            if let ZeroedUnits::PerLayer(m) = u {
                for k in m.keys() {
                    k.parse::<usize>().map_err(|_| {
                        PluginError::invalid_params(format!("layer key '{k}' is not a layer index"))
                    })?;
                }
            }
            if let ZeroedUnits::All(Heads::Span(s)) = u {
                parse_span(s)?;
            }
        }
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let info = host.info();
        let p = &self.0;
        let mut out = AttributionOutput::default();
        for (si, seq) in request.sequences.iter().enumerate() {
            let att = Attentions::of(host, si)?;
            let stack = |v: &[NamedTensor]| -> Result<Vec<Layer>, PluginError> {
                v.iter().map(|t| Layer::new(&info, &t.name)).collect()
            };
            let (enc, dec, cross) = (
                stack(&att.encoder)?,
                stack(&att.decoder)?,
                stack(&att.cross)?,
            );
            debug_assert!(att
                .decoder
                .iter()
                .all(|t| attn_kind(&info, &t.name) == AttnKind::DecoderSelf));
            let queries = crate::common::step_queries(seq)?;
            let tlen = seq.target.len();
            let slen = seq.source.len();
            // Inseq's final-step forward sees target[..last step].
            let m = seq.steps.last().map_or(0, |&s| s as usize).min(tlen);
            let head_dim = info.hidden_size / info.num_heads.max(1);
            let fast = info.kind == ModelKind::DecoderOnly
                && PRE_NORM_RESIDUAL.contains(&info.model_type.as_str())
                && dec.iter().all(|l| {
                    let mlp = format!("{}.mlp", l.block);
                    info.tap_names.contains(&l.module) && info.tap_names.contains(&mlp)
                });
            let enc_refs: Vec<&Layer> = enc.iter().collect();
            let dec_refs: Vec<&Layer> = dec.iter().collect();
            let (dec_clean, dec_widths, first) = clean_run(host, si, &dec_refs, fast)?;
            let units_of = |w: &[usize]| w.first().map_or(0, |w| w / head_dim.max(1));
            let want_decoder = info.kind == ModelKind::DecoderOnly
                || p.output_decoder_self_scores
                || request.attribute_target;
            let mut scores = SequenceScores::default();
            let mut dec_scores = None;
            if want_decoder {
                dec_scores = Some(self.stack_scores(
                    host,
                    si,
                    &Stack {
                        layers: &dec,
                        clean: &dec_clean,
                        first_input: if fast { first.as_ref() } else { None },
                        n_heads: units_of(&dec_widths),
                        head_dim,
                        units: p.decoder_zeroed_units_indices.as_ref(),
                        zeroed: m,
                        rows: m,
                        causal: true,
                    },
                )?);
            }
            if info.kind == ModelKind::DecoderOnly {
                let s = dec_scores.ok_or_else(|| {
                    PluginError::plugin(
                        "value_zeroing computed no decoder scores for a decoder-only model",
                    )
                })?;
                scores.target = Some(step_layout(&s, tlen, &queries)?);
            } else {
                let cross_refs: Vec<&Layer> = cross.iter().collect();
                let (_, cross_widths, _) = clean_run(host, si, &cross_refs, false)?;
                let cross_scores = self.stack_scores(
                    host,
                    si,
                    &Stack {
                        layers: &cross,
                        clean: &dec_clean,
                        first_input: None,
                        n_heads: units_of(&cross_widths),
                        head_dim,
                        units: p.cross_zeroed_units_indices.as_ref(),
                        zeroed: slen,
                        rows: m,
                        causal: false,
                    },
                )?;
                scores.source = Some(step_layout(&cross_scores, slen, &queries)?);
                if let Some(d) = &dec_scores {
                    if request.attribute_target {
                        scores.target = Some(step_layout(d, tlen, &queries)?);
                    } else {
                        scores.sequence_scores.push(NamedTensor::new(
                            "decoder_self_scores",
                            zeroed_by_rows(d, m, m)?,
                        ));
                    }
                }
                if p.output_encoder_self_scores {
                    let (enc_clean, enc_widths, _) = clean_run(host, si, &enc_refs, false)?;
                    let e = self.stack_scores(
                        host,
                        si,
                        &Stack {
                            layers: &enc,
                            clean: &enc_clean,
                            first_input: None,
                            n_heads: units_of(&enc_widths),
                            head_dim,
                            units: p.encoder_zeroed_units_indices.as_ref(),
                            zeroed: slen,
                            rows: slen,
                            causal: false,
                        },
                    )?;
                    scores.sequence_scores.push(NamedTensor::new(
                        "encoder_self_scores",
                        zeroed_by_rows(&e, slen, slen)?,
                    ));
                }
            }
            out.sequences.push(scores);
            host.progress(si as u64 + 1, request.sequences.len() as u64)?;
        }
        Ok(out)
    }
}
