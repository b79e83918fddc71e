//! The plugin registry: every plugin of every loaded library, by kind and name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rinseq_sdk::abi::{Descriptor, LoadedAggregator, LoadedMethod, LoadedStepFunction};
use rinseq_sdk::{ErrorCode, PluginError};
use serde_json::Value;

use super::error::PluginLoadError;
use super::instance::Instance;
use super::library::{load_library, LoadedLibrary};
use super::registry_file::{resolve_library_path, LibraryEntry, RegistryFile};

/// The three plugin kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    /// Attribution methods.
    Attribution,
    /// Step functions.
    StepFunction,
    /// Aggregators.
    Aggregator,
}

impl PluginKind {
    /// The kind of a descriptor.
    pub fn of(d: &Descriptor) -> Self {
        match d.kind() {
            rinseq_sdk::abi::PluginKind::Attribution => Self::Attribution,
            rinseq_sdk::abi::PluginKind::StepFunction => Self::StepFunction,
            rinseq_sdk::abi::PluginKind::Aggregator => Self::Aggregator,
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Attribution => "attribution",
            Self::StepFunction => "step function",
            Self::Aggregator => "aggregator",
        })
    }
}

/// Where plugin libraries come from. The layers load in field order, each adding to the ones
/// before: `builtin`, `registry`, `search_path`, `extra`.
///
/// - A `registry` entry named like a `builtin` entry changes that library rather than adding
///   one (`enabled = false` disables it, `path` replaces its file, `defaults` merge over its
///   defaults); every other entry adds a library.
/// - A library file reached again (same canonical path) is loaded once, under the layer that
///   reached it first; a registry entry's defaults still merge over its plugins' defaults.
/// - Two different files providing a plugin of the same kind and name are an error naming
///   both: replace a built-in plugin by redefining or disabling its library in `registry`.
///
/// [`Default`] has no layers at all: library users and tests choose exactly what loads; the
/// CLI sets `builtin` to the registry of the source tree it was built from.
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// The built-in `registry.toml`, loaded first.
    pub builtin: Option<PathBuf>,
    /// A user `registry.toml` layered over the built-in one (skipped when it is that file).
    pub registry: Option<PathBuf>,
    /// Extra library files or folders (from `RINSEQ_PLUGIN_PATH`), loaded after the registries.
    pub search_path: Vec<PathBuf>,
    /// Extra library files (from `--plugin PATH`), loaded last.
    pub extra: Vec<PathBuf>,
}

/// The layer a library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySource {
    /// The built-in registry file.
    Builtin(PathBuf),
    /// A user registry file (`--registry`, `$RINSEQ_REGISTRY` or `./registry.toml`).
    UserRegistry(PathBuf),
    /// `RINSEQ_PLUGIN_PATH`.
    PluginPath,
    /// `--plugin PATH`.
    PluginFlag,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(_) => f.write_str("built-in registry"),
            Self::UserRegistry(p) => write!(f, "user registry {}", p.display()),
            Self::PluginPath => f.write_str("RINSEQ_PLUGIN_PATH"),
            Self::PluginFlag => f.write_str("--plugin"),
        }
    }
}

/// One plugin, ready to instantiate.
#[derive(Clone)]
pub struct RegisteredPlugin {
    /// Its kind.
    pub kind: PluginKind,
    /// What the library says about it.
    pub descriptor: Descriptor,
    /// Index of its library in [`PluginRegistry::libraries`].
    pub library: usize,
    /// Default parameters from the registry, under the caller's.
    pub defaults: Value,
}

/// All loaded plugins.
#[derive(Default)]
pub struct PluginRegistry {
    /// The loaded libraries, in load order.
    pub libraries: Vec<LoadedLibrary>,
    /// Where each library came from, parallel to `libraries`.
    sources: Vec<LibrarySource>,
    plugins: Vec<RegisteredPlugin>,
    shadow_note: Option<String>,
}

/// A registry entry after layering: the library to load, if enabled.
struct Planned {
    name: String,
    path: Option<PathBuf>,
    enabled: bool,
    defaults: BTreeMap<String, Value>,
    source: LibrarySource,
}

impl PluginRegistry {
    /// Loads every enabled library of every layer of `sources`; the first failure is returned.
    pub fn load(sources: &PluginSources) -> Result<Self, PluginLoadError> {
        let mut reg = Self::default();
        let (planned, note) = layer_registries(sources)?;
        reg.shadow_note = note;
        for entry in planned.into_iter().filter(|e| e.enabled) {
            let Some(path) = entry.path else {
                // Checked in layer_registries: an enabled entry always has a path.
                continue;
            };
            let defaults = entry.defaults;
            reg.add_once(&entry.name, &path, entry.source, |name| {
                defaults.get(name).cloned()
            })?;
        }
        for path in library_files(&sources.search_path) {
            reg.add_once(&file_label(&path), &path, LibrarySource::PluginPath, |_| {
                None
            })?;
        }
        for path in &sources.extra {
            reg.add_once(&file_label(path), path, LibrarySource::PluginFlag, |_| None)?;
        }
        Ok(reg)
    }

    /// Loads the library at `path` unless a library with the same canonical path is already
    /// loaded; then only `defaults` are merged over its plugins' defaults.
    fn add_once(
        &mut self,
        name: &str,
        path: &Path,
        source: LibrarySource,
        defaults: impl Fn(&str) -> Option<Value>,
    ) -> Result<(), PluginLoadError> {
        let loaded = std::fs::canonicalize(path)
            .ok()
            .and_then(|c| self.libraries.iter().position(|l| l.path == c));
        match loaded {
            Some(index) => {
                for p in self.plugins.iter_mut().filter(|p| p.library == index) {
                    if let Some(d) = defaults(p.descriptor.name.as_str()) {
                        p.defaults = merge(&p.defaults, &d);
                    }
                }
                Ok(())
            }
            None => self.add(load_library(name, path)?, source, defaults),
        }
    }

    /// Adds a loaded library, rejecting plugin names that another library already provides.
    pub fn add(
        &mut self,
        lib: LoadedLibrary,
        source: LibrarySource,
        defaults: impl Fn(&str) -> Option<Value>,
    ) -> Result<(), PluginLoadError> {
        let index = self.libraries.len();
        for d in &lib.descriptors {
            let kind = PluginKind::of(d);
            if let Some(prev) = self
                .plugins
                .iter()
                .find(|p| p.kind == kind && p.descriptor.name == d.name)
            {
                // `prev` may be of this very library (a name it exports twice), not yet pushed.
                let (first, first_source) = match self.libraries.get(prev.library) {
                    Some(l) => (l.name.clone(), self.sources[prev.library].to_string()),
                    None => (lib.name.clone(), source.to_string()),
                };
                return Err(PluginLoadError::Duplicate {
                    kind: kind.to_string(),
                    name: d.name.to_string(),
                    first,
                    second: lib.name.clone(),
                    sources: format!("{first_source} and {source}").into(),
                });
            }
            self.plugins.push(RegisteredPlugin {
                kind,
                descriptor: d.clone(),
                library: index,
                defaults: defaults(d.name.as_str()).unwrap_or(Value::Null),
            });
        }
        self.libraries.push(lib);
        self.sources.push(source);
        Ok(())
    }

    /// Where the library at `index` of [`Self::libraries`] came from.
    pub fn library_source(&self, index: usize) -> Option<&LibrarySource> {
        self.sources.get(index)
    }

    /// One line saying which built-in libraries the user registry disables or redefines
    /// (`None` when it changes none, or there is no user registry).
    pub fn shadow_note(&self) -> Option<&str> {
        self.shadow_note.as_deref()
    }

    /// Every plugin, in load order.
    pub fn plugins(&self) -> &[RegisteredPlugin] {
        &self.plugins
    }

    /// The plugins of every kind with this name.
    pub fn named(&self, name: &str) -> Vec<&RegisteredPlugin> {
        self.plugins
            .iter()
            .filter(|p| p.descriptor.name.as_str() == name)
            .collect()
    }

    /// The plugin of `kind` named `name`, or an error suggesting the nearest names.
    pub fn find(&self, kind: PluginKind, name: &str) -> Result<&RegisteredPlugin, PluginLoadError> {
        self.plugins
            .iter()
            .find(|p| p.kind == kind && p.descriptor.name.as_str() == name)
            .ok_or_else(|| PluginLoadError::Unknown {
                kind: kind.to_string(),
                name: name.to_string(),
                suggestion: suggest(
                    name,
                    self.plugins
                        .iter()
                        .filter(|p| p.kind == kind)
                        .map(|p| p.descriptor.name.as_str()),
                ),
            })
    }

    /// The parameter names of a plugin, from its JSON Schema's `properties` (how keyword
    /// arguments are routed to plugins, as Inseq routes them by signature).
    pub fn param_names(
        &self,
        kind: PluginKind,
        name: &str,
    ) -> Result<Vec<String>, PluginLoadError> {
        let p = self.find(kind, name)?;
        let schema: Value =
            serde_json::from_str(p.descriptor.params_schema.as_str()).map_err(|e| {
                PluginLoadError::BadSchema {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    message: e.to_string(),
                }
            })?;
        Ok(schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Instantiates an attribution method with `params` (merged over the registry defaults).
    pub fn attribution(
        &self,
        name: &str,
        params: &Value,
    ) -> Result<Instance<LoadedMethod>, PluginLoadError> {
        let p = self.find(PluginKind::Attribution, name)?;
        instance(p, params, Descriptor::attribution)
    }

    /// Instantiates a step function with `params` (merged over the registry defaults).
    pub fn step_function(
        &self,
        name: &str,
        params: &Value,
    ) -> Result<Instance<LoadedStepFunction>, PluginLoadError> {
        let p = self.find(PluginKind::StepFunction, name)?;
        instance(p, params, Descriptor::step_function)
    }

    /// Instantiates an aggregator with `params` (merged over the registry defaults).
    pub fn aggregator(
        &self,
        name: &str,
        params: &Value,
    ) -> Result<LoadedAggregator, PluginLoadError> {
        let p = self.find(PluginKind::Aggregator, name)?;
        instantiate(p, params, Descriptor::aggregator)
    }
}

/// A descriptor's kind-specific constructor (`Ok(None)` for another kind).
type Build<T> = fn(&Descriptor, &str) -> Result<Option<T>, PluginError>;

/// [`instantiate`] with the name, capabilities and parameters kept beside the plugin.
fn instance<T>(
    p: &RegisteredPlugin,
    params: &Value,
    build: Build<T>,
) -> Result<Instance<T>, PluginLoadError> {
    Ok(Instance {
        name: p.descriptor.name.clone(),
        capabilities: p.descriptor.capabilities.clone(),
        params: merge(&p.defaults, params),
        plugin: instantiate(p, params, build)?,
    })
}

fn instantiate<T>(
    p: &RegisteredPlugin,
    params: &Value,
    build: Build<T>,
) -> Result<T, PluginLoadError> {
    let merged = merge(&p.defaults, params);
    let (kind, name) = (p.kind.to_string(), p.descriptor.name.clone());
    match build(&p.descriptor, &merged.to_string()) {
        Ok(Some(plugin)) => Ok(plugin),
        Ok(None) => Err(PluginLoadError::Factory {
            kind,
            name,
            message: "the library describes it as another kind of plugin".into(),
        }),
        Err(e) if e.code == ErrorCode::InvalidParams => Err(PluginLoadError::BadParams {
            kind,
            name,
            message: e.message,
        }),
        Err(e) => Err(PluginLoadError::Factory {
            kind,
            name,
            message: e.to_string(),
        }),
    }
}

/// `over`'s keys replace `base`'s (both JSON objects; `null` means empty).
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut m = b.clone();
            for (k, v) in o {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        }
        (b, Value::Null) => {
            if b.is_null() {
                Value::Object(Default::default())
            } else {
                b.clone()
            }
        }
        (_, o) => o.clone(),
    }
}

/// `"; did you mean 'x'?"` when a name is close, else the list of available names.
pub fn suggest<'a>(name: &str, available: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = available.collect();
    names.sort_unstable();
    names.dedup();
    let mut close: Vec<(f64, &str)> = names
        .iter()
        .map(|n| (strsim::jaro_winkler(name, n), *n))
        .filter(|(s, _)| *s >= 0.8)
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    if let Some((_, best)) = close.first() {
        return format!("; did you mean '{best}'?");
    }
    if names.is_empty() {
        "; none is loaded".to_string()
    } else {
        format!("; available: {}", names.join(", "))
    }
}

/// Reads the built-in and the user registry and layers the second over the first; also
/// returns the note on built-in libraries the user registry disables or redefines.
fn layer_registries(
    sources: &PluginSources,
) -> Result<(Vec<Planned>, Option<String>), PluginLoadError> {
    let mut planned: Vec<Planned> = Vec::new();
    if let Some(path) = &sources.builtin {
        let (file, dir) = read_registry(path)?;
        for e in file.libraries {
            let source = LibrarySource::Builtin(path.clone());
            planned.push(new_entry(e, path, &dir, source)?);
        }
    }
    let Some(user) = &sources.registry else {
        return Ok((planned, None));
    };
    // `rinseq` run from its own source tree finds the built-in registry as ./registry.toml.
    let same_file = sources.builtin.as_ref().is_some_and(|b| {
        matches!(
            (std::fs::canonicalize(b), std::fs::canonicalize(user)),
            (Ok(a), Ok(b)) if a == b
        )
    });
    if same_file {
        return Ok((planned, None));
    }
    let (file, dir) = read_registry(user)?;
    let (mut disabled, mut redefined) = (Vec::new(), Vec::new());
    for e in file.libraries {
        let base = planned
            .iter_mut()
            .find(|p| matches!(p.source, LibrarySource::Builtin(_)) && p.name == e.name);
        let Some(base) = base else {
            planned.push(new_entry(
                e,
                user,
                &dir,
                LibrarySource::UserRegistry(user.clone()),
            )?);
            continue;
        };
        if let Some(enabled) = e.enabled {
            if base.enabled && !enabled {
                disabled.push(format!("'{}'", e.name));
            }
            base.enabled = enabled;
        }
        if let Some(template) = &e.path {
            let path = resolve_library_path(template, &dir);
            if base.path.as_deref().map(canonical) != Some(canonical(&path)) {
                redefined.push(format!("'{}'", e.name));
                base.source = LibrarySource::UserRegistry(user.clone());
            }
            base.path = Some(path);
        }
        for (plugin, d) in e.defaults {
            let merged = merge(base.defaults.get(&plugin).unwrap_or(&Value::Null), &d);
            base.defaults.insert(plugin, merged);
        }
        if base.enabled && base.path.is_none() {
            return Err(PluginLoadError::NoLibraryPath {
                registry: user.clone(),
                library: e.name,
            });
        }
    }
    let mut parts = Vec::new();
    if !disabled.is_empty() {
        parts.push(format!("disables built-in {}", libraries(&disabled)));
    }
    if !redefined.is_empty() {
        parts.push(format!("redefines built-in {}", libraries(&redefined)));
    }
    let note = (!parts.is_empty()).then(|| {
        format!(
            "note: user registry {} {}",
            user.display(),
            parts.join(" and ")
        )
    });
    Ok((planned, note))
}

/// `library 'a'` or `libraries 'a', 'b'`.
fn libraries(names: &[String]) -> String {
    match names {
        [one] => format!("library {one}"),
        _ => format!("libraries {}", names.join(", ")),
    }
}

/// A registry file and the folder its relative paths resolve against.
fn read_registry(path: &Path) -> Result<(RegistryFile, PathBuf), PluginLoadError> {
    let file = RegistryFile::read(path)?;
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((file, dir))
}

/// An entry that adds a library; enabled ones need a path.
fn new_entry(
    e: LibraryEntry,
    registry: &Path,
    dir: &Path,
    source: LibrarySource,
) -> Result<Planned, PluginLoadError> {
    let enabled = e.is_enabled();
    if enabled && e.path.is_none() {
        return Err(PluginLoadError::NoLibraryPath {
            registry: registry.to_path_buf(),
            library: e.name,
        });
    }
    Ok(Planned {
        path: e.path.as_deref().map(|t| resolve_library_path(t, dir)),
        name: e.name,
        enabled,
        defaults: e.defaults,
        source,
    })
}

/// The canonical form of a path when it exists, else the path itself.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Library files named by search-path entries (files, or every library file in a folder).
fn library_files(entries: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(e)
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(std::env::consts::DLL_SUFFIX))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(e.clone());
        }
    }
    out
}

/// A library's label when it has no registry name: its file stem.
fn file_label(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const BUILTIN: &str = "[[library]]\nname = \"a\"\npath = \"liba.so\"\n\
        [library.defaults.p]\nx = 1\ny = 2\n\n[[library]]\nname = \"b\"\npath = \"libb.so\"\n";

    #[test]
    fn user_entries_change_builtins_by_name_and_add_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let builtin = write(dir.path(), "builtin.toml", BUILTIN);
        let user = write(
            dir.path(),
            "user.toml",
            "[[library]]\nname = \"a\"\n[library.defaults.p]\ny = 3\n\n\
             [[library]]\nname = \"b\"\nenabled = false\n\n\
             [[library]]\nname = \"c\"\npath = \"libc.so\"\n",
        );
        let sources = PluginSources {
            builtin: Some(builtin.clone()),
            registry: Some(user.clone()),
            ..Default::default()
        };
        let (planned, note) = layer_registries(&sources).unwrap();
        let names: Vec<(&str, bool)> = planned
            .iter()
            .map(|p| (p.name.as_str(), p.enabled))
            .collect();
        assert_eq!(names, [("a", true), ("b", false), ("c", true)]);
        assert_eq!(
            planned[0].defaults["p"],
            serde_json::json!({"x": 1, "y": 3})
        );
        assert_eq!(planned[0].source, LibrarySource::Builtin(builtin));
        assert_eq!(planned[2].source, LibrarySource::UserRegistry(user.clone()));
        assert_eq!(
            note.unwrap(),
            format!(
                "note: user registry {} disables built-in library 'b'",
                user.display()
            )
        );
    }

    #[test]
    fn a_redefined_path_is_noted_and_resolved_against_the_user_registry() {
        let dir = tempfile::tempdir().unwrap();
        let builtin = write(dir.path(), "builtin.toml", BUILTIN);
        write(dir.path(), "libb.so", "");
        std::fs::create_dir(dir.path().join("u")).unwrap();
        let user = write(
            &dir.path().join("u"),
            "user.toml",
            "[[library]]\nname = \"a\"\npath = \"mine.so\"\n\n\
             [[library]]\nname = \"b\"\npath = \"../libb.so\"\n",
        );
        let sources = PluginSources {
            builtin: Some(builtin),
            registry: Some(user.clone()),
            ..Default::default()
        };
        let (planned, note) = layer_registries(&sources).unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(planned[0].path, Some(dir.join("u").join("mine.so")));
        assert_eq!(planned[0].source, LibrarySource::UserRegistry(user.clone()));
        // The same file under another spelling is not a redefinition.
        assert!(matches!(planned[1].source, LibrarySource::Builtin(_)));
        assert_eq!(
            note.unwrap(),
            format!(
                "note: user registry {} redefines built-in library 'a'",
                user.display()
            )
        );
    }
}
