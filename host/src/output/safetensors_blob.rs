//! Inseq's tensor encoding in sequence outputs (`convert_to_safetensor` /
//! `convert_from_safetensor`, `inseq/utils/torch_utils.py`): a safetensors file holding one tensor
//! named `"attribution"` in float32, float16 or float8_e4m3fn, base64-encoded in the JSON.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use float8::F8E4M3;
use half::{bf16, f16};
use rinseq_sdk::Tensor;
use safetensors::tensor::{Dtype, SafeTensors, View};

use super::error::OutputError;
use super::options::ScorePrecision;

/// The tensor name Inseq uses inside each blob.
pub const TENSOR_NAME: &str = "attribution";

/// Base64 as Python's `base64.b64encode` writes it; decoding also accepts missing padding.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `f32` → `float8_e4m3fn` bits as PyTorch's `tensor.to(torch.float8_e4m3fn)` gives them on CPU:
/// round to nearest even, magnitudes above 448 (infinities included) saturate to ±448, NaN stays
/// NaN (checked bit for bit against PyTorch in `tests/output_json.rs`).
pub fn f32_to_f8_e4m3fn(x: f32) -> u8 {
    F8E4M3::from_f32(x).to_bits()
}

/// `float8_e4m3fn` bits → `f32` (exact).
pub fn f8_e4m3fn_to_f32(bits: u8) -> f32 {
    F8E4M3::from_bits(bits).to_f32()
}

struct Blob<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: Vec<u8>,
}

impl View for &Blob<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Casts `values` to `precision` as little-endian bytes (PyTorch rounding).
pub fn cast_bytes(values: &[f32], precision: ScorePrecision) -> (Dtype, Vec<u8>) {
    match precision {
        ScorePrecision::Float32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        ScorePrecision::Float16 => (
            Dtype::F16,
            values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        ScorePrecision::Float8 => (
            Dtype::F8_E4M3,
            values.iter().map(|v| f32_to_f8_e4m3fn(*v)).collect(),
        ),
    }
}

/// The safetensors bytes of `tensor` cast to `precision` (what Inseq base64-encodes); `field`
/// names the tensor in errors.
pub fn encode(
    tensor: &Tensor,
    precision: ScorePrecision,
    field: &str,
) -> Result<Vec<u8>, OutputError> {
    let n: usize = tensor.shape.iter().product();
    if n != tensor.data.len() {
        return Err(OutputError::InvalidTensor {
            file: super::error::TEXT.into(),
            field: field.into(),
            detail: format!(
                "shape {:?} needs {n} values, has {}",
                tensor.shape.as_slice(),
                tensor.data.len()
            ),
        });
    }
    let (dtype, data) = cast_bytes(&tensor.data, precision);
    let blob = Blob {
        dtype,
        shape: &tensor.shape,
        data,
    };
    safetensors::tensor::serialize([(TENSOR_NAME, &blob)], None).map_err(|e| {
        OutputError::InvalidTensor {
            file: super::error::TEXT.into(),
            field: field.into(),
            detail: e.to_string(),
        }
    })
}

/// [`encode`], then base64 (the JSON string Inseq writes).
pub fn encode_b64(
    tensor: &Tensor,
    precision: ScorePrecision,
    field: &str,
) -> Result<String, OutputError> {
    Ok(B64.encode(encode(tensor, precision, field)?))
}

/// Decodes little-endian `bytes` of `dtype` to `f32`; `None` for dtypes Inseq does not write
/// (float32/float16/float8_e4m3fn, plus bfloat16 and float64 for leniency).
pub fn bytes_to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    fn chunks<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    Some(match dtype {
        Dtype::F32 => chunks(bytes, f32::from_le_bytes),
        Dtype::F16 => chunks(bytes, |a| f16::from_le_bytes(a).to_f32()),
        Dtype::BF16 => chunks(bytes, |a| bf16::from_le_bytes(a).to_f32()),
        Dtype::F64 => chunks(bytes, |a| f64::from_le_bytes(a) as f32),
        Dtype::F8_E4M3 => bytes.iter().map(|b| f8_e4m3fn_to_f32(*b)).collect(),
        _ => return None,
    })
}

/// Decodes a safetensors blob to an `f32` tensor, as `convert_from_safetensor` does.
pub fn decode(bytes: &[u8], field: &str) -> Result<Tensor, OutputError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| OutputError::bad_tensor(field, format!("safetensors: {e}")))?;
    let view = st
        .tensor(TENSOR_NAME)
        .map_err(|_| OutputError::bad_tensor(field, "no tensor named `attribution`"))?;
    let data = bytes_to_f32(view.dtype(), view.data()).ok_or_else(|| {
        OutputError::UnsupportedPrecision {
            file: super::error::TEXT.into(),
            field: field.into(),
            dtype: format!("{:?}", view.dtype()),
        }
    })?;
    Tensor::new(view.shape().to_vec(), data)
        .map_err(|e| OutputError::bad_tensor(field, e.to_string()))
}

/// Decodes a base64 string holding a safetensors blob.
pub fn decode_b64(text: &str, field: &str) -> Result<Tensor, OutputError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| OutputError::bad_tensor(field, format!("base64: {e}")))?;
    decode(&bytes, field)
}
