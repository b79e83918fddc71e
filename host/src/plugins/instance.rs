//! A plugin instance together with what the host needs to plan around it: its name, declared
//! capabilities and the parameters it was built with.

use std::ops::Deref;

use rinseq_sdk::Capabilities;
use serde_json::Value;

/// An instantiated plugin (`T` is its ABI-stable box); derefs to the box.
pub struct Instance<T> {
    /// The registered name.
    pub name: String,
    /// The capabilities its descriptor declares.
    pub capabilities: Capabilities,
    /// The parameters it was built with (registry defaults merged under the caller's).
    pub params: Value,
    /// The plugin itself.
    pub plugin: T,
}

impl<T> Deref for Instance<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.plugin
    }
}
