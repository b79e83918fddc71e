//! Softmax helpers for step functions, numerically careful and in `f64`: a distribution, its
//! log, and the gradient of a target log-probability.

/// `log_softmax(z)` of one row, in `f64`.
pub fn log_softmax(z: &[f32]) -> Vec<f64> {
    let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    log_softmax_f64(&z)
}

/// `softmax(z)` of one row, in `f64`.
pub fn softmax(z: &[f32]) -> Vec<f64> {
    log_softmax(z).into_iter().map(f64::exp).collect()
}

/// `log_softmax(z)` of one `f64` row. Entries at `-inf` (masked) stay at `-inf`; a row that is all
/// `-inf` gives `NaN`s, as torch does.
pub fn log_softmax_f64(z: &[f64]) -> Vec<f64> {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let lse = max + z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
    z.iter().map(|&v| v - lse).collect()
}

/// `scale * (onehot(target) - p)`: the gradient of `scale * ln p[target]` w.r.t. the logits.
pub fn onehot_minus(p: &[f64], target: usize, scale: f64) -> Vec<f64> {
    p.iter()
        .enumerate()
        .map(|(j, &pj)| scale * (f64::from(u8::from(j == target)) - pj))
        .collect()
}

/// The natural-log and plain softmax of one row.
#[derive(Debug, Clone)]
pub struct Dist {
    /// `log_softmax(z)`.
    pub logp: Vec<f64>,
    /// `softmax(z)`.
    pub p: Vec<f64>,
}

impl Dist {
    /// The distribution `softmax(z)` of one row of `f32` logits.
    pub fn of(z: &[f32]) -> Self {
        let logp = log_softmax(z);
        let p = logp.iter().map(|v| v.exp()).collect();
        Self { logp, p }
    }

    /// `p[y]` (or `ln p[y]` with `logprob`) and its gradient w.r.t. the logits.
    pub fn prob(&self, y: usize, logprob: bool) -> (f64, Vec<f64>) {
        if logprob {
            (self.logp[y], onehot_minus(&self.p, y, 1.0))
        } else {
            (self.p[y], onehot_minus(&self.p, y, self.p[y]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_gradients_match() {
        let d = Dist::of(&[1.0, 2.0, 3.0]);
        assert!((d.p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let (lp, g) = d.prob(2, true);
        assert!((lp - d.p[2].ln()).abs() < 1e-12);
        assert!(
            (g.iter().sum::<f64>()).abs() < 1e-12,
            "onehot − p sums to 0"
        );
        assert!(log_softmax_f64(&[f64::NEG_INFINITY; 2])
            .iter()
            .all(|v| v.is_nan()));
    }
}
