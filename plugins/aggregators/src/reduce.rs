//! Inseq's aggregation functions (`AggregationFunction` registry): reductions of a slice of values.

use rinseq_sdk::PluginError;

/// The names accepted for an aggregation function, in Inseq's registry order.
pub const FUNCTION_NAMES: [&str; 7] = ["mean", "max", "min", "sum", "prod", "absmax", "vnorm"];

/// An aggregation function (Inseq's `AggregationFunction` registry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduction {
    /// Arithmetic mean (NaN propagates; NaN for an empty slice, as `torch.mean`).
    Mean,
    /// Sum (NaN propagates).
    Sum,
    /// Maximum (NaN propagates, as `torch.max`).
    Max,
    /// Minimum (NaN propagates).
    Min,
    /// Product (NaN propagates).
    Prod,
    /// The value with the largest magnitude, sign kept; NaN counts as 0 when choosing and the
    /// first of tied values wins (`gather(argmax(nan_to_num(x).abs()))`).
    AbsMax,
    /// Vector p-norm with this order (`torch.linalg.vector_norm`).
    VNorm(f64),
}

impl Reduction {
    /// The function called `name`; `vnorm_ord` is the order used if it is `vnorm`.
    pub fn from_name(name: &str, vnorm_ord: f64) -> Result<Self, PluginError> {
        Ok(match name {
            "mean" => Self::Mean,
            "max" => Self::Max,
            "min" => Self::Min,
            "sum" => Self::Sum,
            "prod" => Self::Prod,
            "absmax" => Self::AbsMax,
            "vnorm" => Self::VNorm(vnorm_ord),
            other => return Err(unknown_function(other)),
        })
    }

    /// Whether an empty slice has no value under this function (torch raises for these).
    fn needs_values(self) -> bool {
        matches!(self, Self::Max | Self::Min | Self::AbsMax)
            || self == Self::VNorm(f64::NEG_INFINITY)
    }

    /// Reduces one slice; an empty slice is an error for max, min, absmax and vnorm(-inf).
    pub fn try_apply(self, xs: &[f32]) -> Result<f32, PluginError> {
        if xs.is_empty() && self.needs_values() {
            return Err(PluginError::new(
                rinseq_sdk::ErrorCode::ShapeMismatch,
                format!("cannot reduce an empty span with {self:?}"),
            ));
        }
        Ok(self.apply(xs))
    }

    /// Reduces one slice (see [`Reduction::try_apply`] for empty slices).
    pub fn apply(self, xs: &[f32]) -> f32 {
        let it = xs.iter().map(|&v| v as f64);
        let nan_max = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        };
        let nan_min = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        };
        let r = match self {
            Self::Mean => it.sum::<f64>() / xs.len() as f64,
            Self::Sum => it.sum(),
            Self::Max => it.fold(f64::NEG_INFINITY, nan_max),
            Self::Min => it.fold(f64::INFINITY, nan_min),
            Self::Prod => it.product(),
            Self::AbsMax => {
                let key = |v: f64| if v.is_nan() { 0.0 } else { v.abs() };
                it.fold(None::<f64>, |best, v| match best {
                    Some(b) if key(b) >= key(v) => Some(b),
                    _ => Some(v),
                })
                .unwrap_or(f64::NAN)
            }
            Self::VNorm(ord) => {
                let abs = it.map(f64::abs);
                if ord == f64::INFINITY {
                    abs.fold(0.0, nan_max)
                } else if ord == f64::NEG_INFINITY {
                    abs.fold(f64::INFINITY, nan_min)
                } else if ord == 0.0 {
                    // NaN != 0, so it counts, as in torch.
                    abs.filter(|v| *v != 0.0).count() as f64
                } else {
                    abs.map(|v| v.powf(ord)).sum::<f64>().powf(1.0 / ord)
                }
            }
        };
        r as f32
    }
}

/// The `invalid_params` error for an unknown function name, listing the known ones.
pub fn unknown_function(name: &str) -> PluginError {
    PluginError::invalid_params(format!(
        "unknown aggregation function '{name}': choose one of {}",
        FUNCTION_NAMES.join(", ")
    ))
}
