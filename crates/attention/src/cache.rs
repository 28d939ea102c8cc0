//! Incremental causal decoding: the keys and values of the tokens seen so far, kept so that
//! each new token costs one query against them instead of a pass over the whole sequence; and
//! StreamingLLM's cache (Xiao et al., 2024), which keeps the first tokens (attention sinks) and
//! a rolling window of the last ones, so that memory stays bounded however long the decode.

use burn::{
    prelude::*,
    tensor::{FloatDType, IntDType},
};

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
///
/// [`KvCache::int8`] holds keys and values in int8 (KIVI), [`KvCache::paged`] in blocks with a
/// block table. The four kinds are separate constructors; they do not combine.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    store: Store,
    /// The position of each cached token (`0..len` unless tokens were evicted).
    positions: Vec<usize>,
    /// Tokens seen: the position of the next one.
    seen: usize,
    /// What a streaming cache keeps (its store is [`Store::Plain`]).
    streaming: Option<Streaming>,
}

/// How a [`KvCache`] holds its keys and values.
// Plain, the common store, holds its two tensors inline as the cache always did (a burn tensor
// handle is large); int8's five are boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Store {
    /// f32, one tensor each, grown by concatenation.
    Plain {
        keys: Option<Tensor<4>>,
        values: Option<Tensor<4>>,
    },
    Int8(Box<Int8>),
    Paged(Paged),
}

impl Default for Store {
    fn default() -> Self {
        Self::Plain {
            keys: None,
            values: None,
        }
    }
}

impl Store {
    /// Appends `[batch, n_kv_heads, new, d]` keys and values; returns all of them, f32.
    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        match self {
            Self::Plain { keys: k, values: v } => {
                cat_into(k, keys);
                cat_into(v, values);
                (k.clone().expect("appended"), v.clone().expect("appended"))
            }
            Self::Int8(int8) => {
                int8.append(keys, values);
                int8.read()
            }
            Self::Paged(paged) => {
                paged.append(keys, values);
                paged.read()
            }
        }
    }

    /// Bytes held (f32: 4 per value).
    fn bytes(&self) -> usize {
        match self {
            Self::Plain { keys, values } => {
                [keys, values].into_iter().flatten().map(f32_bytes).sum()
            }
            Self::Int8(int8) => int8.bytes(),
            Self::Paged(paged) => (paged.table.iter())
                .map(|&slot| f32_bytes(&paged.pool[slot].0) + f32_bytes(&paged.pool[slot].1))
                .sum(),
        }
    }

    /// Forgets every token; a paged store keeps its blocks for the next sequence.
    fn clear(&mut self) {
        match self {
            Self::Plain { .. } => *self = Self::default(),
            Self::Int8(int8) => **int8 = Int8::new(int8.group),
            Self::Paged(paged) => {
                paged.free.append(&mut paged.table);
                paged.len = 0;
            }
        }
    }
}

/// Bytes of an f32 tensor.
fn f32_bytes(t: &Tensor<4>) -> usize {
    4 * t.shape().num_elements()
}

/// Keys and values in blocks of `block` tokens (vLLM's paged cache, on one device): a pool of
/// blocks, a block table mapping the sequence's blocks to pool slots in order, and a free list.
/// Appending writes into the last block (or takes a free one), never copying the tokens before
/// it; `clear` returns every block to the free list, so the next sequence reuses the memory.
#[derive(Debug, Clone)]
struct Paged {
    block: usize,
    /// Pool slots: `[batch, kv_heads, block, d]` keys and values.
    pool: Vec<(Tensor<4>, Tensor<4>)>,
    /// The sequence's blocks, in order, as pool slots.
    table: Vec<usize>,
    free: Vec<usize>,
    /// Tokens in the sequence.
    len: usize,
}

impl Paged {
    fn new(block: usize) -> Self {
        Self {
            block,
            pool: Vec::new(),
            table: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) {
        let [batch, heads, new, d_k] = keys.dims();
        let d_v = values.dims()[3];
        let mut done = 0;
        while done < new {
            let offset = self.len % self.block;
            if offset == 0 {
                // A new block: a free slot of the same shape, or a new one.
                let fits = |&slot: &usize| {
                    let (k, v) = &self.pool[slot];
                    k.dims() == [batch, heads, self.block, d_k] && v.dims()[3] == d_v
                };
                let slot = match self.free.iter().position(fits) {
                    Some(i) => self.free.swap_remove(i),
                    None => {
                        let device = keys.device();
                        self.pool.push((
                            Tensor::zeros([batch, heads, self.block, d_k], &device),
                            Tensor::zeros([batch, heads, self.block, d_v], &device),
                        ));
                        self.pool.len() - 1
                    }
                };
                self.table.push(slot);
            }
            let take = (self.block - offset).min(new - done);
            let slot = *self.table.last().expect("a block");
            let (k, v) = self.pool[slot].clone();
            let rows = offset..offset + take;
            self.pool[slot] = (
                k.slice_assign(
                    [0..batch, 0..heads, rows.clone(), 0..d_k],
                    keys.clone().narrow(2, done, take),
                ),
                v.slice_assign(
                    [0..batch, 0..heads, rows, 0..d_v],
                    values.clone().narrow(2, done, take),
                ),
            );
            done += take;
            self.len += take;
        }
    }

    /// The sequence's keys and values, its blocks in table order.
    fn read(&self) -> (Tensor<4>, Tensor<4>) {
        let (keys, values): (Vec<_>, Vec<_>) = self
            .table
            .iter()
            .map(|&slot| self.pool[slot].clone())
            .unzip();
        (
            Tensor::cat(keys, 2).narrow(2, 0, self.len),
            Tensor::cat(values, 2).narrow(2, 0, self.len),
        )
    }
}

/// Keys and values in int8 as KIVI (Liu et al., 2024) keeps them: keys with a scale per channel
/// over groups of `group` tokens (their outliers sit in channels), values with a scale per
/// token; the newest keys, a group not yet full, stay f32. Symmetric, `round(x / s)` with
/// `s = max|x| / 127`.
#[derive(Debug, Clone)]
struct Int8 {
    group: usize,
    /// `[batch, kv_heads, groups · group, d_k]`, i8
    keys: Option<Tensor<4, Int>>,
    /// `[batch, kv_heads, groups, d_k]`
    key_scales: Option<Tensor<4>>,
    /// `[batch, kv_heads, < group, d_k]`
    recent_keys: Option<Tensor<4>>,
    /// `[batch, kv_heads, len, d_v]`, i8
    values: Option<Tensor<4, Int>>,
    /// `[batch, kv_heads, len, 1]`
    value_scales: Option<Tensor<4>>,
}

/// `x / s` rounded to int8 with `s = max|x| / 127` over `dim` (kept as size 1).
fn quantize(x: Tensor<4>, dim: usize) -> (Tensor<4, Int>, Tensor<4>) {
    let scale = x
        .clone()
        .abs()
        .max_dim(dim)
        .div_scalar(127.0)
        .clamp_min(f32::MIN_POSITIVE);
    let q = (x / scale.clone()).round().clamp(-127.0, 127.0);
    (q.cast(IntDType::I8), scale)
}

fn cat_into<K: burn::tensor::kind::Basic>(slot: &mut Option<Tensor<4, K>>, new: Tensor<4, K>) {
    *slot = Some(match slot.take() {
        Some(old) => Tensor::cat(vec![old, new], 2),
        None => new,
    });
}

impl Int8 {
    fn new(group: usize) -> Self {
        Self {
            group,
            keys: None,
            key_scales: None,
            recent_keys: None,
            values: None,
            value_scales: None,
        }
    }

    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) {
        let (q, scale) = quantize(values, 3);
        cat_into(&mut self.values, q);
        cat_into(&mut self.value_scales, scale);
        cat_into(&mut self.recent_keys, keys);
        let recent = self.recent_keys.take().expect("just appended");
        let [batch, heads, len, d] = recent.dims();
        let full = len / self.group * self.group;
        if full > 0 {
            // Each full group of tokens gets its own per-channel scales.
            let groups = full / self.group;
            let grouped =
                recent
                    .clone()
                    .narrow(2, 0, full)
                    .reshape([batch * heads, groups, self.group, d]);
            let (q, scale) = quantize(grouped, 2);
            cat_into(&mut self.keys, q.reshape([batch, heads, full, d]));
            cat_into(
                &mut self.key_scales,
                scale.reshape([batch, heads, groups, d]),
            );
        }
        self.recent_keys = (len > full).then(|| recent.narrow(2, full, len - full));
    }

    /// The keys and values as f32 again.
    fn read(&self) -> (Tensor<4>, Tensor<4>) {
        let mut keys = Vec::new();
        if let (Some(q), Some(scale)) = (&self.keys, &self.key_scales) {
            let [batch, heads, len, d] = q.dims();
            let groups = len / self.group;
            let q = q
                .clone()
                .cast(FloatDType::F32)
                .reshape([batch, heads, groups, self.group, d]);
            let scale = scale.clone().reshape([batch, heads, groups, 1, d]);
            keys.push((q * scale).reshape([batch, heads, len, d]));
        }
        keys.extend(self.recent_keys.clone());
        let values = self
            .values
            .clone()
            .expect("values appended")
            .cast(FloatDType::F32)
            * self.value_scales.clone().expect("scales appended");
        (Tensor::cat(keys, 2), values)
    }

    /// Bytes held: int8 payloads, f32 scales and f32 recent keys.
    fn bytes(&self) -> usize {
        let int8 = [&self.keys, &self.values].into_iter().flatten();
        let f32s = [&self.key_scales, &self.recent_keys, &self.value_scales];
        int8.map(|t| t.shape().num_elements()).sum::<usize>()
            + f32s.into_iter().flatten().map(f32_bytes).sum::<usize>()
    }
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

    /// An empty cache that keeps every token in int8 (KIVI): keys quantised per channel over
    /// groups of `group` tokens (the newest, fewer than `group`, kept f32), values per token;
    /// about 3.6× less memory than f32 at `d = 64`, `group = 32`. Outputs differ from the f32
    /// cache by the rounding (BENCHMARKS.md, "An int8 KV cache").
    ///
    /// # Panics
    /// When `group` is 0.
    pub fn int8(group: usize) -> Self {
        assert!(group > 0, "KvCache::int8: a group holds at least one token");
        Self {
            store: Store::Int8(Box::new(Int8::new(group))),
            ..Self::default()
        }
    }

    /// An empty cache that holds keys and values in blocks of `block` tokens (vLLM's paged
    /// cache): appending writes into the last block instead of copying the whole cache, and
    /// [`clear`](Self::clear) keeps the blocks for the next sequence. The same outputs as
    /// [`KvCache::new`].
    ///
    /// # Panics
    /// When `block` is 0.
    pub fn paged(block: usize) -> Self {
        assert!(
            block > 0,
            "KvCache::paged: a block holds at least one token"
        );
        Self {
            store: Store::Paged(Paged::new(block)),
            ..Self::default()
        }
    }

    /// Blocks of a paged cache: `(in use, allocated)`; `None` for other caches.
    pub fn blocks(&self) -> Option<(usize, usize)> {
        match &self.store {
            Store::Paged(paged) => Some((paged.table.len(), paged.pool.len())),
            _ => None,
        }
    }

    /// Bytes the cached keys and values take (f32: 4 per value; int8: the payloads, scales and
    /// the f32 keys of the group being filled).
    pub fn bytes(&self) -> usize {
        self.store.bytes()
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
        self.store.clear();
        self.positions.clear();
        self.seen = 0;
    }

    /// Appends `[batch, n_kv_heads, new, d]` keys and values of the tokens at `seen..`; returns
    /// all of them.
    fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let new = keys.dims()[2];
        self.positions.extend(self.seen..self.seen + new);
        self.seen += new;
        self.store.append(keys, values)
    }

    /// A streaming cache drops what no later token will see: every token but the sinks and
    /// the last `window`.
    fn evict(&mut self) {
        let Some(policy) = self.streaming else {
            return;
        };
        let Store::Plain { keys, values } = &mut self.store else {
            unreachable!("a streaming cache holds plain tensors");
        };
        // What the next token, at `seen`, will see.
        let kept: Vec<usize> = (self.positions.iter().enumerate())
            .filter(|&(_, &p)| policy.keeps(self.seen, p))
            .map(|(i, _)| i)
            .collect();
        if kept.len() == self.positions.len() {
            return;
        }
        let device = keys.as_ref().expect("tokens to evict").device();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(kept.iter().map(|&i| i as i64).collect(), [kept.len()]),
            &device,
        );
        *keys = keys.take().map(|k| k.select(2, index.clone()));
        *values = values.take().map(|v| v.select(2, index));
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
        let pattern = self.with_own_sinks(self.softcap.map_or_else(AttentionPattern::new, |cap| {
            AttentionPattern::new().with_softcap(cap)
        }));
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

    /// A GQA layer with RoPE (`d_model` wide, 4 heads, 2 key/value heads) and a random
    /// `[2, len, d_model]` input.
    fn layer_and_input(d_model: usize, len: usize) -> (MultiHeadAttention, Tensor<3>) {
        let device = Device::flex();
        let mha = MultiHeadAttentionConfig::new(d_model, 4)
            .with_n_kv_heads(Some(2))
            .with_positions(AttentionPositions::rope())
            .init(&device);
        let x = Tensor::<3>::random([2, len, d_model], Distribution::Normal(0.0, 1.0), &device);
        (mha, x)
    }

    /// `x` through `cache`: its first `prompt` tokens at once, then `step` at a time.
    fn decode(
        mha: &MultiHeadAttention,
        x: &Tensor<3>,
        prompt: usize,
        step: usize,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let mut out = vec![
            mha.forward_cached(x.clone().slice([0..batch, 0..prompt]), cache)
                .context,
        ];
        for t in (prompt..len).step_by(step) {
            let end = (t + step).min(len);
            out.push(
                mha.forward_cached(x.clone().slice([0..batch, t..end]), cache)
                    .context,
            );
        }
        Tensor::cat(out, 1)
    }

    /// The int8 cache: outputs within rounding of the f32 cache's through a 300-token decode
    /// (a prompt, then token by token: groups filled across calls), at under a third of its
    /// bytes; `clear` keeps it int8.
    #[test]
    fn the_int8_cache_is_close_to_the_f32_one_at_a_third_of_the_memory() {
        let len = 300;
        let (mha, x) = layer_and_input(64, len);
        let decode = |cache: &mut KvCache| decode(&mha, &x, 45, 1, cache);
        let (mut full, mut int8) = (KvCache::new(), KvCache::int8(32));
        let (want, got) = (decode(&mut full), decode(&mut int8));
        let scale = want.clone().abs().max().into_scalar::<f32>();
        let error = (got - want).abs().max().into_scalar::<f32>();
        assert!(error > 0.0, "int8 rounding changes something");
        assert!(
            error < 0.02 * scale,
            "error {error:.2e} against outputs up to {scale:.2e}"
        );
        assert_eq!((int8.len(), full.len()), (len, len));
        // 300 = 9 groups of 32 + 12 recent keys kept f32.
        assert!(
            int8.bytes() * 3 < full.bytes(),
            "{} vs {} bytes",
            int8.bytes(),
            full.bytes()
        );
        let Store::Int8(stored) = &int8.store else {
            panic!("an int8 store")
        };
        let stored = stored.values.as_ref().expect("values");
        assert_eq!(stored.dtype(), burn::tensor::DType::I8);
        int8.clear();
        assert_eq!((int8.len(), int8.bytes()), (0, 0));
        assert!(matches!(int8.store, Store::Int8(_)));
    }

    /// A paged cache (blocks of 7 tokens: prompts and steps cross block edges) gives the plain
    /// cache's outputs, uses ⌈len / 7⌉ blocks, and after `clear` serves a second sequence from
    /// the same blocks.
    #[test]
    fn the_paged_cache_equals_the_plain_one_and_reuses_its_blocks() {
        let (mha, x) = layer_and_input(16, 40);
        let decode = |cache: &mut KvCache| values_of(decode(&mha, &x, 10, 3, cache));
        let (mut plain, mut paged) = (KvCache::new(), KvCache::paged(7));
        let want = decode(&mut plain);
        assert_eq!(decode(&mut paged), want);
        assert_eq!(paged.blocks(), Some((6, 6)));
        assert_eq!(paged.bytes(), 6 * 7 * 2 * 2 * 4 * 2 * 4);
        paged.clear();
        assert_eq!((paged.len(), paged.blocks()), (0, Some((0, 6))));
        assert_eq!(decode(&mut paged), want);
        assert_eq!(paged.blocks(), Some((6, 6)));
    }

    fn values_of(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
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
