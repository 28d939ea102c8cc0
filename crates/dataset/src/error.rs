use std::path::Path;

use thiserror::Error;

/// Everything that can go wrong while reading, downloading or encoding a dataset.
///
/// Each message names the file (and line, where there is one) and, where there is one, the fix.
#[derive(Debug, Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// One line of a data file is malformed.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong and, where there is one, how to fix it.
        reason: String,
    },
    /// A file or folder as a whole is unusable (missing, empty, wrong layout).
    #[error("{path}: {reason}")]
    File {
        /// The file or folder.
        path: String,
        /// What is wrong and, where there is one, how to fix it.
        reason: String,
    },
    /// A download failed or delivered the wrong bytes.
    #[error("downloading {url}: {reason}")]
    Download {
        /// Where from.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn line(path: &Path, line: usize, reason: impl Into<String>) -> Self {
        Self::Line {
            path: path.display().to_string(),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn file(path: &Path, reason: impl Into<String>) -> Self {
        Self::File {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}
