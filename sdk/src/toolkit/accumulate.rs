//! Sums of weighted gradients per attributed side ([`Accumulator`]), in `f64`, turned into
//! `(steps, len, hidden)` attributions at the end (optionally times `x − x′` or the input).

use crate::data::Side;
use crate::error::{ErrorCode, PluginError};
use crate::tensor::Tensor;

use super::endpoints::{Endpoints, SideEnds};
use super::gradients::{missing_side, PointGrads};

/// Per-side accumulators of `(steps, len, hidden)` gradient sums, in `f64`.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    /// Source side.
    pub source: Option<Vec<f64>>,
    /// Target side.
    pub target: Option<Vec<f64>>,
    n_steps: usize,
}

impl Accumulator {
    /// Zeroed accumulators for the sides of `ends` and `n_steps` steps.
    pub fn new(ends: &Endpoints, n_steps: usize) -> Self {
        let zeros = |e: &Option<SideEnds>| e.as_ref().map(|e| vec![0.0; n_steps * e.x.data.len()]);
        Self {
            source: zeros(&ends.source),
            target: zeros(&ends.target),
            n_steps,
        }
    }

    /// The accumulator of `side`.
    pub fn side_mut(&mut self, side: Side) -> Option<&mut Vec<f64>> {
        if side == Side::Source {
            self.source.as_mut()
        } else {
            self.target.as_mut()
        }
    }

    /// The accumulator of `side` and the gradients `grads` hold for it, checked to be the same
    /// size.
    pub fn with_grads<'g>(
        &mut self,
        side: Side,
        grads: &PointGrads<'g>,
    ) -> Result<(&mut [f64], &'g [f32]), PluginError> {
        let g = grads.side(side).ok_or_else(|| missing_side(side))?;
        let a = self
            .side_mut(side)
            .ok_or_else(|| PluginError::plugin("no accumulator for an attributed side"))?;
        if a.len() != g.len() {
            return Err(PluginError::new(
                ErrorCode::ShapeMismatch,
                format!("host gradients of {} values, expected {}", g.len(), a.len()),
            ));
        }
        Ok((a, g))
    }

    /// Adds `weight ·` the gradients of `grads` to the sums of every attributed side of `ends`.
    pub fn add(
        &mut self,
        ends: &Endpoints,
        grads: &PointGrads<'_>,
        weight: f64,
    ) -> Result<(), PluginError> {
        for (side, _) in ends.sides() {
            let (a, g) = self.with_grads(side, grads)?;
            a.iter_mut()
                .zip(g)
                .for_each(|(a, g)| *a += weight * *g as f64);
        }
        Ok(())
    }

    /// [`Accumulator::finish`] with the path methods' `multiply_by_inputs`: times `x − x′` when
    /// set.
    pub fn finish_by_inputs(
        self,
        ends: &Endpoints,
        multiply_by_inputs: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>), PluginError> {
        self.finish(ends, |e| {
            if multiply_by_inputs {
                e.diff().map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Turns the sums into `(source, target)` `(steps, len, hidden)` tensors, multiplying each
    /// `(len, hidden)` slice elementwise by `factor(side)` when it gives one.
    pub fn finish(
        self,
        ends: &Endpoints,
        mut factor: impl FnMut(&SideEnds) -> Result<Option<Vec<f32>>, PluginError>,
    ) -> Result<(Option<Tensor>, Option<Tensor>), PluginError> {
        let n_steps = self.n_steps;
        let mut conv = |acc: Option<Vec<f64>>, e: Option<&SideEnds>| {
            let (Some(acc), Some(e)) = (acc, e) else {
                return Ok::<_, PluginError>(None);
            };
            let f = factor(e)?;
            let n = e.x.data.len();
            let data = acc
                .iter()
                .enumerate()
                .map(|(j, v)| match &f {
                    Some(f) => (*v * f[j % n] as f64) as f32,
                    None => *v as f32,
                })
                .collect();
            Ok(Some(Tensor::new(vec![n_steps, e.len(), e.hidden()], data)?))
        };
        Ok((
            conv(self.source, ends.source.as_ref())?,
            conv(self.target, ends.target.as_ref())?,
        ))
    }
}

/// Adds `g · weight(j)` (`j` the hidden index) to position `pos` of every step of the
/// `(steps, len, hidden)` sums `a` of side `e`, the gradients `g` laid out alike: for methods
/// whose points move one token (SIG) or each token along its own path (DIG).
pub fn add_at_position(
    a: &mut [f64],
    g: &[f32],
    e: &SideEnds,
    pos: usize,
    weight: impl Fn(usize) -> f64,
) {
    let (per_step, h) = (e.len() * e.hidden(), e.hidden());
    for (a, g) in a.chunks_exact_mut(per_step).zip(g.chunks_exact(per_step)) {
        let at = pos * h;
        for j in 0..h {
            a[at + j] += g[at + j] as f64 * weight(j);
        }
    }
}

/// Multiplies every `(len, hidden)` slice of a `(steps, len, hidden)` tensor `g` by `x`
/// elementwise (input × gradient).
pub fn times_input(g: &mut Tensor, x: &Tensor) -> Result<(), PluginError> {
    let n = x.data.len();
    if n == 0 || !g.data.len().is_multiple_of(n) {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "input {:?} does not match gradients {:?}",
                &x.shape[..],
                &g.shape[..]
            ),
        ));
    }
    for chunk in g.data.chunks_mut(n) {
        chunk
            .iter_mut()
            .zip(x.data.iter())
            .for_each(|(a, b)| *a *= b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Endpoints {
        let x = Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let b = Tensor::zeros(vec![2, 2]);
        Endpoints {
            source: None,
            target: Some(SideEnds { x, b: Some(b) }),
        }
    }

    #[test]
    fn weighted_sums_times_inputs() {
        let ends = ends();
        let mut acc = Accumulator::new(&ends, 1);
        let g = [1.0f32, 1.0, 2.0, 2.0];
        let grads = PointGrads {
            scores: &[0.0],
            source: None,
            target: Some(&g),
        };
        acc.add(&ends, &grads, 0.5).unwrap();
        acc.add(&ends, &grads, 0.5).unwrap();
        let (src, tgt) = acc.clone().finish_by_inputs(&ends, false).unwrap();
        assert!(src.is_none());
        let tgt = tgt.unwrap();
        assert_eq!(tgt.shape, vec![1, 2, 2]);
        assert_eq!(tgt.data, g);
        let (_, tgt) = acc.finish_by_inputs(&ends, true).unwrap();
        assert_eq!(tgt.unwrap().data, [1.0, 2.0, 6.0, 8.0]);
    }

    #[test]
    fn missing_and_mismatched_gradients() {
        let ends = ends();
        let mut acc = Accumulator::new(&ends, 1);
        let none = PointGrads {
            scores: &[0.0],
            source: None,
            target: None,
        };
        assert_eq!(
            acc.add(&ends, &none, 1.0).unwrap_err().code,
            ErrorCode::Host
        );
        let short = PointGrads {
            target: Some(&[1.0]),
            ..none
        };
        let e = acc.add(&ends, &short, 1.0).unwrap_err();
        assert_eq!(e.code, ErrorCode::ShapeMismatch);
    }

    #[test]
    fn one_position_and_times_input() {
        let ends = ends();
        let e = ends.target.as_ref().unwrap();
        let mut a = vec![0.0f64; 8];
        let g = [1.0f32; 8];
        add_at_position(&mut a, &g, e, 1, |j| j as f64 + 1.0);
        assert_eq!(a, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 1.0, 2.0]);
        let mut t = Tensor::new(vec![2, 2, 2], vec![1.0; 8]).unwrap();
        times_input(&mut t, &e.x).unwrap();
        assert_eq!(t.data, [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
        let bad = Tensor::zeros(vec![3]);
        assert!(times_input(&mut t, &bad).is_err());
    }
}
