//! Weight sources: tensors by HF name, from safetensors files or a GGUF file.
//!
//! - HF folder: `model.safetensors`, or the shards listed in `model.safetensors.index.json`
//!   (memory-mapped with candle's safetensors loader).
//! - GGUF: tensors are dequantized to f32 on access and renamed to HF names (see [`super::gguf`]).
//!
//! dtypes: f32 (default), f64 (tests), f16 and bf16. candle's CPU matmul has no bf16 kernel, so
//! on the CPU bf16 means bf16 *weights* (every weight rounded to bf16) with f32 compute — the
//! numbers of a bf16 checkpoint, at f32 speed; on other devices bf16 runs natively.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::ModelError;

/// A place tensors come from, addressed by HF tensor name.
pub trait WeightSource {
    /// The tensor `name` in its stored dtype (f32 for GGUF), or `None` if absent.
    fn load(&self, name: &str, dev: &Device) -> Result<Option<Tensor>, ModelError>;
    /// Every tensor name (HF names).
    fn names(&self) -> Vec<String>;
    /// The file(s), for error messages.
    fn describe(&self) -> String;
}

/// Tensors by HF name, converted to one dtype and device on access.
pub struct Weights {
    src: Box<dyn WeightSource>,
    /// The dtype every floating-point tensor is converted to.
    pub dtype: DType,
    /// Where tensors are put.
    pub device: Device,
}

/// Checks that the runtime can compute in `dtype` on `device`.
pub fn check_dtype(dtype: DType, _device: &Device) -> Result<(), ModelError> {
    match dtype {
        DType::F32 | DType::F64 | DType::F16 => Ok(()),
        DType::BF16 => Ok(()),
        other => Err(ModelError::UnsupportedDtype {
            dtype: format!("{other:?}").to_lowercase(),
            msg: "models run in f32, f16 or f64".into(),
        }),
    }
}

impl Weights {
    /// Wraps a source; tensors come out in `dtype` on `device`.
    pub fn new(src: Box<dyn WeightSource>, dtype: DType, device: Device) -> Self {
        Self { src, dtype, device }
    }

    /// The dtype the model computes in: bf16 on the CPU computes in f32 (see the module docs).
    pub fn compute_dtype(&self) -> DType {
        if self.dtype == DType::BF16 && self.device.is_cpu() {
            DType::F32
        } else {
            self.dtype
        }
    }

    /// The tensor `name`, or [`ModelError::MissingTensor`].
    pub fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        self.get_opt(name)?
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                source_desc: self.src.describe(),
            })
    }

    /// The tensor `name`, checked against `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self.get(name)?;
        if t.dims() != shape {
            return Err(ModelError::TensorShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    /// The tensor `name` if present (e.g. optional biases, tied heads).
    pub fn get_opt(&self, name: &str) -> Result<Option<Tensor>, ModelError> {
        let compute = self.compute_dtype();
        match self.src.load(name, &self.device)? {
            Some(t) if t.dtype().is_float() && compute != self.dtype => {
                // bf16 weights, f32 compute: round through bf16.
                Ok(Some(t.to_dtype(self.dtype)?.to_dtype(compute)?))
            }
            Some(t) if t.dtype().is_float() && t.dtype() != self.dtype => {
                Ok(Some(t.to_dtype(self.dtype)?))
            }
            other => Ok(other),
        }
    }

    /// Whether `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.src.names().iter().any(|n| n == name)
    }

    /// Every tensor name.
    pub fn names(&self) -> Vec<String> {
        self.src.names()
    }

    /// The source, for messages.
    pub fn describe(&self) -> String {
        self.src.describe()
    }
}

/// Safetensors file(s) of an HF folder, memory-mapped.
pub struct SafetensorsSource {
    st: candle_core::safetensors::MmapedSafetensors,
    files: Vec<PathBuf>,
}

impl SafetensorsSource {
    /// Opens `model.safetensors` or the shards of `model.safetensors.index.json` in `dir`.
    pub fn open_folder(dir: &Path) -> Result<Self, ModelError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.is_file() {
            return Self::open(vec![single]);
        }
        if index.is_file() {
            return Self::open(shards_of(&index)?);
        }
        let hint = if dir.join("pytorch_model.bin").exists() {
            " (pytorch_model.bin is not supported: convert it with transformers' save_pretrained(safe_serialization=True))".to_string()
        } else {
            String::new()
        };
        Err(ModelError::MissingWeights {
            dir: dir.to_path_buf(),
            hint,
        })
    }

    /// Opens these safetensors files (one model split over several files).
    pub fn open(files: Vec<PathBuf>) -> Result<Self, ModelError> {
        for f in &files {
            check_safetensors(f)?;
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap-based loader (candle,
        // safetensors, PyTorch), this assumes nobody truncates them while the model loads.
        let st =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }.map_err(|e| {
                ModelError::BadWeights {
                    path: files.first().cloned().unwrap_or_default(),
                    msg: e.to_string(),
                }
            })?;
        Ok(Self { st, files })
    }
}

/// Validates a safetensors header and length (a truncated download fails here, with its name).
fn check_safetensors(path: &Path) -> Result<(), ModelError> {
    use std::io::Read;
    let bad = |msg: String| ModelError::BadWeights {
        path: path.to_path_buf(),
        msg,
    };
    let mut f = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad(format!("file is only {len} bytes")))?;
    let hlen = u64::from_le_bytes(n);
    if hlen > len.saturating_sub(8) {
        return Err(bad(format!(
            "header of {hlen} bytes but file is {len} bytes"
        )));
    }
    let mut header = vec![0u8; hlen as usize];
    f.read_exact(&mut header)
        .map_err(|e| bad(format!("cannot read header: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("bad header: {e}")))?;
    let end = v
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + hlen + end > len {
        return Err(bad(format!(
            "tensor data ends at byte {} but the file has {len}",
            8 + hlen + end
        )));
    }
    Ok(())
}

/// The shard files named in an index's `weight_map`, in order of first appearance.
fn shards_of(index: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let bad = |msg: &str| ModelError::BadConfig {
        path: index.to_path_buf(),
        msg: msg.to_string(),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for f in map.values() {
        let f = dir.join(
            f.as_str()
                .ok_or_else(|| bad("non-string file in weight_map"))?,
        );
        if !files.contains(&f) {
            if !f.is_file() {
                return Err(ModelError::MissingWeights {
                    dir: dir.to_path_buf(),
                    hint: format!(" (shard {} listed in the index is missing)", f.display()),
                });
            }
            files.push(f);
        }
    }
    Ok(files)
}

impl WeightSource for SafetensorsSource {
    fn load(&self, name: &str, dev: &Device) -> Result<Option<Tensor>, ModelError> {
        if self.st.get(name).is_err() {
            return Ok(None);
        }
        Ok(Some(self.st.load(name, dev)?))
    }

    fn names(&self) -> Vec<String> {
        self.st.tensors().into_iter().map(|(n, _)| n).collect()
    }

    fn describe(&self) -> String {
        let names: Vec<_> = self.files.iter().map(|f| f.display().to_string()).collect();
        names.join(", ")
    }
}

/// Tensors held in memory (tests, converted checkpoints).
#[derive(Default)]
pub struct MemorySource {
    /// Tensors by HF name.
    pub tensors: std::collections::HashMap<String, Tensor>,
}

impl WeightSource for MemorySource {
    fn load(&self, name: &str, dev: &Device) -> Result<Option<Tensor>, ModelError> {
        match self.tensors.get(name) {
            Some(t) => Ok(Some(t.to_device(dev)?)),
            None => Ok(None),
        }
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn describe(&self) -> String {
        "in-memory weights".into()
    }
}
