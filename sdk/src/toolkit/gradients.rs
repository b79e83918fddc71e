//! Asking the host for gradients and scores: at the actual input ([`plain_gradients`]), at many
//! points in chunks ([`GradientSweep`]), or scores only ([`point_scores`]).

use crate::data::{SequenceInput, Side};
use crate::error::{ErrorCode, PluginError};
use crate::host::Host;
use crate::requests::{GradientRequest, GradientRule, InputPoint, ScoreRequest, Wrt};
use crate::tensor::Tensor;

use super::layout::point;
use super::progress::Progress;

/// Gradients of the attributed function at the actual input, for every step of sequence `i`:
/// `(source, target)` as `(steps, len, hidden)` tensors (a side is `None` when not attributed).
pub fn plain_gradients(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
) -> Result<(Option<Tensor>, Option<Tensor>), PluginError> {
    let g = host.gradients(GradientRequest {
        sequence: i,
        wrt: Wrt::InputEmbeddings,
        points: vec![InputPoint::actual()],
        steps: seq.steps.clone(),
        rule: GradientRule::Standard,
    })?;
    let first = |t: Option<Tensor>| t.map(|t| point(&t, 0)).transpose();
    Ok((first(g.source)?, first(g.target)?))
}

/// Gradients of one point: its scores `(steps,)` and `(steps, len, hidden)` slices per side.
#[derive(Debug, Clone, Copy)]
pub struct PointGrads<'a> {
    /// Attributed-function scores at this point, per step.
    pub scores: &'a [f32],
    /// Source-side gradients, when returned.
    pub source: Option<&'a [f32]>,
    /// Target-side gradients, when returned.
    pub target: Option<&'a [f32]>,
}

impl<'a> PointGrads<'a> {
    /// The gradients of `side`.
    pub fn side(&self, side: Side) -> Option<&'a [f32]> {
        if side == Side::Source {
            self.source
        } else {
            self.target
        }
    }
}

/// The gradients of one sequence at many points, `chunk` points per host request: what path
/// methods (integrated gradients, SHAP samples...) send the host.
#[derive(Debug, Clone, Copy)]
pub struct GradientSweep<'a> {
    /// Index of the sequence in the request.
    pub sequence: usize,
    /// The steps (target positions) every request covers.
    pub steps: &'a [u32],
    /// What the gradients are taken with respect to.
    pub wrt: &'a Wrt,
    /// How non-linearities are differentiated.
    pub rule: GradientRule,
    /// Points per host request (see [`super::points_per_request`]).
    pub chunk: usize,
}

impl GradientSweep<'_> {
    /// Asks the host for the gradients at `n_points` points (built on demand by `make_point`),
    /// [`GradientSweep::chunk`] points per request, hands each point's gradients to `visit` in
    /// order and ticks `progress` once per request.
    pub fn run(
        &self,
        host: &Host<'_>,
        n_points: usize,
        progress: &mut Progress,
        mut make_point: impl FnMut(usize) -> Result<InputPoint, PluginError>,
        mut visit: impl FnMut(usize, PointGrads<'_>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let chunk = self.chunk.max(1);
        let ns = self.steps.len();
        let mut start = 0;
        while start < n_points {
            let end = (start + chunk).min(n_points);
            let points = (start..end)
                .map(&mut make_point)
                .collect::<Result<Vec<_>, _>>()?;
            let np = points.len();
            let g = host.gradients(GradientRequest {
                sequence: self.sequence,
                wrt: self.wrt.clone(),
                points,
                steps: self.steps.to_vec(),
                rule: self.rule,
            })?;
            let check = |t: &Tensor, what: &str| {
                if t.shape.first() != Some(&np) || t.shape.get(1) != Some(&ns) {
                    return Err(PluginError::new(
                        ErrorCode::ShapeMismatch,
                        format!(
                            "host {what} {:?} do not match {np} points x {ns} steps",
                            &t.shape[..]
                        ),
                    ));
                }
                Ok(t.data.len() / np)
            };
            check(&g.scores, "scores")?;
            let src = g
                .source
                .as_ref()
                .map(|t| check(t, "source gradients").map(|n| (t, n)))
                .transpose()?;
            let tgt = g
                .target
                .as_ref()
                .map(|t| check(t, "target gradients").map(|n| (t, n)))
                .transpose()?;
            for p in 0..np {
                fn slice(s: Option<(&Tensor, usize)>, p: usize) -> Option<&[f32]> {
                    s.map(|(t, n)| &t.data[p * n..(p + 1) * n])
                }
                visit(
                    start + p,
                    PointGrads {
                        scores: &g.scores.data[p * ns..(p + 1) * ns],
                        source: slice(src, p),
                        target: slice(tgt, p),
                    },
                )?;
            }
            progress.tick(host)?;
            start = end;
        }
        Ok(())
    }
}

/// The error for gradients the host did not return for an attributed side.
pub fn missing_side(side: Side) -> PluginError {
    let name = if side == Side::Source {
        "source"
    } else {
        "target"
    };
    PluginError::new(
        ErrorCode::Host,
        format!("the host returned no {name} gradients for an attributed {name} side"),
    )
}

/// Attributed-function scores `(steps,)` of sequence `i` at each of `points` (forward only, one
/// host request).
pub fn point_scores(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
    points: Vec<InputPoint>,
) -> Result<Vec<Vec<f32>>, PluginError> {
    let np = points.len();
    let ns = seq.steps.len();
    let t = host.scores(ScoreRequest {
        sequence: i,
        points,
        steps: seq.steps.clone(),
        ..Default::default()
    })?;
    if t.data.len() != np * ns {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "host scores {:?} do not match {np} points x {ns} steps",
                &t.shape[..]
            ),
        ));
    }
    Ok(t.data.chunks(ns.max(1)).map(|c| c.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ToyHost, TOY_HIDDEN};

    #[test]
    fn sweep_chunks_points_and_matches_single_requests() {
        let toy = ToyHost::new(&[1, 2, 3, 4], 2);
        let host = toy.host();
        let seq = &toy.request().sequences[0];
        let (_, single) = plain_gradients(&host, 0, seq).unwrap();
        let single = single.unwrap();
        assert_eq!(single.shape, vec![2, 4, TOY_HIDDEN]);
        let sweep = GradientSweep {
            sequence: 0,
            steps: &seq.steps,
            wrt: &Wrt::InputEmbeddings,
            rule: GradientRule::Standard,
            chunk: 2,
        };
        let mut progress = Progress::new(2);
        let mut seen = Vec::new();
        sweep
            .run(
                &host,
                3,
                &mut progress,
                |_| Ok(InputPoint::actual()),
                |k, g| {
                    assert!(g.source.is_none() && g.side(Side::Source).is_none());
                    assert_eq!(g.target.unwrap(), &single.data[..]);
                    assert_eq!(g.scores.len(), 2);
                    seen.push(k);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(progress.done(), 2);
    }

    #[test]
    fn scores_per_point() {
        let toy = ToyHost::new(&[1, 2, 3, 4], 2);
        let host = toy.host();
        let seq = &toy.request().sequences[0];
        let pts = vec![
            InputPoint::actual(),
            InputPoint::with_ids(Side::Target, vec![0; 4]),
        ];
        let f = point_scores(&host, 0, seq, pts).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].len(), 2);
        assert_ne!(f[0], f[1]);
        assert_eq!(missing_side(Side::Source).code, ErrorCode::Host);
    }
}
