//! Named hook points (à la TransformerLens) addressed by HF module paths.
//!
//! A model calls [`Taps::apply`] with the HF module path of every module output it produces
//! (e.g. `model.layers.3.mlp`, `transformer.h.1.attn`, `model.decoder.layers.0.encoder_attn`).
//! A caller registers a hook on a name to read the activation, replace it (activation patching,
//! value zeroing) or swap in a `Var` to take the gradient with respect to it (layer methods).

use candle_core::{Result, Tensor};

/// A hook: receives the activation at a tap and returns the tensor the model continues with.
pub type Hook<'a> = Box<dyn FnMut(&Tensor) -> Result<Tensor> + 'a>;

/// Hook points and recorded internals of one forward pass.
#[derive(Default)]
pub struct Taps<'a> {
    /// Record attention probabilities of every attention module.
    pub record_attentions: bool,
    /// Record the hidden state after the embeddings and after every layer.
    pub record_hidden_states: bool,
    /// Recorded attention probabilities: (module path, `(batch, heads, queries, keys)`), in
    /// forward order (encoder self-attention, then decoder self-attention and cross-attention).
    pub attentions: Vec<(String, Tensor)>,
    /// Recorded hidden states: (module path, `(batch, len, hidden)`), in forward order.
    pub hidden_states: Vec<(String, Tensor)>,
    hooks: Vec<(String, Hook<'a>)>,
}

impl<'a> Taps<'a> {
    /// No hooks, nothing recorded: a plain forward.
    pub fn none() -> Self {
        Self::default()
    }

    /// Registers `hook` at the tap `name` (an HF module path).
    pub fn hook(&mut self, name: impl Into<String>, hook: Hook<'a>) -> &mut Self {
        self.hooks.push((name.into(), hook));
        self
    }

    /// Whether any hook is registered (models may skip building tap names when none is).
    pub fn has_hooks(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// Passes the activation at `name` through the hooks registered there.
    pub fn apply(&mut self, name: &str, mut x: Tensor) -> Result<Tensor> {
        for (n, h) in self.hooks.iter_mut() {
            if n == name {
                x = h(&x)?;
            }
        }
        Ok(x)
    }

    /// Records attention probabilities at `name` when asked to.
    pub fn record_attention(&mut self, name: &str, probs: &Tensor) {
        if self.record_attentions {
            self.attentions.push((name.to_string(), probs.clone()));
        }
    }

    /// Records a hidden state at `name` when asked to.
    pub fn record_hidden(&mut self, name: &str, h: &Tensor) {
        if self.record_hidden_states {
            self.hidden_states.push((name.to_string(), h.clone()));
        }
    }

    /// Names of the registered hooks (to check them against [`super::Model::tap_names`]).
    pub fn hooked_names(&self) -> impl Iterator<Item = &str> {
        self.hooks.iter().map(|(n, _)| n.as_str())
    }
}
