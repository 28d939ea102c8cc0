//! Positions inside attention: rotary embeddings (RoPE) on the queries and keys, and the ALiBi
//! and T5 relative biases on the scores. Schemes that add to the input instead are
//! [`SinusoidalPositionalEncoding`](crate::SinusoidalPositionalEncoding) and
//! [`LearnedPositionalEmbedding`](crate::LearnedPositionalEmbedding).
//!
//! Positions are absolute token indices: the first query is at `query_offset` and the first key
//! at `key_offset` ([`AttentionInput::offsets`](crate::AttentionInput::offsets)), so a decoder
//! fed one token at a time, or a cross-attention over another sequence, places them right.

use std::sync::Arc;

use burn::{
    nn::{Embedding, EmbeddingConfig, Initializer},
    prelude::*,
};

use crate::{
    AttentionError,
    recent::Recent,
    score_mod::{Alibi, RelativeBiasTable, ScoreMod},
};

/// How [`MultiHeadAttention`](crate::MultiHeadAttention) encodes positions inside attention.
#[derive(Config, Debug, PartialEq)]
pub enum AttentionPositions {
    /// No positions inside attention (the default; positions may still be added to the input).
    None,
    /// Rotary position embedding (Su et al., 2021) of each head's queries and keys, in the
    /// rotate-half convention of GPT-NeoX, Llama and HF transformers: dimension `i` of the first
    /// half pairs with dimension `i + d_k/2`, rotated by `position · base^(-2i/d_k)`.
    Rope {
        /// Base of the wavelengths; 10000 in the paper.
        base: f64,
    },
    /// ALiBi (Press et al., 2022): `-slope_h · |i − j|` added to head `h`'s scores, with the
    /// paper's geometric slopes (`2^(-8h/n)` for `n` a power of two, interleaved otherwise).
    /// The symmetric distance suits encoders; under a causal mask it is the paper's bias.
    Alibi,
    /// T5's relative position bias (Raffel et al., 2020): a learned scalar per head and
    /// distance bucket, exact for near keys and log-spaced up to `max_distance`.
    Relative {
        /// Buckets (half per direction when `bidirectional`); 32 in T5.
        num_buckets: usize,
        /// Distances from here on share the last bucket; 128 in T5.
        max_distance: usize,
        /// Keys before and after a query get different buckets (encoders); `false` for
        /// decoders, where only keys before a query are seen.
        bidirectional: bool,
    },
}

impl AttentionPositions {
    /// RoPE with the paper's base, 10000.
    pub fn rope() -> Self {
        Self::Rope { base: 10_000.0 }
    }

    /// T5's bidirectional relative bias: 32 buckets, distances up to 128.
    pub fn relative() -> Self {
        Self::Relative {
            num_buckets: 32,
            max_distance: 128,
            bidirectional: true,
        }
    }

    /// Checks the values for heads of query/key width `d_k`.
    pub fn validate(&self, d_k: usize) -> Result<(), AttentionError> {
        match *self {
            Self::None | Self::Alibi => Ok(()),
            Self::Rope { base } => {
                if !d_k.is_multiple_of(2) {
                    return Err(AttentionError::config(
                        "positions",
                        format!("RoPE rotates pairs of dimensions, so d_k must be even, got {d_k}"),
                    ));
                }
                if !(base.is_finite() && base > 1.0) {
                    return Err(AttentionError::config(
                        "positions",
                        format!("the RoPE base must be finite and > 1, got {base}"),
                    ));
                }
                Ok(())
            }
            Self::Relative {
                num_buckets,
                max_distance,
                bidirectional,
            } => {
                let per_direction = if bidirectional {
                    num_buckets / 2
                } else {
                    num_buckets
                };
                if per_direction < 2 {
                    return Err(AttentionError::config(
                        "positions",
                        format!(
                            "relative bias needs at least {} buckets, got {num_buckets}",
                            if bidirectional { 4 } else { 2 }
                        ),
                    ));
                }
                if max_distance <= per_direction / 2 {
                    return Err(AttentionError::config(
                        "positions",
                        format!(
                            "max_distance must exceed the {} exact buckets, got {max_distance}",
                            per_direction / 2
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Rotary position embedding of `[batch, heads, len, d]` tensors (a constant: no parameters).
///
/// ```
/// use attention::RotaryPositions;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let rope = RotaryPositions { base: 10_000.0 };
/// let q = Tensor::<4>::ones([1, 2, 3, 4], &device);
/// // Position 0 is not rotated; a rotation keeps each vector's length.
/// let rotated = rope.forward(q.clone(), 0);
/// let first: Vec<f32> = rotated.clone().narrow(2, 0, 1).into_data().try_into_vec_as::<f32>().unwrap();
/// assert_eq!(first, vec![1.0; 8]);
/// let norms: Vec<f32> = rotated.powi_scalar(2).sum_dim(3).into_data().try_into_vec_as::<f32>().unwrap();
/// assert!(norms.iter().all(|n| (n - 4.0).abs() < 1e-5));
/// ```
#[derive(Module, Debug)]
pub struct RotaryPositions {
    /// Base of the wavelengths.
    pub base: f64,
}

impl RotaryPositions {
    /// Rotates each position `offset + p` of `x`.
    ///
    /// # Shapes
    /// `x` `[batch, heads, len, d]` (`d` even) → `[batch, heads, len, d]`
    pub fn forward(&self, x: Tensor<4>, offset: usize) -> Tensor<4> {
        let [_, _, len, d] = x.dims();
        let half = d / 2;
        let device = x.device();
        // Angles in f64 on the host: positions up to millions keep their precision.
        let (mut cos, mut sin) = (Vec::with_capacity(len * d), Vec::with_capacity(len * d));
        for p in 0..len {
            let position = (offset + p) as f64;
            for i in 0..d {
                let j = (i % half) as f64;
                let angle = position * self.base.powf(-2.0 * j / d as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table = |values: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(values, [len, d]), &device)
                .reshape([1, 1, len, d])
        };
        let first = x.clone().narrow(3, 0, half);
        let second = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * table(cos) + rotated * table(sin)
    }
}

/// ALiBi's slope of each of `n_heads` heads, as in the paper's reference code.
pub fn alibi_slopes(n_heads: usize) -> Vec<f64> {
    let power_of_two = |n: usize| -> Vec<f64> {
        let start = 2f64.powf(-8.0 / n as f64);
        (1..=n).map(|i| start.powi(i as i32)).collect()
    };
    if n_heads.is_power_of_two() {
        return power_of_two(n_heads);
    }
    let lower = 1 << n_heads.ilog2();
    let mut slopes = power_of_two(lower);
    slopes.extend(
        power_of_two(2 * lower)
            .into_iter()
            .step_by(2)
            .take(n_heads - lower),
    );
    slopes
}

/// ALiBi's linear distance bias (a constant: no parameters).
#[derive(Module, Debug)]
pub struct AlibiBias {
    /// One slope per head: [`alibi_slopes`] of the head count it was built for (a pruned
    /// module keeps its remaining heads' slopes).
    pub slopes: Vec<f64>,
}

impl AlibiBias {
    /// The paper's slopes for `n_heads` heads.
    pub fn new(n_heads: usize) -> Self {
        Self {
            slopes: alibi_slopes(n_heads),
        }
    }
}

impl AlibiBias {
    /// The bias added to the scores: `-slope_h · |(query_offset + i) − (key_offset + j)|`.
    ///
    /// # Shapes
    /// → `[1, n_heads, l_q, l_k]`
    pub fn forward(
        &self,
        l_q: usize,
        l_k: usize,
        query_offset: usize,
        key_offset: usize,
        device: &Device,
    ) -> Tensor<4> {
        let key = [l_q, l_k, query_offset, key_offset, 0, 0, 0];
        let distance = cached(&DISTANCES, key, device, || {
            let distance: Vec<f32> = relative_positions(l_q, l_k, query_offset, key_offset)
                .map(|r| r.unsigned_abs() as f32)
                .collect();
            Tensor::<2>::from_data(TensorData::new(distance, [l_q, l_k]), device)
                .reshape([1, 1, l_q, l_k])
        });
        let heads = self.slopes.len();
        let slopes: Vec<f32> = self.slopes.iter().map(|s| -*s as f32).collect();
        let slopes = Tensor::<1>::from_data(TensorData::new(slopes, [heads]), device)
            .reshape([1, heads, 1, 1]);
        distance * slopes
    }
}

/// What a shape's cached table is for: lengths, offsets and (T5) the bucket layout.
type CacheKey = [usize; 7];

/// Tables kept per shape and device, a few each (a model sees a handful of lengths), the oldest
/// dropped first: built on the host once, not on every call.
const CACHED_TABLES: usize = 16;

/// The largest table kept, `l_q · l_k` entries: 1 Mi (4 MiB of f32, 8 of i64), so the caches
/// hold at most 16 × 2 such tables.
const CACHED_ELEMENTS: usize = 1 << 20;

static DISTANCES: Recent<(CacheKey, Device), Tensor<4>, CACHED_TABLES> = Recent::new();
static BUCKETS: Recent<(CacheKey, Device), Tensor<2, Int>, CACHED_TABLES> = Recent::new();

fn cached<T: Clone>(
    cache: &Recent<(CacheKey, Device), T, CACHED_TABLES>,
    key: CacheKey,
    device: &Device,
    build: impl FnOnce() -> T,
) -> T {
    let [l_q, l_k, ..] = key;
    // Not kept: one-query decoding steps (their offsets differ every call), tables beyond the
    // budget, and tables on autodiff devices (whose equality ignores the checkpointing
    // strategy, which a tensor must match).
    if l_q == 1 || l_q * l_k > CACHED_ELEMENTS || device.is_autodiff() {
        return build();
    }
    cache.get_or_insert_with((key, device.clone()), build)
}

/// `key − query` position of every (query, key) pair, row-major `[l_q, l_k]`, the first query
/// at `query_offset` and the first key at `key_offset`.
fn relative_positions(
    l_q: usize,
    l_k: usize,
    query_offset: usize,
    key_offset: usize,
) -> impl Iterator<Item = i64> {
    (0..l_q).flat_map(move |i| {
        (0..l_k).map(move |j| (key_offset + j) as i64 - (query_offset + i) as i64)
    })
}

/// T5's bucket of the relative position `key − query`, as in HF transformers'
/// `T5Attention._relative_position_bucket`.
pub fn relative_position_bucket(
    relative: i64,
    num_buckets: usize,
    max_distance: usize,
    bidirectional: bool,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut bucket = 0;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    bucket += if distance < max_exact {
        distance
    } else {
        let log = (distance as f64 / max_exact as f64).ln()
            / (max_distance as f64 / max_exact as f64).ln()
            * (buckets - max_exact) as f64;
        (max_exact + log as i64).min(buckets - 1)
    };
    bucket as usize
}

/// T5's learned relative position bias: a `[num_buckets, n_heads]` table, zero at
/// initialisation (the model starts as one without positions).
#[derive(Module, Debug)]
pub struct RelativePositionBias {
    /// One row per bucket, one column per head.
    pub embedding: Embedding,
    /// Buckets.
    pub num_buckets: usize,
    /// Distances from here on share the last bucket.
    pub max_distance: usize,
    /// Keys before and after a query get different buckets.
    pub bidirectional: bool,
}

impl RelativePositionBias {
    /// A zero table for `n_heads` heads.
    pub fn new(
        n_heads: usize,
        num_buckets: usize,
        max_distance: usize,
        bidirectional: bool,
        device: &Device,
    ) -> Self {
        Self {
            embedding: EmbeddingConfig::new(num_buckets, n_heads)
                .with_initializer(Initializer::Zeros)
                .init(device),
            num_buckets,
            max_distance,
            bidirectional,
        }
    }

    /// The bias added to the scores: the table's row for each pair's bucket.
    ///
    /// # Shapes
    /// → `[1, n_heads, l_q, l_k]`
    pub fn forward(
        &self,
        l_q: usize,
        l_k: usize,
        query_offset: usize,
        key_offset: usize,
    ) -> Tensor<4> {
        let device = self.embedding.weight.device();
        let key = [
            l_q,
            l_k,
            query_offset,
            key_offset,
            self.num_buckets,
            self.max_distance,
            usize::from(self.bidirectional),
        ];
        let buckets = cached(&BUCKETS, key, &device, || {
            let buckets: Vec<i64> = relative_positions(l_q, l_k, query_offset, key_offset)
                .map(|r| {
                    let (n, max) = (self.num_buckets, self.max_distance);
                    relative_position_bucket(r, n, max, self.bidirectional) as i64
                })
                .collect();
            Tensor::<2, Int>::from_data(TensorData::new(buckets, [1, l_q * l_k]), &device)
        });
        let [_, heads] = self.embedding.weight.dims();
        self.embedding
            .forward(buckets) // [1, l_q·l_k, heads]
            .reshape([l_q, l_k, heads])
            .permute([2, 0, 1])
            .unsqueeze_dim(0)
    }
}

/// The position modules of one [`MultiHeadAttention`](crate::MultiHeadAttention), built from
/// its [`AttentionPositions`].
#[derive(Module, Debug)]
pub struct PositionsInAttention {
    /// RoPE on queries and keys.
    pub rope: Option<RotaryPositions>,
    /// ALiBi bias.
    pub alibi: Option<AlibiBias>,
    /// T5 relative bias.
    pub relative: Option<RelativePositionBias>,
}

impl PositionsInAttention {
    pub(crate) fn new(kind: &AttentionPositions, n_heads: usize, device: &Device) -> Self {
        let mut positions = Self {
            rope: None,
            alibi: None,
            relative: None,
        };
        match *kind {
            AttentionPositions::None => {}
            AttentionPositions::Rope { base } => positions.rope = Some(RotaryPositions { base }),
            AttentionPositions::Alibi => positions.alibi = Some(AlibiBias::new(n_heads)),
            AttentionPositions::Relative {
                num_buckets,
                max_distance,
                bidirectional,
            } => {
                positions.relative = Some(RelativePositionBias::new(
                    n_heads,
                    num_buckets,
                    max_distance,
                    bidirectional,
                    device,
                ))
            }
        }
        positions
    }

    /// Rotates `[batch, heads, len, d_k]` queries or keys starting at `offset` (RoPE only).
    pub(crate) fn rotate(&self, x: Tensor<4>, offset: usize) -> Tensor<4> {
        match &self.rope {
            Some(rope) => rope.forward(x, offset),
            None => x,
        }
    }

    /// The scheme's score bias as a score mod for the fused kernels (no bias tensor): ALiBi,
    /// and T5's table when it needs no gradient (`trainable` false).
    pub(crate) fn score_mod(
        &self,
        query_offset: usize,
        key_offset: usize,
        trainable: bool,
    ) -> Option<Arc<dyn ScoreMod>> {
        if let Some(alibi) = &self.alibi {
            let slopes = alibi.slopes.iter().map(|&s| s as f32).collect();
            return Some(Arc::new(
                Alibi::new(slopes).offsets(query_offset, key_offset),
            ));
        }
        let relative = self.relative.as_ref().filter(|_| !trainable)?;
        let [buckets, heads] = relative.embedding.weight.dims();
        let table: Vec<f32> = relative
            .embedding
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("an f32 table");
        let score = RelativeBiasTable::new(
            &table,
            heads,
            buckets,
            relative.max_distance,
            relative.bidirectional,
        )
        .offsets(query_offset, key_offset);
        Some(Arc::new(score))
    }

    /// The score bias `[1, heads, new, keys]` of queries at `query_start..query_start + new`
    /// against keys at arbitrary `key_positions` (a streaming cache's), built on the host
    /// from the score mods (T5's table without a gradient), if the scheme has one.
    pub(crate) fn bias_at(
        &self,
        query_start: usize,
        new: usize,
        key_positions: &[usize],
        device: &Device,
    ) -> Option<Tensor<4>> {
        let score = self.score_mod(0, 0, false)?;
        let heads = match (&self.alibi, &self.relative) {
            (Some(alibi), _) => alibi.slopes.len(),
            (None, Some(relative)) => relative.embedding.weight.dims()[1],
            (None, None) => return None,
        };
        let keys = key_positions.len();
        let mut values = Vec::with_capacity(heads * new * keys);
        for h in 0..heads {
            for q in query_start..query_start + new {
                values.extend(key_positions.iter().map(|&kv| score.bias(0, h, q, kv)));
            }
        }
        Some(Tensor::from_data(
            TensorData::new(values, [1, heads, new, keys]),
            device,
        ))
    }

    /// The score bias `[1, heads, l_q, l_k]`, if the scheme has one.
    pub(crate) fn bias(
        &self,
        l_q: usize,
        l_k: usize,
        query_offset: usize,
        key_offset: usize,
        device: &Device,
    ) -> Option<Tensor<4>> {
        if let Some(alibi) = &self.alibi {
            return Some(alibi.forward(l_q, l_k, query_offset, key_offset, device));
        }
        self.relative
            .as_ref()
            .map(|relative| relative.forward(l_q, l_k, query_offset, key_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alibi_slopes_are_the_papers() {
        let eight = alibi_slopes(8);
        let expected: Vec<f64> = (1..=8).map(|i| 0.5f64.powi(i)).collect();
        assert_eq!(eight, expected);
        // 6 heads: the 4-head slopes, then every other one of the 8-head slopes.
        let six = alibi_slopes(6);
        let four: Vec<f64> = (1..=4).map(|i| 0.25f64.powi(i)).collect();
        assert_eq!(&six[..4], four.as_slice());
        assert_eq!(&six[4..], &[0.5f64.powi(1), 0.5f64.powi(3)]);
    }

    #[test]
    fn t5_buckets_match_known_values() {
        // HF T5's _relative_position_bucket, run in Python (32 buckets, max distance 128): near
        // distances are exact, positive ones offset by 16, far ones share log-spaced buckets.
        let b = |r| relative_position_bucket(r, 32, 128, true);
        assert_eq!([b(0), b(1), b(-1), b(7), b(-7)], [0, 17, 1, 23, 7]);
        assert_eq!([b(8), b(-8), b(20), b(-127), b(-1000)], [24, 8, 26, 15, 15]);
        assert_eq!(b(1000), 31);
        let causal = |r| relative_position_bucket(r, 32, 128, false);
        assert_eq!(
            [causal(3), causal(-3), causal(-16), causal(-500)],
            [0, 3, 16, 31]
        );
    }

    #[test]
    fn invalid_schemes_are_reported() {
        let err = AttentionPositions::rope().validate(5).unwrap_err();
        assert!(err.to_string().contains("d_k must be even"), "{err}");
        let err = AttentionPositions::Relative {
            num_buckets: 2,
            max_distance: 10,
            bidirectional: true,
        }
        .validate(8)
        .unwrap_err();
        assert!(err.to_string().contains("at least 4 buckets"), "{err}");
        assert!(AttentionPositions::relative().validate(8).is_ok());
        assert!(AttentionPositions::Alibi.validate(3).is_ok());
    }
}
