//! GGUF files: an HF-equivalent `config.json` from the metadata, and a [`WeightSource`] that
//! dequantizes tensors to f32 and serves them under HF names.
//!
//! [`GgufSource::prefetch`] dequantizes every tensor at once on the rayon pool (one file handle
//! per worker) before a model is built; `load` then hands them out without further work.
//!
//! llama.cpp's converter permutes the q/k projection rows of `llama` models for interleaved RoPE.
//! This source un-permutes them back to the HF layout, so the same half-split RoPE model code
//! serves safetensors and GGUF weights (tested against interleaved RoPE on the permuted rows).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::gguf_file::{Content, Value as GValue};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde_json::{json, Value};

use super::weights::WeightSource;
use super::ModelError;

use super::gguf_dequant as dequant;

/// An open GGUF file.
pub struct GgufSource {
    path: PathBuf,
    file: Mutex<File>,
    /// Header and metadata.
    pub content: Content,
    arch: String,
    /// Tensors dequantized ahead by [`GgufSource::prefetch`], by HF name; `load` takes them out.
    ready: Mutex<HashMap<String, Tensor>>,
}

impl GgufSource {
    /// Reads the header and metadata of `path`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mut file = File::open(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Buffered: the metadata is ~100k small strings (the vocabulary and merges), two reads
        // each, which unbuffered cost one system call apiece.
        let content = Content::read(&mut std::io::BufReader::with_capacity(1 << 16, &mut file))
            .map_err(|e| gguf_err(path, e.to_string()))?;
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
            ready: Mutex::new(HashMap::new()),
        })
    }

    /// Reads and dequantizes every tensor that `load` can serve, in parallel, and keeps them for
    /// `load` (which falls back to reading one tensor when a name was not prefetched). On the
    /// CPU, Q4_1, Q8_0 and F32 tensors are dequantized straight from the file bytes with
    /// candle's arithmetic (`gguf_dequant.rs`), others through candle: either way bit-identical
    /// to the one-at-a-time path (tested below).
    pub fn prefetch(&self, dev: &Device) -> Result<(), ModelError> {
        let mut jobs: Vec<(String, &str, usize)> = self
            .content
            .tensor_infos
            .iter()
            .filter_map(|(g, info)| Some((gguf_to_hf(g)?, g.as_str(), info.shape.elem_count())))
            .collect();
        // Largest first, so that no big tensor is left for the end of the parallel loop.
        jobs.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(b.1)));
        let file_len = std::fs::metadata(&self.path)
            .map_err(|source| ModelError::Io {
                path: self.path.clone(),
                source,
            })?
            .len();
        let loaded: Vec<(String, Tensor)> = jobs
            .into_par_iter()
            .map_init(
                // One file handle and one reusable read buffer per worker.
                || (File::open(&self.path), Vec::new()),
                |(file, buf), (hf, g, _)| {
                    let file = file.as_mut().map_err(|e| ModelError::Io {
                        path: self.path.clone(),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    })?;
                    let t = match self.read_direct(file, buf, file_len, &hf, g, dev)? {
                        Some(t) => t,
                        None => self.read_tensor(file, &hf, g, dev)?,
                    };
                    Ok((hf, t))
                },
            )
            .collect::<Result<_, ModelError>>()?;
        self.ready_map()?.extend(loaded);
        Ok(())
    }

    fn ready_map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Tensor>>, ModelError> {
        self.ready
            .lock()
            .map_err(|_| gguf_err(&self.path, "tensor cache lock poisoned".into()))
    }

    /// The fast path of [`GgufSource::prefetch`]: reads tensor `g` into `buf` and dequantizes
    /// it with [`dequant::dequantize_rows`]; `None` where that does not apply (not on the CPU,
    /// another dtype or layout), for [`GgufSource::read_tensor`] to do.
    fn read_direct(
        &self,
        file: &mut File,
        buf: &mut Vec<u8>,
        file_len: u64,
        hf: &str,
        g: &str,
        dev: &Device,
    ) -> Result<Option<Tensor>, ModelError> {
        use std::io::{Read, Seek, SeekFrom};
        let Some(info) = self.content.tensor_infos.get(g) else {
            return Ok(None);
        };
        let dtype = info.ggml_dtype;
        let dims = info.shape.dims().to_vec();
        let elems = info.shape.elem_count();
        if !dev.is_cpu() || !dequant::supported(dtype) || elems == 0 {
            return Ok(None);
        }
        let cols = dims.last().copied().unwrap_or(1);
        let rows = elems / cols.max(1);
        let heads = self.permuted_heads(hf)?;
        if (heads.is_some() && dims.len() != 2) || !elems.is_multiple_of(dtype.block_size()) {
            return Ok(None);
        }
        let size = elems / dtype.block_size() * dtype.type_size();
        let start = self.content.tensor_data_offset.saturating_add(info.offset);
        if start.saturating_add(size as u64) > file_len {
            return Ok(None); // candle's path reports the truncation
        }
        buf.resize(size, 0);
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(buf))
            .map_err(|source| ModelError::Io {
                path: self.path.clone(),
                source,
            })?;
        let Some(values) = dequant::dequantize_rows(dtype, buf, rows, cols, heads) else {
            return Ok(None);
        };
        Ok(Some(Tensor::from_vec(values, dims, dev)?))
    }

    /// Reads the GGUF tensor `g` from `file`, dequantizes it to f32 and un-permutes it (`hf` is
    /// its HF name).
    fn read_tensor(
        &self,
        file: &mut File,
        hf: &str,
        g: &str,
        dev: &Device,
    ) -> Result<Tensor, ModelError> {
        let qt = self
            .content
            .tensor(file, g, dev)
            .map_err(|e| gguf_err(&self.path, format!("tensor {g}: {e}")))?;
        let t = qt
            .dequantize(dev)
            .map_err(|e| gguf_err(&self.path, format!("dequantizing {g}: {e}")))?;
        self.unpermute(hf, t)
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

    /// The head count whose q/k rows llama.cpp permuted in tensor `hf`, `None` if not permuted.
    fn permuted_heads(&self, hf: &str) -> Result<Option<usize>, ModelError> {
        let heads_key = if hf.contains(".q_proj.") {
            "attention.head_count"
        } else if hf.contains(".k_proj.") {
            "attention.head_count_kv"
        } else {
            return Ok(None);
        };
        if self.arch != "llama" {
            return Ok(None);
        }
        Ok(Some(match self.md_u64(heads_key) {
            Ok(h) => h as usize,
            Err(_) => self.md_u64("attention.head_count")? as usize,
        }))
    }

    fn unpermute(&self, hf: &str, t: Tensor) -> Result<Tensor, ModelError> {
        match self.permuted_heads(hf)? {
            Some(heads) => Ok(unpermute_rows(&t, heads)?),
            None => Ok(t),
        }
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
        if let Some(t) = self.ready_map()?.remove(name) {
            if t.device().same_device(dev) {
                return Ok(Some(t));
            }
        }
        let mut file = self
            .file
            .lock()
            .map_err(|_| gguf_err(&self.path, "file lock poisoned".into()))?;
        Ok(Some(self.read_tensor(&mut file, name, &g, dev)?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file;
    use candle_core::quantized::{GgmlDType, QTensor};

    /// Loads every tensor of `path` one at a time and after `prefetch`, and checks that the
    /// two agree bit for bit; returns how many tensors were compared.
    fn compare_sequential_and_prefetched(path: &Path) -> usize {
        let dev = Device::Cpu;
        let seq = GgufSource::open(path).unwrap();
        let ahead = GgufSource::open(path).unwrap();
        ahead.prefetch(&dev).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.into_iter().map(f32::to_bits).collect()
        };
        let names = seq.names();
        for n in &names {
            let a = seq.load(n, &dev).unwrap().unwrap();
            let b = ahead.load(n, &dev).unwrap().unwrap();
            assert_eq!(a.dims(), b.dims(), "{n}");
            assert!(bits(&a) == bits(&b), "{n} differs");
        }
        assert!(ahead.ready_map().unwrap().is_empty());
        names.len()
    }

    #[test]
    fn prefetched_tensors_are_bit_identical_to_sequential_ones() {
        let dev = Device::Cpu;
        let q = |rows: usize, cols: usize, seed: f64| {
            let t = Tensor::arange(0f32, (rows * cols) as f32, &dev)
                .unwrap()
                .affine(0.37, seed)
                .unwrap()
                .sin()
                .unwrap()
                .reshape((rows, cols))
                .unwrap();
            QTensor::quantize(&t, GgmlDType::Q4_1).unwrap()
        };
        let norm =
            QTensor::quantize(&Tensor::arange(0f32, 64., &dev).unwrap(), GgmlDType::F32).unwrap();
        let tensors = [
            ("token_embd.weight", q(8, 64, 0.1)),
            ("blk.0.attn_q.weight", q(64, 64, 0.2)),
            ("blk.0.attn_k.weight", q(32, 64, 0.3)),
            ("blk.0.ffn_down.weight", q(64, 128, 0.4)),
            ("blk.0.attn_norm.weight", norm),
            (
                "blk.0.ffn_up.weight",
                QTensor::quantize(
                    &Tensor::arange(0f32, 128. * 64., &dev)
                        .unwrap()
                        .affine(0.11, -3.)
                        .unwrap()
                        .cos()
                        .unwrap()
                        .reshape((128, 64))
                        .unwrap(),
                    GgmlDType::Q8_0,
                )
                .unwrap(),
            ),
        ];
        let arch = gguf_file::Value::String("llama".into());
        let heads = gguf_file::Value::U32(2);
        let kv = gguf_file::Value::U32(1);
        let md = [
            ("general.architecture", &arch),
            ("llama.attention.head_count", &heads),
            ("llama.attention.head_count_kv", &kv),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let mut f = File::create(&path).unwrap();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        gguf_file::write(&mut f, &md, &refs).unwrap();
        drop(f);
        assert_eq!(compare_sequential_and_prefetched(&path), 6);
        // The un-permuted q rows differ from the stored (permuted) order.
        let src = GgufSource::open(&path).unwrap();
        let raw = src
            .content
            .tensor(&mut File::open(&path).unwrap(), "blk.0.attn_q.weight", &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap();
        let q_hf = src
            .load("model.layers.0.self_attn.q_proj.weight", &dev)
            .unwrap()
            .unwrap();
        let back = permute_rows(&q_hf, 2).unwrap();
        assert_eq!(
            raw.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    /// The same on SmolLM2-135M when `RINSEQ_SMOLLM2_GGUF` names it (every tensor of the model).
    #[test]
    fn prefetched_smollm2_is_bit_identical_when_available() {
        let Some(p) = std::env::var_os("RINSEQ_SMOLLM2_GGUF") else {
            return;
        };
        assert_eq!(compare_sequential_and_prefetched(Path::new(&p)), 272);
    }
}
