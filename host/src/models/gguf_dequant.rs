//! Dequantizing GGUF tensors straight from the file bytes into f32 (the types SmolLM2's GGUF
//! uses: Q4_1, Q8_0, F32), with llama.cpp's q/k row permutation undone on the way.
//!
//! candle's path copies the bytes twice (a read buffer, then a block vector) and the q/k rows
//! once more when un-permuting; this writes each f32 once. The arithmetic is candle's
//! `GgmlType::to_float` (`q as f32 * d + m`, no fused multiply-add), so the bits are the same
//! (tested against candle in `gguf.rs`).

use candle_core::quantized::GgmlDType;
use half::f16;

/// Whether [`dequantize_rows`] handles `dtype`.
pub fn supported(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q8_0 | GgmlDType::F32)
}

/// Dequantizes `raw` (the tensor's bytes: `rows` rows of `cols` values of `dtype`) to f32.
/// With `heads`, rows go from llama.cpp's interleaved order back to HF's halves, as
/// [`super::unpermute_rows`] does. `None` when the layout does not allow it (an
/// unsupported dtype, rows not made of whole blocks, rows not divisible into even heads, or
/// `raw` of the wrong length): the caller then takes candle's path.
pub fn dequantize_rows(
    dtype: GgmlDType,
    raw: &[u8],
    rows: usize,
    cols: usize,
    heads: Option<usize>,
) -> Option<Vec<f32>> {
    if !supported(dtype) || cols == 0 || !cols.is_multiple_of(dtype.block_size()) {
        return None;
    }
    let row_bytes = cols / dtype.block_size() * dtype.type_size();
    if raw.len() != rows.checked_mul(row_bytes)? {
        return None;
    }
    let hd = match heads {
        Some(h) if h > 0 && rows.is_multiple_of(h) && (rows / h).is_multiple_of(2) => {
            Some(rows / h)
        }
        Some(_) => return None,
        None => None,
    };
    // Filled row by row in output order: no zeroing pass over the (large) result.
    let mut out = Vec::with_capacity(rows * cols);
    huge_pages(&mut out);
    for r in 0..rows {
        // HF row (head, half, i) is GGUF row (head, i, half).
        let src = match hd {
            // rows > 0 here, so hd >= 2.
            Some(hd) => {
                let (head, within) = (r / hd, r % hd);
                let (half, i) = (within / (hd / 2), within % (hd / 2));
                head * hd + i * 2 + half
            }
            None => r,
        };
        dequantize(
            dtype,
            &raw[src * row_bytes..(src + 1) * row_bytes],
            &mut out,
        );
    }
    Some(out)
}

/// Asks the kernel for transparent huge pages on the (untouched) capacity of `v`: a model's
/// weights are hundreds of MB written once, and 2 MB pages take 512 times fewer page faults
/// than 4 KB ones (Linux with THP in `madvise` mode; elsewhere nothing happens).
fn huge_pages(v: &mut Vec<f32>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<f32>();
        let (a, b) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if b > a {
            // SAFETY: [a, b) lies inside the vector's own allocation, which nothing has touched
            // yet; MADV_HUGEPAGE only changes how the kernel backs those pages, not their
            // contents or validity. A failure (THP disabled) is harmless and ignored.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// One row: whole blocks of `dtype` in `xs`, their values appended to `out`.
fn dequantize(dtype: GgmlDType, xs: &[u8], out: &mut Vec<f32>) {
    let f16_at = |lo: u8, hi: u8| f16::from_le_bytes([lo, hi]).to_f32();
    match dtype {
        GgmlDType::Q4_1 => {
            // d: f16, m: f16, 16 bytes of nibbles (low nibbles: values 0..16, high: 16..32).
            for b in xs.chunks_exact(20) {
                let (d, m) = (f16_at(b[0], b[1]), f16_at(b[2], b[3]));
                let mut y = [0f32; 32];
                for (j, &q) in b[4..20].iter().enumerate() {
                    y[j] = ((q & 0x0F) as f32) * d + m;
                    y[j + 16] = ((q >> 4) as f32) * d + m;
                }
                out.extend_from_slice(&y);
            }
        }
        GgmlDType::Q8_0 => {
            // d: f16, 32 signed bytes.
            for b in xs.chunks_exact(34) {
                let d = f16_at(b[0], b[1]);
                let mut y = [0f32; 32];
                for (y, &q) in y.iter_mut().zip(&b[2..34]) {
                    *y = (q as i8) as f32 * d;
                }
                out.extend_from_slice(&y);
            }
        }
        GgmlDType::F32 => {
            out.extend(
                xs.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        // `supported` lets no other type through.
        _ => {}
    }
}
