//! Loading records saved before the classifier held one attention field.

use attention::{LayerNorm, MultiHeadAttention, SinusoidalPositionalEncoding};
use burn::{
    nn::{Dropout, Embedding, Linear},
    prelude::*,
};

use super::ScratchClassifier;

/// The record layout of the classifier before it held one attention field: the single-head
/// baseline and the multi-head model had a field each, and the weights inside are the same.
#[derive(Module, Debug)]
pub(super) struct LegacyClassifier {
    embedding: Embedding,
    token_dropout: Dropout,
    positions: Option<SinusoidalPositionalEncoding>,
    single: Option<MultiHeadAttention>,
    multi: Option<MultiHeadAttention>,
    norm: LayerNorm,
    dropout: Dropout,
    output: Linear,
}

impl From<(ScratchClassifier, usize)> for LegacyClassifier {
    fn from((c, heads): (ScratchClassifier, usize)) -> Self {
        let (single, multi) = if heads == 1 {
            (Some(c.attention), None)
        } else {
            (None, Some(c.attention))
        };
        Self {
            embedding: c.embedding,
            token_dropout: c.token_dropout,
            positions: c.positions,
            single,
            multi,
            norm: c.norm,
            dropout: c.dropout,
            output: c.output,
        }
    }
}

impl From<LegacyClassifier> for ScratchClassifier {
    fn from(c: LegacyClassifier) -> Self {
        Self {
            embedding: c.embedding,
            project: None,
            token_dropout: c.token_dropout,
            positions: c.positions,
            learned: None,
            deeper: Vec::new(),
            attention: c
                .single
                .or(c.multi)
                .expect("built with one attention field"),
            norm: c.norm,
            dropout: c.dropout,
            output: c.output,
        }
    }
}
