//! Named hook points (à la TransformerLens) addressed by HF module paths.
//!
//! A model calls [`Taps::apply`] with the HF module path of every module output it produces
//! (e.g. `model.layers.3.mlp`, `transformer.h.1.attn`, `model.decoder.layers.0.encoder_attn`).
//! A caller registers a hook on a name to read the activation, replace it (activation patching,
//! value zeroing) or swap in a `Var` to take the gradient with respect to it (layer methods).

use candle_core::{Result, Tensor};

use super::{deeplift, ops};

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
    /// DeepLIFT's rescale rule (see [`deeplift`]): the batch row each row is compared with, as a
    /// `u32` index tensor; `None` = plain gradients.
    pub rescale_against: Option<Tensor>,
    /// Monte Carlo dropout: apply the model's dropout layers (HF `train()` mode) in this forward.
    pub dropout: bool,
    hooks: Vec<(String, Hook<'a>)>,
    input_hooks: Vec<(String, Hook<'a>)>,
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

    /// Registers `hook` on the *input* of the module `name` (Captum's `attribute_to_layer_input`).
    /// Models serve module inputs for layers, attention and MLP modules and the MLP's linears.
    pub fn hook_input(&mut self, name: impl Into<String>, hook: Hook<'a>) -> &mut Self {
        self.input_hooks.push((name.into(), hook));
        self
    }

    /// Whether any hook is registered (models may skip building tap names when none is).
    pub fn has_hooks(&self) -> bool {
        !self.hooks.is_empty() || !self.input_hooks.is_empty()
    }

    /// An HF `nn.Dropout(p)`: identity unless [`Self::dropout`] is set.
    pub fn dropout(&self, x: Tensor, p: f64) -> Result<Tensor> {
        if !self.dropout || p <= 0.0 {
            return Ok(x);
        }
        candle_nn::ops::dropout(&x, p as f32)
    }

    /// Passes the input of the module `name` through the input hooks registered there.
    pub fn input(&mut self, name: &str, mut x: Tensor) -> Result<Tensor> {
        for (n, h) in self.input_hooks.iter_mut() {
            if n == name {
                x = h(&x)?;
            }
        }
        Ok(x)
    }

    /// Applies the HF activation `act` (config name) as the module `name`, then its output tap.
    /// Under [`Self::rescale_against`], activations that HF builds as modules Captum's DeepLift
    /// rescales (`relu` = `nn.ReLU`, `tanh` = `nn.Tanh`) get the rescale multipliers as gradient.
    pub fn activation(&mut self, name: &str, act: &str, x: &Tensor) -> Result<Tensor> {
        let y = ops::activation(act, x)?;
        let y = match &self.rescale_against {
            Some(rows) => deeplift::rescale(act, x, y, rows)?,
            None => y,
        };
        self.apply(name, y)
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

/// A block that knows its HF module paths (its taps), for [`super::Model::tap_names`] and the
/// hidden states.
pub trait BlockPaths {
    /// The block's own path (`model.layers.3`).
    fn path(&self) -> &str;

    /// Every tap inside the block, then the block itself.
    fn taps(&self) -> Vec<String>;
}

/// Declares `Names`, the HF module paths inside a block type, built once (so that the forward
/// formats no strings), and implements [`BlockPaths`] for the block (from its `names` field):
/// `module_paths! { Block => Names: ln1 = "ln_1", attn = "attn" }` gives `Names::new(path)` with
/// fields `block` and `ln1 = "{path}.ln_1"`, ... ([`BlockPaths::taps`] keeps that order).
macro_rules! module_paths {
    ($block:ident => $name:ident: $($field:ident = $path:literal),+ $(,)?) => {
        /// HF module paths of one block.
        struct $name {
            block: String,
            $($field: String,)+
        }

        impl $name {
            fn new(block: String) -> Self {
                Self { $($field: format!("{block}.{}", $path),)+ block }
            }
        }

        impl $crate::models::taps::BlockPaths for $block {
            fn path(&self) -> &str {
                &self.names.block
            }

            fn taps(&self) -> Vec<String> {
                let n = &self.names;
                vec![$(n.$field.clone(),)+ n.block.clone()]
            }
        }
    };
}
pub(crate) use module_paths;
