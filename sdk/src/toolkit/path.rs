//! [`PathRun`]: the per-sequence loop of methods that take gradients at many points (path
//! points, samples), from planning the host requests to the finished sequence scores.

use crate::data::{AttributionOutput, AttributionRequest, SequenceInput, SequenceScores};
use crate::error::PluginError;
use crate::host::Host;
use crate::requests::{GradientRule, InputPoint, Wrt};

use super::accumulate::Accumulator;
use super::chunking::{n_chunks, points_per_request};
use super::delta::convergence_deltas;
use super::endpoints::{AttributedSides, Endpoints};
use super::gradients::{point_scores, GradientSweep, PointGrads};
use super::layout::finish_sequence;
use super::progress::Progress;

/// A method that asks for the gradients of every sequence at many points (path points,
/// samples), before it runs: the request, where gradients are taken, the points per host request
/// and the progress over all those requests.
pub struct PathRun<'a, 'h> {
    host: &'a Host<'h>,
    request: &'a AttributionRequest,
    wrt: &'a Wrt,
    sides: AttributedSides,
    rule: GradientRule,
    chunks: Vec<usize>,
    progress: Progress,
}

/// What the input-embedding methods differentiate with respect to.
static INPUT_EMBEDDINGS: Wrt = Wrt::InputEmbeddings;

impl<'a, 'h> PathRun<'a, 'h> {
    /// An input-embedding method's run (the sides of [`AttributedSides::of`]), as
    /// [`PathRun::new`].
    pub fn on_inputs(
        host: &'a Host<'h>,
        request: &'a AttributionRequest,
        internal_batch_size: Option<usize>,
        points: usize,
    ) -> Self {
        let sides = AttributedSides::of(host, request);
        Self::new(
            host,
            request,
            &INPUT_EMBEDDINGS,
            sides,
            internal_batch_size,
            points,
        )
    }

    /// `points` points per sequence, `internal_batch_size` of them per host request when given,
    /// else all of them within [`super::RESPONSE_BUDGET`] (see [`points_per_request`]); standard
    /// gradients.
    pub fn new(
        host: &'a Host<'h>,
        request: &'a AttributionRequest,
        wrt: &'a Wrt,
        sides: AttributedSides,
        internal_batch_size: Option<usize>,
        points: usize,
    ) -> Self {
        let chunks = request
            .sequences
            .iter()
            .map(|seq| points_per_request(internal_batch_size, points, host, seq, sides))
            .collect();
        Self {
            host,
            request,
            wrt,
            sides,
            rule: GradientRule::Standard,
            chunks,
            progress: Progress::new(0),
        }
        .points_per_sequence(|_, _| points)
    }

    /// Sequences have `n_points(seq, sides)` points in all (several requests' worth by default):
    /// sizes the progress total.
    pub fn points_per_sequence(
        mut self,
        n_points: impl Fn(&SequenceInput, AttributedSides) -> usize,
    ) -> Self {
        let seqs = self.request.sequences.iter();
        let total = seqs
            .zip(&self.chunks)
            .map(|(seq, &c)| n_chunks(n_points(seq, self.sides), c))
            .sum();
        self.progress = Progress::new(total);
        self
    }

    /// Gradients under `rule` instead of the standard chain rule.
    pub fn with_rule(mut self, rule: GradientRule) -> Self {
        self.rule = rule;
        self
    }

    /// Loads the endpoints (with baselines) of every sequence and collects what `one` makes of
    /// each.
    pub fn run(
        mut self,
        mut one: impl FnMut(&PathSeq<'_, 'h>, &mut Progress) -> Result<SequenceScores, PluginError>,
    ) -> Result<AttributionOutput, PluginError> {
        let mut out = AttributionOutput::default();
        for (i, seq) in self.request.sequences.iter().enumerate() {
            let s = PathSeq {
                host: self.host,
                request: self.request,
                i,
                seq,
                wrt: self.wrt,
                ends: Endpoints::load(self.host, i, self.wrt, self.sides, true)?,
                rule: self.rule,
                chunk: self.chunks[i],
            };
            out.sequences.push(one(&s, &mut self.progress)?);
        }
        Ok(out)
    }
}

/// One sequence of a [`PathRun`].
pub struct PathSeq<'a, 'h> {
    /// The host.
    pub host: &'a Host<'h>,
    request: &'a AttributionRequest,
    /// Index of the sequence in the request.
    pub i: usize,
    /// The sequence.
    pub seq: &'a SequenceInput,
    /// What the gradients are taken with respect to.
    pub wrt: &'a Wrt,
    /// The attributed sides' actual and baseline values at `wrt`.
    pub ends: Endpoints,
    rule: GradientRule,
    chunk: usize,
}

impl PathSeq<'_, '_> {
    /// Zeroed accumulators for the attributed sides and every step.
    pub fn accum(&self) -> Accumulator {
        Accumulator::new(&self.ends, self.seq.steps.len())
    }

    /// The run's [`GradientSweep`] for this sequence (its rule and points per request).
    pub fn sweep(&self) -> GradientSweep<'_> {
        GradientSweep {
            sequence: self.i,
            steps: &self.seq.steps,
            wrt: self.wrt,
            rule: self.rule,
            chunk: self.chunk,
        }
    }

    /// [`GradientSweep::run`] on this sequence, with the run's rule and chunks.
    pub fn for_each_point(
        &self,
        n_points: usize,
        progress: &mut Progress,
        make_point: impl FnMut(usize) -> Result<InputPoint, PluginError>,
        visit: impl FnMut(usize, PointGrads<'_>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        self.sweep()
            .run(self.host, n_points, progress, make_point, visit)
    }

    /// The baseline *input* point (baseline embeddings on the attributed input sides), from the
    /// endpoints when they are the input embeddings: where convergence deltas start, for layer
    /// methods too (Captum).
    pub fn input_baseline_point(&self) -> Result<InputPoint, PluginError> {
        if *self.wrt == Wrt::InputEmbeddings && self.ends.sides().all(|(_, e)| e.b.is_some()) {
            return self.ends.baseline_point();
        }
        let sides = AttributedSides::of(self.host, self.request);
        let input = Endpoints::load(self.host, self.i, &Wrt::InputEmbeddings, sides, true)?;
        input.baseline_point()
    }

    /// The sequence's scores from the sums `acc` (times `x − x′` when `multiply_by_inputs`), with
    /// the convergence deltas from the baseline input to the input when `deltas`.
    pub fn finish(
        &self,
        acc: Accumulator,
        multiply_by_inputs: bool,
        deltas: bool,
    ) -> Result<SequenceScores, PluginError> {
        let (src, tgt) = acc.finish_by_inputs(&self.ends, multiply_by_inputs)?;
        let deltas = if deltas {
            let points = vec![InputPoint::actual(), self.input_baseline_point()?];
            let f = point_scores(self.host, self.i, self.seq, points)?;
            Some(convergence_deltas(
                src.as_ref(),
                tgt.as_ref(),
                &f[0],
                &f[1],
            )?)
        } else {
            None
        };
        finish_sequence(self.seq, src, tgt, deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ToyHost;
    use crate::toolkit::IntegrationMethod;

    /// Integrated gradients on the toy model, via the toolkit: complete up to quadrature error.
    #[test]
    fn integrated_gradients_are_nearly_complete() {
        let toy = ToyHost::new(&[1, 2, 3, 4, 5], 2);
        let (host, request) = (toy.host(), toy.request());
        let n = 64;
        let q = IntegrationMethod::Gausslegendre.quadrature(n);
        let run = PathRun::on_inputs(&host, request, Some(16), n);
        let out = run
            .run(|s, progress| {
                let mut acc = s.accum();
                let point = |k: usize| s.ends.lerp_point(q.alphas[k] as f32);
                let visit = |k: usize, g: PointGrads<'_>| acc.add(&s.ends, &g, q.weights[k]);
                s.for_each_point(n, progress, point, visit)?;
                s.finish(acc, true, true)
            })
            .unwrap();
        let s = &out.sequences[0];
        assert_eq!(s.target.as_ref().unwrap().shape, vec![5, 3, 4]);
        let d = &s.step_scores[0];
        assert_eq!(d.name, "deltas");
        assert!(
            d.tensor.data.iter().all(|v| v.abs() < 1e-3),
            "{:?}",
            d.tensor.data
        );
    }
}
