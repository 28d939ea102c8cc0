//! Dataset statistics.

use std::fmt;

use serde::Serialize;

use crate::{TextDataset, UNK, Vocabulary};

/// Statistics of one split.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SplitStats {
    /// `train`, `validation` or `test`.
    pub split: String,
    /// Number of examples.
    pub examples: usize,
    /// Examples per class id.
    pub label_counts: Vec<usize>,
    /// Mean length in tokens.
    pub len_mean: f64,
    /// 95th percentile of the length in tokens (nearest rank).
    pub len_p95: usize,
    /// Longest example in tokens.
    pub len_max: usize,
    /// Fraction of tokens that map to `<unk>`.
    pub oov_rate: f64,
}

/// Statistics of every split of a dataset under one vocabulary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatasetStats {
    /// Dataset name.
    pub name: String,
    /// Class names.
    pub labels: Vec<String>,
    /// Vocabulary size, `<pad>` and `<unk>` included.
    pub vocab_size: usize,
    /// One entry per split present.
    pub splits: Vec<SplitStats>,
}

/// Computes [`DatasetStats`]; the vocabulary should be built from the training split.
pub fn statistics(dataset: &TextDataset, vocab: &Vocabulary) -> DatasetStats {
    let splits = dataset
        .splits()
        .into_iter()
        .map(|(split, examples)| {
            let mut label_counts = vec![0; dataset.n_classes()];
            let mut lengths = Vec::with_capacity(examples.len());
            let (mut tokens, mut unknown) = (0usize, 0usize);
            for example in examples {
                label_counts[example.label] += 1;
                let ids = vocab.encode(&example.text);
                tokens += ids.len();
                unknown += ids.iter().filter(|&&id| id == UNK).count();
                lengths.push(ids.len());
            }
            lengths.sort_unstable();
            let p95 = lengths
                .get(((lengths.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0);
            SplitStats {
                split: split.to_string(),
                examples: examples.len(),
                label_counts,
                len_mean: tokens as f64 / examples.len().max(1) as f64,
                len_p95: p95,
                len_max: lengths.last().copied().unwrap_or(0),
                oov_rate: unknown as f64 / tokens.max(1) as f64,
            }
        })
        .collect();
    DatasetStats {
        name: dataset.name.clone(),
        labels: dataset.labels.clone(),
        vocab_size: vocab.len(),
        splits,
    }
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset {}: {} classes, vocabulary {} (built from train)",
            self.name,
            self.labels.len(),
            self.vocab_size
        )?;
        writeln!(
            f,
            "{:<11} {:>8} {:>9} {:>8} {:>8} {:>8}  labels",
            "split", "examples", "len mean", "len p95", "len max", "OOV"
        )?;
        for s in &self.splits {
            let labels: Vec<String> = s
                .label_counts
                .iter()
                .zip(&self.labels)
                .map(|(n, name)| {
                    format!(
                        "{name} {n} ({:.1}%)",
                        100.0 * *n as f64 / s.examples.max(1) as f64
                    )
                })
                .collect();
            writeln!(
                f,
                "{:<11} {:>8} {:>9.1} {:>8} {:>8} {:>7.2}%  {}",
                s.split,
                s.examples,
                s.len_mean,
                s.len_p95,
                s.len_max,
                100.0 * s.oov_rate,
                labels.join(", ")
            )?;
        }
        Ok(())
    }
}
