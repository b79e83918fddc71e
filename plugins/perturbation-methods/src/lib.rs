//! rinseq's perturbation attribution methods, as one plugin library: Inseq 0.7.1's
//! `occlusion`, `lime` and `reagent`, and, beyond Inseq, Captum's `feature_ablation` and
//! `shapley_value_sampling` over tokens, words, sentences or spans.
//!
//! Every method builds the perturbed inputs of a sequence (token ids replaced by the baseline,
//! UNK, or by random tokens) and asks the host for their scores in one
//! [`rinseq_sdk::ScoreRequest`]: the host runs one forward per perturbed input for every step
//! (Inseq runs one forward per step per perturbation). Randomised methods (`lime`, `reagent`,
//! `shapley_value_sampling`) take a `seed` and are deterministic for it.

#![warn(missing_docs)]

mod ablation;
mod features;
mod lime;
mod reagent;
mod shapley;

pub use ablation::{FeatureAblation, FeatureAblationParams, Occlusion, OcclusionParams};
pub use features::{group_spans, group_tokens, Granularity};
pub use lime::{ridge, Lime, LimeParams, MaskToken};
pub use reagent::{Reagent, ReagentParams};
pub use shapley::{ShapleyParams, ShapleyValueSampling};

rinseq_sdk::export_plugins! {
    attribution: [
        Occlusion,
        Lime,
        Reagent,
        FeatureAblation,
        ShapleyValueSampling,
    ],
}

#[cfg(test)]
mod tests;
