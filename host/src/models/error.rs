//! The error type for loading models and feeding them inputs they cannot take.
//!
//! Every message is one line that names the thing (file, tensor, field) and says how to fix it.

use std::path::PathBuf;

/// What can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is neither an HF model folder nor a GGUF file.
    #[error("{path} is not a model: expected a folder with config.json (Hugging Face layout) or a .gguf file")]
    NotAModel {
        /// The path given.
        path: PathBuf,
    },
    /// An HF folder without `config.json`.
    #[error("no config.json in {dir}: download the full model folder (config.json, weights, tokenizer.json)")]
    MissingConfig {
        /// The folder.
        dir: PathBuf,
    },
    /// `config.json` (or another JSON file) is malformed or has a bad field.
    #[error("invalid {path}: {msg}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `config.json` has no `model_type`.
    #[error("{path} has no \"model_type\" field: add the Hugging Face model type (e.g. \"llama\", \"gpt2\")")]
    NoModelType {
        /// The config file.
        path: PathBuf,
    },
    /// No architecture is registered under this `model_type`.
    #[error("unsupported model_type \"{model_type}\": supported types are {supported}")]
    UnknownModelType {
        /// The type asked for.
        model_type: String,
        /// Comma-separated list of the registered types.
        supported: String,
    },
    /// An HF folder without safetensors weights.
    #[error(
        "no weights in {dir}: expected model.safetensors or model.safetensors.index.json{hint}"
    )]
    MissingWeights {
        /// The folder.
        dir: PathBuf,
        /// Extra advice (e.g. about `pytorch_model.bin`).
        hint: String,
    },
    /// A weight file exists but cannot be parsed (truncated download, wrong format).
    #[error("corrupt or truncated weight file {path}: {msg}; download it again")]
    BadWeights {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        msg: String,
    },
    /// A tensor the architecture needs is not in the weights.
    #[error("weight tensor \"{name}\" not found in {source_desc}: the checkpoint does not match its model_type/config")]
    MissingTensor {
        /// HF tensor name.
        name: String,
        /// The weight source (file path).
        source_desc: String,
    },
    /// A tensor has the wrong shape for the config.
    #[error("weight tensor \"{name}\" has shape {got:?}, expected {expected:?} from config.json")]
    TensorShape {
        /// HF tensor name.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        got: Vec<usize>,
    },
    /// No tokenizer next to the model.
    #[error("no tokenizer in {dir}: expected tokenizer.json (save the tokenizer with a fast HF tokenizer: tokenizer.save_pretrained)")]
    MissingTokenizer {
        /// The folder.
        dir: PathBuf,
    },
    /// The tokenizer file or GGUF tokenizer metadata is unusable.
    #[error("invalid tokenizer {path}: {msg}")]
    BadTokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A GGUF file that cannot be read or mapped.
    #[error("cannot load GGUF file {path}: {msg}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A dtype the runtime cannot compute in.
    #[error("dtype {dtype} is not supported here: {msg}")]
    UnsupportedDtype {
        /// The dtype asked for.
        dtype: String,
        /// Why, and what to use instead.
        msg: String,
    },
    /// An input longer than the model's context.
    #[error("input of {len} tokens is longer than the model's context of {max} positions: shorten the text")]
    TooLong {
        /// Tokens given.
        len: usize,
        /// The model's `max_positions`.
        max: usize,
    },
    /// An input the model cannot take (e.g. encoder input for a decoder-only model).
    #[error("invalid model input: {0}")]
    BadInput(String),
    /// A tensor operation failed while building the model.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    /// Wraps the error into a candle error (for the [`super::Model`] methods, which return
    /// candle results); its message is kept.
    pub fn into_candle(self) -> candle_core::Error {
        candle_core::Error::wrap(self)
    }
}
