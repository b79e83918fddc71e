//! Hugging Face hub ids: the files a model needs, downloaded with `hf-hub` into the standard HF
//! cache (`<cache>/models--org--name/snapshots/<commit>/`), or taken from that cache when offline
//! or when the hub cannot be reached.
//!
//! Requests made (all relative to the endpoint): `GET /api/models/{repo}/revision/{rev}` (the file
//! list and commit), then for each file `GET /{repo}/resolve/{rev}/{file}` with a `Range` header
//! (the answer must carry `etag`, `x-repo-commit` and `content-range`).

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::{SourceConfig, SourceError};
use crate::models::load::ModelFiles;

/// Files fetched when the repo has them (besides `config.json` and the weights).
pub const OPTIONAL_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "source.spm",
    "target.spm",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
];

/// Single-file safetensors weights.
pub const WEIGHTS: &str = "model.safetensors";
/// Sharded safetensors index.
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// The cache folder of a model repo: `<cache>/models--org--name`.
pub fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Resolves `repo@revision`: from the cache when offline, else from the hub (falling back on the
/// cache when the hub cannot be reached).
pub fn resolve(repo: &str, revision: &str, cfg: &SourceConfig) -> Result<ModelFiles, SourceError> {
    if cfg.offline {
        return from_cache(repo, revision, &cfg.hub_cache).map_err(|missing| {
            SourceError::OfflineNotCached {
                repo: repo.to_string(),
                cache: cfg.hub_cache.clone(),
                missing,
            }
        });
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(cfg.hub_cache.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_progress(cfg.progress);
    if cfg.token.is_some() {
        builder = builder.with_token(cfg.token.clone());
    }
    let other = |e: ApiError| SourceError::Hub {
        repo: repo.to_string(),
        reason: e.to_string(),
    };
    let api = builder.build().map_err(other)?;
    let api_repo = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let info = match api_repo.info() {
        Ok(info) => info,
        Err(e) => {
            if let Some(reason) = transport_error(&e) {
                return from_cache(repo, revision, &cfg.hub_cache).map_err(|_| {
                    SourceError::HubUnreachable {
                        repo: repo.to_string(),
                        endpoint: cfg.endpoint.clone(),
                        cache: cfg.hub_cache.clone(),
                        reason,
                    }
                });
            }
            return Err(
                status_error(e, cfg, &format!("model {repo}@{revision}")).unwrap_or_else(other)
            );
        }
    };
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let snapshot = repo_dir(&cfg.hub_cache, repo)
        .join("snapshots")
        .join(&info.sha);
    let fetch = |file: &str| -> Result<PathBuf, SourceError> {
        let local = snapshot.join(file);
        if local.is_file() {
            return Ok(local);
        }
        if cfg.progress {
            eprintln!("rinseq: downloading {repo}/{file} from {}", cfg.endpoint);
        }
        download(&api_repo, file)
            .map_err(|e| status_error(e, cfg, &format!("{repo}/{file}")).unwrap_or_else(other))
    };
    let missing = |what: &str| SourceError::MissingInRepo {
        repo: repo.to_string(),
        what: what.to_string(),
    };
    if !names.contains(&"config.json") {
        return Err(missing("config.json"));
    }
    let mut files = vec!["config.json".to_string()];
    if names.contains(&WEIGHTS) {
        files.push(WEIGHTS.to_string());
    } else if names.contains(&WEIGHTS_INDEX) {
        let index = fetch(WEIGHTS_INDEX)?;
        files.push(WEIGHTS_INDEX.to_string());
        files.extend(shards(&index).map_err(|reason| SourceError::Hub {
            repo: repo.to_string(),
            reason,
        })?);
    } else {
        return Err(missing("safetensors weights"));
    }
    files.extend(
        OPTIONAL_FILES
            .iter()
            .filter(|f| names.contains(f))
            .map(|f| f.to_string()),
    );
    for f in &files {
        let got = fetch(f)?;
        if got != snapshot.join(f) {
            return Err(SourceError::Hub {
                repo: repo.to_string(),
                reason: format!(
                    "{f} was served for another commit than {} (the repo changed during the download); retry",
                    info.sha
                ),
            });
        }
    }
    Ok(ModelFiles::HfFolder(snapshot))
}

/// Downloads one file (no cache lookup: the caller checked the snapshot).
fn download(api_repo: &ApiRepo, file: &str) -> Result<PathBuf, ApiError> {
    api_repo.download(file)
}

/// The transport-level reason when `e` means "the hub cannot be reached" (shared with the
/// dataset hub loader).
pub(crate) fn transport_error(e: &ApiError) -> Option<String> {
    match e {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Transport(t) => Some(t.to_string()),
            ureq::Error::Status(..) => None,
        },
        _ => None,
    }
}

/// The HTTP status of an error answer from the hub, if `e` is one.
pub(crate) fn http_status(e: &ApiError) -> Option<u16> {
    match e {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Status(code, _) => Some(*code),
            ureq::Error::Transport(_) => None,
        },
        _ => None,
    }
}

/// A one-line error for an HTTP status answer (`Err(e)` back for other errors).
fn status_error(e: ApiError, cfg: &SourceConfig, what: &str) -> Result<SourceError, ApiError> {
    let Some(status) = http_status(&e) else {
        return Err(e);
    };
    let hint = match status {
        401 | 403 => "; the repo is private or gated: set HF_TOKEN to a token with access",
        404 => "; check the repo id and revision, or pass a local folder",
        _ => "; retry later or pass a local folder",
    };
    Ok(SourceError::HubStatus {
        endpoint: cfg.endpoint.clone(),
        status,
        what: what.to_string(),
        hint,
    })
}

/// The shard file names of a `model.safetensors.index.json`.
pub fn shards(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("{}: {e}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{} has no weight_map", index.display()))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// The cached snapshot of `repo@revision` if it holds `config.json` and all the weights; else the
/// first missing file.
pub fn from_cache(repo: &str, revision: &str, cache: &Path) -> Result<ModelFiles, String> {
    let dir = repo_dir(cache, repo);
    let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        revision.to_string()
    } else {
        std::fs::read_to_string(dir.join("refs").join(revision))
            .map_err(|_| "config.json".to_string())?
            .trim()
            .to_string()
    };
    let snapshot = dir.join("snapshots").join(commit);
    if !snapshot.join("config.json").is_file() {
        return Err("config.json".into());
    }
    if !snapshot.join(WEIGHTS).is_file() {
        let index = snapshot.join(WEIGHTS_INDEX);
        if !index.is_file() {
            return Err(WEIGHTS.into());
        }
        for shard in shards(&index).map_err(|_| WEIGHTS_INDEX.to_string())? {
            if !snapshot.join(&shard).is_file() {
                return Err(shard);
            }
        }
    }
    Ok(ModelFiles::HfFolder(snapshot))
}
