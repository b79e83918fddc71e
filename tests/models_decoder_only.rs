//! Decoder-only models (GPT-2, Llama, Qwen2, Mistral, SmolLM2 GGUF): ops and full-model gradients
//! against f64 finite differences, outputs against the Python references in tests/fixtures,
//! KV-cached decoding, and loading errors.

#[path = "models_decoder_only/errors.rs"]
mod errors;
#[path = "models_decoder_only/fd.rs"]
mod fd;
#[path = "models_decoder_only/fixtures.rs"]
mod fixtures;
#[path = "models_decoder_only/smollm2.rs"]
mod smollm2;

mod model_support;

pub use model_support::{max_abs, max_of, rand_tensor, root};
