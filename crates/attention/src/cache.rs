//! Incremental causal decoding: the keys and values of the tokens seen so far, kept so that
//! each new token costs one query against them instead of a pass over the whole sequence; and
//! StreamingLLM's cache (Xiao et al., 2024), which keeps the first tokens (attention sinks) and
//! a rolling window of the last ones, so that memory stays bounded however long the decode.

use burn::prelude::*;

use crate::{AttentionPattern, MultiHeadAttention, MultiHeadOutput};

/// Keys and values of the tokens a [`MultiHeadAttention`] has seen, per key/value head and
/// after RoPE (so grouped-query attention caches `n_kv_heads`, not `n_heads`). One cache per
/// attention module per sequence batch; [`clear`](Self::clear) it for a new one.
///
/// [`KvCache::streaming`] keeps only the first `sinks` tokens and the last `window` ones
/// (StreamingLLM): each token then attends to exactly those, so a decode of any length holds
/// at most `sinks + window` tokens (plus the ones being added) and equals a full causal pass
/// with that mask. Keys keep the positions they were rotated with (RoPE) and ALiBi and T5
/// biases use the tokens' true positions (T5's table without a gradient). That is where this
/// departs from the paper on purpose: StreamingLLM numbers positions by slot in the cache, so
/// that distances stay within a model's trained range; here they are the sequence's, so the
/// decode equals the full masked pass (what the tests check), and distances grow with it.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    keys: Option<Tensor<4>>,
    values: Option<Tensor<4>>,
    /// The position of each cached token (`0..len` unless tokens were evicted).
    positions: Vec<usize>,
    /// Tokens seen: the position of the next one.
    seen: usize,
    streaming: Option<Streaming>,
}

/// What a streaming cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streaming {
    sinks: usize,
    window: usize,
}

impl Streaming {
    /// Whether the token at `query` attends to the cached token at `key` (`key ≤ query`).
    fn keeps(&self, query: usize, key: usize) -> bool {
        key < self.sinks || query - key < self.window
    }
}

impl KvCache {
    /// An empty cache that keeps every token.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty streaming cache: every token attends to the first `sinks` tokens and to the
    /// last `window` ones (itself included), and only those are kept.
    ///
    /// # Panics
    /// When `window` is 0 (a token must see itself).
    pub fn streaming(sinks: usize, window: usize) -> Self {
        assert!(
            window > 0,
            "KvCache::streaming: the window must hold at least the token itself"
        );
        Self {
            streaming: Some(Streaming { sinks, window }),
            ..Self::default()
        }
    }

    /// Tokens seen so far: the position of the next token.
    pub fn len(&self) -> usize {
        self.seen
    }

    /// Whether nothing has been seen yet.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Tokens held now (`len()` for a cache that keeps every token; for a streaming one at
    /// most `sinks + window − 1` between calls, the tokens the next one will see).
    pub fn stored(&self) -> usize {
        self.positions.len()
    }

    /// Forgets every token (a streaming cache stays streaming).
    pub fn clear(&mut self) {
        *self = Self {
            streaming: self.streaming,
            ..Self::default()
        };
    }

    /// Appends `[batch, n_kv_heads, new, d]` keys and values of the tokens at `seen..`; returns
    /// all of them.
    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let new = keys.dims()[2];
        let cat = |old: Option<Tensor<4>>, new: Tensor<4>| match old {
            Some(old) => Tensor::cat(vec![old, new], 2),
            None => new,
        };
        let keys = cat(self.keys.take(), keys);
        let values = cat(self.values.take(), values);
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        self.positions.extend(self.seen..self.seen + new);
        self.seen += new;
        (keys, values)
    }

    /// A streaming cache drops what no later token will see: every token but the sinks and
    /// the last `window`.
    fn evict(&mut self) {
        let Some(policy) = self.streaming else {
            return;
        };
        let next = self.seen;
        let kept: Vec<usize> = (self.positions.iter().enumerate())
            .filter(|&(_, &p)| p < policy.sinks || next - p < policy.window)
            .map(|(i, _)| i)
            .collect();
        if kept.len() == self.positions.len() {
            return;
        }
        let device = self.keys.as_ref().expect("tokens to evict").device();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(kept.iter().map(|&i| i as i64).collect(), [kept.len()]),
            &device,
        );
        self.keys = self.keys.take().map(|k| k.select(2, index.clone()));
        self.values = self.values.take().map(|v| v.select(2, index));
        self.positions = kept.into_iter().map(|i| self.positions[i]).collect();
    }
}

impl MultiHeadAttention {
    /// Causal self-attention of the next tokens `x` of sequences whose earlier tokens are in
    /// `cache` (which this call extends): token `i` of `x` sits at position `cache.len() + i`
    /// and sees every cached token and the new ones up to itself (a streaming cache: its sinks
    /// and window). Feeding a sequence in pieces gives the rows of one causal pass over all of
    /// it (tested to 1e-5), RoPE, ALiBi, relative bias and the module's window included.
    ///
    /// # Shapes
    /// `x` `[batch, new, d_model]` → context `[batch, new, d_model]`, weights
    /// `[batch, n_heads, new, cached + new]` (cached: [`KvCache::stored`] before the call)
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
    ///
    /// // StreamingLLM: 2 sinks and a window of 3 (the token itself and the 2 before it);
    /// // between calls the cache holds 2 + 2 tokens, whatever the length.
    /// let mut stream = KvCache::streaming(2, 3);
    /// for _ in 0..20 {
    ///     mha.forward_cached(Tensor::<3>::ones([1, 1, 16], &device), &mut stream);
    /// }
    /// assert_eq!((stream.len(), stream.stored()), (20, 4));
    /// ```
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut KvCache) -> MultiHeadOutput {
        let [batch, new, _] = x.dims();
        let device = x.device();
        let start = cache.len();
        let q = self.project_queries(x.clone(), start);
        let (k, v) = self.project_keys_values(x.clone(), x, start);
        let (k, v) = cache.append(k, v);
        let (positions, streaming) = (&cache.positions, cache.streaming);
        let total = positions.len();
        // Query i (at start + i) sees the cached tokens up to itself that the cache's policy
        // and the module's window keep.
        let mask: Vec<bool> = (0..new)
            .flat_map(|i| {
                let query = start + i;
                positions.iter().map(move |&key| {
                    key > query
                        || streaming.is_some_and(|s| !s.keeps(query, key))
                        || self.window.is_some_and(|w| query - key > w)
                })
            })
            .collect();
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [new, total]), &device)
            .reshape([1, 1, new, total]);
        let bias = if streaming.is_some() {
            self.positions.bias_at(start, new, positions, &device)
        } else {
            self.positions.bias(new, total, start, 0, &device)
        };
        let pattern = self.softcap.map_or_else(AttentionPattern::new, |cap| {
            AttentionPattern::new().with_softcap(cap)
        });
        let out = self.attention.forward_with_pattern(
            q,
            self.repeat_kv(k),
            self.repeat_kv(v),
            Some(mask),
            bias,
            &pattern,
        );
        cache.evict();
        MultiHeadOutput {
            context: self.merge_heads(out.context, None, batch, new),
            weights: out.weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AttentionInput, AttentionPositions, MultiHeadAttentionConfig, fused::pattern_attention,
        mask_mod::BlockMask,
    };
    use burn::tensor::Distribution;

    /// A 10,000-token decode through a streaming cache (4 sinks, a window of 64, RoPE): the
    /// cache never holds more than 4 + 64 tokens, and every output equals the full causal pass
    /// over the 10,000 tokens with the same sinks-and-window mask (through the fused op and a
    /// block mask: the dense mask alone would be 100 M entries).
    #[test]
    fn a_long_streaming_decode_equals_the_masked_causal_pass() {
        let device = Device::flex();
        let (len, d_model, sinks, window) = (10_000, 16, 4, 64);
        let mha = MultiHeadAttentionConfig::new(d_model, 4)
            .with_n_kv_heads(Some(2))
            .with_positions(AttentionPositions::rope())
            .init(&device);
        let x = Tensor::<3>::random([1, len, d_model], Distribution::Normal(0.0, 1.0), &device);

        let mut cache = KvCache::streaming(sinks, window);
        let mut outputs = vec![
            mha.forward_cached(x.clone().slice([0..1, 0..100]), &mut cache)
                .context,
        ];
        // The sinks and the window's last tokens but one: what the next token will see.
        assert_eq!(cache.stored(), sinks + window - 1);
        for t in 100..len {
            let step = mha.forward_cached(x.clone().slice([0..1, t..t + 1]), &mut cache);
            assert!(cache.stored() <= sinks + window);
            outputs.push(step.context);
        }
        let decoded = Tensor::cat(outputs, 1);

        // Written out again rather than through `Streaming::keeps`: the sinks, and the last
        // `window` tokens up to the query.
        let allowed = move |_b: usize, _h: usize, q: usize, kv: usize| {
            kv <= q && (kv < sinks || kv + window > q)
        };
        let pattern = AttentionPattern::new()
            .with_block_mask(BlockMask::with_default_blocks(&allowed, [1, 1, len, len]));
        let q = mha.project_queries(x.clone(), 0);
        let (k, v) = mha.project_keys_values(x.clone(), x, 0);
        let scale = 1.0 / mha.attention.temperature_for(mha.d_k);
        let full = pattern_attention(q, k, v, None, None, scale, &pattern);
        let full = mha.merge_heads(full, None, 1, len);
        let diff = (decoded - full).abs().max().into_scalar::<f32>();
        assert!(
            diff < 1e-4,
            "streaming decode against the masked pass: {diff:.2e}"
        );
    }

    /// ALiBi through a streaming cache uses the tokens' true positions: equal to the weights
    /// path with the sinks-and-window mask as an attention mask.
    #[test]
    fn streaming_with_alibi_uses_true_positions() {
        let device = Device::flex();
        let (len, d_model, sinks, window) = (40, 8, 2, 5);
        for positions in [AttentionPositions::Alibi, AttentionPositions::relative()] {
            let mha = MultiHeadAttentionConfig::new(d_model, 2)
                .with_positions(positions)
                .init(&device);
            let x = Tensor::<3>::random([1, len, d_model], Distribution::Normal(0.0, 1.0), &device);
            let mut cache = KvCache::streaming(sinks, window);
            let decoded: Vec<Tensor<3>> = (0..len)
                .map(|t| {
                    mha.forward_cached(x.clone().slice([0..1, t..t + 1]), &mut cache)
                        .context
                })
                .collect();
            let masked: Vec<bool> = (0..len * len)
                .map(|i| {
                    let (q, kv) = (i / len, i % len);
                    !(kv <= q && (kv < sinks || kv + window > q))
                })
                .collect();
            let mask =
                Tensor::<3, Bool>::from_data(TensorData::new(masked, [1, len, len]), &device);
            let full = mha
                .forward(AttentionInput::self_attention(x).mask_attention(mask))
                .context;
            let diff = (Tensor::cat(decoded, 1) - full)
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff < 1e-5, "{diff:.2e}");
        }
    }
}
