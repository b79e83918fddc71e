//! Layer requests: the activation at a named tap (a module's output, or its input for
//! `attribute_to_layer_input`) and the side of the model it belongs to.

use std::cell::RefCell;

use candle_core::{DType, Tensor};
use rinseq_sdk::{PluginError, Side};

use super::host::host_err;
use crate::models::{ForwardInput, LogitPositions, Model, SideInput, Taps};

/// A tap a layer request points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerTap<'a> {
    /// HF module path.
    pub name: &'a str,
    /// The module's input instead of its output.
    pub input: bool,
}

impl LayerTap<'_> {
    /// The input side the tap belongs to: encoder modules feed the source side.
    pub fn side(&self) -> Side {
        if self.name.starts_with("model.encoder.") || self.name.starts_with("encoder.") {
            Side::Source
        } else {
            Side::Target
        }
    }

    /// Registers `hook` at this tap.
    pub fn hook<'h>(&self, taps: &mut Taps<'h>, hook: crate::models::taps::Hook<'h>) {
        if self.input {
            taps.hook_input(self.name, hook);
        } else {
            taps.hook(self.name, hook);
        }
    }

    /// The error for a tap no forward passed through.
    pub fn missing(&self) -> PluginError {
        if self.input {
            PluginError::invalid_params(format!(
                "the model serves no input of '{}' (attribute_to_layer_input works for layers, \
                 attention and MLP modules and the MLP's linear layers, e.g. model.layers.0.mlp)",
                self.name
            ))
        } else {
            PluginError::invalid_params(format!(
                "the model has no tap named '{}' (taps are HF module paths, e.g. model.layers.0.mlp)",
                self.name
            ))
        }
    }
}

/// Batch-of-one input of a forward from `(len, hidden)` embeddings.
pub fn single_input(source: Option<&Tensor>, target: &Tensor) -> Result<ForwardInput, PluginError> {
    let side = |e: &Tensor| -> Result<SideInput, PluginError> {
        let len = e.dim(0).map_err(host_err)?;
        Ok(SideInput {
            embeds: e.unsqueeze(0).map_err(host_err)?,
            mask: Tensor::ones((1, len), DType::U8, e.device()).map_err(host_err)?,
        })
    };
    Ok(ForwardInput {
        encoder: source.map(side).transpose()?,
        decoder: side(target)?,
        logits_at: LogitPositions::Last,
    })
}

/// The activation `(len, hidden)` at `tap` for the input with these embeddings.
pub fn activation_at(
    model: &dyn Model,
    tap: LayerTap<'_>,
    source: Option<&Tensor>,
    target: &Tensor,
) -> Result<Tensor, PluginError> {
    let input = single_input(source, target)?;
    let seen = RefCell::new(None::<Tensor>);
    let seen_ref = &seen;
    let mut taps = Taps::none();
    tap.hook(
        &mut taps,
        Box::new(move |x: &Tensor| {
            *seen_ref.borrow_mut() = Some(x.detach());
            Ok(x.clone())
        }),
    );
    model.forward(&input, &mut taps).map_err(host_err)?;
    drop(taps);
    let t = seen.into_inner().ok_or_else(|| tap.missing())?;
    t.squeeze(0).map_err(host_err)
}
