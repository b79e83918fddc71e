//! The ABI-stable boundary, for hosts: plugin authors never use this module. The plain types
//! of the crate root are mirrored by [`wire`] types; [`guest`] adapts an author's plugin into
//! an ABI-stable object, [`host_side`] serves a [`crate::HostApi`] to plugins and calls loaded
//! plugins with plain values.

pub mod guest;
pub mod host_side;
pub mod traits;
pub mod wire;

pub use host_side::{Descriptor, LoadedAggregator, LoadedMethod, LoadedStepFunction, PluginKind};
pub use traits::{PluginDescriptor, PluginLib, PluginLibRef};
