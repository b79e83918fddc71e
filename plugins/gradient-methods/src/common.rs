//! What the gradient methods share: sides and endpoints of the attributed inputs, chunked host
//! gradient requests, accumulation, convergence deltas and the output layout; [`PathRun`] drives
//! the methods that take gradients at many points per sequence.

use rinseq_sdk::layout::{mask_future_positions, point, steps_to_token_major};
use rinseq_sdk::prelude::*;

mod path_run;
pub use path_run::PathRun;

/// Gradients of the attributed function at the actual input, for every step of sequence `i`:
/// `(source, target)` as `(steps, len, hidden)` tensors.
pub fn plain_gradients(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
) -> Result<(Option<Tensor>, Option<Tensor>), PluginError> {
    let g = host.gradients(&GradientRequest {
        sequence: i as u32,
        wrt: Wrt::InputEmbeddings,
        points: vec![InputPoint::actual()].into(),
        steps: seq.steps.clone(),
        rule: GradientRule::STANDARD,
    })?;
    let first = |t: Option<Tensor>| t.map(|t| point(&t, 0)).transpose();
    Ok((
        first(g.source.into_option())?,
        first(g.target.into_option())?,
    ))
}

/// `(steps, len, hidden)` -> token-major sequence scores, future target positions NaN.
pub fn to_sequence_scores(
    seq: &SequenceInput,
    source: Option<Tensor>,
    target: Option<Tensor>,
) -> Result<SequenceScores, PluginError> {
    let source = source.map(|t| steps_to_token_major(&t)).transpose()?;
    let target = target
        .map(|t| {
            let mut t = steps_to_token_major(&t)?;
            mask_future_positions(&mut t, &seq.steps);
            Ok::<_, PluginError>(t)
        })
        .transpose()?;
    Ok(SequenceScores {
        source: source.into(),
        target: target.into(),
        ..Default::default()
    })
}

/// Multiplies every `(len, hidden)` slice of a `(steps, len, hidden)` tensor by `x` elementwise.
pub fn times_input(g: &mut Tensor, x: &Tensor) -> Result<(), PluginError> {
    let n = x.data.len();
    if n == 0 || !g.data.len().is_multiple_of(n) {
        return Err(PluginError::new(
            ErrorCode::SHAPE_MISMATCH,
            format!(
                "input {:?} does not match gradients {:?}",
                x.shape.as_slice(),
                g.shape.as_slice()
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

/// The capabilities of the input-embedding methods with baselines: gradients and baselines,
/// granular scores, `vnorm` by default.
pub fn baseline_method_capabilities() -> Capabilities {
    Capabilities::method(
        Flags::USES_GRADIENTS | Flags::USES_BASELINES,
        OutputKind::GRANULAR,
        "vnorm",
    )
}

/// Which input sides a method attributes: the source on encoder-decoder models, the target when
/// `attribute_target` (always, on decoder-only models, where the prompt is on the target side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributedSides {
    /// Attribute the encoder input.
    pub source: bool,
    /// Attribute the decoder input.
    pub target: bool,
}

impl AttributedSides {
    /// The sides an input-embedding method attributes for `request`.
    pub fn of(host: &Host<'_>, request: &AttributionRequest) -> Self {
        let enc_dec = host.info().kind == ModelKind::ENCODER_DECODER;
        Self {
            source: enc_dec,
            target: request.attribute_target || !enc_dec,
        }
    }

    /// Both sides (layer taps: the host says where the module is by returning a non-empty side).
    pub fn both() -> Self {
        Self {
            source: true,
            target: true,
        }
    }
}

/// One attributed side of a sequence: its actual values and (when used) its baseline, both
/// `(len, hidden)`.
#[derive(Debug, Clone)]
pub struct SideEnds {
    /// The actual input (or layer activation).
    pub x: Tensor,
    /// The baseline input (or layer activation at the baseline input).
    pub b: Option<Tensor>,
}

impl SideEnds {
    /// Number of positions.
    pub fn len(&self) -> usize {
        self.x.shape[0]
    }

    /// Width of one position.
    pub fn hidden(&self) -> usize {
        self.x.shape.get(1).copied().unwrap_or(1)
    }

    /// The baseline, which methods with baselines always load.
    pub fn baseline(&self) -> Result<&Tensor, PluginError> {
        self.b
            .as_ref()
            .ok_or_else(|| PluginError::plugin("baselines were not loaded"))
    }

    /// `x − x′`, flat.
    pub fn diff(&self) -> Result<Vec<f32>, PluginError> {
        let b = self.baseline()?;
        Ok(self
            .x
            .data
            .iter()
            .zip(b.data.iter())
            .map(|(x, b)| x - b)
            .collect())
    }

    /// `x′ + α (x − x′)` as a `(len, hidden)` tensor.
    pub fn lerp(&self, alpha: f32) -> Result<Tensor, PluginError> {
        let b = self.baseline()?;
        let data = self
            .x
            .data
            .iter()
            .zip(b.data.iter())
            .map(|(x, b)| b + alpha * (x - b))
            .collect();
        Tensor::new(self.x.shape.to_vec(), data)
    }
}

/// The attributed sides of one sequence with their actual and baseline values.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Source side, when attributed (and non-empty).
    pub source: Option<SideEnds>,
    /// Target side, when attributed (and non-empty).
    pub target: Option<SideEnds>,
}

impl Endpoints {
    /// Loads the actual values (and the baselines when `with_baselines`) of sequence `i` at
    /// `wrt`, keeping the attributed, non-empty sides.
    pub fn load(
        host: &Host<'_>,
        i: usize,
        wrt: &Wrt,
        sides: AttributedSides,
        with_baselines: bool,
    ) -> Result<Self, PluginError> {
        let x = host.inputs(i as u32, wrt)?;
        let b = if with_baselines {
            Some(host.baselines(i as u32, wrt)?)
        } else {
            None
        };
        let keep = |on: bool, x: Tensor, b: Option<Tensor>, side: &str| {
            if !on || x.shape.first().copied().unwrap_or(0) == 0 {
                return Ok(None);
            }
            if let Some(b) = &b {
                if b.shape != x.shape {
                    return Err(PluginError::new(
                        ErrorCode::SHAPE_MISMATCH,
                        format!(
                            "{side} baseline {:?} does not match the input {:?}",
                            b.shape.as_slice(),
                            x.shape.as_slice()
                        ),
                    ));
                }
            }
            Ok(Some(SideEnds { x, b }))
        };
        let (bs, bt) = match b {
            Some(p) => (Some(p.source), Some(p.target)),
            None => (None, None),
        };
        let source = keep(sides.source, x.source, bs, "source")?;
        let target = keep(sides.target, x.target, bt, "target")?;
        if source.is_none() && target.is_none() {
            return Err(PluginError::new(
                ErrorCode::HOST,
                format!("the host returned no attributable input for {wrt:?}"),
            ));
        }
        Ok(Self { source, target })
    }

    /// The sides, source first, tagged with their [`Side`].
    pub fn sides(&self) -> impl Iterator<Item = (Side, &SideEnds)> {
        [(Side::SOURCE, &self.source), (Side::TARGET, &self.target)]
            .into_iter()
            .filter_map(|(s, e)| e.as_ref().map(|e| (s, e)))
    }

    /// The side `side`, if attributed.
    pub fn side(&self, side: Side) -> Option<&SideEnds> {
        if side == Side::SOURCE {
            self.source.as_ref()
        } else {
            self.target.as_ref()
        }
    }

    /// A point whose attributed sides are `f(side, ends)` and whose other sides are actual.
    pub fn point(
        &self,
        mut f: impl FnMut(Side, &SideEnds) -> Result<Tensor, PluginError>,
    ) -> Result<InputPoint, PluginError> {
        let mut value = |side: Side| -> Result<PointSide, PluginError> {
            Ok(match self.side(side) {
                Some(e) => PointSide::Values(f(side, e)?),
                None => PointSide::Actual,
            })
        };
        Ok(InputPoint {
            source: value(Side::SOURCE)?,
            target: value(Side::TARGET)?,
        })
    }

    /// The baseline point: baselines on the attributed sides, actual inputs elsewhere.
    pub fn baseline_point(&self) -> Result<InputPoint, PluginError> {
        self.point(|_, e| e.baseline().cloned())
    }
}

/// Per-side accumulators of `(steps, len, hidden)` gradient sums, in `f64`.
#[derive(Debug, Clone, Default)]
pub struct Accum {
    /// Source side.
    pub source: Option<Vec<f64>>,
    /// Target side.
    pub target: Option<Vec<f64>>,
    n_steps: usize,
}

impl Accum {
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
        if side == Side::SOURCE {
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
            .expect("accumulator per attributed side");
        if a.len() != g.len() {
            return Err(PluginError::new(
                ErrorCode::SHAPE_MISMATCH,
                format!("host gradients of {} values, expected {}", g.len(), a.len()),
            ));
        }
        Ok((a, g))
    }

    /// [`Accum::finish`] with the path methods' `multiply_by_inputs`: times `x − x′` when set.
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

    /// Turns the sums into `(steps, len, hidden)` tensors, multiplying each `(len, hidden)` slice
    /// elementwise by `factor(side)` when given.
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

/// Progress over all the host requests of one `attribute` call.
pub struct Progress {
    done: u64,
    total: u64,
}

impl Progress {
    /// A counter expecting `total` chunks.
    pub fn new(total: u64) -> Self {
        Self {
            done: 0,
            total: total.max(1),
        }
    }

    /// One chunk done: tells the host (which may cancel).
    pub fn tick(&mut self, host: &Host<'_>) -> Result<(), PluginError> {
        self.done += 1;
        self.total = self.total.max(self.done);
        host.progress(self.done, self.total)
    }
}

/// Gradients of one point, `(steps, len, hidden)` slices per side and its scores `(steps,)`.
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
        if side == Side::SOURCE {
            self.source
        } else {
            self.target
        }
    }
}

/// Number of host requests needed for `n_points` points in chunks of `chunk`.
pub fn n_chunks(n_points: usize, chunk: usize) -> u64 {
    n_points.div_ceil(chunk.max(1)) as u64
}

/// Asks the host for the gradients of sequence `i` at `n_points` points (built on demand by
/// `make_point`), `chunk` points per request, and hands each point's gradients to `visit`.
#[allow(clippy::too_many_arguments)]
pub fn for_each_point(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
    wrt: &Wrt,
    rule: GradientRule,
    n_points: usize,
    chunk: usize,
    progress: &mut Progress,
    mut make_point: impl FnMut(usize) -> Result<InputPoint, PluginError>,
    mut visit: impl FnMut(usize, PointGrads<'_>) -> Result<(), PluginError>,
) -> Result<(), PluginError> {
    let chunk = chunk.max(1);
    let ns = seq.steps.len();
    let mut start = 0;
    while start < n_points {
        let end = (start + chunk).min(n_points);
        let points = (start..end)
            .map(&mut make_point)
            .collect::<Result<Vec<_>, _>>()?;
        let np = points.len();
        let g = host.gradients(&GradientRequest {
            sequence: i as u32,
            wrt: wrt.clone(),
            points: points.into(),
            steps: seq.steps.clone(),
            rule,
        })?;
        let check = |t: &Tensor, what: &str| {
            if t.shape.first() != Some(&np) || t.shape.get(1) != Some(&ns) {
                return Err(PluginError::new(
                    ErrorCode::SHAPE_MISMATCH,
                    format!(
                        "host {what} {:?} do not match {np} points x {ns} steps",
                        t.shape.as_slice()
                    ),
                ));
            }
            Ok(t.data.len() / np)
        };
        check(&g.scores, "scores")?;
        let src = g
            .source
            .as_ref()
            .into_option()
            .map(|t| check(t, "source gradients").map(|n| (t, n)));
        let tgt = g
            .target
            .as_ref()
            .into_option()
            .map(|t| check(t, "target gradients").map(|n| (t, n)));
        let src = src.transpose()?;
        let tgt = tgt.transpose()?;
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

/// Adds `weight ·` the gradients of `grads` to the accumulators of every attributed side.
pub fn accumulate(
    acc: &mut Accum,
    ends: &Endpoints,
    grads: &PointGrads<'_>,
    weight: f64,
) -> Result<(), PluginError> {
    for (side, _) in ends.sides() {
        let (a, g) = acc.with_grads(side, grads)?;
        a.iter_mut()
            .zip(g)
            .for_each(|(a, g)| *a += weight * *g as f64);
    }
    Ok(())
}

/// Adds `g · weight(j)` (`j` the hidden index) to position `pos` of every step of the
/// `(steps, len, hidden)` sums `a` of side `e`, the gradients `g` laid out alike: the methods
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

/// The error for gradients the host did not return for an attributed side.
pub fn missing_side(side: Side) -> PluginError {
    let name = if side == Side::SOURCE {
        "source"
    } else {
        "target"
    };
    PluginError::new(
        ErrorCode::HOST,
        format!("the host returned no {name} gradients for an attributed {name} side"),
    )
}

/// Attributed-function scores `(steps,)` of sequence `i` at each of `points` (forward only).
pub fn point_scores(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
    points: Vec<InputPoint>,
) -> Result<Vec<Vec<f32>>, PluginError> {
    let np = points.len();
    let ns = seq.steps.len();
    let t = host.scores(&ScoreRequest {
        sequence: i as u32,
        points: points.into(),
        steps: seq.steps.clone(),
    })?;
    if t.data.len() != np * ns {
        return Err(PluginError::new(
            ErrorCode::SHAPE_MISMATCH,
            format!(
                "host scores {:?} do not match {np} points x {ns} steps",
                t.shape.as_slice()
            ),
        ));
    }
    Ok(t.data.chunks(ns.max(1)).map(|c| c.to_vec()).collect())
}

/// Captum's convergence delta per step: `Σ attributions − (f(end) − f(start))`, where the
/// attributions are `(steps, len, hidden)` per side.
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

/// Sequence scores from `(steps, len, hidden)` attributions, with the `deltas` step score when
/// given.
pub fn finish_sequence(
    seq: &SequenceInput,
    source: Option<Tensor>,
    target: Option<Tensor>,
    deltas: Option<Tensor>,
) -> Result<SequenceScores, PluginError> {
    let mut out = to_sequence_scores(seq, source, target)?;
    if let Some(d) = deltas {
        out.step_scores.push(NamedTensor::new("deltas", d));
    }
    Ok(out)
}

/// Checks `internal_batch_size` (≥ 1 when given).
pub fn check_batch_size(b: Option<usize>) -> Result<(), PluginError> {
    if b == Some(0) {
        return Err(PluginError::invalid_params(
            "internal_batch_size must be at least 1, got 0",
        ));
    }
    Ok(())
}

/// Where a layer method attributes (its `target_layer` and `attribute_to_layer_input`
/// parameters).
#[derive(Debug, Clone, Default)]
pub struct LayerTarget {
    /// HF module path of the attributed layer (e.g. `model.layers.15.mlp`); unset = the input
    /// embeddings (Inseq's default, the embedding layer).
    pub target_layer: Option<String>,
    /// Attribute the layer's input instead of its output (Captum `attribute_to_layer_input`).
    pub attribute_to_layer_input: bool,
}

impl LayerTarget {
    /// Checks the layer against the request and the model and returns what to differentiate
    /// with respect to, and the sides that can be attributed there.
    pub fn resolve(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<(Wrt, AttributedSides), PluginError> {
        let info = host.info();
        if info.kind == ModelKind::ENCODER_DECODER && request.attribute_target {
            return Err(PluginError::unsupported(
                "layer attribution methods do not support attribute_target=True on encoder-decoder models; use the non-layer method instead",
            ));
        }
        let Some(name) = &self.target_layer else {
            if self.attribute_to_layer_input {
                return Err(PluginError::invalid_params(
                    "attribute_to_layer_input needs a target_layer (the default layer is the input embeddings)",
                ));
            }
            return Ok((Wrt::InputEmbeddings, AttributedSides::of(host, request)));
        };
        if !info.tap_names.is_empty() && !info.tap_names.iter().any(|t| t.as_str() == name) {
            let some: Vec<&str> = info.tap_names.iter().take(8).map(|t| t.as_str()).collect();
            return Err(PluginError::invalid_params(format!(
                "unknown target_layer '{name}' for model '{}' (taps include: {})",
                info.name,
                some.join(", ")
            )));
        }
        Ok((
            Wrt::Layer {
                name: name.as_str().into(),
                input: self.attribute_to_layer_input,
            },
            AttributedSides::both(),
        ))
    }
}

/// Most gradient values one host response should hold when the user gives no
/// `internal_batch_size` (2²⁶ `f32`s = 256 MiB): a response carries every step of the sequence
/// for every point, so long sequences get their points split over several requests.
pub const RESPONSE_BUDGET: usize = 1 << 26;

/// Points per host request: `internal_batch_size` when given, else `natural` (e.g. all the
/// quadrature points) capped so that a response stays within [`RESPONSE_BUDGET`].
pub fn points_per_request(
    explicit: Option<usize>,
    natural: usize,
    host: &Host<'_>,
    seq: &SequenceInput,
    sides: AttributedSides,
) -> usize {
    if let Some(b) = explicit {
        return b.max(1);
    }
    let len =
        usize::from(sides.source) * seq.source.len() + usize::from(sides.target) * seq.target.len();
    let per_point = seq.steps.len().max(1) * len.max(1) * host.info().hidden_size.max(1);
    natural.min(RESPONSE_BUDGET / per_point).max(1)
}
