//! Marian (opus-mt) tokenizers from `source.spm` / `target.spm` + `vocab.json`, as
//! `tokenizers::Tokenizer`s that give the ids of HF `MarianTokenizer`.
//!
//! opus-mt folders have no `tokenizer.json`: HF runs the SentencePiece library on each side's model
//! and maps every piece through `vocab.json` (unknown pieces become `<unk>`), then appends `</s>`.
//! We rebuild that as a Unigram model whose ids *are* the Marian ids (see `unigram` for how
//! the pieces of the other side are kept out of the segmentation), with the spm model's
//! normalisation: its precompiled charsmap (`nmt_nfkc`), whitespace stripping/collapsing, and the
//! `▁` dummy prefix (Metaspace). Special tokens and `>>lang<<` codes are added tokens.
//!
//! Characters this side's `.spm` has no piece for: SentencePiece gives each one an unknown
//! lattice node and merges consecutive ones into a single piece (its string is the run itself),
//! which MarianTokenizer looks up in `vocab.json` (`<unk>` when absent). `vocab.json` can hold
//! such a run as a token from the other side (the target side's `y` when only `source.spm` has
//! it), so a run that is exactly such a token keeps its id and any other run becomes one
//! `<unk>` (see [`UnknownRuns`]). (HF's MosesPunctNormalizer is set up by MarianTokenizer but
//! never called, so it is not needed.)
//!
//! Known differences from HF: a piece of this `.spm` that `vocab.json` lacks is left out of the
//! segmentation (SentencePiece would choose it and Marian map it to `<unk>`; a `Unigram` cannot
//! give one name a score and another name's id); user-defined pieces keep their spm score
//! (SentencePiece boosts them); byte fallback is not supported (opus-mt models do not use it).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sentencepiece_model::{SentencePieceModel, Type};
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::tokenizer::{SpecialTokens, TextTokenizer};
use super::ModelError;

type Result<T> = std::result::Result<T, ModelError>;

/// The two tokenizers of a Marian model: the source side encodes with `source.spm`, the target
/// side (HF `text_target=`, and decoding) with `target.spm`.
#[derive(Debug, Clone)]
pub struct MarianTokenizers {
    /// Encodes source texts (`</s>` appended).
    pub source: Tokenizer,
    /// Encodes target texts (`</s>` appended) and decodes generated ids.
    pub target: Tokenizer,
}

/// Special tokens and options from `tokenizer_config.json` (HF `MarianTokenizer` defaults).
#[derive(Debug, Clone)]
struct Options {
    eos: String,
    unk: String,
    pad: String,
    separate_vocabs: bool,
}

impl Options {
    fn read(dir: &Path) -> Result<Self> {
        let mut o = Options {
            eos: "</s>".into(),
            unk: "<unk>".into(),
            pad: "<pad>".into(),
            separate_vocabs: false,
        };
        let path = dir.join("tokenizer_config.json");
        if !path.exists() {
            return Ok(o);
        }
        let v: serde_json::Value = read_json(&path)?;
        let token = |key: &str| match v.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(obj) => obj
                .get("content")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            None => None,
        };
        if let Some(t) = token("eos_token") {
            o.eos = t;
        }
        if let Some(t) = token("unk_token") {
            o.unk = t;
        }
        if let Some(t) = token("pad_token") {
            o.pad = t;
        }
        o.separate_vocabs = v
            .get("separate_vocabs")
            .and_then(|b| b.as_bool())
            .unwrap_or(false);
        Ok(o)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// A `vocab.json`: token -> Marian id, plus the inverse as a dense list.
struct Vocab {
    path: PathBuf,
    ids: HashMap<String, u32>,
    tokens: Vec<Option<String>>,
}

impl Vocab {
    fn read(path: &Path) -> Result<Self> {
        let ids: HashMap<String, u32> = read_json(path)?;
        let n = ids.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![None; n];
        for (t, &i) in &ids {
            tokens[i as usize] = Some(t.clone());
        }
        Ok(Self {
            path: path.to_path_buf(),
            ids,
            tokens,
        })
    }

    fn id(&self, token: &str) -> Result<u32> {
        self.ids
            .get(token)
            .copied()
            .ok_or_else(|| ModelError::BadTokenizer {
                path: self.path.clone(),
                msg: format!("no `{token}` token"),
            })
    }
}

fn read_spm(path: &Path) -> Result<SentencePieceModel> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    SentencePieceModel::from_slice(bytes).map_err(|e| ModelError::BadTokenizer {
        path: path.to_path_buf(),
        msg: format!("not a SentencePiece model: {e}"),
    })
}

/// The pieces SentencePiece's lattice matches (its trie also holds unused pieces, but skips
/// them; control pieces are not in it).
fn lattice_pieces(
    spm: &SentencePieceModel,
) -> impl Iterator<Item = &sentencepiece_model::SentencePiece> {
    (spm.pieces().iter()).filter(|p| matches!(p.r#type(), Type::Normal | Type::UserDefined))
}

/// Runs of characters one side's `.spm` has no piece for, and how they are tokenized.
///
/// SentencePiece merges a run of unknown characters into one piece that Marian looks up in
/// `vocab.json`. A `Unigram` that can match a token of `vocab.json` made of such characters
/// (it must, so that a run equal to it gets its id) would also match it inside a longer run. So
/// the normalizer replaces every maximal run that is not exactly such a token with one
/// `marker`, a character no token contains: the `Unigram` makes it one `<unk>`.
struct UnknownRuns {
    /// Characters of the `.spm`'s lattice pieces (the `▁` included).
    known: HashSet<char>,
    /// `vocab.json` tokens (not special, not language codes) made only of unknown characters.
    tokens: HashSet<String>,
    /// Stands for a run that `vocab.json` does not have.
    marker: char,
}

impl UnknownRuns {
    fn new(spm: &SentencePieceModel, vocab: &Vocab, o: &Options) -> Option<Self> {
        let known: HashSet<char> = lattice_pieces(spm)
            .flat_map(|p| p.piece().chars())
            .collect();
        // A space becomes `▁` in the pre-tokenizer: it is never part of a run.
        let unknown = |c: char| c != ' ' && !known.contains(&c);
        let specials = [&o.eos, &o.unk, &o.pad];
        let tokens: HashSet<String> = (vocab.tokens.iter().flatten())
            .filter(|t| !specials.contains(t) && !is_lang_code(t))
            .filter(|t| !t.is_empty() && t.chars().all(unknown))
            .cloned()
            .collect();
        let in_vocab: HashSet<char> = vocab.ids.keys().flat_map(|t| t.chars()).collect();
        // Private-use planes: never in a real vocabulary, but any free unknown character works.
        let marker = ('\u{E000}'..='\u{F8FF}')
            .chain('\u{F0000}'..='\u{FFFFD}')
            .find(|&c| unknown(c) && !in_vocab.contains(&c))?;
        Some(Self {
            known,
            tokens,
            marker,
        })
    }

    /// The normalizer that replaces each maximal unknown run which is not exactly one of
    /// `tokens` by `marker`; `None` when there are no such tokens, as every run is then one
    /// `<unk>` already (its fused surface is in no name of the `Unigram`).
    fn normalizer(&self) -> std::result::Result<Option<Replace>, String> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let hex = |c: char| format!("\\x{{{:X}}}", c as u32);
        // The class of unknown characters: not a known one, not a space.
        let mut chars: Vec<char> = self.known.iter().copied().chain([' ']).collect();
        chars.sort_unstable();
        let mut class = String::from("[^");
        let mut i = 0;
        while i < chars.len() {
            let mut j = i;
            while j + 1 < chars.len() && chars[j + 1] as u32 == chars[j] as u32 + 1 {
                j += 1;
            }
            class.push_str(&hex(chars[i]));
            if j > i {
                class.push('-');
                class.push_str(&hex(chars[j]));
            }
            i = j + 1;
        }
        class.push(']');
        // Longest first: the first alternative that matches at a run start is then the whole
        // run whenever the run is a token, so the lookahead needs no backtracking.
        let mut tokens: Vec<&String> = self.tokens.iter().collect();
        tokens.sort_by(|a, b| (b.chars().count(), b).cmp(&(a.chars().count(), a)));
        let alternatives: Vec<String> = (tokens.iter())
            .map(|t| t.chars().map(hex).collect::<String>())
            .collect();
        let pattern = format!(
            "(?<!{class})(?!(?:{})(?!{class})){class}+",
            alternatives.join("|")
        );
        let pattern = tokenizers::normalizers::replace::ReplacePattern::Regex(pattern);
        Replace::new(pattern, self.marker.to_string())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Score of vocabulary entries that must never win a segmentation: any path through one is
/// worse than the path of this `.spm`'s pieces and unknown nodes, which always exists.
const NEVER: f64 = -1e9;

/// Score of a `vocab.json` token made only of unknown characters: it wins over its own
/// sub-tokens, and loses (unless a word holds a thousand unknown runs) to any path through a
/// [`NEVER`] token, such as another side's `▁k` around the run `k`.
const RUN: f64 = -1e6;

/// Whether `t` is a multilingual target-language code such as `>>fra<<`.
fn is_lang_code(t: &str) -> bool {
    t.starts_with(">>") && t.ends_with("<<") && t.len() > 4
}

/// The Unigram model of one side, indexed by Marian id.
///
/// - Pieces of this `.spm` keep their scores; special tokens and language codes are kept (they
///   are split off as added tokens before the model sees the text).
/// - Tokens made only of characters this `.spm` does not know score [`RUN`]: they match only a
///   whole run of unknown characters, which [`UnknownRuns`] leaves in the text only when it is
///   exactly such a token (SentencePiece's merged unknown piece, looked up in `vocab.json`).
/// - Other tokens (pieces of the other side) score [`NEVER`], under their own name so that
///   `id_to_token` and decoding give it (a generation may hold them). A single character stays
///   unmatchable (leading space): a known character without a piece of its own must still be
///   an unknown node, as in SentencePiece.
///
/// `min_score` is reset to the lowest normal piece score, so that the unknown-token penalty is
/// SentencePiece's (`min - 10`). Consecutive unknown nodes are fused (the `Unigram` default).
fn unigram(
    spm: &SentencePieceModel,
    vocab: &Vocab,
    o: &Options,
    runs: &UnknownRuns,
) -> std::result::Result<Unigram, Box<dyn std::error::Error + Send + Sync>> {
    let scores: HashMap<&str, f64> = (lattice_pieces(spm))
        .map(|p| (p.piece(), p.score() as f64))
        .collect();
    let min = (spm.pieces().iter())
        .filter(|p| p.r#type() == Type::Normal)
        .map(|p| p.score() as f64)
        .fold(f64::INFINITY, f64::min);
    let min = if min.is_finite() { min } else { 0.0 };
    let specials = [&o.eos, &o.unk, &o.pad];
    let entries: Vec<(String, f64)> = (vocab.tokens.iter().enumerate())
        .map(|(i, t)| match t {
            Some(t) if specials.contains(&t) => (t.clone(), 0.0),
            Some(t) if is_lang_code(t) => (t.clone(), NEVER),
            Some(t) => match scores.get(t.as_str()) {
                Some(&s) => (t.clone(), s),
                None if runs.tokens.contains(t) => (t.clone(), RUN),
                None if t.chars().nth(1).is_none() => (format!(" {t}"), NEVER),
                None => (t.clone(), NEVER),
            },
            None => (format!(" <unused {i}>"), NEVER),
        })
        .collect();
    let unk = vocab.id(&o.unk)? as usize;
    let mut model = Unigram::from(entries, Some(unk), false)?;
    model.min_score = min;
    Ok(model)
}

/// Maps a `tokenizers` error to [`ModelError::BadTokenizer`] about `path`.
fn tk_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ModelError + '_ {
    move |e| ModelError::BadTokenizer {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// MarianTokenizer's decoding: the pieces joined with `▁` as a space, then Python's `strip()`
/// (which matters when a skipped `<unk>` or `</s>` leaves a space at either end).
fn decoder(meta: Metaspace) -> std::result::Result<DecoderWrapper, String> {
    let pattern = tokenizers::normalizers::replace::ReplacePattern::Regex(r"^\s+|\s+$".into());
    let strip = Replace::new(pattern, "").map_err(|e| e.to_string())?;
    Ok(DecoderSequence::new(vec![
        DecoderWrapper::Metaspace(meta),
        DecoderWrapper::Fuse(Fuse::new()),
        DecoderWrapper::Replace(strip),
    ])
    .into())
}

/// Builds one side's tokenizer from its spm model and the Marian vocabulary.
fn side(spm_path: &Path, vocab: &Vocab, o: &Options) -> Result<Tokenizer> {
    let spm = read_spm(spm_path)?;
    let runs = UnknownRuns::new(&spm, vocab, o).ok_or_else(|| ModelError::BadTokenizer {
        path: spm_path.to_path_buf(),
        msg: "no private-use character is free to stand for unknown runs".into(),
    })?;
    let model = unigram(&spm, vocab, o, &runs).map_err(tk_err(spm_path))?;
    let eos = vocab.id(&o.eos)?;

    let norm = spm.normalizer();
    let charsmap = norm.map(|n| n.precompiled_charsmap()).unwrap_or_default();
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !charsmap.is_empty() {
        normalizers.push(
            Precompiled::from(charsmap)
                .map_err(tk_err(spm_path))?
                .into(),
        );
    }
    if norm.is_none_or(|n| n.remove_extra_whitespaces()) {
        normalizers.push(Strip::new(true, true).into());
        let collapse = Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()),
            " ",
        )
        .map_err(tk_err(spm_path))?;
        normalizers.push(collapse.into());
    }
    // After the whitespace handling, on the text the lattice sees (but for the `▁`s).
    if let Some(runs) = runs.normalizer().map_err(tk_err(spm_path))? {
        normalizers.push(runs.into());
    }
    let prepend = match norm.is_none_or(|n| n.add_dummy_prefix()) {
        true => PrependScheme::Always,
        false => PrependScheme::Never,
    };
    let meta = Metaspace::new('▁', prepend, true);
    let post = TemplateProcessing::builder()
        .try_single(format!("$A {}", o.eos))
        .and_then(|b| b.try_pair(format!("$A $B {}", o.eos)))
        .map_err(tk_err(spm_path))?
        .special_tokens(vec![(o.eos.clone(), eos)])
        .build()
        .map_err(tk_err(spm_path))?;

    let mut tk = Tokenizer::new(model);
    tk.with_normalizer(Some(Sequence::new(normalizers)))
        .map_err(tk_err(spm_path))?
        .with_pre_tokenizer(Some(meta.clone()))
        .with_post_processor(Some(post))
        .with_decoder(Some(decoder(meta).map_err(tk_err(spm_path))?));
    let special: Vec<AddedToken> = [&o.eos, &o.unk, &o.pad]
        .iter()
        .map(|t| AddedToken::from(t.as_str(), true))
        .collect();
    tk.add_special_tokens(special).map_err(tk_err(spm_path))?;
    let codes: Vec<AddedToken> = (vocab.tokens.iter().flatten())
        .filter(|t| is_lang_code(t))
        .map(|t| AddedToken::from(t.as_str(), false).normalized(false))
        .collect();
    if !codes.is_empty() {
        tk.add_tokens(codes).map_err(tk_err(spm_path))?;
    }
    Ok(tk)
}

/// Whether `dir` looks like a Marian tokenizer folder (`source.spm` + `vocab.json`).
pub fn is_marian_folder(dir: &Path) -> bool {
    dir.join("source.spm").is_file() && dir.join("vocab.json").is_file()
}

/// Builds both Marian tokenizers from an opus-mt folder (`source.spm`, `target.spm`,
/// `vocab.json`, optional `target_vocab.json` and `tokenizer_config.json`).
pub fn load_marian(dir: &Path) -> Result<MarianTokenizers> {
    let o = Options::read(dir)?;
    let src_vocab = Vocab::read(&dir.join("vocab.json"))?;
    let tgt_path = dir.join("target_vocab.json");
    let tgt_vocab = match o.separate_vocabs && tgt_path.is_file() {
        true => Some(Vocab::read(&tgt_path)?),
        false => None,
    };
    let src_spm = dir.join("source.spm");
    let tgt_spm = match dir.join("target.spm") {
        p if p.is_file() => p,
        _ => src_spm.clone(),
    };
    Ok(MarianTokenizers {
        source: side(&src_spm, &src_vocab, &o)?,
        target: side(&tgt_spm, tgt_vocab.as_ref().unwrap_or(&src_vocab), &o)?,
    })
}

/// Both Marian tokenizers as [`TextTokenizer`]s `(source, target)`, with the special ids of
/// `config.json` / `generation_config.json` (unk from the vocabulary, pad as decoder start).
pub fn load_marian_text(dir: &Path) -> Result<(TextTokenizer, TextTokenizer)> {
    let tks = load_marian(dir)?;
    let read = |name: &str| -> Result<serde_json::Value> {
        let p = dir.join(name);
        match p.is_file() {
            true => read_json(&p),
            false => Ok(serde_json::Value::Null),
        }
    };
    let mut special = SpecialTokens::from_config(&read("config.json")?);
    let gen = SpecialTokens::from_config(&read("generation_config.json")?);
    if !gen.eos.is_empty() {
        special.eos = gen.eos;
    }
    special.pad = special.pad.or(gen.pad);
    special.decoder_start = special.decoder_start.or(gen.decoder_start).or(special.pad);
    let o = Options::read(dir)?;
    if special.eos.is_empty() {
        special.eos.extend(tks.source.token_to_id(&o.eos));
    }
    special.pad = special.pad.or(tks.source.token_to_id(&o.pad));
    special.unk = tks.source.token_to_id(&o.unk).or(special.pad);
    let wrap = |inner: Tokenizer| TextTokenizer {
        inner,
        special: special.clone(),
    };
    Ok((wrap(tks.source), wrap(tks.target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{NormalizedString, Normalizer};

    /// Runs over `known = {a, ▁}` with the tokens `k`, `kw` and `wk` of another side.
    fn replaced(text: &str) -> String {
        let runs = UnknownRuns {
            known: ['a', '▁'].into_iter().collect(),
            tokens: ["k", "kw", "wk"].map(String::from).into_iter().collect(),
            marker: '\u{E000}',
        };
        let replace = runs.normalizer().unwrap().unwrap();
        let mut n = NormalizedString::from(text);
        replace.normalize(&mut n).unwrap();
        n.get().to_string()
    }

    #[test]
    fn spm_unknown_runs_keep_only_whole_vocab_tokens() {
        // A run that is exactly a token stays, whatever tokens it starts or ends with.
        assert_eq!(replaced("k"), "k");
        assert_eq!(replaced("akwa kw"), "akwa kw");
        assert_eq!(replaced("wk a"), "wk a");
        // Any other run becomes one marker, even when made of tokens.
        assert_eq!(replaced("kk"), "\u{E000}");
        assert_eq!(replaced("akwka"), "a\u{E000}a");
        assert_eq!(replaced("kwk wkw"), "\u{E000} \u{E000}");
        assert_eq!(replaced("aПриветa k 😀"), "a\u{E000}a k \u{E000}");
        assert_eq!(replaced("\u{E000}"), "\u{E000}");
    }
}
