//! The decoder-only skeleton ([`CausalLm`] over a per-architecture [`CausalArch`]) and the
//! helpers the architectures share (input checks, embedding lookup, config parsing, heads, KV
//! caches).

mod stack;

pub use stack::{CausalArch, CausalBackward, CausalLm, SavedBlock};

use candle_core::{DType, Result, Tensor};
use serde::de::DeserializeOwned;

use super::{ForwardInput, ModelError, ModelSpec, Taps};

/// Checks a decoder-only forward input: no encoder side, `(b, t, hidden)` embeddings, a
/// `(b, t)` mask and `t <= max_positions`.
pub fn check_input(spec: &ModelSpec, input: &ForwardInput) -> Result<(usize, usize)> {
    if input.encoder.is_some() {
        return Err(ModelError::BadInput(format!(
            "{} is decoder-only: pass the whole sequence as the decoder input",
            spec.model_type
        ))
        .into_candle());
    }
    let (b, t, d) = input.decoder.embeds.dims3()?;
    if d != spec.hidden_size {
        return Err(ModelError::BadInput(format!(
            "embeddings have width {d}, the model expects {}",
            spec.hidden_size
        ))
        .into_candle());
    }
    let mask_dims = input.decoder.mask.dims();
    if mask_dims != [b, t] {
        return Err(ModelError::BadInput(format!(
            "mask has shape {mask_dims:?}, expected [{b}, {t}]"
        ))
        .into_candle());
    }
    check_len(spec, t)?;
    Ok((b, t))
}

/// Errors with [`ModelError::TooLong`] when `len > spec.max_positions`.
pub fn check_len(spec: &ModelSpec, len: usize) -> Result<()> {
    if len > spec.max_positions {
        return Err(ModelError::TooLong {
            len,
            max: spec.max_positions,
        }
        .into_candle());
    }
    Ok(())
}

/// Rows of `table` `(vocab, d)` for `ids` `(b, t)` -> `(b, t, d)`; ids out of range are an error.
pub fn lookup(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let (vocab, d) = table.dims2()?;
    let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
    if let Some(&bad) = flat
        .to_vec1::<u32>()?
        .iter()
        .find(|&&i| i as usize >= vocab)
    {
        return Err(ModelError::BadInput(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        ))
        .into_candle());
    }
    table.index_select(&flat, 0)?.reshape((b, t, d))
}

/// The last position of `h` `(b, t, d)` as `(b, d)`.
pub fn last_position(h: &Tensor) -> Result<Tensor> {
    let t = h.dim(1)?;
    h.narrow(1, t - 1, 1)?.squeeze(1)
}

/// Parses a config struct from `config.json`'s value, naming the field on error.
pub fn parse_config<T: DeserializeOwned>(
    model_type: &str,
    v: &serde_json::Value,
) -> std::result::Result<T, ModelError> {
    serde_json::from_value(v.clone()).map_err(|e| ModelError::BadConfig {
        path: format!("config.json ({model_type})").into(),
        msg: e.to_string(),
    })
}

/// `(b, t, heads * hd)` -> `(b, heads, t, hd)`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    x.reshape((b, t, heads, ()))?.transpose(1, 2)
}

/// `(b, heads, t, hd)` -> `(b, t, heads * hd)`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, h * d))
}

/// One layer's cached keys and values `(b, heads, past, head_dim)` (`None` before the first step).
pub type KvCache = Option<(Tensor, Tensor)>;

/// How a block (or a stack, with `C = [KvCache]`) runs: the differentiable forward (hooks in
/// `taps`), a decoding step (`cache`) or the shared forward of a hand-written backward (`save`),
/// each through the same forward code.
pub struct Pass<'a, 't, S, C: ?Sized = KvCache> {
    /// Hooks and recordings ([`Taps::none`] when decoding or saving).
    pub taps: &'a mut Taps<'t>,
    /// Past keys/values, extended in place when decoding.
    pub cache: Option<&'a mut C>,
    /// Where the shared forward keeps what the backward needs.
    pub save: Option<&'a mut Vec<S>>,
}

impl<'a, 't, S, C: ?Sized> Pass<'a, 't, S, C> {
    /// A plain pass: `taps` only.
    pub fn taps(taps: &'a mut Taps<'t>) -> Self {
        Self {
            taps,
            cache: None,
            save: None,
        }
    }

    /// A pass of the shared forward: keeps into `save` (`taps` is [`Taps::none`]).
    pub fn save(taps: &'a mut Taps<'t>, save: &'a mut Vec<S>) -> Self {
        Self {
            taps,
            cache: None,
            save: Some(save),
        }
    }
}

/// Appends new keys/values to a cache along the time axis.
pub fn append_kv(cache: &mut KvCache, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
    let (k, v) = match cache.take() {
        Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
        None => (k, v),
    };
    *cache = Some((k.clone(), v.clone()));
    Ok((k, v))
}

/// Keeps the rows `rows` of every cached tensor (beam reordering).
pub fn select_cache_rows(caches: &mut [KvCache], rows: &[usize]) -> Result<()> {
    let dev = match caches.iter().flatten().next() {
        Some((k, _)) => k.device().clone(),
        None => return Ok(()),
    };
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let idx = Tensor::new(idx.as_slice(), &dev)?;
    for c in caches.iter_mut().flatten() {
        *c = (
            c.0.contiguous()?.index_select(&idx, 0)?,
            c.1.contiguous()?.index_select(&idx, 0)?,
        );
    }
    Ok(())
}
