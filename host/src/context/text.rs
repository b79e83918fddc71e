//! Inseq's string and token helpers of `attribute-context` (`attribute_context_helpers.py`):
//! templates, separators, tokens with special tokens filtered out, tokens back to text.

use super::ContextError;
use crate::models::load::LoadedModel;
use crate::models::tokenizer::TextTokenizer;
use crate::models::ModelKind;

/// A token string and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    /// The token as the tokenizer spells it (`Ġcapital`, `▁Où`).
    pub text: String,
    /// Its vocabulary id.
    pub id: u32,
}

/// Inseq's `concat_with_sep`: `s1 + sep + s2`, without doubling a separator already there.
pub fn concat_with_sep(s1: &str, s2: &str, sep: &str) -> String {
    if !s1.ends_with(sep) && !s2.starts_with(sep) {
        format!("{s1}{sep}{s2}")
    } else {
        format!("{s1}{s2}")
    }
}

/// Inseq's `format_template`: fills `{current}` and `{context}` (a missing context leaves
/// `{context}` in place, where Python's `format` would raise; templates are checked before).
pub fn format_template(template: &str, current: &str, context: Option<&str>) -> String {
    // One pass, so that a `{context}` inside the current text is not filled again.
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(r) = tail.strip_prefix("{current}") {
            out.push_str(current);
            rest = r;
        } else if let (Some(r), Some(c)) = (tail.strip_prefix("{context}"), context) {
            out.push_str(c);
            rest = r;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The token helpers of one model.
pub struct Texts<'a> {
    loaded: &'a LoadedModel,
    keep: &'a [String],
}

impl<'a> Texts<'a> {
    /// Helpers over `loaded`, keeping the special tokens named in `keep`.
    pub fn new(loaded: &'a LoadedModel, keep: &'a [String]) -> Self {
        Self { loaded, keep }
    }

    /// Whether the model is an encoder-decoder.
    pub fn encoder_decoder(&self) -> bool {
        self.loaded.spec.kind == ModelKind::EncoderDecoder
    }

    /// The tokenizer of a side: targets of encoder-decoder models use the target tokenizer.
    pub fn tokenizer(&self, is_target: bool) -> &'a TextTokenizer {
        match (
            &self.loaded.target_tokenizer,
            is_target && self.encoder_decoder(),
        ) {
            (Some(t), true) => t,
            _ => &self.loaded.tokenizer,
        }
    }

    /// Inseq's `convert_string_to_tokens(text, skip_special_tokens=False, as_targets)`: the
    /// tokens of `text`, special tokens added by the tokenizer included.
    pub fn tokens(&self, text: &str, is_target: bool) -> Result<Vec<Tok>, ContextError> {
        let tok = self.tokenizer(is_target);
        let ids = tok.encode(text, true)?;
        Ok(self.named(is_target, &ids))
    }

    /// `ids` with their vocabulary names. The SentencePiece (Marian) tokenizers name a piece
    /// of the other side's model with a leading space so that it never matches: the vocabulary
    /// name is the one without it (SentencePiece pieces never hold a space).
    pub fn named(&self, is_target: bool, ids: &[u32]) -> Vec<Tok> {
        let spm = self.loaded.target_tokenizer.is_some();
        self.tokenizer(is_target)
            .tokens(ids)
            .into_iter()
            .zip(ids)
            .map(|(text, &id)| Tok {
                text: match text.strip_prefix(' ') {
                    Some(t) if spm => t.to_string(),
                    _ => text,
                },
                id,
            })
            .collect()
    }

    /// Whether `t` is a special token not named in `--special-tokens-to-keep`.
    pub fn is_dropped_special(&self, t: &Tok) -> bool {
        let special = self.loaded.tokenizer.special_ids().contains(&t.id)
            || self
                .loaded
                .target_tokenizer
                .as_ref()
                .is_some_and(|tt| tt.special_ids().contains(&t.id));
        special && !self.keep.contains(&t.text)
    }

    /// Inseq's `get_filtered_tokens`: the tokens of `text` without special tokens (but those
    /// in `--special-tokens-to-keep`).
    pub fn filtered(&self, text: &str, is_target: bool) -> Result<Vec<Tok>, ContextError> {
        Ok(self
            .tokens(text, is_target)?
            .into_iter()
            .filter(|t| !self.is_dropped_special(t))
            .collect())
    }

    /// Inseq's `convert_tokens_to_string`: the text of `tokens`. Byte-level BPE: decoded by id.
    /// SentencePiece (Marian): the pieces joined, `▁` as spaces, a special token followed by a
    /// space, the whole stripped (`MarianTokenizer.convert_tokens_to_string`), which also
    /// spells pieces that only the other side's model has.
    pub fn to_string(
        &self,
        tokens: &[Tok],
        skip_special: bool,
        is_target: bool,
    ) -> Result<String, ContextError> {
        let kept: Vec<&Tok> = tokens
            .iter()
            .filter(|t| !(skip_special && self.is_dropped_special(t)))
            .collect();
        if self.loaded.target_tokenizer.is_none() {
            let ids: Vec<u32> = kept.iter().map(|t| t.id).collect();
            return Ok(self.tokenizer(is_target).decode(&ids, false)?);
        }
        let mut out = String::new();
        let mut run = String::new();
        let pieces = |run: &mut String| {
            std::mem::take(run)
                .replace('▁', " ")
                .trim_start()
                .to_string()
        };
        for t in kept {
            if self.is_dropped_special(t) || self.keep.contains(&t.text) {
                out.push_str(&pieces(&mut run));
                out.push_str(&t.text);
                out.push(' ');
            } else {
                run.push_str(&t.text);
            }
        }
        out.push_str(&pieces(&mut run));
        Ok(out.trim().to_string())
    }

    /// Inseq's `generate_with_special_tokens` post-processing: decoded text re-tokenized,
    /// special tokens dropped (but the kept ones), tokens back to text.
    pub fn without_specials(&self, text: &str) -> Result<String, ContextError> {
        let toks = self.filtered(text, true)?;
        self.to_string(&toks, false, true)
    }

    /// The model's BOS id.
    pub fn bos(&self) -> Option<u32> {
        self.loaded.tokenizer.special.bos
    }

    /// The model's padding token (appended by Inseq to one-token encoder-decoder outputs).
    pub fn pad(&self) -> Option<Tok> {
        let id = self.tokenizer(true).special.pad?;
        self.named(true, &[id]).pop()
    }

    /// Inseq's display form of a token (`replace_special_characters=True`).
    pub fn display(token: &str) -> String {
        token.replace(['Ġ', '▁'], " ").replace('Ċ', "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_not_doubled() {
        assert_eq!(concat_with_sep("a", "b", " "), "a b");
        assert_eq!(concat_with_sep("a ", "b", " "), "a b");
        assert_eq!(concat_with_sep("a", " b", " "), "a b");
        assert_eq!(concat_with_sep("a\n", "", "\n"), "a\n");
    }

    #[test]
    fn templates_fill_once() {
        assert_eq!(
            format_template("{context} {current}", "x", Some("y")),
            "y x"
        );
        assert_eq!(
            format_template("{current}", "{context}", Some("y")),
            "{context}"
        );
        assert_eq!(format_template("<{a}> {current}", "x", None), "<{a}> x");
    }
}
