//! The BART family of encoder-decoder transformers: BART, mBART and Marian (opus-mt).
//!
//! The three HF implementations share one structure (Marian's modules are copied from BART); they
//! differ in position embeddings, an embedding LayerNorm, pre/post-norm blocks and final
//! LayerNorms, which [`Seq2SeqConfig`] captures. `bart.rs` and `marian.rs` read the HF configs and
//! register the architectures; this module holds the one forward ([`Seq2Seq`], layers in
//! `layers.rs`), which serves hooks, KV-cached decoding ([`decode`]) and the shared forward of
//! the hand-written backward ([`backward`]).

pub mod backward;
pub mod bart;
mod config;
pub mod decode;
pub mod layers;
pub mod load;
pub mod marian;
pub mod positions;

use candle_core::{DType, Result, Tensor};

use crate::models::backward::{shared, Shared};
use crate::models::causal::{parse_config, KvCache, Pass};
use crate::models::ops::{self, ConstLinear};
use crate::models::registry::BuildArgs;
use crate::models::tokenizer::SpecialTokens;
use crate::models::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, LogitPositions, Model, ModelError,
    ModelSpec, Side, Taps,
};
pub(crate) use config::ids_of;
pub use config::{Dropouts, FamilyConfig, Seq2SeqConfig};
use decode::{Cached, EncoderDecoder};
use layers::{Cross, Layer, LayerNorm, SavedLayer};
use positions::PositionEmbedding;

/// One stack (encoder or decoder): embeddings, layers and norms.
#[derive(Debug, Clone)]
pub struct Stack {
    /// HF path of the stack (`model.encoder`, `model.decoder`).
    pub path: String,
    /// `(vocab, d)` token embeddings (before `embed_scale`).
    pub embed_tokens: Tensor,
    /// Position embeddings.
    pub positions: PositionEmbedding,
    /// `layernorm_embedding`, where the architecture has one.
    pub layernorm_embedding: Option<LayerNorm>,
    /// The layers (decoder layers have cross-attention).
    pub layers: Vec<Layer>,
    /// The final `layer_norm` (mBART).
    pub layer_norm: Option<LayerNorm>,
    /// Dropout after the embeddings (MC dropout only).
    pub dropout: f64,
}

/// A stack's output, with what the backward reads around its layers.
pub struct StackOut {
    /// The output (after the final `layer_norm`, if any).
    pub out: Tensor,
    /// Embeddings plus positions, before `layernorm_embedding`.
    pub embedded: Tensor,
    /// The last layer's output, before the final `layer_norm`.
    pub last: Tensor,
}

impl Stack {
    /// Runs the stack on embeddings `(b, t, d)` whose first position is `start`; `bias` is the
    /// self-attention bias, `cross` the encoder side (decoder only). `pass.cache` holds one
    /// cache per layer when decoding; `pass.save` collects each layer's saved tensors.
    pub fn forward(
        &self,
        embeds: &Tensor,
        start: usize,
        bias: &Tensor,
        cross: Option<&Cross>,
        pass: Pass<'_, '_, SavedLayer, [KvCache]>,
    ) -> Result<StackOut> {
        let Pass {
            taps,
            mut cache,
            mut save,
        } = pass;
        let t = embeds.dim(1)?;
        let pos = self.positions.forward(start, t)?.to_dtype(embeds.dtype())?;
        let pos = taps.apply(&format!("{}.embed_positions", self.path), pos)?;
        let embedded = embeds.broadcast_add(&pos)?;
        let mut h = match &self.layernorm_embedding {
            Some(ln) => {
                let name = format!("{}.layernorm_embedding", self.path);
                taps.apply(&name, ln.forward(&embedded)?)?
            }
            None => embedded.clone(),
        };
        h = taps.dropout(h, self.dropout)?;
        taps.record_hidden(&format!("{}.embed_tokens", self.path), &h);
        for (i, layer) in self.layers.iter().enumerate() {
            let pass = Pass {
                taps: &mut *taps,
                cache: cache.as_deref_mut().map(|c| &mut c[i]),
                save: save.as_deref_mut(),
            };
            let cross = cross.map(|c| (&c.kv[i], &c.bias));
            h = layer.forward(&h, bias, cross, pass)?;
            if i + 1 < self.layers.len() {
                taps.record_hidden(&layer.names.layer, &h);
            }
        }
        // As HF does, the last hidden state is the final `layer_norm`'s output where there is one.
        let (name, out) = match &self.layer_norm {
            Some(ln) => {
                let name = format!("{}.layer_norm", self.path);
                let out = taps.apply(&name, ln.forward(&h)?)?;
                (Some(name), out)
            }
            None => (self.layers.last().map(|l| l.names.layer.clone()), h.clone()),
        };
        if let Some(name) = name {
            taps.record_hidden(&name, &out);
        }
        Ok(StackOut {
            out,
            embedded,
            last: h,
        })
    }
}

/// A BART-family model (`BartForConditionalGeneration`, `MBartForConditionalGeneration`,
/// `MarianMTModel`) built from composite, differentiable ops.
#[derive(Debug, Clone)]
pub struct Seq2Seq {
    /// Architecture choices.
    pub config: Seq2SeqConfig,
    /// Static facts for the engine.
    pub spec: ModelSpec,
    /// The encoder.
    pub encoder: Stack,
    /// The decoder.
    pub decoder: Stack,
    /// Output projection (`lm_head`, usually tied to the embeddings; no bias).
    pub lm_head: ConstLinear,
    /// `(vocab,)` `final_logits_bias`, added after the `lm_head` tap (as HF does).
    pub final_logits_bias: Option<Tensor>,
}

impl Seq2Seq {
    /// Runs the encoder on embeddings `(b, s, d)` with mask `(b, s)`.
    pub fn encode(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        pass: Pass<'_, '_, SavedLayer, [KvCache]>,
    ) -> Result<StackOut> {
        let bias = ops::attention_bias(mask, 1, 0, false, embeds.dtype())?;
        self.encoder.forward(embeds, 0, &bias, None, pass)
    }

    /// Projects the encoder output `enc` (mask `(b, s)`) to the keys/values of every
    /// cross-attention module.
    pub fn cross(&self, enc: &Tensor, mask: &Tensor, taps: &mut Taps) -> Result<Cross> {
        let kv = (self.decoder.layers.iter())
            .filter_map(|l| Some((l.cross_attn.as_ref()?, &l.names.cross_attn)))
            .map(|((a, _), names)| a.kv(enc, names, taps))
            .collect::<Result<_>>()?;
        let bias = ops::attention_bias(mask, 1, 0, false, enc.dtype())?;
        Ok(Cross { kv, bias })
    }

    /// Logits `(b, n, vocab)` of the decoder output `(b, n, d)`.
    pub fn logits(&self, h: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let logits = taps.apply("lm_head", self.lm_head.forward(h)?)?;
        match &self.final_logits_bias {
            Some(b) => logits.broadcast_add(b),
            None => Ok(logits),
        }
    }

    fn stack(&self, side: Side) -> &Stack {
        match side {
            Side::Encoder => &self.encoder,
            Side::Decoder => &self.decoder,
        }
    }
}

/// Picks the positions of `h` `(b, t, d)` that produce logits.
pub fn select_positions(h: &Tensor, at: &LogitPositions) -> Result<Tensor> {
    at.select(h)
}

impl Model for Seq2Seq {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn device(&self) -> &candle_core::Device {
        self.lm_head.w.device()
    }

    fn dtype(&self) -> candle_core::DType {
        self.lm_head.w.dtype()
    }

    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor> {
        let table = &self.stack(side).embed_tokens;
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let e = table.index_select(&flat, 0)?.reshape((b, t, ()))?;
        let scale = self.config.embed_scale();
        if scale == 1.0 {
            Ok(e)
        } else {
            e * scale
        }
    }

    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput> {
        let Some(enc) = &input.encoder else {
            candle_core::bail!(
                "{}: an encoder-decoder model needs an encoder input",
                self.spec.model_type
            );
        };
        let dec = &input.decoder;
        let enc_out = self.encode(&enc.embeds, &enc.mask, Pass::taps(taps))?.out;
        let cross = self.cross(&enc_out, &enc.mask, taps)?;
        let t = dec.embeds.dim(1)?;
        let bias = ops::attention_bias(&dec.mask, t, 0, true, dec.embeds.dtype())?;
        let h = (self.decoder)
            .forward(&dec.embeds, 0, &bias, Some(&cross), Pass::taps(taps))?
            .out;
        let h = select_positions(&h, &input.logits_at)?;
        Ok(ForwardOutput {
            logits: self.logits(&h, taps)?,
        })
    }

    fn tap_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for stack in [&self.encoder, &self.decoder] {
            names.push(format!("{}.embed_positions", stack.path));
            if stack.layernorm_embedding.is_some() {
                names.push(format!("{}.layernorm_embedding", stack.path));
            }
            for l in &stack.layers {
                names.extend(l.names.all(l.cross_attn.is_some()));
            }
            if stack.layer_norm.is_some() {
                names.push(format!("{}.layer_norm", stack.path));
            }
        }
        names.push("lm_head".to_string());
        names
    }

    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        decode::start(self, start)
    }

    fn prefix_forward(&self, source: Option<&Tensor>, embeds: &Tensor) -> Shared<'_> {
        shared(backward::Seq2SeqPrefix::new(self, source?, embeds))
    }
}

impl EncoderDecoder for Seq2Seq {
    fn decoder_layers(&self) -> usize {
        self.decoder.layers.len()
    }

    fn encode_source(&self, ids: &Tensor, mask: &Tensor) -> Result<Cross> {
        let mut taps = Taps::none();
        let embeds = self.embed(Side::Encoder, ids)?;
        let enc = self.encode(&embeds, mask, Pass::taps(&mut taps))?.out;
        self.cross(&enc, mask, &mut taps)
    }

    fn decode_step(&self, ids: &Tensor, mask: &Tensor, c: &mut Cached) -> Result<Tensor> {
        let x = self.embed(Side::Decoder, ids)?;
        let n = x.dim(1)?;
        let bias = ops::attention_bias(mask, n, c.past, true, x.dtype())?;
        let mut taps = Taps::none();
        let pass = Pass {
            taps: &mut taps,
            cache: Some(&mut c.caches[..]),
            save: None,
        };
        let h = (self.decoder).forward(&x, c.past, &bias, Some(&c.cross), pass)?;
        self.logits(&h.out.narrow(1, n - 1, 1)?, &mut taps)?
            .squeeze(1)
    }
}

/// Overrides the config's special ids with those gathered from every config file (the
/// registry merges `config.json`, `generation_config.json` and `tokenizer_config.json`).
pub fn merge_special(mut spec: ModelSpec, special: &SpecialTokens) -> ModelSpec {
    spec.bos_token_id = special.bos.or(spec.bos_token_id);
    if !special.eos.is_empty() {
        spec.eos_token_ids = special.eos.clone();
    }
    spec.pad_token_id = special.pad.or(spec.pad_token_id);
    spec.decoder_start_token_id = special.decoder_start.or(spec.decoder_start_token_id);
    spec
}

/// Registry entry point shared by `marian`, `bart` and `mbart`: parses the config with `C`
/// and builds the model.
pub fn build_from<C: serde::de::DeserializeOwned>(
    args: &BuildArgs<'_>,
    parts: impl Fn(&C) -> (Seq2SeqConfig, ModelSpec),
) -> std::result::Result<Box<dyn Model>, ModelError> {
    let cfg: C = parse_config(args.model_type, args.config)?;
    let (arch, spec) = parts(&cfg);
    let spec = merge_special(spec, args.special);
    Ok(Box::new(load::build(arch, spec, args.weights)?))
}
