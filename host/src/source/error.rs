//! [`SourceError`]: why a `--model` string could not be turned into local files (one line each,
//! naming the thing and the fix).

use std::path::PathBuf;

/// Errors of model resolution.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path that does not exist.
    #[error("model path {0} does not exist (pass an existing HF-format folder, a .gguf file, a hub id such as org/name, or an alias such as smollm2-135m)")]
    PathNotFound(PathBuf),
    /// A folder that is not an HF-format model folder.
    #[error("model folder {0} has no config.json (expected an HF-format folder with config.json, model.safetensors and tokenizer files, or pass a .gguf file)")]
    NoConfig(PathBuf),
    /// A file that is not a GGUF file.
    #[error("model file {0} is not a .gguf file (pass a .gguf file or an HF-format folder)")]
    NotGguf(PathBuf),
    /// The string is neither a path, an alias nor a hub id.
    #[error("invalid model '{0}': expected a local path, a hub id such as org/name[@revision], or an alias ({1})")]
    Invalid(String, String),
    /// The hub cannot be reached and the model is not in the cache.
    #[error("cannot reach the Hugging Face hub at {endpoint} to download {repo} and it is not in the cache {cache} ({reason}); check the network or HF_ENDPOINT, or pass a local folder")]
    HubUnreachable {
        /// The repo id.
        repo: String,
        /// The hub endpoint.
        endpoint: String,
        /// The cache folder searched.
        cache: PathBuf,
        /// The transport error.
        reason: String,
    },
    /// Offline mode and the model is not (completely) cached.
    #[error("offline mode (HF_HUB_OFFLINE=1) and {repo} is not in the cache {cache} (missing {missing}); unset HF_HUB_OFFLINE to download it, or pass a local folder")]
    OfflineNotCached {
        /// The repo id.
        repo: String,
        /// The cache folder searched.
        cache: PathBuf,
        /// The first missing file.
        missing: String,
    },
    /// The hub answered with an HTTP error (404 not found, 401 gated...).
    #[error("the hub at {endpoint} answered {status} for {what}{hint}")]
    HubStatus {
        /// The hub endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What was requested.
        what: String,
        /// A fix, starting with "; ".
        hint: &'static str,
    },
    /// The hub repo lacks a file the model needs.
    #[error("hub repo {repo} has no {what}; rinseq needs config.json and safetensors weights (model.safetensors or model.safetensors.index.json)")]
    MissingInRepo {
        /// The repo id.
        repo: String,
        /// The missing file(s).
        what: String,
    },
    /// Another hub / cache failure (I/O, bad headers...).
    #[error("hub download of {repo} failed: {reason}")]
    Hub {
        /// The repo id.
        repo: String,
        /// What went wrong.
        reason: String,
    },
    /// The alias model could not be obtained.
    #[error("cannot obtain model alias '{alias}': {reason}; set {env} to an existing copy, or pass a local .gguf file")]
    AliasFailed {
        /// The alias.
        alias: String,
        /// What went wrong.
        reason: String,
        /// The env var that points at a copy.
        env: &'static str,
    },
}
