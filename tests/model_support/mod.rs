//! What the model tests share: the repository root and tensor helpers (max differences,
//! deterministic pseudo-random tensors).
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// max |a - b|.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// max |a|.
pub fn max_of(a: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().abs().unwrap();
    a.flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Deterministic pseudo-random normal-ish values (sum of uniforms), scaled.
pub fn rand_tensor(seed: &mut u64, shape: &[usize], scale: f64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..4 {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            }
            s * scale * 1.7
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}
