//! The models: differentiable candle re-implementations of Hugging Face architectures.
//!
//! Every architecture lives in one place (a folder where it spans several files: `gpt2/`,
//! `llama/`, `seq2seq/` for the BART family, `t5/`) with a config struct mirroring the HF
//! `config.json` and weight names mirroring the HF checkpoint. Each registers itself under its
//! `model_type` through [`inventory`] (see [`registry`]).
//!
//! Each architecture has one forward. It serves the hooks, KV-cached decoding and the shared
//! forward of its hand-written backward alike ([`causal::Pass`]). Decoder-only models are a
//! [`causal::CausalLm`] over their [`causal::CausalArch`]; encoder-decoder models share one
//! decoding session (`seq2seq::decode`).
//!
//! The attribution engine only sees the [`Model`] trait: embeddings in, logits out, with
//! [`Taps`] to read, differentiate or replace any named activation along the way.
//!
//! Rule for every file here: the forward used for attribution is built from composite candle ops
//! only (see `ops`): candle's fused kernels (`softmax_last_dim`, `rms_norm`, `layer_norm`, `rope*`,
//! `QMatMul`, `KvCache::append`) silently cut the gradient.

pub mod backward;
pub mod causal;
pub mod deeplift;
pub mod error;
pub mod gguf;
mod gguf_dequant;
pub mod gpt2;
pub mod llama;
pub mod load;
pub mod ops;
pub mod registry;
pub mod seq2seq;
pub mod spm_tokenizer;
pub mod t5;
pub mod taps;
pub mod tokenizer;
pub mod weights;

pub use backward::PrefixBackward;
pub use error::ModelError;
pub use seq2seq::{bart, marian};
pub use taps::Taps;

use candle_core::{Result, Tensor};

/// Whether a model is decoder-only (GPT-2, Llama...) or encoder-decoder (Marian, BART...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A causal LM: the prompt and the generated tokens share one sequence.
    DecoderOnly,
    /// A sequence-to-sequence model: the source is encoded, the target is decoded.
    EncoderDecoder,
}

/// Which stack of the model an input belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The encoder input (source text); only for [`ModelKind::EncoderDecoder`].
    Encoder,
    /// The decoder input (target prefix; the whole sequence for decoder-only models).
    Decoder,
}

/// Static facts about a loaded model that the engine and the plugins need.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelSpec {
    /// HF `model_type` (e.g. `llama`, `gpt2`, `marian`).
    pub model_type: String,
    /// Decoder-only or encoder-decoder.
    pub kind: ModelKind,
    /// Size of the output vocabulary (number of logits).
    pub vocab_size: usize,
    /// Width of the input embeddings.
    pub hidden_size: usize,
    /// Number of decoder layers (for encoder-decoder models, the encoder has `encoder_layers`).
    pub num_layers: usize,
    /// Number of encoder layers (0 for decoder-only models).
    pub encoder_layers: usize,
    /// Number of attention heads per layer.
    pub num_heads: usize,
    /// Longest input the model accepts (position embeddings / context length).
    pub max_positions: usize,
    /// Beginning-of-sequence id, if any.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s); generation stops on any of them.
    pub eos_token_ids: Vec<u32>,
    /// Padding id, if any.
    pub pad_token_id: Option<u32>,
    /// First decoder token of encoder-decoder models.
    pub decoder_start_token_id: Option<u32>,
}

/// Embeddings and mask for one side of the model.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// `(batch, len, hidden)` input embeddings, as returned by [`Model::embed`] (may be a `Var`).
    pub embeds: Tensor,
    /// `(batch, len)` attention mask, `u8` or `f32`, 1 = real token, 0 = padding.
    /// Decoder-only batches are left-padded (as HF generation does).
    pub mask: Tensor,
}

/// Which positions of the decoder the caller wants logits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogitPositions {
    /// Every position: `(batch, len, vocab)`.
    All,
    /// Only the last position: `(batch, 1, vocab)`.
    Last,
    /// These positions (same for every batch row): `(batch, n, vocab)`.
    These(Vec<usize>),
    /// One position per batch row (row `r` at `positions[r]`): `(batch, 1, vocab)`. Lets one
    /// batched forward serve many attribution steps, each row scoring its own step.
    PerRow(Vec<usize>),
}

impl LogitPositions {
    /// Picks the wanted positions of the final hidden states `h` `(batch, len, hidden)`
    /// (differentiably: `narrow` / `index_select`).
    pub fn select(&self, h: &Tensor) -> Result<Tensor> {
        let (b, t, d) = h.dims3()?;
        let check = |pos: &[usize]| -> Result<()> {
            match pos.iter().find(|&&p| p >= t) {
                Some(p) => Err(ModelError::BadInput(format!(
                    "logit position {p} is outside the sequence of {t} tokens"
                ))
                .into_candle()),
                None => Ok(()),
            }
        };
        match self {
            Self::All => Ok(h.clone()),
            Self::Last => h.narrow(1, t.saturating_sub(1), 1.min(t)),
            Self::These(pos) => {
                check(pos)?;
                let idx: Vec<u32> = pos.iter().map(|&p| p as u32).collect();
                h.index_select(&Tensor::new(idx.as_slice(), h.device())?, 1)
            }
            Self::PerRow(pos) => {
                check(pos)?;
                if pos.len() != b {
                    return Err(ModelError::BadInput(format!(
                        "{} per-row logit positions for a batch of {b}",
                        pos.len()
                    ))
                    .into_candle());
                }
                let idx: Vec<u32> = pos
                    .iter()
                    .enumerate()
                    .map(|(r, &p)| (r * t + p) as u32)
                    .collect();
                let flat = h.reshape((b * t, d))?;
                flat.index_select(&Tensor::new(idx.as_slice(), h.device())?, 0)?
                    .reshape((b, 1, d))
            }
        }
    }
}

/// One differentiable forward pass.
#[derive(Debug, Clone)]
pub struct ForwardInput {
    /// The encoder side; `None` for decoder-only models.
    pub encoder: Option<SideInput>,
    /// The decoder side (the whole sequence for decoder-only models).
    pub decoder: SideInput,
    /// Which decoder positions produce logits.
    pub logits_at: LogitPositions,
}

/// What a forward pass returns (internals are collected in [`Taps`]).
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `(batch, n_positions, vocab)` logits, per [`ForwardInput::logits_at`].
    pub logits: Tensor,
}

/// A loaded model, ready for differentiable forwards and cached generation.
pub trait Model: Send + Sync {
    /// Static facts about the model.
    fn spec(&self) -> &ModelSpec;

    /// The device the weights live on: every tensor the host builds for this model goes there
    /// (the one device choice of a run, made when the model is loaded).
    fn device(&self) -> &candle_core::Device;

    /// The dtype the model computes in (its weights'): host-built activations are converted to it.
    fn dtype(&self) -> candle_core::DType;

    /// Input embeddings for token ids `(batch, len)` -> `(batch, len, hidden)`, exactly as Inseq
    /// computes them (the embedding table, times `embed_scale` where the architecture has one;
    /// position embeddings are added inside [`Model::forward`], as HF does with `inputs_embeds`).
    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor>;

    /// Differentiable forward from embeddings. `taps` may read, differentiate or replace
    /// activations at named hook points and collects attention weights / hidden states on request.
    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput>;

    /// Every tap name this model exposes (HF module paths), for error messages and `--help`.
    fn tap_names(&self) -> Vec<String>;

    /// Starts incremental decoding with a KV cache (generation; no gradient needed, so fused
    /// kernels are allowed on this path as long as the logits match the differentiable forward).
    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>>;

    /// One forward of `embeds` `(rows, len, hidden)` on the decoder side and, for
    /// encoder-decoder models, `source` `(rows, src_len, hidden)` (no padding, no taps), that
    /// keeps what a hand-written backward needs, so that every attribution step shares it (see
    /// [`backward`]). `None` where the architecture has no such path: the engine then runs one
    /// differentiable forward per step.
    fn prefix_forward(
        &self,
        _source: Option<&Tensor>,
        _embeds: &Tensor,
    ) -> Option<Result<Box<dyn PrefixBackward + '_>>> {
        None
    }

    /// Runs one unperturbed decoder input `embeds` `(1, len, hidden)` with a KV cache, returning
    /// its logits at `logits_at` and the cache, from which copies of the sequence that differ
    /// only from some position on re-run just those positions (perturbation methods). `None`
    /// where the architecture has no such path (encoder-decoder models: a perturbed source
    /// changes every decoder position).
    fn cache_prefix(
        &self,
        _embeds: &Tensor,
        _logits_at: &LogitPositions,
    ) -> Option<Result<(Tensor, Box<dyn CachedPrefix + '_>)>> {
        None
    }
}

/// The keys and values of every layer for one decoder input (see [`Model::cache_prefix`]).
pub trait CachedPrefix: Send + Sync {
    /// How many positions are cached.
    fn len(&self) -> usize;

    /// Whether no position is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logits `(rows, at.len(), vocab)` of `rows` sequences made of the first `past` cached
    /// positions followed by `embeds` `(rows, n, hidden)` at positions `past..past + n`; `at`
    /// indexes the new positions (`0` is position `past`). Equal, up to float summation order,
    /// to a full forward of those sequences.
    fn logits_after(&self, past: usize, embeds: &Tensor, at: &[usize]) -> Result<Tensor>;
}

/// What incremental decoding starts from.
#[derive(Debug, Clone)]
pub struct DecodeStart {
    /// Encoder input ids `(batch, src_len)`; `None` for decoder-only models.
    pub encoder_ids: Option<Tensor>,
    /// Encoder attention mask `(batch, src_len)`, 1 = token, 0 = padding.
    pub encoder_mask: Option<Tensor>,
}

/// A KV-cached decoding session (one row per sequence or beam).
pub trait DecodingState {
    /// Feeds `ids` `(batch, n)` — the whole (left-padded) prompt first, then one token per step —
    /// with `mask` `(batch, total_len_so_far)` (1 = token, 0 = left padding), and returns the
    /// logits at the last position, `(batch, vocab)`.
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor>;

    /// Keeps the batch rows `rows`, in that order (repeats allowed): beam-search reordering.
    fn select_rows(&mut self, rows: &[usize]) -> Result<()>;
}
