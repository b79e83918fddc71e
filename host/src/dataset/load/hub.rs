//! Hub datasets `org/name`: the repo's file list (`GET /api/datasets/{repo}/revision/{rev}`), the
//! data files of the split picked from it ([`pick`]), each downloaded with `hf-hub`
//! (`GET /datasets/{repo}/resolve/{rev}/{file}`) into the standard HF cache
//! (`<cache>/datasets--org--name/snapshots/<commit>/`), or taken from that cache when offline or
//! when the hub cannot be reached.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use super::{splits, DatasetError, DatasetSpec, Format};
use crate::source::hub::{http_status, transport_error};
use crate::source::{is_repo_part, SourceConfig};

/// How many repo files an error message lists.
const LISTED: usize = 20;

/// Whether `name` is a hub dataset id `org/name` (HF's allowed characters).
pub fn is_dataset_id(name: &str) -> bool {
    matches!(name.split_once('/'), Some((org, repo)) if is_repo_part(org) && is_repo_part(repo))
}

/// The cache folder of a dataset repo: `<cache>/datasets--org--name`.
pub fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("datasets--{}", repo.replace('/', "--")))
}

/// The format and the local paths of the data files of `spec`'s split, downloading them if
/// needed.
pub fn resolve(
    spec: &DatasetSpec,
    cfg: &SourceConfig,
) -> Result<(Format, Vec<PathBuf>), DatasetError> {
    let repo = spec.name.as_str();
    let revision = spec.revision.as_deref().unwrap_or("main");
    let offline = || DatasetError::OfflineNotCached {
        repo: repo.to_string(),
        revision: revision.to_string(),
        cache: cfg.hub_cache.clone(),
    };
    if cfg.offline {
        return from_cache(spec, revision, &cfg.hub_cache)?.ok_or_else(offline);
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(cfg.hub_cache.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_progress(cfg.progress);
    if cfg.token.is_some() {
        builder = builder.with_token(cfg.token.clone());
    }
    let other = |e: ApiError| DatasetError::Hub {
        repo: repo.to_string(),
        reason: e.to_string(),
    };
    let api = builder.build().map_err(other)?;
    let api_repo = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Dataset,
        revision.to_string(),
    ));
    let info = match api_repo.info() {
        Ok(info) => info,
        Err(e) => {
            if let Some(reason) = transport_error(&e) {
                // As for models: a cached dataset still loads without the network.
                return from_cache(spec, revision, &cfg.hub_cache)?.ok_or_else(|| {
                    DatasetError::HubUnreachable {
                        repo: repo.to_string(),
                        endpoint: cfg.endpoint.clone(),
                        cache: cfg.hub_cache.clone(),
                        reason,
                    }
                });
            }
            let what = format!("{repo}@{revision}");
            return Err(status_error(e, cfg, &what).unwrap_or_else(other));
        }
    };
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let (format, files) = pick(spec, revision, &names)?;
    let snapshot = repo_dir(&cfg.hub_cache, repo)
        .join("snapshots")
        .join(&info.sha);
    let mut paths = Vec::new();
    for file in &files {
        let local = snapshot.join(file);
        if !local.is_file() {
            if cfg.progress {
                eprintln!(
                    "rinseq: downloading dataset {repo}/{file} from {}",
                    cfg.endpoint
                );
            }
            let got = api_repo.download(file).map_err(|e| {
                status_error(e, cfg, &format!("{repo}/{file}")).unwrap_or_else(other)
            })?;
            if got != local {
                return Err(DatasetError::Hub {
                    repo: repo.to_string(),
                    reason: format!(
                        "{file} was served for another commit than {} (the repo changed during the download); retry",
                        info.sha
                    ),
                });
            }
        }
        paths.push(local);
    }
    Ok((format, paths))
}

/// The cached snapshot's files for `spec`, when the revision is cached with all of them.
fn from_cache(
    spec: &DatasetSpec,
    revision: &str,
    cache: &Path,
) -> Result<Option<(Format, Vec<PathBuf>)>, DatasetError> {
    let dir = repo_dir(cache, &spec.name);
    let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        revision.to_string()
    } else {
        match std::fs::read_to_string(dir.join("refs").join(revision)) {
            Ok(c) => c.trim().to_string(),
            Err(_) => return Ok(None),
        }
    };
    let snapshot = dir.join("snapshots").join(commit);
    let mut names = Vec::new();
    if super::walk(&snapshot, "", &mut names).is_err() {
        return Ok(None);
    }
    // The snapshot holds only what was downloaded: its data files stand for the repo's, and a
    // split missing from them is "not cached" rather than "not in the repo".
    match pick(spec, revision, &names) {
        Ok((format, files)) => Ok(Some((
            format,
            files.iter().map(|f| snapshot.join(f)).collect(),
        ))),
        Err(DatasetError::NoSplitFiles { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The format and the repo paths of the data files of `spec`'s split among the repo's `names`:
/// `spec.files` (globs) if given, else the split's files under the config (and `dir`) folder,
/// found by name ([`splits`]), of the most common format there.
pub fn pick(
    spec: &DatasetSpec,
    revision: &str,
    names: &[String],
) -> Result<(Format, Vec<String>), DatasetError> {
    let prefix: String = spec
        .config
        .iter()
        .cloned()
        .chain(spec.dir.iter().map(|d| d.to_string_lossy().into_owned()))
        .map(|p| format!("{}/", p.trim_matches('/')))
        .collect();
    let no_files = |splits: &splits::SplitMap| DatasetError::NoSplitFiles {
        repo: format!("{}@{revision}", spec.name),
        split: spec.split.clone(),
        config: spec
            .config
            .as_ref()
            .map(|c| format!(" in config {c:?}"))
            .unwrap_or_default(),
        splits: splits
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        files: listing(names),
    };
    if !spec.files.is_empty() {
        let mut files = Vec::new();
        for pattern in &spec.files {
            let pattern = format!("{prefix}{}", pattern.to_string_lossy());
            let before = files.len();
            files.extend(names.iter().filter(|n| glob(&pattern, n)).cloned());
            if files.len() == before {
                return Err(DatasetError::Hub {
                    repo: spec.name.clone(),
                    reason: format!(
                        "no file matches {pattern:?}; its files are [{}]; fix --dataset-files",
                        listing(names)
                    ),
                });
            }
        }
        let format =
            majority(&files).ok_or_else(|| DatasetError::UnsupportedFile(files.join(", ")))?;
        files.retain(|f| Format::of_file(f) == Some(format));
        return Ok((format, files));
    }
    let data: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&prefix))
        .filter(|n| Format::of_file(n).is_some())
        .map(str::to_string)
        .collect();
    let by_split = splits::resolve(&data);
    let all: Vec<String> = by_split.iter().flat_map(|(_, f)| f.clone()).collect();
    let format = majority(&all).ok_or_else(|| no_files(&by_split))?;
    let files: Vec<String> = by_split
        .iter()
        .find(|(s, _)| *s == spec.split)
        .map(|(_, f)| f.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| Format::of_file(f) == Some(format))
        .map(|f| format!("{prefix}{f}"))
        .collect();
    if files.is_empty() {
        return Err(no_files(&by_split));
    }
    Ok((format, files))
}

/// The most common format among `files` (ties: parquet, json, csv), as `datasets` infers its
/// builder from the most common extension.
fn majority(files: &[String]) -> Option<Format> {
    let count = |f: Format| {
        files
            .iter()
            .filter(|n| Format::of_file(n) == Some(f))
            .count()
    };
    Format::ALL
        .into_iter()
        .filter(|f| count(*f) > 0)
        .max_by_key(|f| {
            (
                count(*f),
                std::cmp::Reverse(Format::ALL.iter().position(|g| g == f)),
            )
        })
}

/// The first repo files, comma-separated, for messages.
fn listing(names: &[String]) -> String {
    let mut shown: Vec<&str> = names.iter().take(LISTED).map(String::as_str).collect();
    let more = format!("… {} more", names.len().saturating_sub(LISTED));
    if names.len() > LISTED {
        shown.push(&more);
    }
    shown.join(", ")
}

/// Whether `name` matches `pattern`, where `*` is any run of characters but `/` and `?` one.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => n.first().is_some_and(|c| *c != '/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(&p, &n)
}

/// A one-line error for an HTTP status answer (`Err(e)` back for other errors).
fn status_error(e: ApiError, cfg: &SourceConfig, what: &str) -> Result<DatasetError, ApiError> {
    let Some(status) = http_status(&e) else {
        return Err(e);
    };
    let hint = match status {
        401 | 403 => "; the dataset is private or gated: set HF_TOKEN to a token with access",
        404 => "; check the dataset id and --dataset-revision, or pass local --dataset-files",
        _ => "; retry later or pass local --dataset-files",
    };
    Ok(DatasetError::HubStatus {
        endpoint: cfg.endpoint.clone(),
        status,
        what: what.to_string(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(split: &str, config: Option<&str>) -> DatasetSpec {
        DatasetSpec {
            name: "org/ds".into(),
            files: vec![],
            dir: None,
            split: split.into(),
            config: config.map(str::to_string),
            revision: None,
            input_field: "text".into(),
            generated_field: None,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_split_config_and_majority_format() {
        let repo = names(&[
            ".gitattributes",
            "README.md",
            "en/train-00000-of-00001.parquet",
            "en/test-00000-of-00001.parquet",
            "fr/train/0000.parquet",
            "fr/train/0001.parquet",
            "fr/train/notes.csv",
        ]);
        let got = pick(&spec("test", Some("en")), "main", &repo).unwrap();
        assert_eq!(
            got,
            (Format::Parquet, names(&["en/test-00000-of-00001.parquet"]))
        );
        let got = pick(&spec("train", Some("fr")), "main", &repo).unwrap();
        assert_eq!(
            got,
            (
                Format::Parquet,
                names(&["fr/train/0000.parquet", "fr/train/0001.parquet"])
            )
        );
        let err = pick(&spec("validation", Some("en")), "main", &repo).unwrap_err();
        assert!(matches!(err, DatasetError::NoSplitFiles { .. }), "{err}");
        let err = pick(&spec("train", Some("de")), "main", &repo).unwrap_err();
        assert!(err.to_string().contains("in config \"de\""), "{err}");
    }

    #[test]
    fn parquet_export_branch_layout() {
        // refs/convert/parquet: <config>/<split>/NNNN.parquet, and the older <config>/<name>-<split>.parquet
        let repo = names(&[
            "plain_text/train/0000.parquet",
            "plain_text/train/0001.parquet",
            "plain_text/test/0000.parquet",
            "old/imdb-train.parquet",
            "old/imdb-test.parquet",
        ]);
        let got = pick(
            &spec("test", Some("plain_text")),
            "refs/convert/parquet",
            &repo,
        )
        .unwrap();
        assert_eq!(got.1, names(&["plain_text/test/0000.parquet"]));
        let got = pick(&spec("train", Some("old")), "refs/convert/parquet", &repo).unwrap();
        assert_eq!(got.1, names(&["old/imdb-train.parquet"]));
    }

    #[test]
    fn explicit_files_are_globs() {
        let repo = names(&["a/x-1.jsonl", "a/x-2.jsonl", "a/sub/x-3.jsonl"]);
        let mut s = spec("train", None);
        s.files = vec!["a/x-*.jsonl".into()];
        let got = pick(&s, "main", &repo).unwrap();
        assert_eq!(got, (Format::Json, names(&["a/x-1.jsonl", "a/x-2.jsonl"])));
        s.files = vec!["b/*.csv".into()];
        assert!(pick(&s, "main", &repo).is_err());
    }

    #[test]
    fn dataset_ids() {
        assert!(is_dataset_id("stanfordnlp/imdb"));
        assert!(!is_dataset_id("imdb"));
        assert!(!is_dataset_id("a/b/c"));
        assert!(!is_dataset_id("org/.x"));
    }
}
