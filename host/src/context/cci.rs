//! Contextual cues imputation: the attribution of one context-sensitive token of the contextual
//! output, against the contextless output when the attributed function is contrastive, and the
//! split of its scores into input-context and output-context token scores.

use rinseq_sdk::Flags;

use super::outputs::generate_text;
use super::run::{ContextPlugins, Prepared};
use super::text::{concat_with_sep, Tok};
use super::{CciOutput, ContextError};
use crate::aggregation::aggregate_for_view;
use crate::attribution::result::{sequence_class, to_output};
use crate::attribution::{attribute, encode_batch, AttributeOptions};
use crate::output::FeatureAttributionOutput;

/// One selected token: its index in the current output, score and token.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Index in the current output tokens.
    pub idx: usize,
    /// CTI score.
    pub score: f32,
    /// The token.
    pub token: String,
    /// Rank among the selected tokens (index into `--contextless-output-next-tokens`).
    pub rank: usize,
}

/// Runs CCI for one selected token; returns Inseq's `CCIOutput` and the aggregated attribution
/// (shown with `--show-intermediate-outputs`).
pub fn run(
    p: &Prepared<'_>,
    plugins: &ContextPlugins,
    sel: &Selected,
    n_selected: usize,
) -> Result<(CciOutput, FeatureAttributionOutput), ContextError> {
    let texts = &p.texts;
    let enc_dec = texts.encoder_decoder();
    let s = &p.v.s;
    let contextual_input = texts
        .to_string(&p.input_full_tokens, false, false)?
        .trim_start_matches(' ')
        .to_string();
    let end = p.offset + sel.idx + 1;
    let head = p.output_full_tokens.get(..end).ok_or_else(|| {
        ContextError::bad(format!(
            "context-sensitive token {} ('{}') is past the end of the contextual output: the current output has more tokens after the contextless input than in the contextual output (Inseq 0.7.1 fails here too); select fewer tokens with --context-sensitivity-std-threshold or --context-sensitivity-topk",
            sel.idx, sel.token
        ))
    })?;
    let mut contextual_output = texts
        .to_string(head, false, true)?
        .trim_start_matches(' ')
        .to_string();
    let output_ctx_tokens: Vec<Tok> = if contextual_output.is_empty() {
        let mut toks = vec![p.output_full_tokens[end - 1].clone()];
        if enc_dec {
            toks.extend(texts.pad());
        }
        contextual_output = texts.to_string(&toks, true, true)?;
        toks
    } else {
        texts.tokens(&contextual_output, enc_dec)?
    };
    let target_fn = &plugins.target_fn;
    let contrastive =
        plugins.attributed_fn_given && target_fn.capabilities.flags.contains(Flags::NEEDS_CONTRAST);
    let mut opts = AttributeOptions::default();
    let (mut contrast_token, mut contextless_output) = (None, None);
    if contrastive {
        // Inseq appends the contextless output prefix to the contextless input once per selected
        // token (so it repeats from the second token on); rinseq appends it once.
        let ctxless_input = if enc_dec {
            p.contextless_input.clone()
        } else {
            concat_with_sep(
                &p.contextless_input,
                &p.contextless_prefix,
                &s.decoder_input_output_separator,
            )
        };
        let ctxless = contextless(p, &ctxless_input, sel, n_selected)?;
        let ctxless_tokens = texts.tokens(&ctxless, enc_dec)?;
        let pick = |t: &[Tok]| -> Option<Tok> {
            let back = if enc_dec { 2 } else { 1 };
            t.len().checked_sub(back).map(|i| t[i].clone())
        };
        let ct = pick(&ctxless_tokens).ok_or_else(|| {
            ContextError::bad(format!(
                "the contextless output '{ctxless}' has no token to contrast"
            ))
        })?;
        opts.contrast_force_inputs = target_fn
            .capabilities
            .flags
            .contains(Flags::NEEDS_FORCED_CONTRAST)
            || target_fn.name == "kl_divergence"
            || pick(&output_ctx_tokens).is_some_and(|t| t.text == ct.text);
        opts.contrast_targets = vec![ctxless.clone()];
        if enc_dec {
            opts.contrast_sources = vec![p.contextless_input.clone()];
        }
        contrast_token = Some(ct.text);
        contextless_output = Some(ctxless);
    }
    let bos_offset = usize::from(
        enc_dec
            || (output_ctx_tokens.first().map(|t| t.id) == texts.bos()
                && texts.bos().is_some()
                && !output_ctx_tokens
                    .first()
                    .is_some_and(|t| s.special_tokens_to_keep.contains(&t.text))),
    );
    opts.attr_pos_start = Some((p.offset + sel.idx + bos_offset) as i64);
    opts.attribute_target = enc_dec && p.v.has_output_context;
    opts.generated_texts = vec![contextual_output.clone()];
    let seqs = encode_batch(p.loaded, &[contextual_input], &opts, p.generation)?;
    let run = attribute(
        p.loaded,
        &s.model_name_or_path,
        seqs,
        &plugins.method,
        target_fn,
        &[],
        &opts,
    )?;
    let class = sequence_class(plugins.method.capabilities.output);
    let raw = to_output(&run, !enc_dec, class, Default::default());
    let agg = aggregate_for_view(&plugins.registry, &raw, &plugins.aggregation)?;
    let seq = agg
        .sequence_attributions
        .first()
        .ok_or_else(|| ContextError::bad("CCI produced no attribution"))?;
    let first_column = |t: &Option<rinseq_sdk::Tensor>| -> Option<Vec<f64>> {
        let t = t.as_ref()?;
        let cols: usize = t.shape.get(1).copied().unwrap_or(1).max(1);
        Some(t.data.chunks(cols).map(|r| f64::from(r[0])).collect())
    };
    let mut input_scores = None;
    if p.v.has_input_context {
        let col = if enc_dec {
            first_column(&seq.source_attributions)
        } else {
            // Inseq does not skip a leading BOS row here; rinseq does (no BOS in its fixtures).
            first_column(&seq.target_attributions).map(|c| c.into_iter().skip(bos_offset).collect())
        }
        .ok_or_else(|| ContextError::bad("CCI has no attributions of the input context"))?;
        input_scores = Some(window(&col, p.input_prefix_len, p.input_context_len));
    }
    let mut output_scores = None;
    if p.v.has_output_context {
        let col = first_column(&seq.target_attributions)
            .ok_or_else(|| ContextError::bad("CCI has no attributions of the output context"))?;
        // Rows of a decoder-only target start with the input; an encoder-decoder target starts
        // with the decoder start token, which Inseq 0.7.1 does not skip (a one-token shift).
        let start = p.output_prefix_len
            + if enc_dec {
                1
            } else {
                p.input_full_tokens.len()
            };
        output_scores = Some(window(&col, start, p.output_context_len));
    }
    Ok((
        CciOutput {
            cti_idx: sel.idx,
            cti_token: sel.token.clone(),
            cti_score: f64::from(sel.score),
            contextual_output,
            contrast_token,
            contextless_output,
            input_context_scores: input_scores,
            output_context_scores: output_scores,
        },
        agg,
    ))
}

/// `col[start..start + len]`, clipped (Python slicing).
fn window(col: &[f64], start: usize, len: usize) -> Vec<f64> {
    col.iter().skip(start).take(len).copied().collect()
}

/// Inseq's `get_contextless_output`: the contextless output up to the selected position, its
/// last token forced from `--contextless-output-next-tokens` or generated by the model.
fn contextless(
    p: &Prepared<'_>,
    ctxless_input: &str,
    sel: &Selected,
    n_selected: usize,
) -> Result<String, ContextError> {
    let texts = &p.texts;
    let enc_dec = texts.encoder_decoder();
    let s = &p.v.s;
    let prefix_tokens = p
        .output_current_tokens
        .get(..sel.idx)
        .unwrap_or(&p.output_current_tokens);
    let next = &s.contextless_output_next_tokens;
    if !next.is_empty() {
        if next.len() != n_selected {
            return Err(ContextError::bad(format!(
                "--contextless-output-next-tokens has {} tokens but CTI selected {n_selected}: give one per selected token",
                next.len()
            )));
        }
        let forced = texts
            .tokens(&next[sel.rank], enc_dec)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ContextError::bad(format!(
                    "contextless next token '{}' is empty",
                    next[sel.rank]
                ))
            })?;
        let mut toks = prefix_tokens.to_vec();
        toks.push(forced);
        let out = texts.to_string(&toks, false, true)?;
        // Inseq leaves the contextless input out of a decoder-only contrast here (but not when
        // the token is generated); rinseq keeps it in both cases.
        return Ok(if enc_dec {
            out
        } else {
            concat_with_sep(ctxless_input, &out, &s.decoder_input_output_separator)
        });
    }
    let prefix = texts.to_string(prefix_tokens, false, true)?;
    let mut params = p.generation.clone();
    if enc_dec {
        // One more token for the EOS that encoder-decoder generation forces at the end.
        params.max_new_tokens = Some(2);
        let mut ids = texts.tokenizer(true).encode(&prefix, true)?;
        if ids
            .last()
            .is_some_and(|l| texts.tokenizer(true).special.eos.contains(l))
        {
            ids.pop();
        }
        generate_text(p.loaded, texts, ctxless_input, &ids, &params, false)
    } else {
        params.max_new_tokens = Some(1);
        let input = concat_with_sep(ctxless_input, &prefix, &s.decoder_input_output_separator);
        generate_text(p.loaded, texts, &input, &[], &params, false)
    }
}
