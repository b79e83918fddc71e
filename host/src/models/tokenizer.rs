//! Tokenizers: `tokenizer.json` (HF fast tokenizer) or byte-level BPE rebuilt from GGUF metadata,
//! plus the special token ids gathered from every config file.
//!
//! candle's `TokenizerFromGguf` is not used: for `tokenizer.ggml.pre` values it does not know
//! (e.g. SmolLM2's `smollm`) it adds a prefix space and gives wrong ids.

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::{AddedToken, Tokenizer};

use super::ModelError;

/// Special token ids of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence (generation stops on any of them).
    pub eos: Vec<u32>,
    /// Padding; falls back to the first EOS when nothing sets it (as Inseq does).
    pub pad: Option<u32>,
    /// Unknown token; falls back to the padding id (Inseq's baseline token).
    pub unk: Option<u32>,
    /// First decoder token of encoder-decoder models (`decoder_start_token_id`).
    pub decoder_start: Option<u32>,
    /// Whether encoding with special tokens prepends BOS by itself (GGUF `add_bos_token`;
    /// `tokenizer.json` files do this through their post-processor instead).
    pub add_bos: bool,
}

impl SpecialTokens {
    /// Fills ids missing from `self` with those of `other`.
    fn or(mut self, other: SpecialTokens) -> Self {
        self.bos = self.bos.or(other.bos);
        if self.eos.is_empty() {
            self.eos = other.eos;
        }
        self.pad = self.pad.or(other.pad);
        self.unk = self.unk.or(other.unk);
        self.decoder_start = self.decoder_start.or(other.decoder_start);
        self.add_bos |= other.add_bos;
        self
    }

    /// Applies the fallbacks: pad <- first EOS, unk <- pad.
    fn with_fallbacks(mut self) -> Self {
        self.pad = self.pad.or(self.eos.first().copied());
        self.unk = self.unk.or(self.pad);
        self
    }

    /// Ids from a `config.json` / `generation_config.json` object (`*_token_id` fields; EOS may be
    /// a list).
    pub fn from_config(v: &Value) -> Self {
        let id = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as u32);
        let eos = match v.get("eos_token_id") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            Some(x) => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            None => vec![],
        };
        Self {
            bos: id("bos_token_id"),
            eos,
            pad: id("pad_token_id"),
            unk: None,
            decoder_start: id("decoder_start_token_id"),
            add_bos: false,
        }
    }
}

/// A tokenizer with the model's special ids.
#[derive(Clone)]
pub struct TextTokenizer {
    /// The `tokenizers` tokenizer.
    pub inner: Tokenizer,
    /// Special ids.
    pub special: SpecialTokens,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .field("special", &self.special)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from an HF folder and gathers special ids from `config.json`,
    /// `generation_config.json` and `tokenizer_config.json`. Priority: EOS from
    /// generation_config, then config; BOS/pad from config, then generation_config; then the
    /// tokenizer_config token strings; then the fallbacks of [`SpecialTokens`].
    pub fn from_hf_folder(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingTokenizer {
                dir: dir.to_path_buf(),
            });
        }
        let inner = Tokenizer::from_file(&path).map_err(|e| ModelError::BadTokenizer {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let config = read_json_opt(&dir.join("config.json"))?.unwrap_or(Value::Null);
        let gen = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
        let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let from_cfg = SpecialTokens::from_config(&config);
        let from_gen = SpecialTokens::from_config(&gen);
        let mut first = from_cfg.clone();
        if !from_gen.eos.is_empty() {
            first.eos = from_gen.eos.clone();
        }
        let by_name = |k: &str| {
            let v = tok_cfg.get(k)?;
            let s = v.as_str().or_else(|| v.get("content")?.as_str())?;
            inner.token_to_id(s)
        };
        let from_tok = SpecialTokens {
            bos: by_name("bos_token"),
            eos: by_name("eos_token").into_iter().collect(),
            pad: by_name("pad_token"),
            unk: by_name("unk_token"),
            decoder_start: None,
            add_bos: false,
        };
        let special = first.or(from_gen).or(from_tok).with_fallbacks();
        Ok(Self { inner, special })
    }

    /// Rebuilds a byte-level BPE tokenizer (`tokenizer.ggml.model == "gpt2"`) from GGUF metadata:
    /// tokens + merges, ByteLevel pre-tokenizer without prefix space, control tokens
    /// (`token_type == 3`) as special tokens.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self, ModelError> {
        let bad = |msg: String| ModelError::BadTokenizer {
            path: path.to_path_buf(),
            msg,
        };
        let md = &ct.metadata;
        let get_str = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
        let model = get_str("tokenizer.ggml.model").unwrap_or_default();
        if model != "gpt2" {
            return Err(bad(format!(
                "GGUF tokenizer model \"{model}\" is not supported (only byte-level BPE, \"gpt2\"); use the HF folder with tokenizer.json"
            )));
        }
        let strings = |k: &str| -> Result<Vec<String>, ModelError> {
            let arr = md
                .get(k)
                .ok_or_else(|| bad(format!("no {k} in the metadata")))?
                .to_vec()
                .map_err(|e| bad(format!("{k}: {e}")))?;
            arr.iter()
                .map(|v| v.to_string().cloned().map_err(|e| bad(format!("{k}: {e}"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .filter_map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(
            tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
        ));
        inner.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .map(|x| x.to_i32().map(i64::from).unwrap_or(0))
                .collect(),
            None => vec![],
        };
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, &t)| t == 3)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| bad(e.to_string()))?;
        let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let special = SpecialTokens {
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
            pad: id("tokenizer.ggml.padding_token_id"),
            unk: id("tokenizer.ggml.unknown_token_id"),
            decoder_start: None,
            add_bos: md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
        }
        .with_fallbacks();
        Ok(Self { inner, special })
    }

    /// Token ids of `text`; with `add_special_tokens`, as the HF tokenizer adds them (BOS...).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| ModelError::BadInput(format!("cannot tokenize: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special_tokens && self.special.add_bos {
            if let Some(b) = self.special.bos {
                if ids.first() != Some(&b) {
                    ids.insert(0, b);
                }
            }
        }
        Ok(ids)
    }

    /// Every special id (Inseq's `tokenizer.all_special_ids`): added tokens flagged special,
    /// plus BOS, EOS, padding and unknown.
    pub fn special_ids(&self) -> Vec<u32> {
        let s = &self.special;
        let mut ids: Vec<u32> = (self.inner.get_added_tokens_decoder().into_iter())
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .chain(s.bos)
            .chain(s.eos.iter().copied())
            .chain(s.pad)
            .chain(s.unk)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, ModelError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::BadInput(format!("cannot decode: {e}")))
    }

    /// The token strings of `ids` (raw, e.g. `Ġcapital`).
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| {
                self.inner
                    .id_to_token(i)
                    .unwrap_or_else(|| format!("<{i}>"))
            })
            .collect()
    }
}

/// Reads a JSON file if it exists.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>, ModelError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::BadConfig {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
}
