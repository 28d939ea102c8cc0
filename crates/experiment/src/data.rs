//! Text to model input, one way for every caller: the dataset a configuration names, how its
//! texts become ids ([`Tokenizer`]: the vocabulary built from the training split, or a
//! pretrained encoder's own tokenizer), and batches of raw texts for inference (prediction,
//! the head analysis). Training batches come from `dataset::TextLoader`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::{data::dataloader::batcher::Batcher, prelude::*};
use dataset::{
    DatasetSpec, SubwordTokenizer, TextBatch, TextBatcher, TextDataset, TextExample, TextItem,
    Vocabulary, VocabularyConfig, WordVectors,
    pretrained::{self, Kind},
};

use crate::{config::ExperimentConfig, run_dir::files};

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

/// The folder of the pretrained encoder `name`: a model `experiment fetch` knows, in the data
/// directory, or else a folder path.
pub fn encoder_dir(config: &ExperimentConfig, name: &str) -> Result<PathBuf> {
    if let Some(dir) = fetched(config, name, Kind::Encoder)? {
        return Ok(dir);
    }
    let dir = PathBuf::from(name);
    for file in ["config.json", "model.safetensors", files::TOKENIZER] {
        if !dir.join(file).is_file() {
            bail!(
                "{}: no {file}; encoder must be a model `experiment fetch` knows or a folder with a BERT checkpoint",
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// The folder of the model `name` when it is one `experiment fetch` knows (and not a path
/// that exists): found in the data directory, or the error saying how to fetch it.
fn fetched(config: &ExperimentConfig, name: &str, kind: Kind) -> Result<Option<PathBuf>> {
    if Path::new(name).exists() || pretrained::find(name).is_err() {
        return Ok(None);
    }
    let model = pretrained::find_kind(name, kind)?;
    let data_dir = config
        .data
        .data_dir
        .clone()
        .unwrap_or_else(dataset::sst2::default_data_dir);
    Ok(Some(pretrained::locate(&data_dir, model)?))
}

/// The word vectors `name` (`--embeddings`) for the words of `vocab`: a name `experiment
/// fetch` knows, or a file or folder.
pub fn word_vectors(
    config: &ExperimentConfig,
    name: &str,
    vocab: &Vocabulary,
) -> Result<WordVectors> {
    let path = fetched(config, name, Kind::WordVectors)?.unwrap_or_else(|| PathBuf::from(name));
    // `<pad>` and `<unk>` are ours, not words a file's vectors describe.
    let words: std::collections::HashSet<&str> = (0..vocab.len())
        .filter(|&id| id != dataset::PAD && id != dataset::UNK)
        .filter_map(|id| vocab.token(id))
        .collect();
    let vectors = WordVectors::read(&path, |w| words.contains(w))?;
    Ok(vectors)
}

/// How a run turns text into ids.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// Words looked up in the vocabulary of the training split (models trained from scratch).
    Words(Vocabulary),
    /// A pretrained encoder's own tokenizer (its `tokenizer.json`).
    Subwords(Box<SubwordTokenizer>),
}

impl Tokenizer {
    /// A new run's: the pretrained encoder's tokenizer (from `encoder`, its folder), else the
    /// vocabulary of `data`'s training split.
    pub fn new(
        config: &ExperimentConfig,
        data: &TextDataset,
        encoder: Option<&Path>,
    ) -> Result<Self> {
        match encoder {
            Some(dir) => Ok(Self::Subwords(Box::new(SubwordTokenizer::from_file(
                dir.join(files::TOKENIZER),
                config.data.max_len,
            )?))),
            None => Ok(Self::Words(vocabulary(config, data))),
        }
    }

    /// The one a run folder holds: `tokenizer.json` for a pretrained encoder, else `vocab.json`.
    pub fn open(dir: &Path, config: &ExperimentConfig) -> Result<Self> {
        if config.model.encoder.is_some() {
            Ok(Self::Subwords(Box::new(SubwordTokenizer::from_file(
                dir.join(files::TOKENIZER),
                config.data.max_len,
            )?)))
        } else {
            Ok(Self::Words(Vocabulary::load(&dir.join(files::VOCAB))?))
        }
    }

    /// Writes it into the run folder `out` (what [`open`](Self::open) reads); a tokenizer is
    /// copied from the encoder's folder `encoder`.
    pub fn save(&self, out: &Path, encoder: Option<&Path>) -> Result<()> {
        match (self, encoder) {
            (Self::Words(vocab), _) => Ok(vocab.save(&out.join(files::VOCAB))?),
            (Self::Subwords(_), Some(dir)) => {
                let from = dir.join(files::TOKENIZER);
                std::fs::copy(&from, out.join(files::TOKENIZER))
                    .with_context(|| format!("copying {}", from.display()))?;
                Ok(())
            }
            (Self::Subwords(_), None) => bail!("a tokenizer is saved from its encoder's folder"),
        }
    }

    /// Vocabulary entries: the embedding table's rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Words(vocab) => vocab.len(),
            Self::Subwords(tokenizer) => tokenizer.vocab_size(),
        }
    }

    /// Whether the vocabulary is empty (never, for a built one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every example's ids with its label.
    pub fn encode_examples(&self, examples: &[TextExample]) -> Result<Vec<TextItem>> {
        match self {
            Self::Words(vocab) => Ok(vocab.encode_examples(examples)),
            Self::Subwords(tokenizer) => Ok(tokenizer.encode_examples(examples)?),
        }
    }
}

/// Raw texts to the batches a trained model reads: tokenised, looked up in the run's
/// vocabulary (or by its encoder's tokenizer), truncated to `max_len` and padded to the longest.
pub struct TextEncoder<'a> {
    tokenizer: &'a Tokenizer,
    max_len: usize,
}

impl<'a> TextEncoder<'a> {
    pub fn new(tokenizer: &'a Tokenizer, max_len: usize) -> Self {
        Self { tokenizer, max_len }
    }

    /// The tokens the model sees of `text` (after truncation; a subword tokenizer's special
    /// tokens included).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        match self.tokenizer {
            Tokenizer::Words(_) => {
                let mut tokens = dataset::tokenize(text);
                tokens.truncate(self.max_len);
                tokens
            }
            // Texts the tokenizer cannot encode (none of BERT's) show as no tokens.
            Tokenizer::Subwords(t) => t.encode(text).map(|e| e.tokens).unwrap_or_default(),
        }
    }

    /// `tokens` (from [`tokens`](Self::tokens)) as vocabulary ids, with their label.
    pub fn item(&self, tokens: &[String], label: usize) -> TextItem {
        let ids = match self.tokenizer {
            Tokenizer::Words(vocab) => tokens.iter().map(|t| vocab.id(t)).collect(),
            Tokenizer::Subwords(t) => {
                let unknown = t.token_id("[UNK]").unwrap_or(0);
                tokens
                    .iter()
                    .map(|token| t.token_id(token).unwrap_or(unknown))
                    .collect()
            }
        };
        TextItem { tokens: ids, label }
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
        let tokenizer = Tokenizer::Words(vocab.clone());
        let encoder = TextEncoder::new(&tokenizer, 3);
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
