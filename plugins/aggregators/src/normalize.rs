//! Inseq's post-processing of aggregated scores: source and target are concatenated along the
//! token axis, NaN is set to 0, each column (generated token) is L1-normalised (`F.normalize(p=1,
//! dim=0)`, eps 1e-12) or rescaled by the global max |x|, and NaN is restored.

use rinseq_sdk::Tensor;

/// Normalises `(len, steps)` source and target tensors jointly, in place.
pub fn normalize_columns(parts: &mut [&mut Tensor]) {
    let Some(steps) = parts.first().map(|t| t.shape.get(1).copied().unwrap_or(1)) else {
        return;
    };
    let mut norms = vec![0.0f64; steps];
    for t in parts.iter() {
        for (i, v) in t.data.iter().enumerate() {
            if !v.is_nan() {
                norms[i % steps] += (*v as f64).abs();
            }
        }
    }
    for t in parts.iter_mut() {
        for (i, v) in t.data.iter_mut().enumerate() {
            if !v.is_nan() {
                *v = (*v as f64 / norms[i % steps].max(1e-12)) as f32;
            }
        }
    }
}

/// Divides every value by the largest |value| over all parts (NaN ignored), in place.
pub fn rescale(parts: &mut [&mut Tensor]) {
    let max = parts
        .iter()
        .flat_map(|t| t.data.iter())
        .filter(|v| !v.is_nan())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if max > 0.0 {
        for t in parts.iter_mut() {
            for v in t.data.iter_mut() {
                *v /= max;
            }
        }
    }
}
