//! Reductions over the last dimension.

use rinseq_sdk::{ErrorCode, PluginError, Tensor};

/// An aggregation function (Inseq's `AggregationFunction` registry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduction {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
    /// The value with the largest magnitude, sign kept (NaN treated as 0 when choosing).
    AbsMax,
    /// Vector p-norm with this order.
    VNorm(f64),
}

impl Reduction {
    /// Reduces one slice.
    pub fn apply(self, xs: &[f32]) -> f32 {
        let it = xs.iter().map(|&v| v as f64);
        let r = match self {
            Self::Mean => it.sum::<f64>() / xs.len() as f64,
            Self::Sum => it.sum(),
            Self::Max => it.fold(f64::NEG_INFINITY, |a, b| {
                if b.is_nan() || a.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            }),
            Self::Min => it.fold(f64::INFINITY, |a, b| {
                if b.is_nan() || a.is_nan() {
                    f64::NAN
                } else {
                    a.min(b)
                }
            }),
            Self::Prod => it.product(),
            Self::AbsMax => {
                let key = |v: f64| if v.is_nan() { 0.0 } else { v.abs() };
                it.fold(None::<f64>, |best, v| match best {
                    Some(b) if key(b) >= key(v) => Some(b),
                    _ => Some(v),
                })
                .unwrap_or(f64::NAN)
            }
            Self::VNorm(ord) => vnorm(xs, ord),
        };
        r as f32
    }

    /// Reduces the last dimension of `t`; `select` first keeps only some indices of it.
    pub fn reduce_last(self, t: &Tensor, select: Option<&[usize]>) -> Result<Tensor, PluginError> {
        let Some((&last, outer)) = t.shape.split_last() else {
            return Err(PluginError::new(
                ErrorCode::SHAPE_MISMATCH,
                "cannot reduce a 0-d tensor",
            ));
        };
        if let Some(bad) = select.and_then(|s| s.iter().find(|&&i| i >= last)) {
            return Err(PluginError::invalid_params(format!(
                "select_idx {bad} is out of range for a last dimension of size {last}"
            )));
        }
        let rows = outer.iter().product::<usize>();
        let mut out = Vec::with_capacity(rows);
        let mut buf = Vec::with_capacity(last);
        for r in 0..rows {
            let row = &t.data[r * last..(r + 1) * last];
            buf.clear();
            match select {
                Some(idx) => buf.extend(idx.iter().map(|&i| row[i])),
                None => buf.extend_from_slice(row),
            }
            out.push(self.apply(&buf));
        }
        Tensor::new(outer.to_vec(), out)
    }
}

fn vnorm(xs: &[f32], ord: f64) -> f64 {
    let it = xs.iter().map(|&v| (v as f64).abs());
    if ord == f64::INFINITY {
        it.fold(0.0, f64::max)
    } else if ord == f64::NEG_INFINITY {
        it.fold(f64::INFINITY, f64::min)
    } else if ord == 0.0 {
        it.filter(|v| *v != 0.0).count() as f64
    } else {
        it.map(|v| v.powf(ord)).sum::<f64>().powf(1.0 / ord)
    }
}
