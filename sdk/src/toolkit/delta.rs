//! Captum's convergence delta: how far a path method's attributions are from completeness.

use crate::error::PluginError;
use crate::tensor::Tensor;

/// Captum's convergence delta per step, `Σ attributions − (f(end) − f(start))` (summed in
/// `f64`), where the attributions are `(steps, len, hidden)` (or `(steps, len)`) per side and
/// `f_end`/`f_start` the attributed function's scores `(steps,)` at the input and the baseline.
/// Returns a `(steps,)` tensor, the `deltas` step score.
pub fn convergence_deltas(
    source: Option<&Tensor>,
    target: Option<&Tensor>,
    f_end: &[f32],
    f_start: &[f32],
) -> Result<Tensor, PluginError> {
    let ns = f_end.len();
    let mut d: Vec<f64> = f_end
        .iter()
        .zip(f_start)
        .map(|(e, s)| -(*e as f64 - *s as f64))
        .collect();
    for t in [source, target].into_iter().flatten() {
        let per = t.data.len() / ns.max(1);
        for (s, ds) in d.iter_mut().enumerate() {
            *ds += t.data[s * per..(s + 1) * per]
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>();
        }
    }
    Tensor::new(vec![ns], d.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_both_sides_per_step() {
        // 2 steps, 2 positions, hidden 1.
        let src = Tensor::new(vec![2, 2, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let tgt = Tensor::new(vec![2, 1, 1], vec![0.5, 0.25]).unwrap();
        let d = convergence_deltas(Some(&src), Some(&tgt), &[5.0, 10.0], &[1.0, 2.0]).unwrap();
        assert_eq!(d.shape, vec![2]);
        assert_eq!(d.data, [3.5 - 4.0, 7.25 - 8.0]);
        let d = convergence_deltas(None, None, &[1.0], &[1.0]).unwrap();
        assert_eq!(d.data, [0.0]);
    }
}
