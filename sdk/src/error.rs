//! The structured error that crosses the plugin boundary.

use std::fmt;

use abi_stable::std_types::{RString, RVec};
use abi_stable::StableAbi;

/// An error category. A newtype over `u32` rather than an enum, so that new codes never change
/// the ABI.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The parameters given to a plugin do not fit its schema.
    pub const INVALID_PARAMS: Self = Self(1);
    /// A tensor does not have the expected shape.
    pub const SHAPE_MISMATCH: Self = Self(2);
    /// The host failed while serving a callback (model error, bad request).
    pub const HOST: Self = Self(3);
    /// A panic was caught at the boundary.
    pub const PANIC: Self = Self(4);
    /// The run was cancelled (progress callback returned `false`).
    pub const CANCELLED: Self = Self(5);
    /// The request asks for something this plugin or host does not support.
    pub const UNSUPPORTED: Self = Self(6);
    /// Any other failure inside a plugin.
    pub const PLUGIN: Self = Self(7);

    /// A short kebab-case label for messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::INVALID_PARAMS => "invalid-params",
            Self::SHAPE_MISMATCH => "shape-mismatch",
            Self::HOST => "host",
            Self::PANIC => "panic",
            Self::CANCELLED => "cancelled",
            Self::UNSUPPORTED => "unsupported",
            Self::PLUGIN => "plugin",
            _ => "error",
        }
    }
}

/// An error with a code, a message and a chain of context lines (innermost first).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    /// The category.
    pub code: ErrorCode,
    /// What went wrong, in one line.
    pub message: RString,
    /// What was being done, innermost first (e.g. "running attribution method 'saliency'").
    pub context: RVec<RString>,
}

impl PluginError {
    /// A new error without context.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into().into(),
            context: RVec::new(),
        }
    }

    /// Shorthand for [`ErrorCode::PLUGIN`].
    pub fn plugin(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PLUGIN, message)
    }

    /// Shorthand for [`ErrorCode::INVALID_PARAMS`].
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_PARAMS, message)
    }

    /// Shorthand for [`ErrorCode::UNSUPPORTED`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UNSUPPORTED, message)
    }

    /// Adds a context line ("while doing X").
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context.push(context.into().into());
        self
    }
}

impl fmt::Display for PluginError {
    /// One line: `[code] message (while a; while b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code.label(), self.message)?;
        if !self.context.is_empty() {
            let ctx: Vec<&str> = self.context.iter().map(|c| c.as_str()).collect();
            write!(f, " (while {})", ctx.join("; while "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}
