//! The json-tricks `__ndarray__` encoding Inseq uses for step attributions (`ndarray_encode` /
//! `ndarray_hook` in `inseq/utils/serialization.py`, `ndarray_to_bin_str` in `inseq/utils/misc.py`):
//! `{"Corder": true, "__ndarray__": "b64:…" | "b64.gz:…" | [nested lists], "dtype": "float32",
//! "shape": [...]}` (`Corder` only for 2+ dimensions).

use base64::Engine;
use rinseq_sdk::Tensor;
use safetensors::tensor::Dtype;

use super::error::OutputError;
use super::gzip::{gunzip, gzip};
use super::pyjson::Json;
use super::safetensors_blob::{bytes_to_f32, B64};

/// Encodes a float32 array. `compact`: base64 of the raw little-endian buffer, gzipped (level 9)
/// only when `may_gzip` and that saves more than 10%; otherwise nested number lists.
pub fn encode(tensor: &Tensor, compact: bool, may_gzip: bool) -> Json {
    let data = if compact {
        let raw: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut header = "b64:";
        let mut payload = raw;
        if may_gzip {
            let small = gzip(&payload, 9);
            let n = payload.len();
            if (small.len() as f64) < 0.9 * n as f64 && small.len() + 8 < n {
                header = "b64.gz:";
                payload = small;
            }
        }
        Json::Str(format!("{header}{}", B64.encode(payload)))
    } else {
        nested(&tensor.shape, &tensor.data)
    };
    let mut pairs = vec![
        ("__ndarray__".to_string(), data),
        ("dtype".to_string(), Json::Str("float32".into())),
        (
            "shape".to_string(),
            Json::Array(tensor.shape.iter().map(|d| Json::Int(*d as i64)).collect()),
        ),
    ];
    if tensor.shape.len() > 1 {
        pairs.push(("Corder".to_string(), Json::Bool(true)));
    }
    Json::Object(pairs)
}

/// numpy's `tolist()`: nested lists, a bare number for 0-d arrays.
fn nested(shape: &[usize], data: &[f32]) -> Json {
    match shape.split_first() {
        None => Json::Float(data.first().copied().unwrap_or(f32::NAN) as f64),
        Some((&n, rest)) => {
            let step: usize = rest.iter().product();
            Json::Array(
                (0..n)
                    .map(|i| nested(rest, data.get(i * step..(i + 1) * step).unwrap_or(&[])))
                    .collect(),
            )
        }
    }
}

fn flatten(v: &Json, out: &mut Vec<f32>) -> bool {
    match v {
        Json::Array(items) => items.iter().all(|i| flatten(i, out)),
        Json::Int(i) => {
            out.push(*i as f32);
            true
        }
        Json::UInt(u) => {
            out.push(*u as f32);
            true
        }
        Json::Float(f) => {
            out.push(*f as f32);
            true
        }
        Json::Bool(b) => {
            out.push(f32::from(u8::from(*b)));
            true
        }
        _ => false,
    }
}

fn numpy_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "float32" => Dtype::F32,
        "float16" => Dtype::F16,
        "float64" => Dtype::F64,
        _ => return None,
    })
}

/// Whether `v` is an `__ndarray__` object.
pub fn is_ndarray(v: &Json) -> bool {
    v.get("__ndarray__").is_some()
}

/// Decodes an `__ndarray__` object to an `f32` tensor; `field` names it in errors.
pub fn decode(v: &Json, field: &str) -> Result<Tensor, OutputError> {
    let bad = |d: &str| OutputError::bad_tensor(field, d.to_string());
    let shape: Vec<usize> = match v.get("shape") {
        Some(Json::Array(dims)) => dims
            .iter()
            .map(|d| match d {
                Json::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(bad("`shape` must hold sizes")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("missing `shape`")),
    };
    let dtype = match v.get("dtype") {
        Some(Json::Str(s)) => s.as_str(),
        _ => return Err(bad("missing `dtype`")),
    };
    let data = match v.get("__ndarray__") {
        Some(Json::Str(s)) => {
            if v.get("Corder") == Some(&Json::Bool(false)) {
                return Err(bad("Fortran-order buffers are not supported (as in Inseq)"));
            }
            let bytes = if let Some(b) = s.strip_prefix("b64.gz:") {
                let zipped = B64.decode(b).map_err(|e| bad(&format!("base64: {e}")))?;
                gunzip(&zipped).map_err(|e| bad(&format!("gzip: {e}")))?
            } else if let Some(b) = s.strip_prefix("b64:") {
                B64.decode(b).map_err(|e| bad(&format!("base64: {e}")))?
            } else {
                return Err(bad("buffer header is neither `b64:` nor `b64.gz:`"));
            };
            let dt = numpy_dtype(dtype).ok_or_else(|| OutputError::UnsupportedPrecision {
                file: super::error::TEXT.into(),
                field: field.into(),
                dtype: dtype.into(),
            })?;
            bytes_to_f32(dt, &bytes).unwrap_or_default()
        }
        Some(other) => {
            let mut out = Vec::new();
            if !flatten(other, &mut out) {
                return Err(bad("`__ndarray__` list holds non-numbers"));
            }
            out
        }
        None => return Err(bad("missing `__ndarray__`")),
    };
    Tensor::new(shape, data).map_err(|e| bad(&e.to_string()))
}
