//! Text to model input, one way for every caller: the dataset a configuration names, the
//! vocabulary it builds from the training split, and batches of raw texts for inference
//! (prediction, the head analysis). Training batches come from `dataset::TextLoader`.

use anyhow::Result;
use burn::{data::dataloader::batcher::Batcher, prelude::*};
use dataset::{
    DatasetSpec, TextBatch, TextBatcher, TextDataset, TextItem, Vocabulary, VocabularyConfig,
};

use crate::config::ExperimentConfig;

/// The dataset `config` names.
pub fn load_dataset(config: &ExperimentConfig) -> Result<TextDataset> {
    let spec = DatasetSpec::parse(
        &config.data.dataset,
        config.data.data_dir.clone(),
        config.data.download,
    );
    Ok(spec.load()?)
}

/// The vocabulary of `data`'s training split, with `config`'s `min_freq` and `max_vocab`.
pub fn vocabulary(config: &ExperimentConfig, data: &TextDataset) -> Vocabulary {
    Vocabulary::build(
        data.train.iter().map(|e| e.text.as_str()),
        &VocabularyConfig {
            min_freq: config.data.min_freq,
            max_size: config.data.max_vocab,
        },
    )
}

/// Raw texts to the batches a trained model reads: tokenised, looked up in the run's
/// vocabulary, truncated to `max_len` and padded to the longest.
pub struct TextEncoder<'a> {
    vocab: &'a Vocabulary,
    max_len: usize,
}

impl<'a> TextEncoder<'a> {
    pub fn new(vocab: &'a Vocabulary, max_len: usize) -> Self {
        Self { vocab, max_len }
    }

    /// The tokens the model sees of `text` (after truncation).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let mut tokens = dataset::tokenize(text);
        tokens.truncate(self.max_len);
        tokens
    }

    /// `tokens` (from [`tokens`](Self::tokens)) as vocabulary ids, with their label.
    pub fn item(&self, tokens: &[String], label: usize) -> TextItem {
        TextItem {
            tokens: tokens.iter().map(|t| self.vocab.id(t)).collect(),
            label,
        }
    }

    /// One batch of items on `device`: tokens `[n, len]`, padding mask `[n, len]`
    /// (`true` = padding), labels `[n]`.
    pub fn batch(&self, items: Vec<TextItem>, device: &Device) -> TextBatch {
        TextBatcher::new(self.max_len).batch(items, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::TextExample;

    #[test]
    fn texts_are_truncated_padded_and_masked_like_training_batches() {
        let data = TextDataset {
            name: "tiny".into(),
            labels: vec!["a".into(), "b".into()],
            train: vec![TextExample::new(0, "good film"), TextExample::new(1, "bad")],
            validation: vec![],
            test: None,
        };
        let config = ExperimentConfig::default();
        let vocab = vocabulary(&config, &data);
        let encoder = TextEncoder::new(&vocab, 3);
        let tokens = encoder.tokens("good good good film");
        assert_eq!(tokens, ["good"; 3]);
        assert_eq!(encoder.item(&tokens, 1).tokens, [vocab.id("good"); 3]);
        let items = [("good film", 1), ("unseen", 0)]
            .map(|(text, label)| encoder.item(&encoder.tokens(text), label));
        let batch = encoder.batch(items.to_vec(), &Device::flex());
        assert_eq!(batch.tokens.dims(), [2, 2]);
        let ids: Vec<i64> = batch.tokens.into_data().try_into_vec_as::<i64>().unwrap();
        let good = vocab.id("good") as i64;
        assert_eq!(ids, [good, vocab.id("film") as i64, dataset::UNK as i64, 0]);
        let padding: Vec<bool> = batch
            .mask_padding
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        assert_eq!(padding, [false, false, false, true]);
        let labels: Vec<i64> = batch.labels.into_data().try_into_vec_as::<i64>().unwrap();
        assert_eq!(labels, [1, 0]);
    }
}
