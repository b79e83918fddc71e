//! The memory budget (`--max-memory`): sizes the batched differentiable forwards so that the
//! activations they keep for the backward pass, plus the model's weights, stay under it. Peak
//! memory then grows with the tokens of one batch of rows, not with points × steps.
//!
//! The activation estimate is deliberately simple (f32, per token and layer: ~32 × hidden for
//! the saved linear, norm and MLP activations, plus 4 × heads × length for the attention
//! probabilities); it was calibrated on SmolLM2-135M (about 2.4 MB per token, see the README's
//! benchmarks). Two chunks run side by side, hence the factor 2.

use crate::models::ModelSpec;

/// The default budget when the machine's memory cannot be read.
const FALLBACK_BYTES: u64 = 8 << 30;

/// Parses a size: bytes, or a number with `K`, `M`, `G`, `T` (powers of 1024; `KB`/`KiB`... and
/// lowercase accepted), e.g. `4G`, `512M`, `1.5GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size: use e.g. 4G, 512M or a number of bytes"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{text}' has an unknown unit: use K, M, G or T")),
    };
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// Half of the machine's memory (`MemTotal` of /proc/meminfo), else 8 GiB.
pub fn default_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024 / 2)
        })
        .unwrap_or(FALLBACK_BYTES)
}

/// Estimated bytes of activations kept per token of a row of `len` tokens.
pub fn activation_bytes_per_token(spec: &ModelSpec, len: usize) -> u64 {
    let layers = (spec.num_layers + spec.encoder_layers) as u64;
    let per_layer = 32 * spec.hidden_size as u64 + 4 * (spec.num_heads * len) as u64;
    4 * layers * per_layer
}

/// Estimated bytes the shared forward (`serve/shared.rs`) keeps per token of a row of `len`
/// tokens: about 10 × hidden per layer (the block's residuals, q, k, v, the MLP's gate and up:
/// 0.64 MB per token for SmolLM2-135M at short lengths) plus the attention probabilities
/// (heads × len per layer, the term that dominates long rows).
pub fn shared_bytes_per_token(spec: &ModelSpec, len: usize) -> u64 {
    let layers = (spec.num_layers + spec.encoder_layers) as u64;
    4 * layers * (10 * spec.hidden_size as u64 + (spec.num_heads * len) as u64)
}

/// Tokens (rows × length) one shared forward may keep under `budget` for rows of `len` tokens:
/// half of what the weights leave (the other half is for the backward batches running side by
/// side and the gradients they return), at least one row.
pub fn shared_tokens(spec: &ModelSpec, budget: u64, len: usize) -> usize {
    let free = budget.saturating_sub(weight_bytes(spec));
    let per_token = shared_bytes_per_token(spec, len).max(1);
    ((free / 2 / per_token) as usize).max(len.max(1))
}

/// Whether two chunks of `tokens` tokens (rows of `len`) fit side by side under `budget` (else
/// the autograd path runs its chunks one at a time).
pub fn two_chunks_fit(spec: &ModelSpec, budget: u64, tokens: usize, len: usize) -> bool {
    let free = budget.saturating_sub(weight_bytes(spec));
    2 * tokens as u64 * activation_bytes_per_token(spec, len) <= free
}

/// Estimated bytes of the weights (f32): embeddings and 12 × hidden² per layer.
pub fn weight_bytes(spec: &ModelSpec) -> u64 {
    let h = spec.hidden_size as u64;
    let layers = (spec.num_layers + spec.encoder_layers) as u64;
    4 * (spec.vocab_size as u64 * h + layers * 12 * h * h)
}

/// Tokens per batched forward under `budget` for rows of up to `max_len` tokens: at most
/// `default`, at least one row (a row cannot be split; its cost is then reported by
/// [`row_fits`]).
pub fn tokens_per_forward(spec: &ModelSpec, budget: u64, max_len: usize, default: usize) -> usize {
    let free = budget.saturating_sub(weight_bytes(spec));
    let per_token = activation_bytes_per_token(spec, max_len).max(1);
    let fit = (free / (2 * per_token)) as usize;
    fit.min(default.max(1)).max(max_len.max(1))
}

/// `Err` with a one-line message when one row of `len` tokens alone exceeds `budget`.
pub fn row_fits(spec: &ModelSpec, budget: u64, len: usize) -> Result<(), String> {
    let need = weight_bytes(spec) + activation_bytes_per_token(spec, len) * len as u64;
    if need <= budget {
        return Ok(());
    }
    Err(format!(
        "a sequence of {len} tokens needs about {} MB for one differentiable forward, over the \
         memory budget of {} MB: raise --max-memory or attribute a shorter input",
        need >> 20,
        budget >> 20
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> ModelSpec {
        ModelSpec {
            model_type: "llama".into(),
            kind: crate::models::ModelKind::DecoderOnly,
            vocab_size: 49152,
            hidden_size: 576,
            num_layers: 30,
            encoder_layers: 0,
            num_heads: 9,
            max_positions: 8192,
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
            decoder_start_token_id: None,
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert!(parse_size("lots").is_err() && parse_size("3X").is_err());
    }

    #[test]
    fn the_budget_lowers_the_batch_and_long_rows_are_checked() {
        let s = smollm2();
        let per_token = activation_bytes_per_token(&s, 16);
        assert!((2 << 20..3 << 20).contains(&per_token), "{per_token}");
        assert_eq!(tokens_per_forward(&s, 64 << 30, 16, 64), 64);
        let tight = weight_bytes(&s) + 2 * per_token * 20;
        assert_eq!(tokens_per_forward(&s, tight, 16, 64), 20);
        assert_eq!(tokens_per_forward(&s, 0, 16, 64), 16, "one row at least");
        assert!(row_fits(&s, 64 << 30, 1024).is_ok());
        // One 1024-token row alone takes over half of 12 GB: its chunks run one at a time.
        assert!(two_chunks_fit(&s, 12 << 30, 64, 16));
        assert!(!two_chunks_fit(&s, 12 << 30, 1024, 1024));
        let e = row_fits(&s, 1 << 30, 1024).unwrap_err();
        assert!(
            e.contains("1024 tokens") && e.contains("--max-memory"),
            "{e}"
        );
    }

    #[test]
    fn shared_forwards_keep_fewer_long_rows() {
        let s = smollm2();
        let short = shared_bytes_per_token(&s, 16);
        assert!((600 << 10..700 << 10).contains(&short), "{short}");
        // 12 GB: thousands of tokens per group on short rows, three 1024-token rows on long ones.
        assert!(shared_tokens(&s, 12 << 30, 16) > 8 * 64);
        assert_eq!(shared_tokens(&s, 12 << 30, 1024) / 1024, 3);
        assert_eq!(shared_tokens(&s, 0, 1024), 1024, "one row at least");
    }
}
