//! The error plugins and the host return to each other.

use std::fmt;

use abi_stable::StableAbi;

/// An error category.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    /// The parameters given to a plugin do not fit its schema.
    InvalidParams,
    /// A tensor does not have the expected shape.
    ShapeMismatch,
    /// The host failed while serving a callback (model error, bad request).
    Host,
    /// A panic was caught at the boundary.
    Panic,
    /// The run was cancelled (the progress callback said stop).
    Cancelled,
    /// The request asks for something this plugin or host does not support.
    Unsupported,
    /// Any other failure inside a plugin.
    Plugin,
}

impl ErrorCode {
    /// A short kebab-case label for messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidParams => "invalid-params",
            Self::ShapeMismatch => "shape-mismatch",
            Self::Host => "host",
            Self::Panic => "panic",
            Self::Cancelled => "cancelled",
            Self::Unsupported => "unsupported",
            Self::Plugin => "plugin",
        }
    }
}

/// An error with a code, a one-line message and a chain of context lines (innermost first).
#[derive(Clone, Debug, PartialEq)]
pub struct PluginError {
    /// The category.
    pub code: ErrorCode,
    /// What went wrong, in one line.
    pub message: String,
    /// What was being done, innermost first (e.g. "running attribution method 'saliency'").
    pub context: Vec<String>,
}

impl PluginError {
    /// A new error without context.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            context: Vec::new(),
        }
    }

    /// Shorthand for [`ErrorCode::Plugin`].
    pub fn plugin(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Plugin, message)
    }

    /// Shorthand for [`ErrorCode::InvalidParams`].
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, message)
    }

    /// Shorthand for [`ErrorCode::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unsupported, message)
    }

    /// Shorthand for [`ErrorCode::ShapeMismatch`].
    pub fn shape(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ShapeMismatch, message)
    }

    /// Shorthand for [`ErrorCode::Host`].
    pub fn host(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Host, message)
    }

    /// Adds a context line ("while doing X").
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context.push(context.into());
        self
    }
}

impl fmt::Display for PluginError {
    /// One line: `[code] message (while a; while b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code.label(), self.message)?;
        if !self.context.is_empty() {
            write!(f, " (while {})", self.context.join("; while "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}
