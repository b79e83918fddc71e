//! Inseq's post-processing of aggregated scores (`postprocess_attribution_scores`): source and
//! target are concatenated along the token axis (dim 0), NaN is set to 0, then each column (every
//! index of the other dims) is L1-normalised (`F.normalize(p=1, dim=0)`, eps 1e-12) or everything
//! is divided by the global max |x|, and the original NaN are restored.

use rinseq_sdk::{ErrorCode, PluginError, Tensor};

/// How scores are post-processed after a `scores` aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// Left as they are.
    None,
    /// L1-normalised per column, jointly over the parts.
    Normalize,
    /// Divided by the largest |value| of all parts.
    Rescale,
}

/// Applies `post` to the parts (source, target) jointly, in place.
pub fn postprocess(parts: &mut [&mut Tensor], post: Post) -> Result<(), PluginError> {
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let tail = first.shape.get(1..).unwrap_or(&[]).to_vec();
    if let Some(bad) = parts
        .iter()
        .find(|t| t.shape.get(1..).unwrap_or(&[]) != tail)
    {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "cannot normalise source and target jointly: shapes {:?} and {:?} differ past the \
                 token axis",
                &first.shape[..],
                &bad.shape[..]
            ),
        ));
    }
    let cols: usize = tail.iter().product();
    let zeroed = |v: f32| if v.is_nan() { 0.0 } else { v as f64 };
    let divisor: Box<dyn Fn(usize) -> f64> = match post {
        Post::None => return Ok(()),
        Post::Normalize => {
            let mut norms = vec![0.0f64; cols];
            for t in parts.iter() {
                for (i, v) in t.data.iter().enumerate() {
                    norms[i % cols] += zeroed(*v).abs();
                }
            }
            Box::new(move |c| norms[c].max(1e-12))
        }
        Post::Rescale => {
            let max = parts
                .iter()
                .flat_map(|t| t.data.iter())
                .fold(0.0f64, |m, v| m.max(zeroed(*v).abs()));
            // An all-zero input gives 0/0 = NaN everywhere, as in Inseq.
            Box::new(move |_| max)
        }
    };
    for t in parts.iter_mut() {
        for (i, v) in t.data.iter_mut().enumerate() {
            if !v.is_nan() {
                *v = (*v as f64 / divisor(i % cols)) as f32;
            }
        }
    }
    Ok(())
}
