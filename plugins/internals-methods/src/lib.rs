//! rinseq's internals attribution methods, as one plugin library: `attention` (Inseq 0.7.1's
//! raw attention weights), `value_zeroing` (Mohebbi et al. 2023) and `attention_rollout`
//! (Abnar & Zuidema 2020, beyond Inseq).
//!
//! They read the model's internals through [`rinseq_sdk::Host::internals`]: attention
//! probabilities of every module from one forward, and activation edits
//! ([`rinseq_sdk::InterventionOp`]) at named taps with recorded activations. They are output
//! agnostic: the attributed function is not used.

#![warn(missing_docs)]

pub mod attention;
pub mod common;
pub mod rollout;
pub mod value_zeroing;

pub use attention::Attention;
pub use rollout::AttentionRollout;
pub use value_zeroing::ValueZeroing;

rinseq_sdk::export_plugins! {
    attribution: [Attention, ValueZeroing, AttentionRollout],
}
