//! T5 (`t5`, also T5 v1.1 / Flan-T5 and mT5 layouts): pre-RMSNorm blocks, unscaled attention with
//! a learned relative position bias (computed by the first block of each stack and shared), ReLU
//! or gated-GELU feed-forward, and decoder outputs scaled by `d_model^-0.5` before a tied head.
//!
//! Weight names mirror HF: `shared.weight`, `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}`,
//! `encoder.block.0.layer.0.SelfAttention.relative_attention_bias`, `...layer.0.layer_norm`,
//! `encoder.block.N.layer.1.DenseReluDense.{wi | wi_0, wi_1, wo}`, `decoder.block.N.layer.1.
//! EncDecAttention.*`, `{encoder,decoder}.final_layer_norm`, `lm_head.weight`. Taps use the same
//! module paths (`encoder.block.N`, `...layer.0`, `...SelfAttention`, `...SelfAttention.v`,
//! `decoder.block.N.layer.1.EncDecAttention`, `...DenseReluDense`, `...DenseReluDense.act`,
//! `lm_head`); hidden states are `encoder.embed_tokens`, the blocks, and the final norm output.

mod backward;
pub mod layers;

use candle_core::{DType, Result, Tensor};
use serde::Deserialize;

use super::backward::{shared, Shared};
use super::causal::{KvCache, Pass};
use super::ops::{self, ConstLinear};
use super::registry::{Architecture, BuildArgs};
use super::seq2seq::decode::{self, Cached, EncoderDecoder};
use super::seq2seq::layers::Cross;
use super::seq2seq::select_positions;
use super::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, LogitPositions, Model, ModelError,
    ModelKind, ModelSpec, Side, Taps,
};
use layers::{relative_bias, SavedT5Block, T5Block, T5Names};

fn d_32() -> usize {
    32
}
fn d_128() -> usize {
    128
}
fn d_eps() -> f64 {
    1e-6
}
fn d_dropout() -> f64 {
    0.1
}

fn d_relu() -> String {
    "relu".into()
}
fn d_zero() -> Option<u32> {
    Some(0)
}

/// HF `T5Config` (the fields the forward uses; defaults as in transformers).
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Decoder blocks (defaults to `num_layers`).
    pub num_decoder_layers: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative position buckets.
    #[serde(default = "d_32")]
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which relative positions share a bucket.
    #[serde(default = "d_128")]
    pub relative_attention_max_distance: usize,
    /// RMSNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_epsilon: f64,
    /// Dropout everywhere (MC dropout only).
    #[serde(default = "d_dropout")]
    pub dropout_rate: f64,
    /// `relu`, `gelu`, `gated-gelu` (gelu_new), `gated-silu`, ...
    #[serde(default = "d_relu")]
    pub feed_forward_proj: String,
    /// `false` in T5 v1.1 configs saved by transformers 4: then the decoder output is not
    /// scaled by `d_model^-0.5`.
    pub tie_word_embeddings: Option<bool>,
    /// transformers 5 writes this instead (and `tie_word_embeddings: true`).
    pub scale_decoder_outputs: Option<bool>,
    /// Padding id (also the decoder start).
    #[serde(default = "d_zero")]
    pub pad_token_id: Option<u32>,
    /// End-of-sequence id(s).
    pub eos_token_id: Option<serde_json::Value>,
    /// First decoder token.
    #[serde(default = "d_zero")]
    pub decoder_start_token_id: Option<u32>,
    /// Longest input (informational: T5 has no position table).
    pub n_positions: Option<usize>,
}

impl T5Config {
    /// `(gated, activation name)` from `feed_forward_proj`.
    pub fn activation(&self) -> (bool, String) {
        let gated = self.feed_forward_proj.starts_with("gated-");
        let act = self.feed_forward_proj.trim_start_matches("gated-");
        match self.feed_forward_proj.as_str() {
            "gated-gelu" => (true, "gelu_new".into()),
            _ => (gated, act.to_string()),
        }
    }
}

/// One T5 stack: token embeddings, blocks, the relative position table of its first block and
/// the final RMSNorm.
#[derive(Debug, Clone)]
pub struct T5Stack {
    /// `encoder` or `decoder`.
    pub path: &'static str,
    /// `(vocab, d)` token embeddings.
    pub embed: Tensor,
    /// The blocks.
    pub blocks: Vec<T5Block>,
    /// `(buckets, heads)` relative position bias table.
    pub rel: Tensor,
    /// `final_layer_norm` weight.
    pub norm: Tensor,
}

/// A T5 model built from composite, differentiable ops.
#[derive(Debug, Clone)]
pub struct T5 {
    cfg: T5Config,
    spec: ModelSpec,
    encoder: T5Stack,
    decoder: T5Stack,
    lm_head: ConstLinear,
    scale_output: bool,
}

impl T5 {
    /// Builds the model from HF-named weights.
    pub fn build(args: &BuildArgs<'_>) -> std::result::Result<Self, ModelError> {
        let cfg: T5Config = super::causal::parse_config(args.model_type, args.config)?;
        let w = args.weights;
        let first = |names: &[&str]| -> std::result::Result<Tensor, ModelError> {
            for n in names {
                if let Some(t) = w.get_opt(n)? {
                    return Ok(t);
                }
            }
            w.get(names[0])
        };
        let n_dec = cfg.num_decoder_layers.unwrap_or(cfg.num_layers);
        let stack = |path: &'static str, embed: Tensor, n: usize| {
            let blocks = (0..n)
                .map(|i| T5Block::load(w, &cfg, T5Names::new(path, i, path == "decoder")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok::<_, ModelError>(T5Stack {
                path,
                embed,
                blocks,
                rel: w.get(&format!(
                    "{path}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
                ))?,
                norm: w.get(&format!("{path}.final_layer_norm.weight"))?,
            })
        };
        let enc_embed = first(&["shared.weight", "encoder.embed_tokens.weight"])?;
        let dec_embed = first(&["decoder.embed_tokens.weight", "shared.weight"])?;
        let lm = match w.get_opt("lm_head.weight")? {
            Some(t) => t,
            None => dec_embed.clone(),
        };
        let eos = super::seq2seq::ids_of(&cfg.eos_token_id, &[1]);
        let special = args.special;
        let spec = ModelSpec {
            model_type: args.model_type.to_string(),
            kind: ModelKind::EncoderDecoder,
            vocab_size: lm.dim(0)?,
            hidden_size: cfg.d_model,
            num_layers: n_dec,
            encoder_layers: cfg.num_layers,
            num_heads: cfg.num_heads,
            max_positions: cfg.n_positions.unwrap_or(usize::MAX),
            bos_token_id: special.bos,
            eos_token_ids: if special.eos.is_empty() {
                eos
            } else {
                special.eos.clone()
            },
            pad_token_id: special.pad.or(cfg.pad_token_id),
            decoder_start_token_id: special.decoder_start.or(cfg.decoder_start_token_id),
        };
        Ok(Self {
            scale_output: (cfg.scale_decoder_outputs)
                .unwrap_or(cfg.tie_word_embeddings != Some(false)),
            encoder: stack("encoder", enc_embed, cfg.num_layers)?,
            decoder: stack("decoder", dec_embed, n_dec)?,
            lm_head: ConstLinear::new(lm, None),
            cfg,
            spec,
        })
    }

    /// The relative position bias `(1, heads, q, k)` of a stack, queries from `offset`.
    fn bias(&self, stack: &T5Stack, q: usize, k: usize, offset: usize) -> Result<Tensor> {
        let c = &self.cfg;
        let (n, max) = (
            c.relative_attention_num_buckets,
            c.relative_attention_max_distance,
        );
        let bidirectional = stack.path == "encoder";
        relative_bias(&stack.rel, q, k, offset, bidirectional, n, max)
    }

    /// One stack on `x` `(b, t, d)` with the self-attention `bias`: `(output, the final
    /// norm's input)`.
    fn run(
        &self,
        stack: &T5Stack,
        x: &Tensor,
        bias: &Tensor,
        cross: Option<&Cross>,
        pass: Pass<'_, '_, SavedT5Block, [KvCache]>,
    ) -> Result<(Tensor, Tensor)> {
        let Pass {
            taps,
            mut cache,
            mut save,
        } = pass;
        let p = stack.path;
        taps.record_hidden(&format!("{p}.embed_tokens"), x);
        let mut h = taps.dropout(x.clone(), self.cfg.dropout_rate)?;
        for (i, b) in stack.blocks.iter().enumerate() {
            let pass = Pass {
                taps: &mut *taps,
                cache: cache.as_deref_mut().map(|c| &mut c[i]),
                save: save.as_deref_mut(),
            };
            h = b.forward(&h, bias, cross.map(|c| (&c.kv[i], &c.bias)), pass)?;
            if i + 1 < stack.blocks.len() {
                taps.record_hidden(&b.names.block, &h);
            }
        }
        let name = format!("{p}.final_layer_norm");
        let out = ops::rms_norm(&h, &stack.norm, self.cfg.layer_norm_epsilon)?;
        let out = taps.apply(&name, out)?;
        taps.record_hidden(&name, &out);
        Ok((taps.dropout(out, self.cfg.dropout_rate)?, h))
    }

    /// Runs the encoder on embeddings `(b, s, d)` with mask `(b, s)`: `(output, the final
    /// norm's input)`.
    pub fn encode(
        &self,
        x: &Tensor,
        mask: &Tensor,
        pass: Pass<'_, '_, SavedT5Block, [KvCache]>,
    ) -> Result<(Tensor, Tensor)> {
        let s = x.dim(1)?;
        let bias = (self.bias(&self.encoder, s, s, 0)?).broadcast_add(&ops::attention_bias(
            mask,
            1,
            0,
            false,
            x.dtype(),
        )?)?;
        self.run(&self.encoder, x, &bias, None, pass)
    }

    /// Projects the encoder output (mask `(b, s)`) to the keys/values of every cross-attention.
    pub fn cross(&self, enc: &Tensor, mask: &Tensor, taps: &mut Taps) -> Result<Cross> {
        Ok(Cross {
            kv: (self.decoder.blocks.iter())
                .map(|b| b.cross_kv(enc, taps))
                .collect::<Result<_>>()?,
            bias: ops::attention_bias(mask, 1, 0, false, enc.dtype())?,
        })
    }

    /// Runs the decoder on `x` `(b, t, d)` from position `start` (`mask` `(b, start + t)`):
    /// `(output, the final norm's input)`.
    fn decode(
        &self,
        x: &Tensor,
        (start, mask): (usize, &Tensor),
        cross: &Cross,
        pass: Pass<'_, '_, SavedT5Block, [KvCache]>,
    ) -> Result<(Tensor, Tensor)> {
        let t = x.dim(1)?;
        let bias = (self.bias(&self.decoder, t, start + t, start)?)
            .broadcast_add(&ops::attention_bias(mask, t, start, true, x.dtype())?)?;
        self.run(&self.decoder, x, &bias, Some(cross), pass)
    }

    /// Logits `(b, n, vocab)` of decoder outputs `(b, n, d)`.
    fn logits(&self, h: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let h = match self.scale_output {
            true => (h * self.output_scale())?,
            false => h.clone(),
        };
        taps.apply("lm_head", self.lm_head.forward(&h)?)
    }

    /// `d_model^-0.5`, for tied heads.
    fn output_scale(&self) -> f64 {
        (self.cfg.d_model as f64).powf(-0.5)
    }
}

impl Model for T5 {
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
        let table = match side {
            Side::Encoder => &self.encoder.embed,
            Side::Decoder => &self.decoder.embed,
        };
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        table.index_select(&flat, 0)?.reshape((b, t, ()))
    }

    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput> {
        let Some(enc) = &input.encoder else {
            return Err(ModelError::BadInput("t5 needs an encoder input".into()).into_candle());
        };
        let dec = &input.decoder;
        let h = self.encode(&enc.embeds, &enc.mask, Pass::taps(taps))?.0;
        let cross = self.cross(&h, &enc.mask, taps)?;
        let pass = Pass::taps(&mut *taps);
        let h = self.decode(&dec.embeds, (0, &dec.mask), &cross, pass)?.0;
        let h = select_positions(&h, &input.logits_at)?;
        Ok(ForwardOutput {
            logits: self.logits(&h, taps)?,
        })
    }

    fn tap_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for s in [&self.encoder, &self.decoder] {
            v.extend(s.blocks.iter().flat_map(|b| b.names.all()));
            v.push(format!("{}.final_layer_norm", s.path));
        }
        v.push("lm_head".into());
        v
    }

    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        decode::start(self, start)
    }

    fn prefix_forward(&self, source: Option<&Tensor>, embeds: &Tensor) -> Shared<'_> {
        shared(backward::T5Prefix::new(self, source?, embeds))
    }
}

impl EncoderDecoder for T5 {
    fn decoder_layers(&self) -> usize {
        self.decoder.blocks.len()
    }

    fn encode_source(&self, ids: &Tensor, mask: &Tensor) -> Result<Cross> {
        let mut taps = Taps::none();
        let x = self.embed(Side::Encoder, ids)?;
        let enc = self.encode(&x, mask, Pass::taps(&mut taps))?.0;
        self.cross(&enc, mask, &mut taps)
    }

    fn decode_step(&self, ids: &Tensor, mask: &Tensor, c: &mut Cached) -> Result<Tensor> {
        let x = self.embed(Side::Decoder, ids)?;
        let mut taps = Taps::none();
        let pass = Pass {
            taps: &mut taps,
            cache: Some(&mut c.caches[..]),
            save: None,
        };
        let h = self.decode(&x, (c.past, mask), &c.cross, pass)?.0;
        self.logits(&LogitPositions::Last.select(&h)?, &mut taps)?
            .squeeze(1)
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(T5::build(args)?))
}

inventory::submit! { Architecture { model_type: "t5", kind: ModelKind::EncoderDecoder, build } }
