//! Builds a [`Seq2Seq`] from a checkpoint with HF weight names (`model.shared.weight`,
//! `model.encoder.layers.N.self_attn.q_proj.weight`, `final_logits_bias`, `lm_head.weight`, ...).

use std::collections::HashSet;

use candle_core::Tensor;

use super::layers::{Attention, FeedForward, Layer, LayerNames, LayerNorm};
use super::positions::PositionEmbedding;
use super::{Seq2Seq, Seq2SeqConfig, Stack};
use crate::models::ops::ConstLinear;
use crate::models::weights::Weights;
use crate::models::{ModelError, ModelSpec};

type Result<T> = std::result::Result<T, ModelError>;

/// Reads tensors by name from the checkpoint.
struct Loader<'a> {
    w: &'a Weights,
}

impl Loader<'_> {
    fn opt(&self, name: &str) -> Result<Option<Tensor>> {
        self.w.get_opt(name)
    }

    fn get(&self, name: &str) -> Result<Tensor> {
        self.w.get(name)
    }

    /// The first of `names` present in the checkpoint (tied weights are saved under one name).
    fn first(&self, names: &[String]) -> Result<Tensor> {
        for n in names {
            if let Some(t) = self.opt(n)? {
                return Ok(t);
            }
        }
        Err(ModelError::MissingTensor {
            name: names.join(" or "),
            source_desc: self.w.describe(),
        })
    }

    fn linear(&self, p: &str) -> Result<ConstLinear> {
        Ok(ConstLinear::new(
            self.get(&format!("{p}.weight"))?,
            self.opt(&format!("{p}.bias"))?,
        ))
    }

    fn norm(&self, p: &str, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            w: self.get(&format!("{p}.weight"))?,
            b: self.get(&format!("{p}.bias"))?,
            eps,
        })
    }

    fn attention(&self, p: &str, heads: usize, dropout: f64) -> Result<Attention> {
        let q = self.linear(&format!("{p}.q_proj"))?;
        let head_dim = q.w.dim(1)? / heads;
        Ok(Attention {
            q,
            k: self.linear(&format!("{p}.k_proj"))?,
            v: self.linear(&format!("{p}.v_proj"))?,
            o: self.linear(&format!("{p}.out_proj"))?,
            heads,
            scale: 1.0 / (head_dim as f64).sqrt(),
            dropout,
        })
    }

    /// Layer `p` (`cross`: with `encoder_attn`, as in decoder layers).
    fn layer(&self, cfg: &Seq2SeqConfig, p: &str, cross: bool, names: LayerNames) -> Result<Layer> {
        let (eps, drop) = (cfg.layer_norm_eps, cfg.dropout);
        let heads = match cross {
            true => cfg.decoder_heads,
            false => cfg.encoder_heads,
        };
        let attention = |name: &str| -> Result<(Attention, LayerNorm)> {
            Ok((
                self.attention(&format!("{p}.{name}"), heads, drop.attention)?,
                self.norm(&format!("{p}.{name}_layer_norm"), eps)?,
            ))
        };
        let (self_attn, self_attn_ln) = attention("self_attn")?;
        Ok(Layer {
            self_attn,
            self_attn_ln,
            cross_attn: cross.then(|| attention("encoder_attn")).transpose()?,
            ffn: FeedForward {
                fc1: self.linear(&format!("{p}.fc1"))?,
                fc2: self.linear(&format!("{p}.fc2"))?,
                act: cfg.activation.clone(),
                activation_dropout: drop.activation,
            },
            final_ln: self.norm(&format!("{p}.final_layer_norm"), eps)?,
            pre_norm: cfg.pre_norm,
            hidden_dropout: drop.hidden,
            names,
        })
    }
}

/// Counts `{stack}.layers.N.fc1.weight` entries.
fn count_layers(names: &HashSet<String>, stack: &str) -> usize {
    let mut n = 0;
    while names.contains(&format!("{stack}.layers.{n}.fc1.weight")) {
        n += 1;
    }
    n
}

fn stack(
    l: &Loader,
    cfg: &Seq2SeqConfig,
    path: &str,
    embed: Tensor,
    layers: Vec<Layer>,
) -> Result<Stack> {
    let eps = cfg.layer_norm_eps;
    let name = format!("{path}.embed_positions.weight");
    let positions = match (cfg.sinusoidal_positions, l.opt(&name)?) {
        (true, Some(table)) => PositionEmbedding::Sinusoidal { table },
        (true, None) => {
            PositionEmbedding::sinusoidal(cfg.max_positions, cfg.d_model, l.w.dtype, &l.w.device)?
        }
        (false, _) => PositionEmbedding::Learned {
            table: l.get(&name)?,
            offset: 2,
        },
    };
    let opt_norm = |on: bool, name: &str| -> Result<Option<LayerNorm>> {
        on.then(|| l.norm(&format!("{path}.{name}"), eps))
            .transpose()
    };
    Ok(Stack {
        path: path.to_string(),
        embed_tokens: embed,
        positions,
        layernorm_embedding: opt_norm(cfg.layernorm_embedding, "layernorm_embedding")?,
        layers,
        layer_norm: opt_norm(cfg.final_layer_norm, "layer_norm")?,
        dropout: cfg.dropout.hidden,
    })
}

/// Builds the model from `weights` (HF names, `model.` prefix optional). The number of layers
/// is counted from the checkpoint and checked against the `spec`.
pub fn build(cfg: Seq2SeqConfig, spec: ModelSpec, weights: &Weights) -> Result<Seq2Seq> {
    let l = Loader { w: weights };
    let with_prefix = weights.contains("model.encoder.layers.0.fc1.weight");
    let p = if with_prefix { "model." } else { "" };
    let (enc_path, dec_path) = (format!("{p}encoder"), format!("{p}decoder"));
    let names = |stack: &str| {
        [
            format!("{stack}.embed_tokens.weight"),
            format!("{p}shared.weight"),
            format!(
                "{}.embed_tokens.weight",
                if stack == enc_path {
                    &dec_path
                } else {
                    &enc_path
                }
            ),
        ]
    };
    let enc_embed = l.first(&names(&enc_path))?;
    let dec_embed = l.first(&[
        format!("{dec_path}.embed_tokens.weight"),
        format!("{p}shared.weight"),
        format!("{enc_path}.embed_tokens.weight"),
        "lm_head.weight".to_string(),
    ])?;
    let all: HashSet<String> = weights.names().into_iter().collect();
    let n_enc = count_layers(&all, &enc_path);
    let n_dec = count_layers(&all, &dec_path);
    if n_enc != spec.encoder_layers || n_dec != spec.num_layers {
        let (stack, i) = match n_enc < spec.encoder_layers {
            true => (&enc_path, n_enc),
            false => (&dec_path, n_dec),
        };
        return Err(ModelError::MissingTensor {
            name: format!("{stack}.layers.{i}.fc1.weight"),
            source_desc: weights.describe(),
        });
    }
    let layers = |path: &str, stack: &str, n: usize, cross: bool| {
        (0..n)
            .map(|i| {
                l.layer(
                    &cfg,
                    &format!("{path}.layers.{i}"),
                    cross,
                    LayerNames::new(stack, i),
                )
            })
            .collect::<Result<Vec<_>>>()
    };
    let encoder_layers = layers(&enc_path, "model.encoder", n_enc, false)?;
    let decoder_layers = layers(&dec_path, "model.decoder", n_dec, true)?;
    let lm_w = match l.opt("lm_head.weight")? {
        Some(w) => w,
        None => dec_embed.clone(),
    };
    let bias = match l.opt("final_logits_bias")? {
        Some(b) => Some(b.flatten_all()?),
        None => None,
    };
    Ok(Seq2Seq {
        encoder: Stack {
            path: "model.encoder".into(),
            ..stack(&l, &cfg, &enc_path, enc_embed, encoder_layers)?
        },
        decoder: Stack {
            path: "model.decoder".into(),
            ..stack(&l, &cfg, &dec_path, dec_embed, decoder_layers)?
        },
        lm_head: ConstLinear::new(lm_w, None),
        final_logits_bias: bias,
        config: cfg,
        spec,
    })
}
