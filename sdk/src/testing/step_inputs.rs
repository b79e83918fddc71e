//! Owned step-function inputs for tests.

use crate::data::TokenId;
use crate::step::StepInput;
use crate::tensor::TensorView;

/// The inputs of one step for a batch of rows, owned; [`StepInputs::view`] lends them as the
/// [`StepInput`] a step function receives.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInputs {
    /// `[rows, vocab]`.
    pub shape: Vec<usize>,
    /// Logits, row-major.
    pub logits: Vec<f32>,
    /// One target id per row.
    pub targets: Vec<TokenId>,
    /// Contrastive logits, if any.
    pub contrast: Option<Vec<f32>>,
    /// Contrastive target ids (empty without contrast).
    pub contrast_targets: Vec<TokenId>,
    /// Monte Carlo dropout logits, each like `logits`.
    pub dropout: Vec<Vec<f32>>,
    /// Whether the gradient is asked for.
    pub want_grad: bool,
}

/// Deterministic pseudo-random values in `[-2, 2)` (a small LCG: no dependency, same on every
/// platform).
pub(crate) fn pseudo_random(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

impl StepInputs {
    /// `rows × vocab` logits from `logits`, every target 0, gradient wanted.
    pub fn new(rows: usize, vocab: usize, logits: Vec<f32>) -> Self {
        assert_eq!(logits.len(), rows * vocab, "logits must be rows × vocab");
        Self {
            shape: vec![rows, vocab],
            logits,
            targets: vec![0; rows],
            contrast: None,
            contrast_targets: Vec::new(),
            dropout: Vec::new(),
            want_grad: true,
        }
    }

    /// Deterministic pseudo-random logits in `[-2, 2)` for `seed`.
    pub fn random(rows: usize, vocab: usize, seed: u64) -> Self {
        Self::new(rows, vocab, pseudo_random(seed, rows * vocab))
    }

    /// Sets the target ids (one per row).
    pub fn targets(mut self, ids: &[TokenId]) -> Self {
        self.targets = ids.to_vec();
        self
    }

    /// Adds contrastive logits and target ids.
    pub fn contrast(mut self, logits: Vec<f32>, ids: &[TokenId]) -> Self {
        self.contrast = Some(logits);
        self.contrast_targets = ids.to_vec();
        self
    }

    /// Adds Monte Carlo dropout samples.
    pub fn dropout(mut self, samples: Vec<Vec<f32>>) -> Self {
        self.dropout = samples;
        self
    }

    /// Sets whether the gradient is wanted.
    pub fn want_grad(mut self, want: bool) -> Self {
        self.want_grad = want;
        self
    }

    /// The inputs as a step function receives them.
    pub fn view(&self) -> StepInput<'_> {
        let shape = self.shape.as_slice();
        let view = |data| TensorView { shape, data };
        StepInput {
            logits: view(&self.logits),
            target_ids: &self.targets,
            contrast_logits: self.contrast.as_deref().map(view),
            contrast_target_ids: &self.contrast_targets,
            dropout_logits: self.dropout.iter().map(|d| view(d.as_slice())).collect(),
            want_grad: self.want_grad,
        }
    }
}
