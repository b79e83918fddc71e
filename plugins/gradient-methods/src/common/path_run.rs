//! [`PathRun`]: the per-sequence loop of the methods that take gradients at many points (path
//! points, samples), from planning the host requests to the finished sequence scores.

use rinseq_sdk::prelude::*;

use super::{
    convergence_deltas, finish_sequence, for_each_point, n_chunks, point_scores,
    points_per_request, Accum, AttributedSides, Endpoints, PointGrads, Progress,
};

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
    /// An input-embedding method's run (the sides of [`AttributedSides::of`]), as [`PathRun::new`].
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
            rule: GradientRule::STANDARD,
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
    pub fn accum(&self) -> Accum {
        Accum::new(&self.ends, self.seq.steps.len())
    }

    /// [`for_each_point`] on this sequence, with the run's rule and chunks.
    pub fn for_each_point(
        &self,
        n_points: usize,
        progress: &mut Progress,
        make_point: impl FnMut(usize) -> Result<InputPoint, PluginError>,
        visit: impl FnMut(usize, PointGrads<'_>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let (host, i, seq, wrt) = (self.host, self.i, self.seq, self.wrt);
        let (rule, chunk) = (self.rule, self.chunk);
        for_each_point(
            host, i, seq, wrt, rule, n_points, chunk, progress, make_point, visit,
        )
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
        acc: Accum,
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
