//! Greedy search and multinomial sampling (HF `_sample`): one token per row per step; finished
//! rows are fed the pad token until every row is done or `max_length` is reached.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::batch::{step, Rows};
use super::processors::{argmax, softmax, Processors};
use super::GenerationError;
use crate::models::DecodingState;

/// Runs greedy search or sampling from `logits` (the prompt's last-position logits, already
/// computed) and returns the new tokens of each row (up to and including its EOS).
pub fn greedy_or_sample(
    state: &mut dyn DecodingState,
    mut rows: Rows,
    mut logits: Vec<Vec<f32>>,
    procs: &Processors<'_>,
) -> Result<Vec<Vec<u32>>, GenerationError> {
    let p = procs.params;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let b = rows.rows.len();
    let mut new = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    if rows.len() >= procs.max_len {
        return Ok(new);
    }
    let budget = (procs.max_len - rows.len()) as u64;
    loop {
        for i in 0..b {
            let scores = &mut logits[i];
            let sampling = p.do_sample.then_some(1);
            procs.apply(&rows.rows[i], rows.pad_lens[i], scores, sampling);
            let tok = if p.do_sample {
                sample(&softmax(scores), &mut rng)
            } else {
                argmax(scores)
            };
            let tok = if finished[i] { p.pad_token_id } else { tok };
            rows.rows[i].push(tok);
            if !finished[i] {
                new[i].push(tok);
                finished[i] = p.eos_token_ids.contains(&tok);
            }
        }
        crate::progress::report_generation(
            new.iter().map(Vec::len).max().unwrap_or(0) as u64,
            budget,
        );
        if finished.iter().all(|f| *f) || rows.len() >= procs.max_len {
            return Ok(new);
        }
        logits = step(state, &rows, 1)?;
    }
}

/// Draws an index from the distribution `probs` (which sums to 1).
pub fn sample(probs: &[f32], rng: &mut StdRng) -> u32 {
    let u: f64 = rng.random::<f64>();
    let mut cum = 0f64;
    let mut last_nonzero = 0;
    for (i, &q) in probs.iter().enumerate() {
        if q > 0.0 {
            cum += f64::from(q);
            last_nonzero = i;
            if u < cum {
                return i as u32;
            }
        }
    }
    last_nonzero as u32
}
