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
//! Known difference from HF: a run of characters that this side's `.spm` does not know is one
//! unknown piece for SentencePiece, looked up in `vocab.json` as a whole; here a *single* such
//! character that `vocab.json` has (from the other side) is matched on its own, so a run mixing
//! it with other unknown characters gives several ids instead of one `<unk>`. (HF's
//! MosesPunctNormalizer is set up by MarianTokenizer but never called, so it is not needed.)

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sentencepiece_model::{SentencePieceModel, Type};
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

/// Score of vocabulary entries that must never win a segmentation.
const NEVER: f64 = -1e9;

/// Whether `t` is a multilingual target-language code such as `>>fra<<`.
fn is_lang_code(t: &str) -> bool {
    t.starts_with(">>") && t.ends_with("<<") && t.len() > 4
}

/// The Unigram model of one side, indexed by Marian id.
///
/// - Pieces of this `.spm` keep their scores; special tokens and language codes are kept (they
///   are split off as added tokens before the model sees the text).
/// - Tokens made only of characters this `.spm` does not know keep their name with a score that
///   never wins: SentencePiece emits such a run as one `<unk>` piece whose *surface* Marian looks
///   up in `vocab.json`; here the run is fused into one unknown token and `tokenizers` looks its
///   surface up too. (A single such character is matched directly, so it is not fused with an
///   unknown neighbour: the one case that can differ from HF.)
/// - Any other token (a piece of the other side) gets an unmatchable name (leading space).
///
/// `min_score` is reset to the lowest normal piece score, so that the unknown-token penalty is
/// SentencePiece's (`min - 10`).
fn unigram(
    spm: &SentencePieceModel,
    vocab: &Vocab,
    o: &Options,
) -> std::result::Result<Unigram, Box<dyn std::error::Error + Send + Sync>> {
    let pieces = || {
        let keep = |p: &&sentencepiece_model::SentencePiece| {
            matches!(p.r#type(), Type::Normal | Type::UserDefined)
        };
        spm.pieces().iter().filter(keep)
    };
    let scores: HashMap<&str, f64> = pieces().map(|p| (p.piece(), p.score() as f64)).collect();
    let known: HashSet<char> = pieces().flat_map(|p| p.piece().chars()).collect();
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
                None if t.chars().all(|c| !known.contains(&c)) => (t.clone(), NEVER),
                None => (format!(" {t}"), NEVER),
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

/// Builds one side's tokenizer from its spm model and the Marian vocabulary.
fn side(spm_path: &Path, vocab: &Vocab, o: &Options) -> Result<Tokenizer> {
    let spm = read_spm(spm_path)?;
    let model = unigram(&spm, vocab, o).map_err(tk_err(spm_path))?;
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
        .with_decoder(Some(DecoderWrapper::Metaspace(meta)));
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
