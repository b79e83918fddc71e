//! `discretized_integrated_gradients` (DIG, Sanyal & Ren 2021; Inseq's
//! `ops/discretized_integrated_gradients.py` and `ops/monotonic_path_builder.py`): integrated
//! gradients along a path from the baseline to the input that goes through (monotonized)
//! embeddings of actual vocabulary words instead of a straight line.
//!
//! For every attributed token `w` with baseline `b`, the word path `w = w₀, w₁, …, w_{n−2}` is
//! built greedily: `w_{j+1}` is the best of `w_j`'s `n_neighbors` nearest vocabulary embeddings
//! (Euclidean) that is neither `b` nor already on the path, scored by the `method` strategy
//! (`greedy`: distance of the anchor to its monotonized self; `maxcount`: most dimensions already
//! monotonic between the word and the baseline; the first such neighbour wins ties); with no
//! candidate left, or once `b` is reached, the path continues with `b`. Special tokens (see
//! [`DigParams::special_token_ids`]) keep their own embedding all along. Each anchor is then
//! monotonized against the previous path point, and the `n_steps` points are
//! `x₀ = b, …, x_{n−1} = w`, every position of every attributed side moving at once. The
//! attribution is `Σ_{k<n−1} ∂f(x_k)/∂x ⊙ (x_{k+1} − x_k)` (multiplied by `x − x′` with
//! `multiply_by_inputs`, which Inseq allows but does not use by default).
//!
//! Inseq computes sklearn's `kneighbors_graph` over the whole vocabulary (`V²` distances, minutes
//! for a 50k vocabulary). Here the neighbours of a word are computed only when the path search
//! visits it (one `O(V·H)` scan, cached for the call); they are the graph's neighbours, in the
//! graph's order (see [`nearest_neighbors`]).
//!
//! Differences from Inseq 0.7.1, all deliberate: the convergence delta is Captum's
//! `Σ attributions − (f(x) − f(x′))` (Inseq passes the endpoints swapped and reports
//! `Σ attributions − (f(x′) − f(x))`); `n_neighbors` is honoured (Inseq's `load_model` drops it
//! and always uses 50); `internal_batch_size` works (it raises in Inseq); each side uses its own
//! embedding table as the host embeds it (Inseq uses the encoder's unscaled table when a model
//! scales embeddings inside its embedding module, e.g. mBART).

mod knn;
mod paths;

use std::collections::{HashMap, HashSet};

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use paths::PathBuilder;

use rinseq_sdk::toolkit::{
    add_at_position, baseline_ids, check_batch_size, visible_positions, PathRun, PointGrads,
};

/// How the next word of a path is chosen among the current word's neighbours (Inseq's
/// `PathBuildingStrategies`).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PathStrategy {
    /// The neighbour closest to its own monotonized version.
    #[default]
    Greedy,
    /// The neighbour with the most dimensions monotonic between the word and the baseline.
    Maxcount,
}

/// sklearn `kneighbors_graph` mode. Both give the same neighbours, hence the same paths; it is
/// accepted for compatibility with Inseq's parameters.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KnnMode {
    /// Edges weighted by distance (Inseq's default).
    #[default]
    Distance,
    /// Unweighted edges.
    Connectivity,
}

/// Parameters of `discretized_integrated_gradients`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct DigParams {
    /// Number of points on each path, baseline and input included (at least 2).
    pub n_steps: usize,
    /// Path-building strategy: `greedy` or `maxcount`.
    pub method: PathStrategy,
    /// Path points per host request; unset = all `n_steps − 1` points at once unless the
    /// returned gradients would exceed 256 MiB.
    pub internal_batch_size: Option<usize>,
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)) per step.
    pub return_convergence_delta: bool,
    /// Neighbours per vocabulary word searched at each path step (at most `V − 1` are used).
    pub n_neighbors: usize,
    /// kNN graph mode (no effect on the paths).
    pub mode: KnnMode,
    /// Multiply the path sums by `x − x′` (Inseq's DIG default is `false`).
    pub multiply_by_inputs: bool,
    /// Token ids that keep their own embedding along the path (Inseq: the tokenizer's
    /// `all_special_ids`). Unset = ask the host (`special_token_ids` extension), else every
    /// attributed token whose text looks like a control token (`<s>`, `</s>`, `<|endoftext|>`…).
    pub special_token_ids: Option<Vec<u32>>,
}

impl Default for DigParams {
    fn default() -> Self {
        Self {
            n_steps: 50,
            method: PathStrategy::Greedy,
            internal_batch_size: None,
            return_convergence_delta: false,
            n_neighbors: 50,
            mode: KnnMode::Distance,
            multiply_by_inputs: false,
            special_token_ids: None,
        }
    }
}

/// Discretized integrated gradients along monotonic paths through vocabulary embeddings.
pub struct DiscretizedIntegratedGradients(DigParams);

impl PluginInfo for DiscretizedIntegratedGradients {
    const NAME: &'static str = "discretized_integrated_gradients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Integrated gradients along monotonic paths through vocabulary embeddings (DIG).";
    type Params = DigParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

/// The path points of one attributed side of a sequence: `(n, hidden)` per position, `None`
/// where the position keeps its actual value (target positions no step sees).
type SidePaths = Vec<Option<Vec<f32>>>;

impl DiscretizedIntegratedGradients {
    /// Special token ids: the parameter, else the tokenizers' special ids the host reports.
    fn special_tokens(&self, host: &Host<'_>) -> HashSet<u32> {
        match &self.0.special_token_ids {
            Some(ids) => ids.iter().copied().collect(),
            None => host.info().special_token_ids.into_iter().collect(),
        }
    }
}

/// Lazily loaded path builders (one per side) and the paths found so far in this call.
struct Paths<'p> {
    p: &'p DigParams,
    specials: HashSet<u32>,
    builders: [Option<PathBuilder>; 2],
    cache: HashMap<(u8, u32, u32), Vec<f32>>,
}

impl Paths<'_> {
    fn builder(&mut self, host: &Host<'_>, side: Side) -> Result<&mut PathBuilder, PluginError> {
        let slot = &mut self.builders[side as usize];
        if slot.is_none() {
            let info = host.info();
            let ids: Vec<u32> = (0..info.vocab_size as u32).collect();
            let t = host.embed(side, &ids)?;
            let hidden = t.shape.get(1).copied().unwrap_or(0);
            if t.shape.first() != Some(&ids.len()) || hidden == 0 {
                return Err(PluginError::new(
                    ErrorCode::ShapeMismatch,
                    format!(
                        "host vocabulary embeddings {:?}, expected ({}, hidden)",
                        &t.shape[..],
                        ids.len()
                    ),
                ));
            }
            *slot = Some(PathBuilder::new(
                t.data.to_vec(),
                hidden,
                self.p.n_neighbors,
            ));
        }
        Ok(slot.as_mut().expect("builder just loaded"))
    }

    /// The path points of `(word, baseline)` on `side`.
    fn points(
        &mut self,
        host: &Host<'_>,
        side: Side,
        word: u32,
        baseline: u32,
    ) -> Result<Vec<f32>, PluginError> {
        if let Some(p) = self.cache.get(&(side as u8, word, baseline)) {
            return Ok(p.clone());
        }
        let (n, strategy) = (self.p.n_steps, self.p.method);
        let special = self.specials.contains(&word);
        let b = self.builder(host, side)?;
        let v = b.vocab_size();
        if word as usize >= v || baseline as usize >= v {
            return Err(PluginError::invalid_params(format!(
                "token id {word} or baseline id {baseline} is outside the vocabulary ({v} ids)"
            )));
        }
        let words = b.word_path(word, baseline, n, strategy, special);
        let points = b.path_points(&words, baseline, n);
        self.cache
            .insert((side as u8, word, baseline), points.clone());
        Ok(points)
    }

    /// Paths of every position of `side` of `seq` that some step sees.
    fn side_paths(
        &mut self,
        host: &Host<'_>,
        seq: &SequenceInput,
        side: Side,
    ) -> Result<SidePaths, PluginError> {
        let tokens = if side == Side::Source {
            &seq.source
        } else {
            &seq.target
        };
        let (baselines, visible) = (baseline_ids(seq, side), visible_positions(seq, side));
        if baselines.len() != tokens.len() {
            return Err(PluginError::new(
                ErrorCode::ShapeMismatch,
                format!(
                    "{} baseline ids for {} tokens",
                    baselines.len(),
                    tokens.len()
                ),
            ));
        }
        tokens
            .iter()
            .zip(baselines.iter())
            .enumerate()
            .map(|(pos, (t, &b))| {
                if !visible.contains(&pos) {
                    return Ok(None);
                }
                let id = t.id.ok_or_else(|| {
                    PluginError::invalid_params(format!(
                        "token '{}' has no vocabulary id: DIG needs one",
                        t.text
                    ))
                })?;
                self.points(host, side, id, b).map(Some)
            })
            .collect()
    }
}

impl AttributionPlugin for DiscretizedIntegratedGradients {
    fn new(p: DigParams) -> Result<Self, PluginError> {
        if p.n_steps < 2 {
            return Err(PluginError::invalid_params(format!(
                "n_steps must be at least 2, got {}",
                p.n_steps
            )));
        }
        if p.n_neighbors == 0 {
            return Err(PluginError::invalid_params(
                "n_neighbors must be at least 1",
            ));
        }
        check_batch_size(p.internal_batch_size)?;
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        // The gradient at the input itself is multiplied by a zero step: not requested.
        let n_points = p.n_steps - 1;
        let run = PathRun::on_inputs(host, request, p.internal_batch_size, n_points);
        let mut paths = Paths {
            p,
            specials: self.special_tokens(host),
            builders: [None, None],
            cache: HashMap::new(),
        };
        run.run(|s, progress| {
            let ends = &s.ends;
            let mut side_paths: [SidePaths; 2] = [Vec::new(), Vec::new()];
            for (side, e) in ends.sides() {
                let sp = paths.side_paths(host, s.seq, side)?;
                if sp.len() != e.len() {
                    return Err(PluginError::new(
                        ErrorCode::ShapeMismatch,
                        format!("{} tokens but {} input embeddings", sp.len(), e.len()),
                    ));
                }
                side_paths[side as usize] = sp;
            }
            let mut acc = s.accum();
            let make_point = |k: usize| {
                ends.point(|side, e| {
                    let h = e.hidden();
                    let mut t = e.x.clone();
                    for (pos, path) in side_paths[side as usize].iter().enumerate() {
                        if let Some(path) = path {
                            t.data[pos * h..(pos + 1) * h]
                                .copy_from_slice(&path[k * h..(k + 1) * h]);
                        }
                    }
                    Ok(t)
                })
            };
            let visit = |k: usize, g: PointGrads<'_>| {
                for (side, e) in ends.sides() {
                    let (a, gs) = acc.with_grads(side, &g)?;
                    let h = e.hidden();
                    for (pos, path) in side_paths[side as usize].iter().enumerate() {
                        let Some(path) = path else { continue };
                        // x_{k+1} − x_k, in f32 as Inseq computes it.
                        let step: Vec<f32> = (0..h)
                            .map(|j| path[(k + 1) * h + j] - path[k * h + j])
                            .collect();
                        add_at_position(a, gs, e, pos, |j| step[j] as f64);
                    }
                }
                Ok(())
            };
            s.for_each_point(n_points, progress, make_point, visit)?;
            s.finish(acc, p.multiply_by_inputs, p.return_convergence_delta)
        })
    }
}
