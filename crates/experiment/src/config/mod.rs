//! The experiment's configuration: a TOML file, overridden by command-line flags.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use clap::ValueEnum;
pub use dataset::Batching;
use dataset::{
    PadTo, TextBatcher,
    pretrained::{self, Kind},
};
use serde::{Deserialize, Serialize};

use crate::model::{ClassifierConfig, ConfigError, ModelOptions, Positions, QkNormKind};

pub mod flat;

pub use flat::Moved;

/// A compute backend, chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    /// burn's pure-Rust CPU backend (the faster CPU backend here; see the README).
    Flex,
    /// The ndarray CPU backend (deprecated upstream in burn 0.22).
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12), or a software Vulkan driver such as lavapipe.
    Wgpu,
    /// NVIDIA GPU through CUDA (cargo feature `cuda`, off by default: it is needed only on
    /// machines with an NVIDIA driver, where wgpu may find no Vulkan adapter).
    Cuda,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            self.to_possible_value()
                .expect("no skipped variants")
                .get_name(),
        )
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The learning rate stays at `lr`.
    Constant,
    /// Cosine decay from `lr` to 0 over the planned epochs.
    Cosine,
    /// Linear decay from `lr` to 0 over the planned epochs (BERT's fine-tuning schedule, with
    /// `warmup`).
    Linear,
}

/// Everything a training run depends on, in three TOML sections and one top-level key:
///
/// ```toml
/// backend = "flex"
/// [data]
/// dataset = "sst2"
/// [model]
/// heads = 4
/// [train]
/// lr = 0.001
/// ```
///
/// Keys left out keep their defaults; unknown keys are an error. Files with the flat keys of
/// attention-lab 0.1 (`heads = 4` at the top) are still read (see [`Self::parse`]).
/// The model's keys are [`ModelOptions`], declared and checked where the model is defined.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Compute backend.
    pub backend: Backend,
    /// Which data, and how texts become tokens.
    pub data: DataConfig,
    /// The classifier's hyperparameters.
    pub model: ModelOptions,
    /// The optimisation.
    pub train: TrainConfig,
}

/// The `[data]` section: the dataset and its tokenisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset: `synthetic`, `sst2`, or a folder path. Default: `synthetic`.
    pub dataset: String,
    /// Where named datasets are kept (default: `$ATTENTION_LAB_DATA`, else the user cache).
    pub data_dir: Option<PathBuf>,
    /// Fetch a named dataset that is not in `data_dir`. Default: false.
    pub download: bool,
    /// Longest sequence in tokens; longer texts are truncated (and the positional table is
    /// this long). Default: 64.
    pub max_len: usize,
    /// Words seen fewer times in the training split become `<unk>`. Default: 1.
    pub min_freq: usize,
    /// Largest vocabulary, `<pad>` and `<unk>` included. Default: 30000.
    pub max_vocab: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "synthetic".into(),
            data_dir: None,
            download: false,
            max_len: 64,
            min_freq: 1,
            max_vocab: 30_000,
        }
    }
}

/// The `[train]` section: the optimisation and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Devices training data-parallel (burn-train's multi-device strategy): each step splits
    /// the batch across them and sums their gradients. On a CPU backend, that many worker
    /// threads on the one processor. Default: 1.
    pub devices: usize,
    /// Training epochs (the most; early stopping may end sooner). Default: 10.
    pub epochs: usize,
    /// Examples per training batch. Default: 64.
    pub batch_size: usize,
    /// How training examples are grouped into batches: texts of similar length together
    /// (`bucket`), random draws (`shuffle`), or random draws packed several texts to a row
    /// (`pack`: positions restart per text, a document mask keeps texts apart, each text is
    /// pooled alone; models from scratch only). Default: bucket.
    pub batching: Batching,
    /// Peak learning rate (AdamW). Default: 0.001.
    pub lr: f64,
    /// AdamW's decoupled weight decay. Default: 0.
    pub weight_decay: f64,
    /// Learning-rate schedule. Default: constant.
    pub schedule: Schedule,
    /// Share of the planned steps over which the learning rate first rises linearly from
    /// near 0 to `lr` (warm-up), before the schedule takes over. Default: 0.
    pub warmup: f64,
    /// Stop after this many epochs without a lower validation loss; 0 never stops early.
    /// Default: 3.
    pub patience: usize,
    /// Checkpoint averaging: the kept model is the parameter-wise mean of the `average` epochs
    /// with the lowest validation loss (their checkpoints are kept until the run ends); 1 keeps
    /// the best epoch alone. Default: 1.
    pub average: usize,
    /// Seed for initialisation, dropout and shuffling. Default: 42.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            epochs: 10,
            batch_size: 64,
            batching: Batching::Bucket,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            warmup: 0.0,
            patience: 3,
            average: 1,
            seed: 42,
        }
    }
}

impl ExperimentConfig {
    /// Reads a TOML file the user gave; keys left out keep their defaults. A file in the flat
    /// layout of attention-lab 0.1 is read too, with a one-line note on stderr.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let (config, moved) = Self::read(path)?;
        if let Some((key, section)) = moved.first() {
            eprintln!(
                "note: {}: top-level keys such as `{key}` are read as the [data], [model] and [train] keys they became in 0.2 (`{key}` under [{section}]); the file is left as it is",
                path.display()
            );
        }
        Ok(config)
    }

    /// Reads a TOML file, in either layout, with the keys [`Self::parse`] moved; errors name
    /// the file.
    pub fn read(path: &Path) -> anyhow::Result<(Self, Moved)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses TOML text, also in the flat layout of attention-lab 0.1 (every key at the top,
    /// as in run folders recorded then). Returns the configuration and each flat key that was
    /// moved into its section, as `(key, section)`. Errors are one line.
    pub fn parse(text: &str) -> Result<(Self, Moved), String> {
        let text = dataset::strip_bom_str(text);
        let error = |e: toml::de::Error| one_line(&e.to_string());
        let mut table: toml::Table = toml::from_str(text).map_err(error)?;
        let moved = flat::into_sections(&mut table)?;
        let config = if moved.is_empty() {
            // From the text, so that a wrong value is reported at its line and column.
            toml::from_str(text).map_err(error)?
        } else {
            table.try_into().map_err(error)?
        };
        Ok((config, moved))
    }

    /// Checks every value, returning the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, reason: String| Err(ConfigError { key, reason });
        let train = &self.train;
        if train.epochs == 0 {
            return err("epochs", "must be at least 1".into());
        }
        if train.batch_size == 0 {
            return err("batch_size", "must be at least 1".into());
        }
        if train.average == 0 {
            return err(
                "average",
                "must be at least 1 (1 keeps the best epoch alone)".into(),
            );
        }
        if train.devices == 0 {
            return err("devices", "must be at least 1".into());
        }
        if train.devices > train.batch_size {
            return err(
                "devices",
                format!(
                    "{} devices cannot split batches of {}; use at most batch_size devices",
                    train.devices, train.batch_size
                ),
            );
        }
        if !(train.lr.is_finite() && train.lr > 0.0 && train.lr <= 1.0) {
            return err("lr", format!("must be in (0, 1], got {}", train.lr));
        }
        if !(train.weight_decay.is_finite() && train.weight_decay >= 0.0) {
            return err(
                "weight_decay",
                format!("must be >= 0, got {}", train.weight_decay),
            );
        }
        if !(train.warmup.is_finite() && (0.0..1.0).contains(&train.warmup)) {
            return err(
                "warmup",
                format!(
                    "must be a share of the steps in [0, 1), got {}",
                    train.warmup
                ),
            );
        }
        if self.data.max_len == 0 {
            return err("max_len", "must be at least 1".into());
        }
        if self.model.freeze_encoder && self.model.freeze_embeddings {
            return err(
                "freeze_embeddings",
                "freeze_encoder freezes the embeddings too; set one".into(),
            );
        }
        if let Some(name) = &self.model.encoder {
            if self.train.batching == Batching::Pack {
                return err(
                    "batching",
                    "pack is for models from scratch; a pretrained encoder takes one text per row"
                        .into(),
                );
            }
            // A name must be one `experiment fetch` knows; anything else is a folder, checked
            // when it is opened.
            if !name.contains(['/', '\\']) && !Path::new(name).exists() {
                pretrained::find_kind(name, Kind::Encoder).map_err(|e| ConfigError {
                    key: "encoder",
                    reason: e.to_string(),
                })?;
            }
        } else if self.model.freeze_encoder {
            return err(
                "freeze_encoder",
                "needs a pretrained encoder (set encoder)".into(),
            );
        } else if self.model.freeze_embeddings && self.model.embeddings.is_none() {
            return err(
                "freeze_embeddings",
                "needs pretrained embeddings (set encoder or embeddings)".into(),
            );
        }
        if let Some(name) = &self.model.embeddings
            && !name.contains(['/', '\\'])
            && !Path::new(name).exists()
        {
            pretrained::find_kind(name, Kind::WordVectors).map_err(|e| ConfigError {
                key: "embeddings",
                reason: e.to_string(),
            })?;
        }
        if self.data.max_vocab < 3 {
            return err(
                "max_vocab",
                "must be at least 3 (<pad>, <unk> and one word)".into(),
            );
        }
        // The model's own keys are checked where the model is defined (and, below it, by the
        // attention crate's configs); the vocabulary and class counts are not known yet.
        self.model_config(3, 2).validate()
    }

    /// The classifier this configuration trains, for a vocabulary and a number of classes.
    pub fn model_config(&self, vocab_size: usize, n_classes: usize) -> ClassifierConfig {
        ClassifierConfig::new(vocab_size, n_classes)
            .with_max_len(self.data.max_len)
            .with_options(self.model.clone())
    }

    /// How batches are padded: to a short ladder of lengths on GPU backends, which compile and
    /// autotune kernels for each new shape; to the longest text on CPU backends, where a new
    /// shape costs nothing and every padded token costs time.
    pub fn pad_to(&self) -> PadTo {
        match self.backend {
            Backend::Wgpu | Backend::Cuda => PadTo::Ladder,
            Backend::Flex | Backend::Ndarray => PadTo::Longest,
        }
    }

    /// The batcher for this configuration's `max_len` and backend.
    pub fn batcher(&self) -> TextBatcher {
        TextBatcher::new(self.data.max_len).with_pad_to(self.pad_to())
    }

    /// The dataset's short name: `synthetic`, `sst2`, or a folder's last component.
    pub fn dataset_name(&self) -> String {
        last_component(&self.data.dataset)
    }

    /// A short run name: `synthetic-h4-pe-s42`.
    pub fn run_name(&self) -> String {
        let dataset = self.dataset_name();
        // `-pe` for the sinusoidal table, as run folders were named before the other schemes.
        let positions = match self.model.positions {
            Positions::None => String::new(),
            Positions::Sinusoidal => "-pe".into(),
            other => format!("-{other}"),
        };
        if let Some(encoder) = &self.model.encoder {
            let encoder = last_component(encoder);
            let frozen = match (self.model.freeze_encoder, self.model.freeze_embeddings) {
                (true, _) => "-frozen",
                (false, true) => "-frozen-embeddings",
                (false, false) => "",
            };
            return format!(
                "{dataset}-{encoder}{frozen}-{}-s{}",
                self.model.pooling, self.train.seed
            );
        }
        let layers = match self.model.layers {
            1 => String::new(),
            n => format!("-l{n}"),
        };
        let vectors = self
            .model
            .embeddings
            .as_ref()
            .map_or_else(String::new, |v| {
                let name = last_component(v);
                let frozen = if self.model.freeze_embeddings {
                    "-frozen"
                } else {
                    ""
                };
                format!("-{name}{frozen}")
            });
        let window = self
            .model
            .window
            .map_or_else(String::new, |w| format!("-w{w}"));
        let cap = self
            .model
            .softcap
            .map_or_else(String::new, |c| format!("-cap{c}"));
        let qk = match self.model.qk_norm {
            Some(QkNormKind::Rms) => "-qkrms",
            Some(QkNormKind::Layer) => "-qklayer",
            None => "",
        };
        let sinks = if self.model.sinks { "-sinks" } else { "" };
        format!(
            "{dataset}{layers}-h{}{positions}{window}{cap}{qk}{sinks}{vectors}-s{}",
            self.model.heads, self.train.seed
        )
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }
}

/// toml's errors span several lines with a source excerpt: keep the first line (the place)
/// and the last (the reason, e.g. "unknown field `x`, expected one of ...").
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first} {last}"),
    }
}

/// A name as run names show it: a path's last component (`../data/sst2` → `sst2`), else itself.
fn last_component(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let config = ExperimentConfig::default();
        config.validate().unwrap();
        assert_eq!(
            toml::from_str::<ExperimentConfig>(&config.to_toml()).unwrap(),
            config
        );
    }

    /// toml 1 skips the mark itself; this keeps it so whichever parser reads the file.
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_file() {
        let (config, _) = ExperimentConfig::parse("\u{feff}[model]\nheads = 2\n").unwrap();
        assert_eq!(config.model.heads, 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |f: fn(&mut ExperimentConfig)| {
            let mut c = ExperimentConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.model.heads = 3),
            "invalid heads: 3 heads do not divide d_model = 64; pick a divisor of d_model"
        );
        assert_eq!(
            bad(|c| {
                c.model.heads = 1;
                c.model.d_model = 63;
            }),
            "invalid d_model: the sinusoidal table pairs sin and cos columns, so d_model must be even and > 0, got 63"
        );
        assert_eq!(
            bad(|c| c.model.attention_dropout = 1.0),
            "invalid attention_dropout: must be in [0, 1), got 1"
        );
        assert_eq!(
            bad(|c| c.model.softcap = Some(0.0)),
            "invalid softcap: must be positive and finite, got 0"
        );
        assert_eq!(
            bad(|c| {
                c.model.encoder = Some("minilm-l6".into());
                c.model.window = Some(8);
            }),
            "invalid window: is for models from scratch; a pretrained encoder attends as it was trained"
        );
        assert_eq!(
            bad(|c| {
                c.model.encoder = Some("minilm-l6".into());
                c.model.sinks = true;
            }),
            "invalid sinks: is for models from scratch; a pretrained encoder attends as it was trained"
        );
        assert_eq!(
            bad(|c| {
                c.model.encoder = Some("minilm-l6".into());
                c.train.batching = Batching::Pack;
            }),
            "invalid batching: pack is for models from scratch; a pretrained encoder takes one text per row"
        );
        assert_eq!(
            bad(|c| c.train.epochs = 0),
            "invalid epochs: must be at least 1"
        );
        assert_eq!(
            bad(|c| c.model.token_dropout = 1.5),
            "invalid token_dropout: must be in [0, 1), got 1.5"
        );
        assert_eq!(
            bad(|c| c.model.embedding_std = f64::NAN),
            "invalid embedding_std: must be a positive finite number, got NaN"
        );
        assert_eq!(
            bad(|c| c.train.lr = -1.0),
            "invalid lr: must be in (0, 1], got -1"
        );
        assert_eq!(
            bad(|c| c.data.max_len = 0),
            "invalid max_len: must be at least 1"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[model]\nheads = 2\n[train]\nlearning_rate = 0.1\n").unwrap();
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("unknown field `learning_rate`"),
            "{err}"
        );
        std::fs::write(&path, "[model]\nheads = \"two\"\n").unwrap();
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("invalid type") && err.contains("line 2") && !err.contains('\n'),
            "{err}"
        );
    }
}
