//! Encoder-decoder models (Marian, BART, mBART): outputs, attention, hidden states and input
//! gradients against the Python references in tests/fixtures, the Marian SentencePiece tokenizer,
//! KV-cached decoding with beam reordering, f64 finite differences on a tiny random mBART, and
//! tiny random T5 models against transformers references made by `make_t5.py`.

#[path = "models_encoder_decoder/fd.rs"]
mod fd;
#[path = "models_encoder_decoder/fixtures.rs"]
mod fixtures;
#[path = "models_encoder_decoder/t5.rs"]
mod t5;

mod model_support;

pub use model_support::{max_abs, max_of, rand_tensor, root};
