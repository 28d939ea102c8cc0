use thiserror::Error;

/// What can go wrong when configuring, running or loading an attention module.
///
/// Shape problems that burn would report as a panic deep inside a kernel are checked up front and
/// returned as one of these, naming the offending value.
#[derive(Debug, Error)]
pub enum AttentionError {
    /// A configuration value is out of range (`field` names it).
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The config field at fault.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// An input tensor does not have the shape the module expects.
    #[error("shape mismatch for {what}: expected {expected}, got {got:?}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A safetensors file could not be read, or does not match the module.
    #[error("{path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl AttentionError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
