//! Helpers for the shapes methods return: Inseq stores per-sequence attributions token-major,
//! `(len, n_steps, extra...)`, with NaN where a target position is not visible yet.

use crate::error::{ErrorCode, PluginError};
use crate::tensor::Tensor;

/// `(steps, len, rest...)` -> `(len, steps, rest...)`.
pub fn steps_to_token_major(t: &Tensor) -> Result<Tensor, PluginError> {
    if t.ndim() < 2 {
        return Err(PluginError::new(
            ErrorCode::SHAPE_MISMATCH,
            format!("expected (steps, len, ...), got {:?}", t.shape.as_slice()),
        ));
    }
    let (steps, len) = (t.shape[0], t.shape[1]);
    let rest: usize = t.shape[2..].iter().product();
    let mut data = vec![0.0f32; t.data.len()];
    for s in 0..steps {
        for i in 0..len {
            let src = (s * len + i) * rest;
            let dst = (i * steps + s) * rest;
            data[dst..dst + rest].copy_from_slice(&t.data[src..src + rest]);
        }
    }
    let mut shape = vec![len, steps];
    shape.extend_from_slice(&t.shape[2..]);
    Tensor::new(shape, data)
}

/// In a token-major target tensor `(len, steps, rest...)`, sets to NaN every position at or
/// after the position of its step (`steps[j]` is the target position scored in column `j`).
pub fn mask_future_positions(t: &mut Tensor, steps: &[u32]) {
    if t.ndim() < 2 {
        return;
    }
    let (len, n) = (t.shape[0], t.shape[1]);
    let rest: usize = t.shape[2..].iter().product();
    for i in 0..len {
        for (j, &pos) in steps.iter().enumerate().take(n) {
            if i >= pos as usize {
                let at = (i * n + j) * rest;
                t.data[at..at + rest].iter_mut().for_each(|v| *v = f32::NAN);
            }
        }
    }
}

/// Takes point `p` of a `(points, rest...)` tensor as a `(rest...)` tensor.
pub fn point(t: &Tensor, p: usize) -> Result<Tensor, PluginError> {
    let size: usize = t.shape[1..].iter().product();
    if p >= t.shape.first().copied().unwrap_or(0) {
        return Err(PluginError::new(
            ErrorCode::SHAPE_MISMATCH,
            format!(
                "point {p} is out of range for shape {:?}",
                t.shape.as_slice()
            ),
        ));
    }
    Tensor::new(
        t.shape[1..].to_vec(),
        t.data[p * size..(p + 1) * size].to_vec(),
    )
}
