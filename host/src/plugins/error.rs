//! Errors of plugin discovery, loading and instantiation: one line each, naming the thing and
//! the fix.

use std::path::PathBuf;

use thiserror::Error;

/// Anything that can go wrong between `registry.toml` and a plugin instance.
#[derive(Debug, Error)]
pub enum PluginLoadError {
    /// The registry file could not be read.
    #[error("cannot read plugin registry {path}: {reason} (pass --registry PATH or set RINSEQ_REGISTRY)")]
    RegistryUnreadable {
        /// The registry file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The registry file is not valid TOML or has unknown keys.
    #[error("invalid plugin registry {path} at line {line}, column {column}: {message}")]
    RegistryMalformed {
        /// The registry file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A plugin library file does not exist.
    #[error("plugin library '{library}': file not found: {path} (build it with `cargo build --workspace`, or fix the path in the registry)")]
    Missing {
        /// The library's name in the registry.
        library: String,
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but is not a loadable shared library.
    #[error("plugin library '{library}' ({path}) is not a loadable shared library: {reason} (point the registry at the .so/.dylib/.dll cargo built)")]
    NotALibrary {
        /// The library's name in the registry.
        library: String,
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// A shared library without the rinseq root module.
    #[error("plugin library '{library}' ({path}) is not a rinseq plugin: it exports no rinseq root module (add `rinseq_sdk::export_plugins!{{..}}` to the crate)")]
    NotAPlugin {
        /// The library's name in the registry.
        library: String,
        /// The file.
        path: PathBuf,
    },
    /// A plugin built against an incompatible SDK.
    #[error("plugin library '{library}' ({path}) is incompatible: built with rinseq-sdk {plugin_sdk}, host uses rinseq-sdk {host_sdk}: rebuild the plugin against rinseq-sdk {host_sdk} ({summary})")]
    Incompatible {
        /// The library's name in the registry.
        library: String,
        /// The file.
        path: PathBuf,
        /// The SDK version the plugin was built with.
        plugin_sdk: String,
        /// The host's SDK version.
        host_sdk: String,
        /// The first lines of abi_stable's layout report.
        summary: String,
    },
    /// Any other loading failure.
    #[error("plugin library '{library}' ({path}) could not be loaded: {reason}")]
    Load {
        /// The library's name in the registry.
        library: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Two different libraries provide a plugin of the same kind and name.
    #[error("{kind} plugin '{name}' is provided by both '{first}' and '{second}' (from the {sources}): disable one of them (`enabled = false` in a user registry) or drop it from RINSEQ_PLUGIN_PATH/--plugin")]
    Duplicate {
        /// The plugin kind.
        kind: String,
        /// The plugin name.
        name: String,
        /// The library registered first.
        first: String,
        /// The other library.
        second: String,
        /// Where both came from, e.g. "built-in registry and --plugin" (boxed, so that this
        /// variant stays smaller than `Incompatible` and the error small enough to return).
        sources: Box<str>,
    },
    /// A registry entry without `path` that does not change a built-in library.
    #[error("plugin registry {registry}: library '{library}' has no `path` (add one; only an entry changing the built-in library of that name may leave it out)")]
    NoLibraryPath {
        /// The registry file.
        registry: PathBuf,
        /// The entry's name.
        library: String,
    },
    /// No plugin of that kind and name is registered.
    #[error("no {kind} plugin named '{name}'{suggestion} (see `rinseq plugins list`)")]
    Unknown {
        /// The plugin kind.
        kind: String,
        /// The requested name.
        name: String,
        /// `"; did you mean 'x'?"` or the list of available names.
        suggestion: String,
    },
    /// The parameters given to a plugin do not fit its schema.
    #[error(
        "bad parameters for {kind} plugin '{name}': {message} (see `rinseq plugins info {name}`)"
    )]
    BadParams {
        /// The plugin kind.
        kind: String,
        /// The plugin name.
        name: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin's parameter schema is not valid JSON.
    #[error(
        "{kind} plugin '{name}' has an unreadable parameter schema ({message}): rebuild the plugin"
    )]
    BadSchema {
        /// The plugin kind.
        kind: String,
        /// The plugin name.
        name: String,
        /// The JSON error.
        message: String,
    },
    /// The plugin's factory failed for another reason (or panicked).
    #[error("{kind} plugin '{name}' failed to start: {message}")]
    Factory {
        /// The plugin kind.
        kind: String,
        /// The plugin name.
        name: String,
        /// The plugin's message.
        message: String,
    },
}
