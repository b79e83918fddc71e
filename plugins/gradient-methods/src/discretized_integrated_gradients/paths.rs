//! Monotonic word paths from a token to its baseline through vocabulary embeddings (Inseq's
//! `monotonic_path_builder.py`).

use std::collections::HashMap;

use super::knn::nearest_neighbors;
use super::PathStrategy;

/// `1/n` as torch applies a Python float to a `float32` tensor (in `f32`).
pub(crate) fn step_scale(n_steps: usize) -> f32 {
    (1.0 / n_steps as f64) as f32
}

/// Whether `anchor` lies between `input` and `baseline` in one dimension (Inseq's
/// `get_monotonic_dims`).
pub(crate) fn is_monotonic(anchor: f32, baseline: f32, input: f32) -> bool {
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

    /// Number of vocabulary rows.
    pub(crate) fn vocab_size(&self) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discretized_integrated_gradients::knn::{random_table, squared_distance};

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
}
