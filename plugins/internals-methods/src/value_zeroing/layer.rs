//! Where a layer's values are (the tap and its value columns) and where its output is.

use rinseq_sdk::{ModelInfo, PluginError};

use crate::common::block_of;

/// One layer of an attention stack: where its values are and where its output is.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    /// The attention module (`model.layers.3.self_attn`).
    pub(super) module: String,
    /// The layer (`model.layers.3`).
    pub(super) block: String,
    /// The tap whose output holds the values.
    pub(super) v_tap: String,
    /// First value column in that tap's output.
    pub(super) v_offset: usize,
}

impl Layer {
    pub(super) fn new(info: &ModelInfo, module: &str) -> Result<Self, PluginError> {
        let has = |t: &str| info.tap_names.iter().any(|n| n == t);
        let block = block_of(module).ok_or_else(|| {
            PluginError::unsupported(format!("cannot tell the layer of attention '{module}'"))
        })?;
        let (v_tap, fused) = [
            (format!("{module}.v_proj"), false),
            (format!("{module}.v"), false),
            (format!("{module}.c_attn"), true),
        ]
        .into_iter()
        .find(|(t, _)| has(t))
        .ok_or_else(|| {
            PluginError::unsupported(format!(
                "value_zeroing: no value projection tap under '{module}' (v_proj, v or c_attn)"
            ))
        })?;
        if !has(&block) {
            return Err(PluginError::unsupported(format!(
                "value_zeroing: the model has no tap at the layer output '{block}'"
            )));
        }
        Ok(Self {
            module: module.to_string(),
            block,
            v_tap,
            // GPT-2's c_attn is [q | k | v]: the values are its last third.
            v_offset: if fused { 2 * info.hidden_size } else { 0 },
        })
    }

    /// The value column ranges of `heads`.
    pub(super) fn columns(&self, heads: &[usize], head_dim: usize) -> Vec<(u32, u32)> {
        heads
            .iter()
            .map(|&h| {
                let a = self.v_offset + h * head_dim;
                (a as u32, (a + head_dim) as u32)
            })
            .collect()
    }
}
