//! HF `LlamaConfig` / `MistralConfig` / `Qwen2Config` and the rotary table it describes.

use serde::Deserialize;

use crate::models::ops::Rope;
use crate::models::ModelError;

fn default_act() -> String {
    "silu".into()
}
fn default_max_pos() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}

/// HF `LlamaConfig` / `MistralConfig` / `Qwen2Config` (the fields this model uses).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); defaults to the query heads.
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// MLP activation (`silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Context length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers v5 configs keep it in `rope_parameters` instead).
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// RoPE scaling (`linear`, `llama3`), if any.
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers v5 RoPE parameters (`rope_theta`, `rope_type`, ...), if any.
    pub rope_parameters: Option<serde_json::Value>,
    /// Biases on q/k/v/o (Llama); Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Dropout of the attention probabilities (MC dropout only).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Whether `lm_head` shares the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Sliding attention window (Mistral; Qwen2 when `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Qwen2: whether the sliding window is on.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Qwen2: layers below this index use full attention.
    pub max_window_layers: Option<usize>,
}

impl LlamaConfig {
    pub(super) fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub(super) fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary table (plain, `linear` or `llama3` scaling).
    pub(super) fn rope(&self) -> Result<Rope, ModelError> {
        let bad = |msg: String| ModelError::BadConfig {
            path: "config.json".into(),
            msg,
        };
        let params = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta")?.as_f64())
            .unwrap_or(self.rope_theta);
        let base = Rope::new(self.head_dim(), theta);
        let Some(p) = params else { return Ok(base) };
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let num = |k: &str| p.get(k).and_then(|v| v.as_f64());
        match kind {
            "default" => Ok(base),
            "linear" => {
                let f = num("factor")
                    .ok_or_else(|| bad("rope linear scaling without factor".into()))?;
                Ok(Rope::from_inv_freq(
                    base.inv_freq().iter().map(|x| x / f).collect(),
                ))
            }
            "llama3" => {
                let get =
                    |k: &str| num(k).ok_or_else(|| bad(format!("llama3 rope scaling without {k}")));
                let (f, lo, hi, orig) = (
                    get("factor")?,
                    get("low_freq_factor")?,
                    get("high_freq_factor")?,
                    get("original_max_position_embeddings")?,
                );
                let (lo_wl, hi_wl) = (orig / lo, orig / hi);
                let inv = base
                    .inv_freq()
                    .iter()
                    .map(|&x| {
                        let wl = 2.0 * std::f64::consts::PI / x;
                        if wl < hi_wl {
                            x
                        } else if wl > lo_wl {
                            x / f
                        } else {
                            let s = (orig / wl - lo) / (hi - lo);
                            (1.0 - s) * x / f + s * x
                        }
                    })
                    .collect();
                Ok(Rope::from_inv_freq(inv))
            }
            other => Err(bad(format!(
                "rope scaling type \"{other}\" is not supported"
            ))),
        }
    }
}
