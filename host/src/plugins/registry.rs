//! The plugin registry: every plugin of every loaded library, by kind and name.

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::std_types::RStr;
use rinseq_sdk::{
    AggregatorBox, AttributionMethodBox, ErrorCode, PluginDescriptor, PluginError, PluginFactory,
    StepFunctionBox,
};
use serde_json::Value;

use super::error::PluginLoadError;
use super::instance::Instance;
use super::library::{load_library, LoadedLibrary};
use super::registry_file::{resolve_library_path, RegistryFile};

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
    pub fn of(d: &PluginDescriptor) -> Self {
        match d.factory {
            PluginFactory::Attribution(_) => Self::Attribution,
            PluginFactory::StepFunction(_) => Self::StepFunction,
            PluginFactory::Aggregator(_) => Self::Aggregator,
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

/// Where plugin libraries come from.
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// A `registry.toml` to read, if any.
    pub registry: Option<PathBuf>,
    /// Extra library files or folders (from `RINSEQ_PLUGIN_PATH`), loaded after the registry.
    pub search_path: Vec<PathBuf>,
    /// Extra library files (from `--plugin PATH`), loaded last.
    pub extra: Vec<PathBuf>,
}

/// One plugin, ready to instantiate.
#[derive(Clone)]
pub struct RegisteredPlugin {
    /// Its kind.
    pub kind: PluginKind,
    /// What the library says about it.
    pub descriptor: PluginDescriptor,
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
    plugins: Vec<RegisteredPlugin>,
}

impl PluginRegistry {
    /// Loads every enabled library from `sources`; the first failure is returned.
    pub fn load(sources: &PluginSources) -> Result<Self, PluginLoadError> {
        let mut reg = Self::default();
        if let Some(path) = &sources.registry {
            let file = RegistryFile::read(path)?;
            let dir = std::fs::canonicalize(path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."));
            let dir = dir.as_path();
            for entry in file.libraries.iter().filter(|e| e.enabled) {
                let lib_path = resolve_library_path(&entry.path, dir);
                let lib = load_library(&entry.name, &lib_path)?;
                let defaults = entry.defaults.clone();
                reg.add(lib, |name| defaults.get(name).cloned())?;
            }
        }
        for path in library_files(&sources.search_path) {
            reg.add(load_library(&file_label(&path), &path)?, |_| None)?;
        }
        for path in &sources.extra {
            reg.add(load_library(&file_label(path), path)?, |_| None)?;
        }
        Ok(reg)
    }

    /// Adds a loaded library, rejecting plugin names that another library already provides.
    pub fn add(
        &mut self,
        lib: LoadedLibrary,
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
                return Err(PluginLoadError::Duplicate {
                    kind: kind.to_string(),
                    name: d.name.to_string(),
                    first: self.libraries[prev.library].name.clone(),
                    second: lib.name.clone(),
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
        Ok(())
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
    ) -> Result<Instance<AttributionMethodBox>, PluginLoadError> {
        let p = self.find(PluginKind::Attribution, name)?;
        match p.descriptor.factory {
            PluginFactory::Attribution(f) => instance(p, params, f),
            _ => unreachable!("kind checked by find"),
        }
    }

    /// Instantiates a step function with `params` (merged over the registry defaults).
    pub fn step_function(
        &self,
        name: &str,
        params: &Value,
    ) -> Result<Instance<StepFunctionBox>, PluginLoadError> {
        let p = self.find(PluginKind::StepFunction, name)?;
        match p.descriptor.factory {
            PluginFactory::StepFunction(f) => instance(p, params, f),
            _ => unreachable!("kind checked by find"),
        }
    }

    /// Instantiates an aggregator with `params` (merged over the registry defaults).
    pub fn aggregator(&self, name: &str, params: &Value) -> Result<AggregatorBox, PluginLoadError> {
        let p = self.find(PluginKind::Aggregator, name)?;
        match p.descriptor.factory {
            PluginFactory::Aggregator(f) => instantiate(p, params, f),
            _ => unreachable!("kind checked by find"),
        }
    }
}

/// [`instantiate`] with the name, capabilities and parameters kept beside the plugin.
fn instance<T>(
    p: &RegisteredPlugin,
    params: &Value,
    factory: extern "C" fn(RStr<'_>) -> abi_stable::std_types::RResult<T, PluginError>,
) -> Result<Instance<T>, PluginLoadError> {
    Ok(Instance {
        name: p.descriptor.name.to_string(),
        capabilities: p.descriptor.capabilities.clone(),
        params: merge(&p.defaults, params),
        plugin: instantiate(p, params, factory)?,
    })
}

fn instantiate<T>(
    p: &RegisteredPlugin,
    params: &Value,
    factory: extern "C" fn(RStr<'_>) -> abi_stable::std_types::RResult<T, PluginError>,
) -> Result<T, PluginLoadError> {
    let merged = merge(&p.defaults, params);
    let json = merged.to_string();
    factory(RStr::from_str(&json)).into_result().map_err(|e| {
        let (kind, name) = (p.kind.to_string(), p.descriptor.name.to_string());
        if e.code == ErrorCode::INVALID_PARAMS {
            PluginLoadError::BadParams {
                kind,
                name,
                message: e.message.to_string(),
            }
        } else {
            PluginLoadError::Factory {
                kind,
                name,
                message: e.to_string(),
            }
        }
    })
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
