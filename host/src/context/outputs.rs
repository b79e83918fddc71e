//! The outputs to attribute (Inseq's `prepare_outputs`): forced, generated, or generated and
//! split into output context and current output.

use std::io::{BufRead, IsTerminal, Write};

use super::settings::{OutputContextStrategy, Validated};
use super::text::{concat_with_sep, Texts};
use super::ContextError;
use crate::generation::{generate, GenerationInput, GenerationParams};
use crate::models::load::LoadedModel;

/// Generates from `input` (a decoder prompt, or an encoder source with an optional decoder
/// prefix) and returns Inseq's `generate_with_special_tokens` text: decoded with special tokens,
/// re-tokenized, special tokens dropped. `generated_only` leaves the prompt out on decoder-only
/// models (encoder-decoder outputs always hold the whole decoder sequence, as in Inseq).
pub fn generate_text(
    loaded: &LoadedModel,
    texts: &Texts<'_>,
    input: &str,
    decoder_prefix: &[u32],
    params: &GenerationParams,
    generated_only: bool,
) -> Result<String, ContextError> {
    let ids = texts.tokenizer(false).encode(input, true)?;
    let (gen_input, head) = if texts.encoder_decoder() {
        let start = loaded.spec.decoder_start_token_id.ok_or_else(|| {
            ContextError::bad("the model has no decoder_start_token_id: it cannot generate")
        })?;
        let mut head = vec![start];
        head.extend(
            decoder_prefix
                .iter()
                .skip(usize::from(decoder_prefix.first() == Some(&start))),
        );
        let inp = GenerationInput {
            encoder_ids: Some(vec![ids]),
            decoder_ids: vec![decoder_prefix.to_vec()],
        };
        (inp, head)
    } else {
        let head = if generated_only {
            Vec::new()
        } else {
            ids.clone()
        };
        (GenerationInput::decoder_only(vec![ids]), head)
    };
    let new = generate(loaded.model.as_ref(), &gen_input, params)?
        .pop()
        .unwrap_or_default();
    // Inseq decodes with the special tokens and drops them after re-tokenizing the text; the
    // SentencePiece decoders put a space after a special token, so rinseq drops them first.
    let ids = [head, new].concat();
    let all = texts.named(true, &ids);
    let text = texts.to_string(&all, true, true)?;
    texts.without_specials(&text)
}

/// Inseq's `prepare_outputs`: the output context and current output to attribute. Forced texts
/// are used as given; otherwise the model generates from the full input (with the forced output
/// context as a prefix, when there is one), and a generation that holds both an output context
/// and the current output is split as Inseq splits it (the template's separator, else
/// punctuation). `manual` asks for confirmation on a terminal only; without one, and for `auto`
/// without a candidate, it is an error naming `--output-context-text`.
pub fn prepare(
    loaded: &LoadedModel,
    texts: &Texts<'_>,
    v: &Validated,
    input_full_text: &str,
    params: &GenerationParams,
) -> Result<(Option<String>, String), ContextError> {
    let s = &v.s;
    let template = v.output_template.as_str();
    let sep = s.decoder_input_output_separator.as_str();
    let use_ctx = v.has_output_context;
    let has_ctx = s.output_context_text.is_some();
    if has_ctx == use_ctx {
        if let Some(cur) = &s.output_current_text {
            return Ok((s.output_context_text.clone(), cur.clone()));
        }
    }
    let split_on = if use_ctx { "{context}" } else { "{current}" };
    let prefix = template.split(split_on).next().unwrap_or_default();
    let mut cur_split = template.splitn(2, "{current}");
    let current_prefix_template = cur_split.next().unwrap_or_default();
    let suffix = cur_split.next().unwrap_or_default();
    let separator = template
        .split("{context}")
        .nth(1)
        .and_then(|r| r.split("{current}").next())
        .unwrap_or_default();
    let mut model_input = input_full_text.to_string();
    let mut output_prefix = prefix.to_string();
    let mut decoder_prefix = Vec::new();
    if let (Some(ctx), None) = (&s.output_context_text, &s.output_current_text) {
        output_prefix = current_prefix_template.trim().replace("{context}", ctx);
        if texts.encoder_decoder() {
            decoder_prefix = texts.tokenizer(true).encode(&output_prefix, false)?;
        } else {
            model_input = concat_with_sep(input_full_text, &output_prefix, sep);
            // Inseq 0.7.1 then expects the *generated tokens alone* to start with the whole
            // prompt and always fails here; the decoder-only generation has no prefix to strip.
            output_prefix = String::new();
        }
    } else if !texts.encoder_decoder() {
        model_input = concat_with_sep(input_full_text, "", sep);
    }
    let mut gen = generate_text(loaded, texts, &model_input, &decoder_prefix, params, true)?;
    if !output_prefix.is_empty() {
        gen = gen.strip_prefix(output_prefix.as_str()).map(str::to_string).ok_or_else(|| {
            ContextError::bad(format!(
                "the output template '{template}' starts with '{output_prefix}' but the generation '{gen}' does not: fix the template or force --output-current-text"
            ))
        })?;
    }
    if !suffix.is_empty() {
        gen = gen.strip_suffix(suffix).map(str::to_string).ok_or_else(|| {
            ContextError::bad(format!(
                "the output template '{template}' ends with '{suffix}' but the generation '{gen}' does not: fix the template or force --output-current-text"
            ))
        })?;
    }
    if has_ctx == use_ctx {
        return Ok((s.output_context_text.clone(), gen.trim().to_string()));
    }
    // The generation holds the output context and the current output: split them.
    let mut candidate = None;
    let parts: Vec<&str> = gen.split(separator).collect();
    if !separator.is_empty() && parts.len() == 2 && !parts[0].is_empty() {
        candidate = Some(parts[0].to_string());
    }
    if candidate.is_none() {
        let is_punct = |c: char| c.is_whitespace() || ".?!,;:)]}".contains(c);
        let words: Vec<&str> = gen.split(is_punct).filter(|w| !w.is_empty()).collect();
        if words.len() == 2 {
            candidate = Some(words[0].to_string());
        }
    }
    let context = match (candidate, s.handle_output_context_strategy) {
        (Some(c), OutputContextStrategy::Auto) => c,
        (c, _) if std::io::stdin().is_terminal() => ask_context(&gen, c)?,
        (Some(c), _) => {
            return Err(ContextError::bad(format!(
                "the generation '{gen}' holds the output context and the current output; the candidate context '{c}' needs confirmation on a terminal: pass --output-context-text or --handle-output-context-strategy auto"
            )))
        }
        (None, _) => {
            return Err(ContextError::bad(format!(
                "cannot find the output context in the generation '{gen}': pass --output-context-text"
            )))
        }
    };
    let mut template_ctx = current_prefix_template.replace("{context}", &context);
    if context.is_empty() {
        template_ctx = template_ctx.trim().to_string();
    }
    let cut = template_ctx.chars().count().min(gen.chars().count());
    let current: String = gen.chars().skip(cut).collect();
    match &s.output_current_text {
        // Inseq warns that the forced current output is used but returns the generated one;
        // rinseq uses the forced one, as the warning says.
        Some(forced) => Ok((Some(context), forced.clone())),
        None if current.trim().is_empty() => Err(ContextError::bad(format!(
            "the model generated an empty current output after the context '{context}': force an output context with --output-context-text"
        ))),
        None => Ok((Some(context), current.trim().to_string())),
    }
}

/// Inseq's `prompt_user_for_context`, on the terminal.
fn ask_context(output: &str, candidate: Option<String>) -> Result<String, ContextError> {
    let stdin = std::io::stdin();
    let read = |q: &str| -> Result<String, ContextError> {
        eprint!("{q}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| ContextError::bad(format!("cannot read the answer: {e}")))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    loop {
        let mut ctx = None;
        if let Some(c) = &candidate {
            let a = read(&format!(
                "The model generated: \"{output}\"\nIs \"{c}\" the context to attribute? [y/n] "
            ))?;
            if a.trim().eq_ignore_ascii_case("y") {
                ctx = Some(c.clone());
            }
        }
        let ctx = match ctx {
            Some(c) => c,
            None => read("Enter the part of the generated output that is the context: ")?,
        };
        if output.starts_with(&ctx) {
            return Ok(if ctx.trim().is_empty() {
                String::new()
            } else {
                ctx
            });
        }
        eprintln!("The context must be a prefix of the generated output.");
    }
}
