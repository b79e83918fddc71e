//! RUN: the host a method plugin talks to. [`ModelHost`] serves one batch of encoded
//! sequences through the SDK's [`rinseq_sdk::HostApi`] (`api.rs`, the only entry point):
//! gradients (`gradients.rs`, with the shared-forward path in `shared.rs` and batched autograd
//! rows in `forward.rs`), perturbed-input scores (`perturbed.rs`, with the KV-cached
//! decoder-only path in `prefix_cache.rs`), internals (`internals.rs`), layer taps (`layer.rs`)
//! and plain logits (`logits.rs`). Dependencies point one way:
//! `api` → the serving files → `host` (the struct, conversions, one error type: `PluginError`).

pub mod api;
pub mod forward;
pub mod gradients;
pub mod host;
pub mod internals;
pub mod layer;
pub mod logits;
pub mod perturbed;
pub mod prefix_cache;
pub mod shared;

pub use host::{ModelHost, DEFAULT_TOKENS_PER_FORWARD};
pub use prefix_cache::PrefixReuse;
