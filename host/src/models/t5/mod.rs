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

pub mod layers;

use candle_core::{DType, Result, Tensor};
use serde::Deserialize;

use super::ops::{self, ConstLinear};
use super::registry::{Architecture, BuildArgs};
use super::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, LogitPositions, Model, ModelError,
    ModelKind, ModelSpec, Side, Taps,
};
use layers::{relative_bias, T5Block, T5Names};

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

/// A T5 model built from composite, differentiable ops.
#[derive(Debug, Clone)]
pub struct T5 {
    cfg: T5Config,
    spec: ModelSpec,
    enc_embed: Tensor,
    dec_embed: Tensor,
    encoder: Vec<T5Block>,
    decoder: Vec<T5Block>,
    enc_norm: Tensor,
    dec_norm: Tensor,
    enc_rel: Tensor,
    dec_rel: Tensor,
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
        let shared = ["shared.weight", "encoder.embed_tokens.weight"];
        let enc_embed = first(&shared)?;
        let dec_embed = first(&["decoder.embed_tokens.weight", "shared.weight"])?;
        let n_dec = cfg.num_decoder_layers.unwrap_or(cfg.num_layers);
        let encoder = (0..cfg.num_layers)
            .map(|i| T5Block::load(w, &cfg, T5Names::new("encoder", i, false)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let decoder = (0..n_dec)
            .map(|i| T5Block::load(w, &cfg, T5Names::new("decoder", i, true)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rel = |s: &str| {
            w.get(&format!(
                "{s}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
            ))
        };
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
            enc_rel: rel("encoder")?,
            dec_rel: rel("decoder")?,
            enc_norm: w.get("encoder.final_layer_norm.weight")?,
            dec_norm: w.get("decoder.final_layer_norm.weight")?,
            lm_head: ConstLinear::new(lm, None),
            cfg,
            spec,
            enc_embed,
            dec_embed,
            encoder,
            decoder,
        })
    }

    fn bias(&self, decoder: bool, q: usize, k: usize, offset: usize) -> Result<Tensor> {
        let table = if decoder {
            &self.dec_rel
        } else {
            &self.enc_rel
        };
        let c = &self.cfg;
        let (n, max) = (
            c.relative_attention_num_buckets,
            c.relative_attention_max_distance,
        );
        relative_bias(table, q, k, offset, !decoder, n, max)
    }

    /// Runs the encoder on embeddings `(b, s, d)` with mask `(b, s)`.
    pub fn encode(&self, x: &Tensor, mask: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let s = x.dim(1)?;
        let bias = self
            .bias(false, s, s, 0)?
            .broadcast_add(&ops::attention_bias(mask, 1, 0, false, x.dtype())?)?;
        taps.record_hidden("encoder.embed_tokens", x);
        let mut h = taps.dropout(x.clone(), self.cfg.dropout_rate)?;
        for (i, b) in self.encoder.iter().enumerate() {
            h = b.forward(&h, &bias, None, None, taps)?;
            if i + 1 < self.encoder.len() {
                taps.record_hidden(&b.names.block, &h);
            }
        }
        let h = ops::rms_norm(&h, &self.enc_norm, self.cfg.layer_norm_epsilon)?;
        let h = taps.apply("encoder.final_layer_norm", h)?;
        taps.record_hidden("encoder.final_layer_norm", &h);
        taps.dropout(h, self.cfg.dropout_rate)
    }

    /// Projects the encoder output to the keys/values of every cross-attention.
    pub fn cross_kv(&self, enc: &Tensor, taps: &mut Taps) -> Result<Vec<(Tensor, Tensor)>> {
        self.decoder.iter().map(|b| b.cross_kv(enc, taps)).collect()
    }

    /// Decoder stack from position `start`; returns logits `(b, n, vocab)` at `at`.
    #[allow(clippy::too_many_arguments)]
    fn decode(
        &self,
        x: &Tensor,
        start: usize,
        mask: &Tensor,
        cross: (&[(Tensor, Tensor)], &Tensor),
        mut caches: Option<&mut [Option<(Tensor, Tensor)>]>,
        at: &LogitPositions,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let t = x.dim(1)?;
        let k = start + t;
        let bias = self
            .bias(true, t, k, start)?
            .broadcast_add(&ops::attention_bias(mask, t, start, true, x.dtype())?)?;
        taps.record_hidden("decoder.embed_tokens", x);
        let mut h = taps.dropout(x.clone(), self.cfg.dropout_rate)?;
        for (i, b) in self.decoder.iter().enumerate() {
            let cache = caches.as_deref_mut().and_then(|c| c.get_mut(i));
            h = b.forward(&h, &bias, Some((&cross.0[i], cross.1)), cache, taps)?;
            if i + 1 < self.decoder.len() {
                taps.record_hidden(&b.names.block, &h);
            }
        }
        let h = ops::rms_norm(&h, &self.dec_norm, self.cfg.layer_norm_epsilon)?;
        let h = taps.apply("decoder.final_layer_norm", h)?;
        taps.record_hidden("decoder.final_layer_norm", &h);
        let h = taps.dropout(h, self.cfg.dropout_rate)?;
        let h = super::seq2seq::select_positions(&h, at)?;
        let h = match self.scale_output {
            true => (h * (self.cfg.d_model as f64).powf(-0.5))?,
            false => h,
        };
        taps.apply("lm_head", self.lm_head.forward(&h)?)
    }
}

impl Model for T5 {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor> {
        let table = match side {
            Side::Encoder => &self.enc_embed,
            Side::Decoder => &self.dec_embed,
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
        let h = self.encode(&enc.embeds, &enc.mask, taps)?;
        let kv = self.cross_kv(&h, taps)?;
        let cross_bias = ops::attention_bias(&enc.mask, 1, 0, false, h.dtype())?;
        let logits = self.decode(
            &dec.embeds,
            0,
            &dec.mask,
            (&kv, &cross_bias),
            None,
            &input.logits_at,
            taps,
        )?;
        Ok(ForwardOutput { logits })
    }

    fn tap_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.encoder.iter().flat_map(|b| b.names.all()).collect();
        v.push("encoder.final_layer_norm".into());
        v.extend(self.decoder.iter().flat_map(|b| b.names.all()));
        v.extend(["decoder.final_layer_norm".into(), "lm_head".into()]);
        v
    }

    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        let Some(ids) = &start.encoder_ids else {
            return Err(ModelError::BadInput("t5 decoding needs encoder ids".into()).into_candle());
        };
        let mask = match &start.encoder_mask {
            Some(m) => m.clone(),
            None => Tensor::ones(ids.dims2()?, DType::U8, ids.device())?,
        };
        let mut taps = Taps::none();
        let enc = self.encode(&self.embed(Side::Encoder, ids)?, &mask, &mut taps)?;
        Ok(Box::new(T5Decoding {
            model: self,
            cross_kv: self.cross_kv(&enc, &mut taps)?,
            cross_bias: ops::attention_bias(&mask, 1, 0, false, enc.dtype())?,
            caches: vec![None; self.decoder.len()],
            past: 0,
        }))
    }
}

/// KV-cached T5 decoding.
struct T5Decoding<'a> {
    model: &'a T5,
    cross_kv: Vec<(Tensor, Tensor)>,
    cross_bias: Tensor,
    caches: Vec<Option<(Tensor, Tensor)>>,
    past: usize,
}

impl DecodingState for T5Decoding<'_> {
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        if n == 0 || mask.dim(1)? != self.past + n {
            let msg = format!(
                "decoding step: mask must cover {} + {n} positions",
                self.past
            );
            return Err(ModelError::BadInput(msg).into_candle());
        }
        let x = self.model.embed(Side::Decoder, ids)?;
        let logits = self.model.decode(
            &x,
            self.past,
            mask,
            (&self.cross_kv, &self.cross_bias),
            Some(&mut self.caches),
            &LogitPositions::Last,
            &mut Taps::none(),
        )?;
        self.past += n;
        logits.squeeze(1)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), self.cross_bias.device())?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        for (k, v) in self
            .cross_kv
            .iter_mut()
            .chain(self.caches.iter_mut().flatten())
        {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        self.cross_bias = pick(&self.cross_bias)?;
        Ok(())
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(T5::build(args)?))
}

inventory::submit! { Architecture { model_type: "t5", kind: ModelKind::EncoderDecoder, build } }
