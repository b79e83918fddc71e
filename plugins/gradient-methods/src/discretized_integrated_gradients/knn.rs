//! Nearest vocabulary neighbours of one word, computed when the path search visits it: the
//! same neighbours, in the same order, as sklearn's `kneighbors_graph` over the whole vocabulary.

/// Squared Euclidean distance in `f64` (exact for `f32` inputs up to the final rounding, so that
/// the neighbour order matches sklearn's `float64` computation).
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
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

/// A deterministic pseudo-random `(rows, hidden)` matrix for tests.
#[cfg(test)]
pub(crate) fn random_table(rows: usize, hidden: usize, seed: u64) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
