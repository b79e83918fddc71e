//! GGUF files: an HF-equivalent `config.json` from the metadata, and a [`WeightSource`] that
//! dequantizes tensors to f32 and serves them under HF names.
//!
//! llama.cpp's converter permutes the q/k projection rows of `llama` models for interleaved RoPE.
//! This source un-permutes them back to the HF layout, so the same half-split RoPE model code
//! serves safetensors and GGUF weights (tested against interleaved RoPE on the permuted rows).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::gguf_file::{Content, Value as GValue};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::weights::WeightSource;
use super::ModelError;

/// An open GGUF file.
pub struct GgufSource {
    path: PathBuf,
    file: Mutex<File>,
    /// Header and metadata.
    pub content: Content,
    arch: String,
}

impl GgufSource {
    /// Reads the header and metadata of `path`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mut file = File::open(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content = Content::read(&mut file).map_err(|e| gguf_err(path, e.to_string()))?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| gguf_err(path, "no general.architecture in the metadata".into()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            content,
            arch,
        })
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> &str {
        &self.arch
    }

    fn md(&self, key: &str) -> Option<&GValue> {
        self.content.metadata.get(&format!("{}.{key}", self.arch))
    }

    fn md_u64(&self, key: &str) -> Result<u64, ModelError> {
        let v = self.md(key).ok_or_else(|| {
            gguf_err(
                &self.path,
                format!("no {}.{key} in the metadata", self.arch),
            )
        })?;
        v.to_u64()
            .or_else(|_| v.to_u32().map(u64::from))
            .map_err(|e| gguf_err(&self.path, format!("{}.{key}: {e}", self.arch)))
    }

    /// An HF-style `config.json` equivalent (`llama` and `qwen2` architectures; Mistral GGUFs use
    /// `llama`).
    pub fn config(&self) -> Result<Value, ModelError> {
        let model_type = match self.arch.as_str() {
            "llama" | "qwen2" => self.arch.clone(),
            other => {
                return Err(gguf_err(
                    &self.path,
                    format!("GGUF architecture \"{other}\" is not supported (supported: llama, qwen2); use the HF safetensors folder"),
                ))
            }
        };
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(gguf_err(
                &self.path,
                "rope_freqs.weight (Llama 3 rope scaling) is not supported for GGUF files; use the HF folder".into(),
            ));
        }
        let heads = self.md_u64("attention.head_count")?;
        let hidden = self.md_u64("embedding_length")?;
        let f = |k: &str| self.md(k).and_then(|v| v.to_f32().ok()).map(f64::from);
        let vocab = match self.md_u64("vocab_size") {
            Ok(v) => v,
            Err(_) => self
                .content
                .metadata
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(|v| v.len() as u64)
                .ok_or_else(|| gguf_err(&self.path, "vocabulary size unknown".into()))?,
        };
        let mut cfg = json!({
            "model_type": model_type,
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": self.md_u64("feed_forward_length")?,
            "num_hidden_layers": self.md_u64("block_count")?,
            "num_attention_heads": heads,
            "num_key_value_heads": self.md_u64("attention.head_count_kv").unwrap_or(heads),
            "max_position_embeddings": self.md_u64("context_length")?,
            "rms_norm_eps": f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            "rope_theta": f("rope.freq_base").unwrap_or(10000.0),
            "tie_word_embeddings": !self.content.tensor_infos.contains_key("output.weight"),
            "hidden_act": "silu",
        });
        if let Ok(hd) = self.md_u64("attention.key_length") {
            cfg["head_dim"] = json!(hd);
        }
        Ok(cfg)
    }

    fn gguf_name(&self, hf: &str) -> Option<String> {
        hf_to_gguf(hf)
    }

    fn unpermute(&self, hf: &str, t: Tensor) -> Result<Tensor, ModelError> {
        let heads_key = if hf.contains(".q_proj.") {
            "attention.head_count"
        } else if hf.contains(".k_proj.") {
            "attention.head_count_kv"
        } else {
            return Ok(t);
        };
        if self.arch != "llama" {
            return Ok(t);
        }
        let heads = match self.md_u64(heads_key) {
            Ok(h) => h as usize,
            Err(_) => self.md_u64("attention.head_count")? as usize,
        };
        Ok(unpermute_rows(&t, heads)?)
    }
}

/// Undoes llama.cpp's q/k row permutation: rows of each head go from `(d/2, 2)` (interleaved
/// pairs) back to `(2, d/2)` (HF halves). Works on weights `(rows, in)` and biases `(rows,)`.
pub fn unpermute_rows(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let hd = rows / heads.max(1);
    let rest: Vec<usize> = dims[1..].to_vec();
    let mut shape = vec![heads, hd / 2, 2];
    shape.extend(&rest);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The inverse of [`unpermute_rows`] (what llama.cpp's converter does), for tests.
pub fn permute_rows(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let hd = dims[0] / heads.max(1);
    let mut shape = vec![heads, 2, hd / 2];
    shape.extend(&dims[1..]);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// Maps an HF Llama-family tensor name to its GGUF name.
pub fn hf_to_gguf(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let g = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{n}.{g}.{kind}"))
}

fn gguf_err(path: &Path, msg: String) -> ModelError {
    ModelError::Gguf {
        path: path.to_path_buf(),
        msg,
    }
}

impl WeightSource for GgufSource {
    fn load(&self, name: &str, dev: &Device) -> Result<Option<Tensor>, ModelError> {
        let Some(g) = self.gguf_name(name) else {
            return Ok(None);
        };
        if !self.content.tensor_infos.contains_key(&g) {
            return Ok(None);
        }
        let mut file = self
            .file
            .lock()
            .map_err(|_| gguf_err(&self.path, "file lock poisoned".into()))?;
        let qt = self
            .content
            .tensor(&mut *file, &g, dev)
            .map_err(|e| gguf_err(&self.path, format!("tensor {g}: {e}")))?;
        let t = qt
            .dequantize(dev)
            .map_err(|e| gguf_err(&self.path, format!("dequantizing {g}: {e}")))?;
        Ok(Some(self.unpermute(name, t)?))
    }

    fn names(&self) -> Vec<String> {
        // Only names this source can map back are listed.
        let mut out = vec![];
        for g in self.content.tensor_infos.keys() {
            if let Some(hf) = gguf_to_hf(g) {
                out.push(hf);
            }
        }
        out
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

fn gguf_to_hf(g: &str) -> Option<String> {
    match g {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = g.strip_prefix("blk.")?;
    let (n, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{n}.{hf}.{kind}"))
}
