//! `DIR/manifest.json` of an `--out-dir`: the settings that change results (and their hash),
//! the command line, versions and the number of examples. Every process that writes into the
//! folder checks that its settings are the folder's, so results of two configurations never mix.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The manifest's file name inside an `--out-dir`.
pub const MANIFEST: &str = "manifest.json";

/// A manifest that cannot be read or written, or that belongs to another configuration.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// Reading or writing failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done (`read`, `write`, `create`).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a manifest.
    #[error("{} is not a rinseq manifest ({detail}): use another --out-dir", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The folder was made with other settings.
    #[error("--out-dir {} holds results of another configuration: {name} was {was}, now {now}; use a new --out-dir (or delete the folder to start over)", .dir.display())]
    Changed {
        /// The folder.
        dir: PathBuf,
        /// The first differing setting (a flag name).
        name: String,
        /// Its value in the folder.
        was: String,
        /// Its value now.
        now: String,
    },
    /// The folder has no manifest (merge).
    #[error("{} has no {MANIFEST}: give the --out-dir of a `rinseq attribute-dataset` run", .0.display())]
    Missing(PathBuf),
}

/// One setting that changes results: its name (the flag) and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The flag or record it comes from, e.g. `--attributed-fn`.
    pub name: String,
    /// Its value (JSON objects with sorted keys).
    pub value: Value,
}

/// Everything that changes the results of a run, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config(pub Vec<Setting>);

impl Config {
    /// Adds a setting.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.push(Setting {
            name: name.to_string(),
            value: canonical(value.into()),
        });
        self
    }

    /// SHA-256 of the settings, in hex.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(&self.0).unwrap_or_default();
        hex(&Sha256::digest(text.as_bytes()))
    }

    /// The first setting that differs from `other` (by name, in order): `(name, ours, theirs)`.
    pub fn first_difference(&self, other: &Config) -> Option<(String, String, String)> {
        let show = |v: Option<&Value>| v.map_or("unset".to_string(), Value::to_string);
        fn find<'a>(c: &'a Config, name: &str) -> Option<&'a Value> {
            c.0.iter().find(|s| s.name == name).map(|s| &s.value)
        }
        self.0
            .iter()
            .map(|s| s.name.as_str())
            .chain(other.0.iter().map(|s| s.name.as_str()))
            .find(|name| find(self, name) != find(other, name))
            .map(|name| {
                (
                    name.to_string(),
                    show(find(self, name)),
                    show(find(other, name)),
                )
            })
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `v` with every object's keys sorted, so equal settings hash equally whatever the map type.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        v => v,
    }
}

/// The manifest of an `--out-dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The command line of the process that created the folder.
    pub command_line: Vec<String>,
    /// [`Config::hash`] of `config`.
    pub config_hash: String,
    /// The settings that change results.
    pub config: Config,
    /// The number of examples in the dataset split (all shards together).
    pub examples: usize,
    /// Whether example files are gzipped (`.json.gz`).
    pub compress: bool,
    /// The model as given with `-m`, and its `model_type`.
    pub model: String,
    /// The model's architecture (`model_type`).
    pub model_type: String,
    /// `rinseq X (rinseq-sdk Y)` of the process that created the folder.
    pub rinseq_version: String,
    /// The plugins used, with versions and libraries.
    pub plugins: Vec<String>,
}

impl Manifest {
    /// The manifest file of `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST)
    }

    /// Reads `dir`'s manifest, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ManifestError::Corrupt {
                path,
                detail: e.to_string(),
            })
    }

    /// Fails when `dir` already holds a manifest of another configuration than `config`.
    pub fn check(dir: &Path, config: &Config) -> Result<Option<Manifest>, ManifestError> {
        let Some(existing) = Self::read(dir)? else {
            return Ok(None);
        };
        if existing.config_hash != config.hash() {
            let (name, was, now) = existing.config.first_difference(config).unwrap_or_else(|| {
                (
                    "the configuration hash".into(),
                    existing.config_hash.clone(),
                    config.hash(),
                )
            });
            return Err(ManifestError::Changed {
                dir: dir.to_path_buf(),
                name,
                was,
                now,
            });
        }
        Ok(Some(existing))
    }

    /// Creates `dir` (and `dir/examples`) with this manifest, or checks the one already there
    /// (another shard may create it at the same moment: the file appears whole or not at all).
    /// Returns the folder's manifest.
    pub fn create_or_check(&self, dir: &Path) -> Result<Manifest, ManifestError> {
        if let Some(existing) = Self::check(dir, &self.config)? {
            return Ok(existing);
        }
        let examples = dir.join(super::store::EXAMPLES);
        std::fs::create_dir_all(&examples).map_err(|source| ManifestError::Io {
            action: "create",
            path: examples,
            source,
        })?;
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{MANIFEST}.tmp-{}", std::process::id()));
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| ManifestError::Io {
                action,
                path,
                source,
            }
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| ManifestError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let text = text + "\n";
        std::fs::write(&tmp, &text).map_err(io("write", &tmp))?;
        // A hard link publishes the complete file only if none exists yet (a rename would
        // replace another shard's manifest).
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        let created = match linked {
            // File systems without hard links: an exclusive create (not atomic for readers).
            Err(e) if e.kind() != ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes())),
            other => other,
        };
        match created {
            Ok(()) => Ok(self.clone()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Self::check(dir, &self.config)?
                .ok_or_else(|| ManifestError::Missing(dir.to_path_buf())),
            Err(e) => Err(io("create", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_difference() {
        let mut a = Config::default();
        a.set("--model-name-or-path", "gpt2")
            .set("--attributed-fn", "probability");
        let mut b = Config::default();
        b.set("--model-name-or-path", "gpt2")
            .set("--attributed-fn", "logit");
        assert_ne!(a.hash(), b.hash());
        let (name, was, now) = a.first_difference(&b).unwrap();
        assert_eq!(
            (name.as_str(), was.as_str(), now.as_str()),
            ("--attributed-fn", "\"probability\"", "\"logit\"")
        );
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let mut a = Config::default();
        a.set("kw", serde_json::json!({"b": 1, "a": 2}));
        let mut b = Config::default();
        b.set("kw", serde_json::json!({"a": 2, "b": 1}));
        assert_eq!(a.hash(), b.hash());
    }
}
