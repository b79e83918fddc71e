//! The plugin registry: finds plugin libraries in layers (the built-in `registry.toml`, a user
//! registry, `RINSEQ_PLUGIN_PATH`, `--plugin`; see [`PluginSources`]), loads them across the
//! ABI-stable boundary and instantiates plugins by name.

pub mod error;
pub mod instance;
pub mod library;
pub mod registry;
pub mod registry_file;

pub use error::PluginLoadError;
pub use instance::Instance;
pub use library::{load_library, LoadedLibrary};
pub use registry::{LibrarySource, PluginKind, PluginRegistry, PluginSources, RegisteredPlugin};
pub use registry_file::RegistryFile;
