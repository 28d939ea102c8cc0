//! Choosing a dataset by name or path.

use std::{fmt, path::PathBuf};

use crate::{DataError, FolderOptions, TextDataset, load_folder, sst2, synthetic};

/// A dataset as a user names it: `synthetic`, `synthetic-long`, `sst2`, or a path to a folder.
///
/// A bare `synthetic` or `sst2` is the named source; write `./sst2` for a folder of that name.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetSpec {
    /// The embedded generator, [`synthetic`] (`synthetic-long`: [`synthetic::SyntheticConfig::long`]).
    Synthetic(synthetic::SyntheticConfig),
    /// GLUE SST-2 from a data directory, downloaded when `download` is set ([`sst2`]).
    Sst2 {
        /// Where `SST-2.zip` and the converted `sst2/` folder live.
        data_dir: PathBuf,
        /// Fetch the archive when it is not there.
        download: bool,
    },
    /// A folder for [`load_folder`].
    Folder(PathBuf, FolderOptions),
}

impl DatasetSpec {
    /// Parses `synthetic`, `synthetic-long`, `sst2` or a path; `data_dir` and `download` serve
    /// `sst2`.
    pub fn parse(name: &str, data_dir: Option<PathBuf>, download: bool) -> Self {
        match name {
            "synthetic" => Self::Synthetic(synthetic::SyntheticConfig::default()),
            "synthetic-long" => Self::Synthetic(synthetic::SyntheticConfig::long()),
            "sst2" => Self::Sst2 {
                data_dir: data_dir.unwrap_or_else(sst2::default_data_dir),
                download,
            },
            path => Self::Folder(PathBuf::from(path), FolderOptions::default()),
        }
    }

    /// Loads (generating or downloading as needed) the dataset.
    pub fn load(&self) -> Result<TextDataset, DataError> {
        match self {
            Self::Synthetic(config) => Ok(synthetic::generate(config)),
            Self::Sst2 { data_dir, download } => {
                sst2::load(data_dir, *download, &sst2::Sst2Source::default())
            }
            Self::Folder(dir, options) => load_folder(dir, options),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synthetic(config) => write!(f, "{}", config.name()),
            Self::Sst2 { .. } => write!(f, "sst2"),
            Self::Folder(dir, _) => write!(f, "{}", dir.display()),
        }
    }
}
