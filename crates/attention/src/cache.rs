//! Incremental causal decoding: the keys and values of the tokens seen so far, kept so that
//! each new token costs one query against them instead of a pass over the whole sequence.

use burn::prelude::*;

use crate::{MultiHeadAttention, MultiHeadOutput};

/// Keys and values of the tokens a [`MultiHeadAttention`] has seen, per key/value head and
/// after RoPE (so grouped-query attention caches `n_kv_heads`, not `n_heads`). One cache per
/// attention module per sequence batch; [`clear`](Self::clear) it for a new one.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    keys: Option<Tensor<4>>,
    values: Option<Tensor<4>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens cached so far: the position of the next token.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Appends `[batch, n_kv_heads, new, d]` keys and values; returns all of them.
    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let cat = |old: Option<Tensor<4>>, new: Tensor<4>| match old {
            Some(old) => Tensor::cat(vec![old, new], 2),
            None => new,
        };
        let keys = cat(self.keys.take(), keys);
        let values = cat(self.values.take(), values);
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        (keys, values)
    }
}

impl MultiHeadAttention {
    /// Causal self-attention of the next tokens `x` of sequences whose earlier tokens are in
    /// `cache` (which this call extends): token `i` of `x` sits at position `cache.len() + i`
    /// and sees every cached token and the new ones up to itself. Feeding a sequence in pieces
    /// gives the rows of one causal pass over all of it (tested to 1e-5), RoPE, ALiBi and
    /// relative bias included.
    ///
    /// # Shapes
    /// `x` `[batch, new, d_model]` → context `[batch, new, d_model]`, weights
    /// `[batch, n_heads, new, cached + new]`
    ///
    /// ```
    /// use attention::{KvCache, MultiHeadAttentionConfig};
    /// use burn::prelude::*;
    ///
    /// let device = Device::flex();
    /// let mha = MultiHeadAttentionConfig::new(16, 4).with_n_kv_heads(Some(2)).init(&device);
    /// let mut cache = KvCache::new();
    /// let prompt = Tensor::<3>::ones([1, 3, 16], &device);
    /// mha.forward_cached(prompt, &mut cache);
    /// let next = mha.forward_cached(Tensor::<3>::ones([1, 1, 16], &device), &mut cache);
    /// assert_eq!(next.weights.dims(), [1, 4, 1, 4]);
    /// assert_eq!(cache.len(), 4);
    /// ```
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut KvCache) -> MultiHeadOutput {
        let [batch, new, _] = x.dims();
        let device = x.device();
        let start = cache.len();
        let q = self.project_queries(x.clone(), start);
        let (k, v) = self.project_keys_values(x.clone(), x, start);
        let (k, v) = cache.append(k, v);
        let total = start + new;
        let mask: Vec<bool> = (0..new)
            .flat_map(|i| (0..total).map(move |j| j > start + i))
            .collect();
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [new, total]), &device)
            .reshape([1, 1, new, total]);
        let bias = self.positions.bias(new, total, start, 0, &device);
        let pattern = self.pattern_for(new, total, start, 0);
        let out = self.attention.forward_with_pattern(
            q,
            self.repeat_kv(k),
            self.repeat_kv(v),
            Some(mask),
            bias,
            &pattern,
        );
        MultiHeadOutput {
            context: self.merge_heads(out.context, None, batch, new),
            weights: out.weights,
        }
    }
}
