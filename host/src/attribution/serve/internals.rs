//! Internals requests: one forward of a sequence with activation edits (value zeroing,
//! activation patching) at named taps, recording attention, hidden states and tapped activations.

use std::cell::RefCell;

use candle_core::Tensor;
use rinseq_sdk::{InternalsRequest, InternalsResponse, InterventionOp, NamedTensor, PluginError};

use super::host::{host_err, to_sdk, ModelHost};
use super::layer::single_input;
use crate::models::{Side as ModelSide, Taps};

/// Applies one edit to the activation `x` `(1, len, width)`.
fn edit(
    op: &InterventionOp,
    x: &Tensor,
    replacement: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    match op {
        InterventionOp::Replace(_) => {
            let Some(r) = replacement else {
                candle_core::bail!("the replacement tensor is missing");
            };
            if r.dims() != &x.dims()[1..] {
                candle_core::bail!(
                    "the replacement has shape {:?}, the activation {:?} (without the batch)",
                    r.dims(),
                    &x.dims()[1..]
                );
            }
            r.unsqueeze(0)
        }
        InterventionOp::Zero { positions, columns } => {
            let (_, len, width) = x.dims3()?;
            let mut keep = vec![1f32; len * width];
            for &p in positions.iter() {
                let p = p as usize;
                if p >= len {
                    candle_core::bail!("position {p} is outside the {len} positions");
                }
                let ranges: Vec<(usize, usize)> = if columns.is_empty() {
                    vec![(0, width)]
                } else {
                    columns
                        .iter()
                        .map(|c| (c.0 as usize, (c.1 as usize).min(width)))
                        .collect()
                };
                for (a, b) in ranges {
                    keep[p * width + a.min(b)..p * width + b].fill(0.0);
                }
            }
            let keep = Tensor::from_vec(keep, (len, width), x.device())?.to_dtype(x.dtype())?;
            x.broadcast_mul(&keep)
        }
    }
}

impl ModelHost<'_> {
    /// Serves an [`InternalsRequest`].
    pub(super) fn run_internals(
        &self,
        r: &InternalsRequest,
    ) -> Result<InternalsResponse, PluginError> {
        let seq = self.seq(r.sequence)?;
        let known = self.model.tap_names();
        for name in r
            .interventions
            .iter()
            .map(|i| i.tap.as_str())
            .chain(r.record.iter().map(|n| n.as_str()))
        {
            if !known.iter().any(|k| k == name) {
                return Err(PluginError::invalid_params(format!(
                    "the model has no tap named '{name}' (taps are HF module paths, e.g. \
                     model.layers.0.mlp; ModelInfo.tap_names lists them)"
                )));
            }
        }
        let replacements = r
            .interventions
            .iter()
            .map(|i| match &i.op {
                InterventionOp::Replace(t) => self.to_candle(t).map(Some),
                InterventionOp::Zero { .. } => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source = (!self.decoder_only())
            .then(|| self.embed_ids(ModelSide::Encoder, &seq.source_ids))
            .transpose()?;
        let target = self.embed_ids(ModelSide::Decoder, &seq.target_ids)?;
        let input = single_input(source.as_ref(), &target)?;
        let recorded = RefCell::new(Vec::<(String, Tensor)>::new());
        let recorded_ref = &recorded;
        let mut taps = Taps::none();
        taps.record_attentions = r.attentions;
        taps.record_hidden_states = r.hidden_states;
        // Hooks at one tap run in registration order: the edits, then the recording.
        for (iv, rep) in r.interventions.iter().zip(&replacements) {
            let op = iv.op.clone();
            let rep = rep.clone();
            taps.hook(
                iv.tap.as_str(),
                Box::new(move |x: &Tensor| edit(&op, x, rep.as_ref())),
            );
        }
        for name in r.record.iter() {
            let name = name.to_string();
            taps.hook(
                name.clone(),
                Box::new(move |x: &Tensor| {
                    recorded_ref.borrow_mut().push((name.clone(), x.detach()));
                    Ok(x.clone())
                }),
            );
        }
        self.model.forward(&input, &mut taps).map_err(host_err)?;
        let attentions = std::mem::take(&mut taps.attentions);
        let hidden = std::mem::take(&mut taps.hidden_states);
        drop(taps);
        let named = |v: Vec<(String, Tensor)>| -> Result<Vec<NamedTensor>, PluginError> {
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
            attentions: named(attentions)?,
            hidden_states: named(hidden)?,
            recorded: named(recorded.into_inner())?,
        })
    }
}
