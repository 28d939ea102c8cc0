//! The experiment's configuration: a TOML file, overridden by command-line flags.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use clap::ValueEnum;
pub use dataset::Batching;
use dataset::{PadTo, TextBatcher};
use serde::{Deserialize, Serialize};

use crate::model::ConfigError;

/// A compute backend, chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
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
}

/// Everything a training run depends on. Unknown keys in a file are an error.
///
/// The keys are flat, the model's among them, rather than a nested model config with
/// `#[serde(flatten)]`: serde ignores `deny_unknown_fields` across a flattened struct (a
/// misspelt `hedas = 4` would pass silently) and toml then reports a wrong value in it at line
/// 1, column 1 instead of at its key. The model's keys are checked by
/// [`ClassifierConfig::validate`](crate::model::ClassifierConfig::validate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Dataset: `synthetic`, `sst2`, or a folder path.
    pub dataset: String,
    /// Where named datasets are kept (default: `$ATTENTION_LAB_DATA`, else the user cache).
    pub data_dir: Option<PathBuf>,
    /// Fetch a named dataset that is not in `data_dir`.
    pub download: bool,
    /// Compute backend.
    pub backend: Backend,
    /// Devices training data-parallel (burn-train's multi-device strategy): each step splits
    /// the batch across them and sums their gradients. On a CPU backend, that many worker
    /// threads on the one processor.
    pub devices: usize,
    /// Attention heads; 1 is the single-head baseline (`d_k = d_v = d_model`).
    pub heads: usize,
    /// Embedding and attention width.
    pub d_model: usize,
    /// Add sinusoidal positional encoding to the embeddings.
    pub pe: bool,
    /// Dropout after the embedding and before the classifier.
    pub dropout: f64,
    /// Dropout on the attention weights.
    pub attention_dropout: f64,
    /// Probability of dropping a whole token's embedding while training.
    pub token_dropout: f64,
    /// Standard deviation of the embedding initialisation.
    pub embedding_std: f64,
    /// Training epochs (the most; early stopping may end sooner).
    pub epochs: usize,
    /// Examples per training batch.
    pub batch_size: usize,
    /// How training examples are grouped into batches: texts of similar length together
    /// (`bucket`), or random draws (`shuffle`).
    pub batching: Batching,
    /// Peak learning rate (AdamW).
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Stop after this many epochs without a lower validation loss; 0 never stops early.
    pub patience: usize,
    /// Seed for initialisation, dropout and shuffling.
    pub seed: u64,
    /// Longest sequence in tokens; longer texts are truncated.
    pub max_len: usize,
    /// Words seen fewer times in the training split become `<unk>`.
    pub min_freq: usize,
    /// Largest vocabulary, `<pad>` and `<unk>` included.
    pub max_vocab: usize,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            dataset: "synthetic".into(),
            data_dir: None,
            download: false,
            backend: Backend::Flex,
            devices: 1,
            heads: 4,
            d_model: 64,
            pe: true,
            dropout: 0.1,
            attention_dropout: 0.0,
            token_dropout: 0.0,
            embedding_std: 1.0,
            epochs: 10,
            batch_size: 64,
            batching: Batching::Bucket,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            patience: 3,
            seed: 42,
            max_len: 64,
            min_freq: 1,
            max_vocab: 30_000,
        }
    }
}

impl ExperimentConfig {
    /// Reads a TOML file; keys left out keep their defaults.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))
    }

    /// Checks every value, returning the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, reason: String| Err(ConfigError { key, reason });
        if self.epochs == 0 {
            return err("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return err("batch_size", "must be at least 1".into());
        }
        if self.devices == 0 {
            return err("devices", "must be at least 1".into());
        }
        if self.devices > self.batch_size {
            return err(
                "devices",
                format!(
                    "{} devices cannot split batches of {}; use at most batch_size devices",
                    self.devices, self.batch_size
                ),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return err("lr", format!("must be in (0, 1], got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return err(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if self.max_len == 0 {
            return err("max_len", "must be at least 1".into());
        }
        if self.max_vocab < 3 {
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
    pub fn model_config(
        &self,
        vocab_size: usize,
        n_classes: usize,
    ) -> crate::model::ClassifierConfig {
        crate::model::ClassifierConfig::new(vocab_size, n_classes)
            .with_d_model(self.d_model)
            .with_heads(self.heads)
            .with_pe(self.pe)
            .with_max_len(self.max_len)
            .with_dropout(self.dropout)
            .with_attention_dropout(self.attention_dropout)
            .with_token_dropout(self.token_dropout)
            .with_embedding_std(self.embedding_std)
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
        TextBatcher::new(self.max_len).with_pad_to(self.pad_to())
    }

    /// The dataset's short name: `synthetic`, `sst2`, or a folder's last component.
    pub fn dataset_name(&self) -> String {
        Path::new(&self.dataset).file_name().map_or_else(
            || self.dataset.clone(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// A short run name: `synthetic-h4-pe-s42`.
    pub fn run_name(&self) -> String {
        let dataset = self.dataset_name();
        let pe = if self.pe { "-pe" } else { "" };
        format!("{dataset}-h{}{pe}-s{}", self.heads, self.seed)
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

    #[test]
    fn bad_values_name_their_key() {
        let bad = |f: fn(&mut ExperimentConfig)| {
            let mut c = ExperimentConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|c| c.heads = 3),
            "invalid heads: 3 heads do not divide d_model = 64; pick a divisor of d_model"
        );
        assert_eq!(
            bad(|c| {
                c.heads = 1;
                c.d_model = 63;
            }),
            "invalid d_model: the sinusoidal table pairs sin and cos columns, so d_model must be even and > 0, got 63"
        );
        assert_eq!(
            bad(|c| c.attention_dropout = 1.0),
            "invalid attention_dropout: must be in [0, 1), got 1"
        );
        assert_eq!(bad(|c| c.epochs = 0), "invalid epochs: must be at least 1");
        assert_eq!(
            bad(|c| c.token_dropout = 1.5),
            "invalid token_dropout: must be in [0, 1), got 1.5"
        );
        assert_eq!(
            bad(|c| c.embedding_std = f64::NAN),
            "invalid embedding_std: must be a positive finite number, got NaN"
        );
        assert_eq!(
            bad(|c| c.lr = -1.0),
            "invalid lr: must be in (0, 1], got -1"
        );
        assert_eq!(
            bad(|c| c.max_len = 0),
            "invalid max_len: must be at least 1"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "heads = 2\nlearning_rate = 0.1\n").unwrap();
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("unknown field `learning_rate`"),
            "{err}"
        );
        std::fs::write(&path, "heads = \"two\"\n").unwrap();
        let err = ExperimentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("invalid type") && !err.contains('\n'), "{err}");
    }
}
