//! Step-function input and output.

use abi_stable::std_types::{ROption, RSlice, RVec};
use abi_stable::StableAbi;

use crate::tensor::{Tensor, TensorView};

/// What a step function sees at one generation step, for a batch of rows.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct StepInput<'a> {
    /// Next-token logits `(batch, vocab)` of the model on the current prefix.
    pub logits: TensorView<'a>,
    /// The next (generated or forced) token id of each row.
    pub target_ids: RSlice<'a, u32>,
    /// Logits `(batch, vocab)` of the contrastive input, for [`crate::Flags::NEEDS_CONTRAST`].
    pub contrast_logits: ROption<TensorView<'a>>,
    /// The aligned contrast token id of each row (empty without contrast).
    pub contrast_target_ids: RSlice<'a, u32>,
    /// Logits of Monte Carlo dropout forwards, each `(batch, vocab)`, for
    /// [`crate::Flags::NEEDS_DROPOUT_SAMPLES`].
    pub dropout_logits: RSlice<'a, TensorView<'a>>,
    /// Whether d score / d logits is wanted (the function is the attribution target).
    pub want_grad: bool,
}

/// What a step function returns.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct StepOutput {
    /// One score per row.
    pub scores: RVec<f32>,
    /// d score / d logits `(batch, vocab)` when asked for.
    pub grad_logits: ROption<Tensor>,
    /// d score / d contrast logits `(batch, vocab)` when the score depends on them.
    pub grad_contrast_logits: ROption<Tensor>,
}
