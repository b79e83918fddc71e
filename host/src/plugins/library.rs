//! Loading one plugin library and reading its root module.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use rinseq_sdk::abi::{Descriptor, PluginLibRef};
use rinseq_sdk::SDK_VERSION;

use super::error::PluginLoadError;

/// A loaded plugin library (never unloaded: abi_stable keeps libraries mapped for the process).
#[derive(Clone)]
pub struct LoadedLibrary {
    /// The library's name in the registry (or the file stem for `--plugin` paths).
    pub name: String,
    /// The canonical path of the file.
    pub path: PathBuf,
    /// The plugin crate's name.
    pub crate_name: String,
    /// The plugin crate's version.
    pub crate_version: String,
    /// The SDK version the library was built with.
    pub sdk_version: String,
    /// The compiler that built it.
    pub rustc_version: String,
    /// Its plugins.
    pub descriptors: Vec<Descriptor>,
}

/// Loads the library at `path`. Always through `lib_header_from_path(..).init_root_module()`:
/// abi_stable's `RootModule::load_from_file` caches the first library per type and would
/// silently return it for every other path.
pub fn load_library(name: &str, path: &Path) -> Result<LoadedLibrary, PluginLoadError> {
    if !path.exists() {
        return Err(PluginLoadError::Missing {
            library: name.to_string(),
            path: path.to_path_buf(),
        });
    }
    // dlopen("libx.so") searches LD_LIBRARY_PATH, not the working folder: use absolute paths.
    let path = std::fs::canonicalize(path).map_err(|e| PluginLoadError::Load {
        library: name.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let header = lib_header_from_path(&path).map_err(|e| classify(name, &path, e, None))?;
    // Known even when the layout check below fails.
    let plugin_sdk = header.version_strings().version.to_string();
    let root: PluginLibRef = header
        .init_root_module::<PluginLibRef>()
        .map_err(|e| classify(name, &path, e, Some(plugin_sdk)))?;
    let descriptors = (root.plugins())()
        .into_iter()
        .map(Descriptor::from)
        .collect();
    Ok(LoadedLibrary {
        name: name.to_string(),
        path,
        crate_name: root.crate_name().to_string(),
        crate_version: root.crate_version().to_string(),
        sdk_version: root.sdk_version().to_string(),
        rustc_version: root.rustc_version().to_string(),
        descriptors,
    })
}

/// Turns abi_stable's error (whose layout reports run to thousands of lines) into one line.
fn classify(
    name: &str,
    path: &Path,
    err: LibraryError,
    plugin_sdk: Option<String>,
) -> PluginLoadError {
    let library = name.to_string();
    let path = path.to_path_buf();
    match err {
        LibraryError::OpenError { err, .. } => PluginLoadError::NotALibrary {
            library,
            path,
            reason: last_cause(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => PluginLoadError::NotAPlugin { library, path },
        e @ (LibraryError::IncompatibleVersionNumber { .. }
        | LibraryError::AbiInstability(_)
        | LibraryError::InvalidAbiHeader(_)
        | LibraryError::InvalidCAbi { .. }) => PluginLoadError::Incompatible {
            library,
            path,
            plugin_sdk: plugin_sdk.unwrap_or_else(|| "an unknown version".into()),
            host_sdk: SDK_VERSION.to_string(),
            summary: summarize(&e.to_string()),
        },
        other => PluginLoadError::Load {
            library,
            path,
            reason: summarize(&other.to_string()),
        },
    }
}

/// The loader's message without the repeated path.
fn last_cause(msg: &str) -> String {
    let last = msg
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(msg);
    last.rsplit(": ").next().unwrap_or(last).to_string()
}

/// The first three distinct `Error:` lines of an abi_stable report, joined on one line.
pub fn summarize(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut found: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("Error:") else {
            continue;
        };
        let mut msg = rest.trim().to_string();
        // "Expected:" / "Found:" follow on their own lines, values on the next line.
        let expected = value_after(&lines, i, "Expected:");
        let found_v = value_after(&lines, i, "Found:");
        if let (Some(e), Some(f)) = (expected, found_v) {
            msg = format!("{msg} (expected {e}, found {f})");
        }
        if !found.contains(&msg) {
            found.push(msg);
        }
    }
    if found.is_empty() {
        let first: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.is_empty())
            .take(3)
            .collect();
        return first.join(" ");
    }
    let extra = found.len().saturating_sub(3);
    let mut s = found.into_iter().take(3).collect::<Vec<_>>().join("; ");
    if extra > 0 {
        s.push_str(&format!(" (+{extra} more)"));
    }
    s
}

fn value_after<'a>(lines: &[&'a str], from: usize, key: &str) -> Option<&'a str> {
    let idx = lines[from + 1..]
        .iter()
        .take(6)
        .position(|l| l.starts_with(key))?
        + from
        + 1;
    let inline = lines[idx].trim_start_matches(key).trim();
    if !inline.is_empty() {
        return Some(inline);
    }
    lines.get(idx + 1).copied()
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.descriptors.iter().map(|d| d.name.as_str()).collect();
        f.debug_struct("LoadedLibrary")
            .field("name", &self.name)
            .field("path", &self.path)
            .field(
                "crate",
                &format!("{} {}", self.crate_name, self.crate_version),
            )
            .field("sdk_version", &self.sdk_version)
            .field("plugins", &names)
            .finish()
    }
}
