//! The host side of the SDK boundary for a real model: serves a method's requests (gradients,
//! scores, internals, embeddings) for one batch of encoded sequences.

use candle_core::{DType, Tensor};
use rinseq_sdk::abi_stable::sabi_trait::TD_Opaque;
use rinseq_sdk::abi_stable::std_types::{RResult, RStr, RString, RVec};
use rinseq_sdk::{
    EmbedRequest, ErrorCode, GradientRequest, GradientResponse, GradientRule, HostModel,
    HostModelRef, HostModel_TO, InternalsRequest, InternalsResponse, ModelInfo, NamedTensor,
    PluginError, PointSide, ScoreRequest, Side, StepFunctionBox, Tensor as SdkTensor, Wrt,
};

use super::forward::{run_rows, GradMode, RowContrast, Rows};
use super::sequence::EncodedSequence;
use crate::models::{Model, ModelKind, Side as ModelSide, Taps};

/// Rows per batched forward: bounds memory (rows × len × hidden activations per layer).
pub const DEFAULT_ROWS_PER_FORWARD: usize = 16;

/// Serves one batch of sequences to a method.
pub struct ModelHost<'a> {
    /// The model.
    pub model: &'a dyn Model,
    /// The model's name as the user gave it.
    pub name: String,
    /// The sequences of this batch.
    pub sequences: &'a [EncodedSequence],
    /// The attributed function.
    pub target_fn: &'a StepFunctionBox,
    /// Whether target-side attributions are wanted (always for decoder-only models).
    pub attribute_target: bool,
    /// Rows per batched forward.
    pub rows_per_forward: usize,
    /// Run the contrast input for a contrastive attributed function (else reuse the original
    /// forward and change only the target id).
    pub force_contrast_inputs: bool,
}

pub(crate) fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(ErrorCode::HOST, e.to_string())
}

fn to_sdk(t: &Tensor) -> Result<SdkTensor, PluginError> {
    let shape = t.dims().to_vec();
    let data: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(host_err)?;
    SdkTensor::new(shape, data)
}

impl<'a> ModelHost<'a> {
    /// The borrowed callback object plugins receive.
    pub fn as_ref(&self) -> HostModelRef<'_> {
        HostModel_TO::from_ptr(self, TD_Opaque)
    }

    fn decoder_only(&self) -> bool {
        self.model.spec().kind == ModelKind::DecoderOnly
    }

    fn seq(&self, i: u32) -> Result<&EncodedSequence, PluginError> {
        self.sequences.get(i as usize).ok_or_else(|| {
            PluginError::new(
                ErrorCode::HOST,
                format!(
                    "sequence {i} is out of range (batch of {})",
                    self.sequences.len()
                ),
            )
        })
    }

    /// Embeddings `(len, hidden)` of `ids` on `side`.
    fn embed_ids(&self, side: ModelSide, ids: &[u32]) -> Result<Tensor, PluginError> {
        let device = candle_core::Device::Cpu;
        let t = Tensor::new(ids, &device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(host_err)?;
        self.model
            .embed(side, &t)
            .and_then(|e| e.squeeze(0))
            .map_err(host_err)
    }

    fn point_side(
        &self,
        side: ModelSide,
        actual_ids: &[u32],
        p: &PointSide,
    ) -> Result<Tensor, PluginError> {
        match p {
            PointSide::Actual => self.embed_ids(side, actual_ids),
            PointSide::Ids(ids) => self.embed_ids(side, ids),
            PointSide::Values(t) => {
                let dims: Vec<usize> = t.shape.to_vec();
                Tensor::from_slice(&t.data, dims, &candle_core::Device::Cpu)
                    .and_then(|x| x.to_dtype(self.dtype()))
                    .map_err(host_err)
            }
        }
    }

    fn dtype(&self) -> DType {
        self.embed_ids(ModelSide::Decoder, &[0])
            .map(|t| t.dtype())
            .unwrap_or(DType::F32)
    }

    /// Scores (and gradients) for every (point, step) of a request, in row chunks.
    fn evaluate(
        &self,
        sequence: u32,
        wrt: &Wrt,
        points: &[rinseq_sdk::InputPoint],
        steps: &[u32],
        grad: bool,
    ) -> Result<GradientResponse, PluginError> {
        let seq = self.seq(sequence)?;
        let enc_dec = !self.decoder_only();
        if let Some(&s) = steps
            .iter()
            .find(|&&s| s == 0 || s as usize >= seq.target_ids.len())
        {
            return Err(PluginError::new(
                ErrorCode::HOST,
                format!(
                    "step {s} is outside the target of {} tokens",
                    seq.target_ids.len()
                ),
            ));
        }
        let layer = match wrt {
            Wrt::InputEmbeddings => None,
            Wrt::Layer { input: true, .. } => {
                return Err(PluginError::unsupported(
                    "attribute_to_layer_input is not supported yet",
                ))
            }
            Wrt::Layer { name, .. } => Some(name.as_str()),
        };
        // Per point: the embeddings of both sides, or (layer requests) the tap's activation.
        let mut src_points = Vec::new();
        let mut tgt_points = Vec::new();
        let mut layer_points = Vec::new();
        for p in points {
            match layer {
                None => {
                    if enc_dec {
                        src_points.push(self.point_side(
                            ModelSide::Encoder,
                            &seq.source_ids,
                            &p.source,
                        )?);
                    }
                    tgt_points.push(self.point_side(
                        ModelSide::Decoder,
                        &seq.target_ids,
                        &p.target,
                    )?);
                }
                Some(name) => {
                    let side = if layer_side(name) == Side::SOURCE {
                        &p.source
                    } else {
                        &p.target
                    };
                    layer_points.push(match side {
                        PointSide::Actual => self.activation(seq, name, false)?,
                        PointSide::Values(t) => to_candle(t, self.dtype())?,
                        PointSide::Ids(_) => {
                            return Err(PluginError::unsupported(
                                "layer requests take activation values, not token ids",
                            ))
                        }
                    });
                }
            }
        }
        if layer.is_some() {
            // Layer rows run on the actual input; only the activation differs per point.
            if enc_dec {
                src_points =
                    vec![self.embed_ids(ModelSide::Encoder, &seq.source_ids)?; points.len()];
            }
            tgt_points = vec![self.embed_ids(ModelSide::Decoder, &seq.target_ids)?; points.len()];
        }
        // Rows run step-major (shortest steps first) so that each chunk holds rows of similar
        // steps and runs on a short prefix (see `run_rows`); results are put back in
        // (point, step) order below.
        let mut step_order: Vec<usize> = (0..steps.len()).collect();
        step_order.sort_by_key(|&s| steps[s]);
        let contrast = self.contrast_for_steps(seq, steps)?;
        let pairs: Vec<(usize, usize)> = step_order
            .iter()
            .flat_map(|&s| (0..points.len()).map(move |p| (p, s)))
            .collect();
        // Row index (in `pairs`) of every (point, step), point-major.
        let mut order = vec![0u32; pairs.len()];
        for (i, &(p, s)) in pairs.iter().enumerate() {
            order[p * steps.len() + s] = i as u32;
        }
        let mut scores = Vec::with_capacity(pairs.len());
        let (mut src_grads, mut tgt_grads, mut layer_grads) = (Vec::new(), Vec::new(), Vec::new());
        let chunk = self.rows_per_forward.max(1);
        for (done, rows) in pairs.chunks(chunk).enumerate() {
            let batch = Rows {
                source: enc_dec.then(|| rows.iter().map(|&(p, _)| &src_points[p]).collect()),
                target: rows.iter().map(|&(p, _)| &tgt_points[p]).collect(),
                positions: rows.iter().map(|&(_, s)| steps[s] as usize).collect(),
                target_ids: rows
                    .iter()
                    .map(|&(_, s)| seq.target_ids[steps[s] as usize])
                    .collect(),
                contrast: contrast.as_ref().map(|(ids, logits)| RowContrast {
                    target_ids: rows.iter().map(|&(_, s)| ids[s]).collect(),
                    logits: logits.as_ref().map(|(l, vocab)| {
                        rows.iter()
                            .flat_map(|&(_, s)| l[s * vocab..(s + 1) * vocab].to_vec())
                            .collect()
                    }),
                }),
            };
            let mode = match (grad, layer) {
                (false, _) => GradMode::None,
                (true, None) => GradMode::Embeddings,
                (true, Some(name)) => {
                    let per_row: Vec<&Tensor> =
                        rows.iter().map(|&(p, _)| &layer_points[p]).collect();
                    GradMode::Layer {
                        name,
                        values: Tensor::stack(&per_row, 0).map_err(host_err)?,
                    }
                }
            };
            let r = run_rows(self.model, self.target_fn, &batch, mode)?;
            scores.extend(r.scores);
            src_grads.extend(r.source_grad);
            tgt_grads.extend(r.target_grad);
            layer_grads.extend(r.layer_grad);
            if !self.progress((done * chunk + rows.len()) as u64, pairs.len() as u64) {
                return Err(PluginError::new(ErrorCode::CANCELLED, "cancelled"));
            }
        }
        let (np, ns) = (points.len(), steps.len());
        let scores: Vec<f32> = order.iter().map(|&i| scores[i as usize]).collect();
        let order = Tensor::new(order.as_slice(), &candle_core::Device::Cpu).map_err(host_err)?;
        let gather = |parts: Vec<Tensor>| -> Result<Option<SdkTensor>, PluginError> {
            if parts.is_empty() {
                return Ok(None);
            }
            let all = Tensor::cat(&parts, 0)
                .and_then(|a| a.index_select(&order, 0))
                .map_err(host_err)?;
            let (_, len, hidden) = all.dims3().map_err(host_err)?;
            Ok(Some(to_sdk(
                &all.reshape((np, ns, len, hidden)).map_err(host_err)?,
            )?))
        };
        let (source, target) = match layer {
            Some(name) if layer_side(name) == Side::SOURCE => (gather(layer_grads)?, None),
            Some(_) => (None, gather(layer_grads)?),
            None => (
                gather(src_grads)?,
                if self.attribute_target || !enc_dec {
                    gather(tgt_grads)?
                } else {
                    None
                },
            ),
        };
        Ok(GradientResponse {
            scores: SdkTensor::new(vec![np, ns], scores)?,
            source: source.into(),
            target: target.into(),
        })
    }

    /// Per step: the aligned contrast target id, and (with `contrast_force_inputs`) the contrast
    /// logits `(steps × vocab, vocab)` of one contrast forward.
    #[allow(clippy::type_complexity)]
    fn contrast_for_steps(
        &self,
        seq: &EncodedSequence,
        steps: &[u32],
    ) -> Result<Option<(Vec<u32>, Option<(Vec<f32>, usize)>)>, PluginError> {
        let Some(c) = &seq.contrast else {
            return Ok(None);
        };
        let aligned: Vec<usize> = steps.iter().map(|&s| c.position(s as usize)).collect();
        let ids = aligned.iter().map(|&p| c.target_ids[p]).collect();
        let logits = if self.force_contrast_inputs {
            let positions = aligned.iter().map(|p| p - 1).collect();
            Some(
                super::step_scores::logits_at(self.model, &c.source_ids, &c.target_ids, positions)
                    .map_err(|e| host_err(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Some((ids, logits)))
    }

    /// The activation `(len, hidden)` at tap `name` for the actual (or baseline) input.
    fn activation(
        &self,
        seq: &EncodedSequence,
        name: &str,
        baseline: bool,
    ) -> Result<Tensor, PluginError> {
        let (src, tgt) = if baseline {
            (&seq.source_baseline, &seq.target_baseline)
        } else {
            (&seq.source_ids, &seq.target_ids)
        };
        let device = candle_core::Device::Cpu;
        let side_input =
            |side: ModelSide, ids: &[u32]| -> Result<crate::models::SideInput, PluginError> {
                Ok(crate::models::SideInput {
                    embeds: self.embed_ids(side, ids)?.unsqueeze(0).map_err(host_err)?,
                    mask: Tensor::ones((1, ids.len()), DType::U8, &device).map_err(host_err)?,
                })
            };
        let input = crate::models::ForwardInput {
            encoder: if self.decoder_only() {
                None
            } else {
                Some(side_input(ModelSide::Encoder, src)?)
            },
            decoder: side_input(ModelSide::Decoder, tgt)?,
            logits_at: crate::models::LogitPositions::Last,
        };
        let seen = std::cell::RefCell::new(None::<Tensor>);
        let seen_ref = &seen;
        let mut taps = Taps::none();
        taps.hook(
            name,
            Box::new(move |x: &Tensor| {
                *seen_ref.borrow_mut() = Some(x.detach());
                Ok(x.clone())
            }),
        );
        self.model.forward(&input, &mut taps).map_err(host_err)?;
        drop(taps);
        let t = seen.into_inner().ok_or_else(|| {
            PluginError::invalid_params(format!(
                "the model has no tap named '{name}' (taps are HF module paths, e.g. model.layers.0.mlp)"
            ))
        })?;
        t.squeeze(0).map_err(host_err)
    }

    fn sides(
        &self,
        sequence: u32,
        baseline: bool,
        wrt: &Wrt,
    ) -> Result<RVec<SdkTensor>, PluginError> {
        let seq = self.seq(sequence)?;
        let hidden = self.model.spec().hidden_size;
        if let Wrt::Layer { name, input } = wrt {
            if *input {
                return Err(PluginError::unsupported(
                    "attribute_to_layer_input is not supported yet",
                ));
            }
            let act = to_sdk(&self.activation(seq, name, baseline)?)?;
            let empty = SdkTensor::zeros(vec![0, hidden]);
            return Ok(if layer_side(name) == Side::SOURCE {
                vec![act, empty]
            } else {
                vec![empty, act]
            }
            .into());
        }
        let (src_ids, tgt_ids) = if baseline {
            (&seq.source_baseline, &seq.target_baseline)
        } else {
            (&seq.source_ids, &seq.target_ids)
        };
        let source = if self.decoder_only() {
            SdkTensor::zeros(vec![0, hidden])
        } else {
            to_sdk(&self.embed_ids(ModelSide::Encoder, src_ids)?)?
        };
        let target = to_sdk(&self.embed_ids(ModelSide::Decoder, tgt_ids)?)?;
        Ok(vec![source, target].into())
    }
}

/// The side a tap belongs to: encoder modules feed the source side.
fn layer_side(name: &str) -> Side {
    if name.starts_with("model.encoder.") || name.starts_with("encoder.") {
        Side::SOURCE
    } else {
        Side::TARGET
    }
}

fn to_candle(t: &SdkTensor, dtype: DType) -> Result<Tensor, PluginError> {
    Tensor::from_slice(&t.data, t.shape.to_vec(), &candle_core::Device::Cpu)
        .and_then(|x| x.to_dtype(dtype))
        .map_err(host_err)
}

fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    // A host panic must not unwind into plugin frames.
    rinseq_sdk::author::ffi_guard("the host", f)
}

impl HostModel for ModelHost<'_> {
    fn info(&self) -> ModelInfo {
        let s = self.model.spec();
        ModelInfo {
            name: self.name.as_str().into(),
            model_type: s.model_type.as_str().into(),
            kind: if self.decoder_only() {
                rinseq_sdk::ModelKind::DECODER_ONLY
            } else {
                rinseq_sdk::ModelKind::ENCODER_DECODER
            },
            vocab_size: s.vocab_size,
            hidden_size: s.hidden_size,
            num_layers: s.num_layers,
            encoder_layers: s.encoder_layers,
            num_heads: s.num_heads,
            tap_names: self
                .model
                .tap_names()
                .into_iter()
                .map(RString::from)
                .collect(),
        }
    }

    fn embed(&self, r: &EmbedRequest) -> RResult<SdkTensor, PluginError> {
        guard(|| {
            let side = if r.side == Side::SOURCE {
                ModelSide::Encoder
            } else {
                ModelSide::Decoder
            };
            to_sdk(&self.embed_ids(side, &r.ids)?)
        })
    }

    fn inputs(&self, sequence: u32, wrt: &Wrt) -> RResult<RVec<SdkTensor>, PluginError> {
        guard(|| self.sides(sequence, false, wrt))
    }

    fn baselines(&self, sequence: u32, wrt: &Wrt) -> RResult<RVec<SdkTensor>, PluginError> {
        guard(|| self.sides(sequence, true, wrt))
    }

    fn gradients(&self, r: &GradientRequest) -> RResult<GradientResponse, PluginError> {
        guard(|| {
            if r.rule != GradientRule::STANDARD {
                return Err(PluginError::unsupported(
                    "this host computes standard gradients only (no DeepLIFT rescale rule yet)",
                ));
            }
            self.evaluate(r.sequence, &r.wrt, &r.points, &r.steps, true)
        })
    }

    fn scores(&self, r: &ScoreRequest) -> RResult<SdkTensor, PluginError> {
        guard(|| {
            Ok(self
                .evaluate(
                    r.sequence,
                    &Wrt::InputEmbeddings,
                    &r.points,
                    &r.steps,
                    false,
                )?
                .scores)
        })
    }

    fn internals(&self, r: &InternalsRequest) -> RResult<InternalsResponse, PluginError> {
        guard(|| {
            if !r.interventions.is_empty() || !r.record.is_empty() {
                return Err(PluginError::unsupported(
                    "interventions and recorded taps are not served by this host yet",
                ));
            }
            let seq = self.seq(r.sequence)?;
            let device = candle_core::Device::Cpu;
            let side_input =
                |side: ModelSide, ids: &[u32]| -> Result<crate::models::SideInput, PluginError> {
                    let e = self.embed_ids(side, ids)?.unsqueeze(0).map_err(host_err)?;
                    Ok(crate::models::SideInput {
                        mask: Tensor::ones((1, ids.len()), DType::U8, &device).map_err(host_err)?,
                        embeds: e,
                    })
                };
            let input = crate::models::ForwardInput {
                encoder: if self.decoder_only() {
                    None
                } else {
                    Some(side_input(ModelSide::Encoder, &seq.source_ids)?)
                },
                decoder: side_input(ModelSide::Decoder, &seq.target_ids)?,
                logits_at: crate::models::LogitPositions::Last,
            };
            let mut taps = Taps::none();
            taps.record_attentions = r.attentions;
            taps.record_hidden_states = r.hidden_states;
            self.model.forward(&input, &mut taps).map_err(host_err)?;
            let named = |v: Vec<(String, Tensor)>| -> Result<RVec<NamedTensor>, PluginError> {
                v.into_iter()
                    .map(|(n, t)| {
                        Ok(NamedTensor::new(
                            n,
                            to_sdk(&t.squeeze(0).map_err(host_err)?)?,
                        ))
                    })
                    .collect()
            };
            Ok(InternalsResponse {
                attentions: named(std::mem::take(&mut taps.attentions))?,
                hidden_states: named(std::mem::take(&mut taps.hidden_states))?,
                recorded: RVec::new(),
            })
        })
    }

    fn progress(&self, _done: u64, _total: u64) -> bool {
        true
    }

    fn extension(&self, name: RStr<'_>, _payload: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported(format!(
            "this host has no extension named '{name}'"
        )))
    }
}
