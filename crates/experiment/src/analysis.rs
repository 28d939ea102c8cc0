//! Do heads specialise? On a dataset that knows which tokens decide each label (`synthetic`),
//! measure per head how often the token it attends to most is one of them.

use burn::prelude::*;
use dataset::TextExample;
use serde::{Deserialize, Serialize};

use crate::{
    data::{TextEncoder, Tokenizer},
    model::Classifier,
};

/// Per-head focus on the deciding tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadFocus {
    /// For each head: the fraction of examples whose most-attended token (attention received,
    /// averaged over queries) is a deciding token.
    pub hit_rate: Vec<f64>,
    /// The rate a head attending to a uniformly random token would get.
    pub chance: f64,
}

/// Measures [`HeadFocus`] over `examples` that carry decisive positions; `None` when none do,
/// or when a subword tokenizer's pieces do not line up with the words they mark.
pub fn head_focus(
    model: &Classifier,
    examples: &[TextExample],
    tokenizer: &Tokenizer,
    max_len: usize,
    device: &Device,
) -> Option<HeadFocus> {
    if matches!(tokenizer, Tokenizer::Subwords(_)) {
        return None;
    }
    let examples: Vec<&TextExample> = examples.iter().filter(|e| !e.decisive.is_empty()).collect();
    if examples.is_empty() {
        return None;
    }
    let encoder = TextEncoder::new(tokenizer, max_len);
    let mut hits: Vec<usize> = Vec::new();
    let mut chance = 0.0;
    for chunk in examples.chunks(256) {
        let items: Vec<_> = chunk
            .iter()
            .map(|e| encoder.item(&encoder.tokens(&e.text), e.label))
            .collect();
        let lengths: Vec<usize> = items.iter().map(|i| i.tokens.len()).collect();
        let batch = encoder.batch(items, device);
        let out = model.forward(batch.tokens, batch.mask_padding.clone());
        let [b, heads, len, _] = out.weights.dims();
        // Attention received per key: mean over real queries (padded query rows are excluded).
        let real = batch.mask_padding.bool_not().float(); // [b, len]
        let queries = real.clone().reshape([b, 1, len, 1]);
        let received = (out.weights * queries).sum_dim(2).reshape([b, heads, len]);
        let received = received.mask_fill(
            real.equal_elem(0.0)
                .reshape([b, 1, len])
                .expand([b, heads, len]),
            -1.0,
        );
        let top: Vec<i64> = received
            .argmax(2)
            .reshape([b * heads])
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap_or_default();
        hits.resize(heads, 0);
        for (i, example) in chunk.iter().enumerate() {
            chance += example.decisive.len() as f64 / lengths[i].max(1) as f64;
            for (h, hit) in hits.iter_mut().enumerate() {
                if example.decisive.contains(&(top[i * heads + h] as usize)) {
                    *hit += 1;
                }
            }
        }
    }
    let n = examples.len() as f64;
    Some(HeadFocus {
        hit_rate: hits.iter().map(|&h| h as f64 / n).collect(),
        chance: chance / n,
    })
}
