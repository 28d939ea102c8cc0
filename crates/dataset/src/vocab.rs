//! Tokenisation and vocabulary.

use std::{collections::HashMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{DataError, TextExample, TextItem};

/// Id of the padding token `<pad>`.
pub const PAD: usize = 0;
/// Id of the unknown-word token `<unk>`.
pub const UNK: usize = 1;

/// Lower-cases and splits `text` into words and punctuation.
///
/// A word is a run of letters, digits and apostrophes (so the PTB forms in SST-2, `n't` and
/// `'s`, stay whole); every other non-space character is a token of its own.
///
/// ```
/// assert_eq!(dataset::tokenize("It's NOT good, is it?"), ["it's", "not", "good", ",", "is", "it", "?"]);
/// assert_eq!(dataset::tokenize("does n't work"), ["does", "n't", "work"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_lowercase().collect());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// How a [`Vocabulary`] is built.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VocabularyConfig {
    /// Words seen fewer times than this in the training split map to `<unk>`. Default: `1`.
    pub min_freq: usize,
    /// At most this many entries, `<pad>` and `<unk>` included; the most frequent words win.
    /// Default: `30000`.
    pub max_size: usize,
}

impl Default for VocabularyConfig {
    fn default() -> Self {
        Self {
            min_freq: 1,
            max_size: 30_000,
        }
    }
}

/// Word ↔ id mapping: `<pad>` = 0, `<unk>` = 1, then words by decreasing frequency (ties in
/// alphabetical order, so the same data always gives the same ids).
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    tokens: Vec<String>,
    index: HashMap<String, usize>,
}

/// The JSON file layout.
#[derive(Serialize, Deserialize)]
struct VocabularyFile {
    format: String,
    lowercase: bool,
    tokens: Vec<String>,
}

const FORMAT: &str = "attention-lab vocabulary v1";

impl Vocabulary {
    /// Builds the vocabulary from training texts only.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, config: &VocabularyConfig) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for token in tokenize(text) {
                *counts.entry(token).or_default() += 1;
            }
        }
        let mut words: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, n)| *n >= config.min_freq.max(1))
            .collect();
        words.sort_by(|(a, na), (b, nb)| nb.cmp(na).then_with(|| a.cmp(b)));
        let keep = config.max_size.saturating_sub(2);
        let tokens = ["<pad>".to_string(), "<unk>".to_string()]
            .into_iter()
            .chain(words.into_iter().take(keep).map(|(w, _)| w))
            .collect();
        Self::from_tokens(tokens)
    }

    fn from_tokens(tokens: Vec<String>) -> Self {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Self { tokens, index }
    }

    /// Number of entries, `<pad>` and `<unk>` included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: `<pad>` and `<unk>` are always there.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The word with id `id`.
    pub fn token(&self, id: usize) -> Option<&str> {
        self.tokens.get(id).map(String::as_str)
    }

    /// The id of one (already tokenised) word, `<unk>` when unknown.
    pub fn id(&self, token: &str) -> usize {
        self.index.get(token).copied().unwrap_or(UNK)
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        tokenize(text).iter().map(|t| self.id(t)).collect()
    }

    /// Token ids and labels of `examples`, ready for a [`TextBatcher`](crate::TextBatcher).
    pub fn encode_examples(&self, examples: &[TextExample]) -> Vec<TextItem> {
        examples
            .iter()
            .map(|e| TextItem {
                tokens: self.encode(&e.text),
                label: e.label,
            })
            .collect()
    }

    /// Writes the vocabulary as JSON.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let file = VocabularyFile {
            format: FORMAT.into(),
            lowercase: true,
            tokens: self.tokens.clone(),
        };
        let json = serde_json::to_string_pretty(&file).expect("strings serialise");
        std::fs::write(path, json).map_err(|e| DataError::io(path, e))
    }

    /// Reads a vocabulary written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::from_json(path, &text)
    }

    /// Parses the JSON that [`save`](Self::save) writes; `path` names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, DataError> {
        let file: VocabularyFile = serde_json::from_str(crate::strip_bom_str(text))
            .map_err(|e| DataError::file(path, format!("not a vocabulary file: {e}")))?;
        if file.format != FORMAT {
            return Err(DataError::file(
                path,
                format!("unknown vocabulary format `{}`", file.format),
            ));
        }
        if file.tokens.get(PAD).map(String::as_str) != Some("<pad>")
            || file.tokens.get(UNK).map(String::as_str) != Some("<unk>")
        {
            return Err(DataError::file(
                path,
                "the first two entries must be <pad> and <unk>",
            ));
        }
        let vocab = Self::from_tokens(file.tokens);
        if vocab.index.len() != vocab.tokens.len() {
            return Err(DataError::file(path, "a word is listed twice"));
        }
        Ok(vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_order_with_alphabetical_ties_and_limits() {
        let texts = ["b a a c", "c a d"];
        let vocab = Vocabulary::build(texts, &VocabularyConfig::default());
        assert_eq!(vocab.tokens, ["<pad>", "<unk>", "a", "c", "b", "d"]);
        let small = Vocabulary::build(
            texts,
            &VocabularyConfig {
                min_freq: 2,
                max_size: 3,
            },
        );
        assert_eq!(small.tokens, ["<pad>", "<unk>", "a"]);
        assert_eq!(small.encode("A c zebra"), [2, UNK, UNK]);
    }

    #[test]
    fn punctuation_splits_and_apostrophes_stay() {
        assert_eq!(
            tokenize("  Hello,world!! "),
            ["hello", ",", "world", "!", "!"]
        );
        assert_eq!(tokenize("ÉTÉ café"), ["été", "café"]);
        assert!(tokenize(" \t ").is_empty());
    }
}
