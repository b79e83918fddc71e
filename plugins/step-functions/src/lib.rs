//! The step functions of Inseq 0.7.1 (formulas of §2.1 of the reference), as rinseq plugins:
//!
//! * of the step's own logits: `logit`, `probability`, `entropy`, `crossentropy`, `perplexity`
//!   ([`Logit`], [`Probability`]...), and `top_p_size` ([`nucleus`]);
//! * contrastive ([`contrastive`], [`Flags::NEEDS_CONTRAST`]): `contrast_logits`,
//!   `contrast_prob`, `contrast_logits_diff`, `contrast_prob_diff`, `pcxmi`, `kl_divergence`,
//!   `in_context_pvi`;
//! * Monte Carlo dropout ([`dropout`], [`Flags::NEEDS_DROPOUT_SAMPLES`]): `mc_dropout_prob_avg`.
//!
//! Each returns one score per batch row and, when asked, d score / d logits (and d score /
//! d contrast logits for contrastive functions), so that it can be the attribution target while
//! the host does the backpropagation. Everything is computed in `f64` and returned as `f32`.
//!
//! [`Flags::NEEDS_CONTRAST`]: rinseq_sdk::Flags::NEEDS_CONTRAST
//! [`Flags::NEEDS_DROPOUT_SAMPLES`]: rinseq_sdk::Flags::NEEDS_DROPOUT_SAMPLES

#![warn(missing_docs)]

mod common;
pub mod contrastive;
pub mod dropout;
pub mod filtering;
pub mod nucleus;
mod simple;

pub use contrastive::{
    ContrastLogits, ContrastLogitsDiff, ContrastProb, ContrastProbDiff, InContextPvi, KlDivergence,
    KlParams, Pcxmi,
};
pub use dropout::{McDropoutParams, McDropoutProbAvg};
pub use nucleus::{TopPSize, TopPSizeParams};
pub use simple::{CrossEntropy, Entropy, Logit, NoParams, Perplexity, ProbParams, Probability};

rinseq_sdk::export_plugins! {
    step_functions: [
        Logit,
        Probability,
        Entropy,
        CrossEntropy,
        Perplexity,
        ContrastLogits,
        ContrastProb,
        ContrastLogitsDiff,
        ContrastProbDiff,
        Pcxmi,
        KlDivergence,
        InContextPvi,
        McDropoutProbAvg,
        TopPSize,
    ],
}
