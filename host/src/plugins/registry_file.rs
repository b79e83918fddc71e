//! `registry.toml`: which plugin libraries to load, and their default parameters.
//!
//! ```toml
//! [[library]]
//! name = "step-functions"
//! # relative to this file, or absolute; {target_dir}, {profile}, {dll_prefix} and {dll_suffix}
//! # expand to cargo's target folder, this host's build profile and the platform's library naming
//! path = "{target_dir}/{profile}/{dll_prefix}rinseq_step_functions{dll_suffix}"
//! enabled = true
//!
//! [library.defaults.probability]   # default parameters of one plugin of this library
//! logprob = false
//! ```
//!
//! In a user registry layered over the built-in one (see [`super::registry::PluginSources`]),
//! an entry whose `name` is a built-in library's changes that library instead of adding one:
//! `enabled = false` disables it, `path` replaces its file, and `defaults` are merged over its
//! defaults key by key; `path` may then be left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::PluginLoadError;

/// The parsed registry file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// The plugin libraries, in load order.
    #[serde(default, rename = "library")]
    pub libraries: Vec<LibraryEntry>,
}

/// One `[[library]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryEntry {
    /// A short name for messages and listings.
    pub name: String,
    /// Path of the shared library (templated, see the module docs); required unless the entry
    /// changes a built-in library of the same name.
    #[serde(default)]
    pub path: Option<String>,
    /// Whether to load it (default true; left out in an entry that changes a built-in library,
    /// the built-in's setting is kept).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default parameters per plugin name, merged under the user's parameters.
    #[serde(default)]
    pub defaults: BTreeMap<String, serde_json::Value>,
}

impl LibraryEntry {
    /// Whether the entry is enabled, `enabled` defaulting to true.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl RegistryFile {
    /// Reads and parses a registry file.
    pub fn read(path: &Path) -> Result<Self, PluginLoadError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| PluginLoadError::RegistryUnreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Self::parse(&text, path)
    }

    /// Parses registry text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PluginLoadError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            PluginLoadError::RegistryMalformed {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
            }
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Expands a library path template and resolves it against the registry's folder.
pub fn resolve_library_path(template: &str, registry_dir: &Path) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| registry_dir.join("target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let expanded = template
        .replace("{target_dir}", &target_dir.to_string_lossy())
        .replace("{profile}", profile)
        .replace("{dll_prefix}", std::env::consts::DLL_PREFIX)
        .replace("{dll_suffix}", std::env::consts::DLL_SUFFIX);
    let p = PathBuf::from(expanded);
    if p.is_absolute() {
        p
    } else {
        registry_dir.join(p)
    }
}
