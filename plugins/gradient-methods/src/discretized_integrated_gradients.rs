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

use std::collections::{HashMap, HashSet};

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{
    add_at_position, baseline_method_capabilities, check_batch_size, PathRun, PointGrads,
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
        baseline_method_capabilities()
    }
}

/// `1/n` as torch applies a Python float to a `float32` tensor (in `f32`).
fn step_scale(n_steps: usize) -> f32 {
    (1.0 / n_steps as f64) as f32
}

/// Whether `anchor` lies between `input` and `baseline` in one dimension (Inseq's
/// `get_monotonic_dims`).
fn is_monotonic(anchor: f32, baseline: f32, input: f32) -> bool {
    (baseline > input && baseline >= anchor && anchor >= input)
        || (baseline < input && baseline <= anchor && anchor <= input)
        || (baseline == input && baseline == anchor && anchor == input)
}

/// Inseq's `make_monotonic_vec`: `anchor`, with each non-monotonic dimension replaced by
/// `input − (input − baseline)/n` (computed in `f32` as torch does).
pub(crate) fn make_monotonic(
    anchor: &[f32],
    baseline: &[f32],
    input: &[f32],
    n: usize,
) -> Vec<f32> {
    let s = step_scale(n);
    anchor
        .iter()
        .zip(baseline)
        .zip(input)
        .map(|((&a, &b), &x)| {
            if is_monotonic(a, b, x) {
                a
            } else {
                x - s * (x - b)
            }
        })
        .collect()
}

/// Squared Euclidean distance in `f64` (exact for `f32` inputs up to the final rounding, so that
/// the neighbour order matches sklearn's `float64` computation).
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// Squared distances from `x` to every row of `table` (`(V, hidden)`), on several threads for
/// large vocabularies.
fn distances_to(table: &[f32], hidden: usize, x: &[f32]) -> Vec<f64> {
    let rows = table.len() / hidden;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || table.len() < (1 << 20) {
        return table
            .chunks_exact(hidden)
            .map(|r| squared_distance(x, r))
            .collect();
    }
    let per = rows.div_ceil(threads) * hidden;
    std::thread::scope(|s| {
        let parts: Vec<_> = table
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.chunks_exact(hidden)
                        .map(|r| squared_distance(x, r))
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("distance worker panicked"))
            .collect()
    })
}

/// The `k` nearest rows to row `w` of `table` (`(V, hidden)`), nearest first, as sklearn's
/// `kneighbors_graph(table, k, include_self=False)` lists them in row `w`: the `k + 1` nearest
/// rows (ties by index), minus `w` itself, or minus the nearest one when exact duplicates of `w`
/// crowd `w` out of them. At most `V − 1` neighbours. (sklearn orders exact distance ties by its
/// heap, not by index; only duplicate embeddings tie exactly.)
pub(crate) fn nearest_neighbors(table: &[f32], hidden: usize, w: usize, k: usize) -> Vec<u32> {
    let rows = table.len() / hidden;
    let x = &table[w * hidden..(w + 1) * hidden];
    let mut d: Vec<(f64, u32)> = distances_to(table, hidden, x)
        .into_iter()
        .enumerate()
        .map(|(j, d)| (d, j as u32))
        .collect();
    let cmp = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let take = (k + 1).min(rows);
    if take < rows {
        d.select_nth_unstable_by(take - 1, cmp);
        d.truncate(take);
    }
    d.sort_unstable_by(cmp);
    let mut ids: Vec<u32> = d.into_iter().map(|(_, j)| j).collect();
    match ids.iter().position(|&j| j as usize == w) {
        Some(p) => {
            ids.remove(p);
        }
        None if !ids.is_empty() => {
            ids.remove(0);
        }
        None => {}
    }
    ids.truncate(k);
    ids
}

/// One side's vocabulary embeddings `(V, hidden)` with the neighbour lists computed so far.
pub(crate) struct PathBuilder {
    table: Vec<f32>,
    hidden: usize,
    n_neighbors: usize,
    knn: HashMap<u32, Vec<u32>>,
}

impl PathBuilder {
    /// A builder over `table` (`(V, hidden)`, row-major).
    pub(crate) fn new(table: Vec<f32>, hidden: usize, n_neighbors: usize) -> Self {
        Self {
            table,
            hidden,
            n_neighbors,
            knn: HashMap::new(),
        }
    }

    fn vocab_size(&self) -> usize {
        self.table.len() / self.hidden.max(1)
    }

    fn row(&self, id: u32) -> &[f32] {
        let h = self.hidden;
        &self.table[id as usize * h..(id as usize + 1) * h]
    }

    /// The neighbours of `id`, computed on first use.
    pub(crate) fn neighbors(&mut self, id: u32) -> &[u32] {
        let (table, hidden, k) = (&self.table, self.hidden, self.n_neighbors);
        self.knn
            .entry(id)
            .or_insert_with(|| nearest_neighbors(table, hidden, id as usize, k))
    }

    /// Inseq's `get_word_distance`: lower is better.
    fn score(
        &self,
        strategy: PathStrategy,
        anchor: u32,
        baseline: u32,
        word: u32,
        n: usize,
    ) -> f64 {
        let (a, b, x) = (self.row(anchor), self.row(baseline), self.row(word));
        match strategy {
            PathStrategy::Greedy => {
                let m = make_monotonic(a, b, x, n);
                // torch gives a float32 distance: round so that float32 ties stay ties.
                let d2: f64 = a
                    .iter()
                    .zip(&m)
                    .map(|(&a, &m)| {
                        let d = (a - m) as f64;
                        d * d
                    })
                    .sum();
                d2.sqrt() as f32 as f64
            }
            PathStrategy::Maxcount => {
                let monotonic = (0..a.len())
                    .filter(|&j| is_monotonic(a[j], b[j], x[j]))
                    .count();
                -(monotonic as f64)
            }
        }
    }

    /// Inseq's `get_closest_word`: the best neighbour of `word` not on `path` and not the
    /// baseline (the first one on ties, in neighbour order), else the baseline.
    fn closest_word(
        &mut self,
        word: u32,
        baseline: u32,
        path: &[u32],
        strategy: PathStrategy,
        n: usize,
    ) -> u32 {
        if word == baseline {
            return baseline;
        }
        let candidates = self.neighbors(word).to_vec();
        let mut best: Option<(f64, u32)> = None;
        for a in candidates {
            if a == baseline || path.contains(&a) {
                continue;
            }
            let s = self.score(strategy, a, baseline, word, n);
            if best.is_none_or(|(bs, _)| s < bs) {
                best = Some((s, a));
            }
        }
        best.map_or(baseline, |(_, a)| a)
    }

    /// Inseq's `find_path`: `n − 1` words from `word` towards `baseline` (`word` repeated for
    /// special tokens).
    pub(crate) fn word_path(
        &mut self,
        word: u32,
        baseline: u32,
        n: usize,
        strategy: PathStrategy,
        special: bool,
    ) -> Vec<u32> {
        if special {
            return vec![word; n - 1];
        }
        let mut path = vec![word];
        let mut current = word;
        for _ in 0..n.saturating_sub(2) {
            current = self.closest_word(current, baseline, &path, strategy, n);
            path.push(current);
        }
        path
    }

    /// Inseq's `build_monotonic_path_embedding`: the `n` path points `(n, hidden)`, baseline
    /// first, input last, each anchor monotonized against the previous point.
    pub(crate) fn path_points(&self, words: &[u32], baseline: u32, n: usize) -> Vec<f32> {
        let b = self.row(baseline);
        let mut points: Vec<Vec<f32>> = vec![self.row(words[0]).to_vec()];
        for &w in &words[1..] {
            let prev = points.last().expect("path has a first point");
            let next = make_monotonic(self.row(w), b, prev, n);
            points.push(next);
        }
        points.push(b.to_vec());
        points.reverse();
        points.concat()
    }
}

/// Whether a token's text looks like a control token (`<s>`, `</s>`, `<pad>`, `<|endoftext|>`),
/// excluding SentencePiece byte tokens (`<0x0A>`).
fn looks_special(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
        return false;
    };
    let byte = inner.len() == 4
        && inner.starts_with("0x")
        && inner[2..].chars().all(|c| c.is_ascii_hexdigit());
    !inner.is_empty()
        && !byte
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
}

/// Parses a JSON array of token ids (the `special_token_ids` extension's answer).
fn parse_id_list(json: &str) -> Result<Vec<u32>, PluginError> {
    let bad = || PluginError::new(ErrorCode::HOST, format!("bad special_token_ids: {json}"));
    let inner = json
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(bad)?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u32>().map_err(|_| bad()))
        .collect()
}

/// The path points of one attributed side of a sequence: `(n, hidden)` per position, `None`
/// where the position keeps its actual value (target positions no step sees).
type SidePaths = Vec<Option<Vec<f32>>>;

impl DiscretizedIntegratedGradients {
    /// Special token ids: the parameter, else the host's `special_token_ids` extension, else
    /// the attributed tokens whose text looks like a control token.
    fn special_tokens(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<HashSet<u32>, PluginError> {
        if let Some(ids) = &self.0.special_token_ids {
            return Ok(ids.iter().copied().collect());
        }
        match host.extension("special_token_ids", "{}") {
            Ok(json) => return Ok(parse_id_list(&json)?.into_iter().collect()),
            Err(e) if e.code == ErrorCode::UNSUPPORTED => {}
            Err(e) => return Err(e),
        }
        Ok(request
            .sequences
            .iter()
            .flat_map(|s| s.source.iter().chain(s.target.iter()))
            .filter(|t| t.id >= 0 && looks_special(t.text.as_str()))
            .map(|t| t.id as u32)
            .collect())
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
        let slot = &mut self.builders[side.0 as usize & 1];
        if slot.is_none() {
            let info = host.info();
            let ids: Vec<u32> = (0..info.vocab_size as u32).collect();
            let t = host.embed(side, &ids)?;
            let hidden = t.shape.get(1).copied().unwrap_or(0);
            if t.shape.first() != Some(&ids.len()) || hidden == 0 {
                return Err(PluginError::new(
                    ErrorCode::SHAPE_MISMATCH,
                    format!(
                        "host vocabulary embeddings {:?}, expected ({}, hidden)",
                        t.shape.as_slice(),
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
        if let Some(p) = self.cache.get(&(side.0, word, baseline)) {
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
        self.cache.insert((side.0, word, baseline), points.clone());
        Ok(points)
    }

    /// Paths of every position of `side` of `seq` that some step sees.
    fn side_paths(
        &mut self,
        host: &Host<'_>,
        seq: &SequenceInput,
        side: Side,
    ) -> Result<SidePaths, PluginError> {
        let (tokens, baselines, visible) = if side == Side::SOURCE {
            (&seq.source, &seq.source_baseline_ids, seq.source.len())
        } else {
            let last = seq.steps.iter().copied().max().unwrap_or(0) as usize;
            (&seq.target, &seq.target_baseline_ids, last)
        };
        if baselines.len() != tokens.len() {
            return Err(PluginError::new(
                ErrorCode::SHAPE_MISMATCH,
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
                if pos >= visible {
                    return Ok(None);
                }
                let id = u32::try_from(t.id).map_err(|_| {
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
            specials: self.special_tokens(host, request)?,
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
                        ErrorCode::SHAPE_MISMATCH,
                        format!("{} tokens but {} input embeddings", sp.len(), e.len()),
                    ));
                }
                side_paths[side.0 as usize & 1] = sp;
            }
            let mut acc = s.accum();
            let make_point = |k: usize| {
                ends.point(|side, e| {
                    let h = e.hidden();
                    let mut t = e.x.clone();
                    for (pos, path) in side_paths[side.0 as usize & 1].iter().enumerate() {
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
                    for (pos, path) in side_paths[side.0 as usize & 1].iter().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random `(rows, hidden)` matrix.
    fn random_table(rows: usize, hidden: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..rows * hidden)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
            })
            .collect()
    }

    /// The full kNN graph by brute force: every row's neighbours from a full sort of all
    /// pairwise distances.
    fn brute_force_graph(table: &[f32], hidden: usize, k: usize) -> Vec<Vec<u32>> {
        let rows = table.len() / hidden;
        let row = |i: usize| &table[i * hidden..(i + 1) * hidden];
        (0..rows)
            .map(|i| {
                let mut all: Vec<(f64, usize)> = (0..rows)
                    .map(|j| (squared_distance(row(i), row(j)), j))
                    .collect();
                all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
                let mut first: Vec<usize> = all.iter().take(k + 1).map(|&(_, j)| j).collect();
                match first.iter().position(|&j| j == i) {
                    Some(p) => first.remove(p),
                    None => first.remove(0),
                };
                first.truncate(k);
                first.into_iter().map(|j| j as u32).collect()
            })
            .collect()
    }

    #[test]
    fn lazy_neighbors_equal_the_full_graph() {
        for (rows, hidden, k) in [(97, 7, 10), (60, 16, 59), (40, 3, 1), (200, 32, 50)] {
            let table = random_table(rows, hidden, rows as u64);
            let graph = brute_force_graph(&table, hidden, k);
            let mut b = PathBuilder::new(table.clone(), hidden, k);
            // Visit rows out of order: the cache must not mix them up.
            for i in (0..rows).rev().chain(0..rows) {
                assert_eq!(b.neighbors(i as u32), graph[i].as_slice(), "row {i}");
            }
            assert_eq!(b.knn.len(), rows);
        }
    }

    #[test]
    fn neighbors_match_sklearn_with_duplicates_and_large_k() {
        // sklearn kneighbors_graph(X, k, include_self=False) on these rows: row 6 is far away;
        // rows 1 and 5 are duplicates, as are 0, 2 and 3. Where sklearn's heap order of exact
        // ties differs from index order only the order differs, so compare sets for them.
        let x: [f32; 14] = [0., 0., 1., 0., 0., 0., 0., 0., 2., 0., 1., 0., 5., 5.];
        let got = |w: usize, k: usize| nearest_neighbors(&x, 2, w, k);
        assert_eq!(got(6, 1), vec![4]);
        assert_eq!(got(4, 1), vec![1]);
        assert_eq!(got(1, 1), vec![5]);
        assert_eq!(got(6, 3), vec![4, 1, 5]);
        let mut s = got(0, 3);
        s.sort();
        assert_eq!(s, vec![1, 2, 3]);
        // k ≥ V gives every other row.
        assert_eq!(got(6, 10).len(), 6);
    }

    #[test]
    fn monotonic_vectors_follow_inseq() {
        // Dims: baseline > input with anchor inside; anchor outside; baseline < input with
        // anchor inside; equal baseline and input with a different anchor.
        let (a, b, x) = (
            [0.5f32, 3.0, -0.5, 1.0],
            [1.0f32, 1.0, -1.0, 2.0],
            [0.0f32, 0.0, 0.0, 2.0],
        );
        let m = make_monotonic(&a, &b, &x, 4);
        assert_eq!(m, vec![0.5, 0.0 - 0.25 * (0.0 - 1.0), -0.5, 2.0]);
        assert_eq!(make_monotonic(&x, &b, &x, 4), x.to_vec());
    }

    #[test]
    fn paths_end_at_the_baseline_and_are_monotonic() {
        let (rows, hidden, n) = (80, 6, 9);
        let table = random_table(rows, hidden, 7);
        for strategy in [PathStrategy::Greedy, PathStrategy::Maxcount] {
            let mut b = PathBuilder::new(table.clone(), hidden, 8);
            let words = b.word_path(5, 0, n, strategy, false);
            assert_eq!(words.len(), n - 1);
            assert_eq!(words[0], 5);
            let pts = b.path_points(&words, 0, n);
            assert_eq!(pts.len(), n * hidden);
            assert_eq!(&pts[..hidden], b.row(0));
            assert_eq!(&pts[(n - 1) * hidden..], b.row(5));
            // Every point lies between its successor and the baseline in every dimension.
            for k in 1..n - 1 {
                for j in 0..hidden {
                    let (p, next) = (pts[k * hidden + j], pts[(k + 1) * hidden + j]);
                    assert!(
                        is_monotonic(p, pts[j], next),
                        "{strategy:?} point {k} dim {j}"
                    );
                }
            }
            // Special tokens stay put.
            let sp = b.word_path(5, 0, n, strategy, true);
            let pts = b.path_points(&sp, 0, n);
            for k in 1..n {
                assert_eq!(&pts[k * hidden..(k + 1) * hidden], b.row(5));
            }
        }
    }

    #[test]
    fn control_tokens_are_recognised() {
        for t in [
            "<s>",
            "</s>",
            "<pad>",
            "<|endoftext|>",
            "<|im_start|>",
            "<mask>",
        ] {
            assert!(looks_special(t), "{t}");
        }
        for t in ["<0x0A>", "<", "<>", "Ġ<", "<br", "a<b>", "< s>", "Ġcapital"] {
            assert!(!looks_special(t), "{t}");
        }
        assert_eq!(parse_id_list(" [0, 2,3] ").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_id_list("[]").unwrap(), Vec::<u32>::new());
        assert!(parse_id_list("{}").is_err());
    }
}
