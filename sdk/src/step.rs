//! Step-function input and output.

use crate::data::TokenId;
use crate::tensor::{Tensor, TensorView};

/// What a step function sees at one generation step, for a batch of rows.
#[derive(Clone, Debug)]
pub struct StepInput<'a> {
    /// Next-token logits `(batch, vocab)` of the model on the current prefix.
    pub logits: TensorView<'a>,
    /// The next (generated or forced) token id of each row.
    pub target_ids: &'a [TokenId],
    /// Logits `(batch, vocab)` of the contrastive input, for [`crate::Flags::NEEDS_CONTRAST`].
    pub contrast_logits: Option<TensorView<'a>>,
    /// The aligned contrast token id of each row (empty without contrast).
    pub contrast_target_ids: &'a [TokenId],
    /// Logits of Monte Carlo dropout forwards, each `(batch, vocab)`: as many as
    /// [`crate::StepFunctionPlugin::dropout_samples`] asked for.
    pub dropout_logits: Vec<TensorView<'a>>,
    /// Whether d score / d logits is wanted (the function is the attribution target).
    pub want_grad: bool,
}

/// What a step function returns.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StepOutput {
    /// One score per row.
    pub scores: Vec<f32>,
    /// d score / d logits `(batch, vocab)` when asked for.
    pub grad_logits: Option<Tensor>,
    /// d score / d contrast logits `(batch, vocab)` when the score depends on them.
    pub grad_contrast_logits: Option<Tensor>,
}
