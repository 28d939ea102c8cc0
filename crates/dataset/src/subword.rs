//! A pretrained model's own tokenizer, read from the `tokenizer.json` it was published with
//! (Hugging Face's format, through the `tokenizers` crate): BERT's lower-casing WordPiece with
//! `[CLS]` … `[SEP]`, or whatever pipeline the file describes.
//!
//! A pretrained encoder only understands the ids its tokenizer gives, so these replace the
//! word-level [`Vocabulary`](crate::Vocabulary) for such a model. The file's own padding and
//! truncation settings are replaced: [`TextBatcher`](crate::TextBatcher) pads each batch, and
//! sequences are cut at the `max_len` given here, special tokens included (as HF's
//! `truncation=True, max_length=max_len` does). A file without a post-processor whose vocabulary
//! has `[CLS]` and `[SEP]` frames texts with them, as transformers' `BertTokenizerFast` does.

use std::path::{Path, PathBuf};

use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
    processors::bert::BertProcessing,
};

use crate::{DataError, TextExample, TextItem};

/// A `tokenizer.json` tokenizer that truncates to `max_len` ids.
#[derive(Clone)]
pub struct SubwordTokenizer {
    inner: Tokenizer,
    max_len: usize,
    path: PathBuf,
}

impl std::fmt::Debug for SubwordTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubwordTokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// One text as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubwordText {
    /// The pieces (`[CLS]`, `the`, `##ory`, …), for display.
    pub tokens: Vec<String>,
    /// Their ids in the model's vocabulary.
    pub ids: Vec<usize>,
}

impl SubwordTokenizer {
    /// Reads `path` (a `tokenizer.json`); sequences will hold at most `max_len` ids.
    ///
    /// # Errors
    /// The file is missing or not a tokenizer, or `max_len` leaves no room for a token beside
    /// the special ones.
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = crate::read_text(path)?;
        let mut inner: Tokenizer = text
            .parse()
            .map_err(|e| DataError::file(path, format!("not a tokenizer.json file: {e}")))?;
        // A file saved without a post-processor (HF `tokenizers` trained from scratch) still
        // frames texts as BERT does when its vocabulary has the tokens, as transformers'
        // `BertTokenizerFast` does with it.
        if inner.get_post_processor().is_none()
            && let (Some(cls), Some(sep)) = (inner.token_to_id("[CLS]"), inner.token_to_id("[SEP]"))
        {
            inner.with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )));
        }
        let special = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_len <= special {
            return Err(DataError::file(
                path,
                format!(
                    "max_len {max_len} leaves no room for text beside the tokenizer's {special} special tokens"
                ),
            ));
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| DataError::file(path, format!("cannot truncate at {max_len}: {e}")))?;
        Ok(Self {
            inner,
            max_len,
            path: path.to_path_buf(),
        })
    }

    /// Entries of the vocabulary, added tokens included: the model's embedding table must have
    /// at least this many rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The longest sequence, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `token` (`"[PAD]"`, `"[CLS]"`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<usize> {
        self.inner.token_to_id(token).map(|id| id as usize)
    }

    /// `text`'s pieces and ids, special tokens added, cut at `max_len`.
    ///
    /// # Errors
    /// Only when the tokenizer's own pipeline fails on the text (none of BERT's does).
    pub fn encode(&self, text: &str) -> Result<SubwordText, DataError> {
        let encoding = self.inner.encode(text, true).map_err(|e| {
            DataError::file(&self.path, format!("cannot encode the text {text:?}: {e}"))
        })?;
        Ok(SubwordText {
            tokens: encoding.get_tokens().to_vec(),
            ids: encoding.get_ids().iter().map(|&id| id as usize).collect(),
        })
    }

    /// Every example's ids with its label, for [`TextBatcher`](crate::TextBatcher).
    pub fn encode_examples(&self, examples: &[TextExample]) -> Result<Vec<TextItem>, DataError> {
        examples
            .iter()
            .map(|example| {
                Ok(TextItem {
                    tokens: self.encode(&example.text)?.ids,
                    label: example.label,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WordPiece tokenizer as BERT's `tokenizer.json` describes one, over a handful of pieces.
    fn tiny_bert_json(padding_and_truncation: bool) -> String {
        use serde_json::json;
        let pieces = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "is", "good", "##s",
            "not", ",", "!", "cafe",
        ];
        let vocab: serde_json::Map<String, serde_json::Value> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), json!(i)))
            .collect();
        let special =
            |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
        let (truncation, padding) = if padding_and_truncation {
            (
                json!({"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0}),
                json!({"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": null,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}),
            )
        } else {
            (json!(null), json!(null))
        };
        json!({
            "version": "1.0",
            "truncation": truncation,
            "padding": padding,
            "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [special("[CLS]", 0), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]", 0)],
                "pair": [special("[CLS]", 0), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]", 0),
                         {"Sequence": {"id": "B", "type_id": 1}}, special("[SEP]", 1)],
                "special_tokens": {
                    "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
                }
            },
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}
        })
        .to_string()
    }

    fn tokenizer(
        json: &str,
        max_len: usize,
    ) -> (tempfile::TempDir, Result<SubwordTokenizer, DataError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, json).unwrap();
        let tokenizer = SubwordTokenizer::from_file(&path, max_len);
        (dir, tokenizer)
    }

    #[test]
    fn lower_cases_splits_pieces_and_adds_cls_and_sep() {
        let (_dir, t) = tokenizer(&tiny_bert_json(false), 16);
        let t = t.unwrap();
        assert_eq!(t.vocab_size(), 14);
        assert_eq!(t.token_id("[PAD]"), Some(0));
        let text = t.encode("The FILMS is not good, Café!").unwrap();
        assert_eq!(
            text.tokens,
            [
                "[CLS]", "the", "film", "##s", "is", "not", "good", ",", "cafe", "!", "[SEP]"
            ]
        );
        assert_eq!(text.ids, [2, 5, 6, 9, 7, 10, 8, 11, 13, 12, 3]);
        assert_eq!(
            t.encode("zebra").unwrap().ids,
            [2, 1, 3],
            "unknown word → [UNK]"
        );
    }

    #[test]
    fn truncates_at_max_len_with_the_special_tokens_kept_and_ignores_the_files_own_settings() {
        // The file says: truncate at 3 and pad; ours cuts at 5 and leaves padding to the batcher.
        let (_dir, t) = tokenizer(&tiny_bert_json(true), 5);
        let t = t.unwrap();
        let ids = t.encode("the film is good").unwrap().ids;
        assert_eq!(ids, [2, 5, 6, 7, 3]);
        assert_eq!(t.encode("good").unwrap().ids, [2, 8, 3], "no padding");
        let items = t
            .encode_examples(&[TextExample::new(1, "film"), TextExample::new(0, "")])
            .unwrap();
        assert_eq!(
            items[0],
            TextItem {
                tokens: vec![2, 6, 3],
                label: 1
            }
        );
        assert_eq!(items[1].tokens, [2, 3]);
    }

    #[test]
    fn bad_files_and_lengths_are_errors_naming_the_file() {
        let (_dir, t) = tokenizer("{\"version\": \"1.0\"}", 8);
        let message = t.unwrap_err().to_string();
        assert!(
            message.contains("tokenizer.json: not a tokenizer.json file"),
            "{message}"
        );
        let (_dir, t) = tokenizer(&tiny_bert_json(false), 2);
        let message = t.unwrap_err().to_string();
        assert!(message.contains("max_len 2 leaves no room"), "{message}");
        let missing = SubwordTokenizer::from_file("/nonexistent/tokenizer.json", 8).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/tokenizer.json"),
            "{missing}"
        );
    }
}
