//! Score biases written as code (issue 22): a [`ScoreMod`] adds `bias(batch, head, q, kv)` to
//! the scaled score of query `q` against key `kv`, as the additive `score_mod`s of PyTorch's
//! `flex_attention` do (ALiBi, T5's relative bias, document-relative biases). Closures
//! `(batch, head, q, kv) → f32` are score mods; [`ScoreMod::plus`] adds two; [`alibi`] and
//! [`RelativeBiasTable`] are ready-made.
//!
//! Why additive: an arbitrary `f(score)` needs its derivative in the backward pass, which
//! `flex_attention` takes from PyTorch's autograd and a Rust closure cannot give; a bias has
//! derivative 1 whatever it is, so every backend runs and trains through it (on flex inside the
//! fused kernels, one row of a tile at a time, never written out; elsewhere as the bias tensor
//! [`ScoreMod::to_bias`], cached per shape by [`AttentionPattern`](crate::AttentionPattern)).
//! The one non-linear score function models use, Gemma 2's soft-capping `cap·tanh(s / cap)`, is
//! [`AttentionPattern::with_softcap`](crate::AttentionPattern::with_softcap), with its
//! derivative in the kernels.
//!
//! Indices are those of the score matrix; positions with a KV cache go in the mod (ALiBi's
//! [`Alibi::offsets`]).
//!
//! ```
//! use attention::score_mod::{ScoreMod, alibi};
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! // ALiBi plus a closure that favours the first key (an attention sink) in every head.
//! let sink = |_b: usize, _h: usize, _q: usize, kv: usize| if kv == 0 { 2.0 } else { 0.0 };
//! let bias = alibi(4).plus(sink).to_bias([1, 4, 3, 3], &device); // [batch, heads, l_q, l_k]
//! let row: Vec<f32> = bias.slice([0..1, 0..1, 2..3, 0..3]).into_data().try_to_vec().unwrap();
//! assert_eq!(row, [2.0 - 0.25 * 2.0, -0.25, 0.0]); // head 0's slope is 1/4
//! ```

use burn::prelude::*;

use crate::positions::{alibi_slopes, relative_position_bucket};

/// An additive term on the scaled score of query `q` of head `head` in batch row `batch`
/// against key `kv`. Implemented by every `Fn(usize, usize, usize, usize) -> f32`.
pub trait ScoreMod: Send + Sync {
    /// The term added to the score.
    fn bias(&self, batch: usize, head: usize, q: usize, kv: usize) -> f32;

    /// `row[j] += bias(batch, head, q, kv_start + j)`: what the flex kernels call, once per
    /// query row of a tile. Implementations override it with a loop that vectorises.
    fn add_to_row(&self, row: &mut [f32], batch: usize, head: usize, q: usize, kv_start: usize) {
        for (j, v) in row.iter_mut().enumerate() {
            *v += self.bias(batch, head, q, kv_start + j);
        }
    }

    /// Whether the term depends on the batch row: `true` unless an implementation says
    /// otherwise; with `false` the bias tensor other backends get has batch 1.
    fn depends_on_batch(&self) -> bool {
        true
    }

    /// The sum of both terms.
    fn plus<S: ScoreMod>(self, other: S) -> Plus<Self, S>
    where
        Self: Sized,
    {
        Plus(self, other)
    }

    /// The bias tensor `[batch, heads, l_q, l_k]` of this mod (batch 1 when it does not
    /// depend on the batch row), for every bias argument of the crate.
    fn to_bias(&self, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let [batch, heads, l_q, l_k] = shape;
        let mut values = vec![0f32; batch * heads * l_q * l_k];
        for (plane, out) in values.chunks_mut((l_q * l_k).max(1)).enumerate() {
            let (b, h) = (plane / heads, plane % heads);
            for (q, row) in out.chunks_mut(l_k.max(1)).enumerate().take(l_q) {
                self.add_to_row(row, b, h, q, 0);
            }
        }
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

impl<F: Fn(usize, usize, usize, usize) -> f32 + Send + Sync> ScoreMod for F {
    fn bias(&self, batch: usize, head: usize, q: usize, kv: usize) -> f32 {
        self(batch, head, q, kv)
    }
}

/// [`ScoreMod::plus`].
#[derive(Debug, Clone)]
pub struct Plus<A, B>(A, B);

impl<A: ScoreMod, B: ScoreMod> ScoreMod for Plus<A, B> {
    fn bias(&self, batch: usize, head: usize, q: usize, kv: usize) -> f32 {
        self.0.bias(batch, head, q, kv) + self.1.bias(batch, head, q, kv)
    }

    fn add_to_row(&self, row: &mut [f32], batch: usize, head: usize, q: usize, kv_start: usize) {
        self.0.add_to_row(row, batch, head, q, kv_start);
        self.1.add_to_row(row, batch, head, q, kv_start);
    }

    fn depends_on_batch(&self) -> bool {
        self.0.depends_on_batch() || self.1.depends_on_batch()
    }
}

/// ALiBi (Press et al., 2022): `-slope_h · |(q + query_offset) − (kv + key_offset)|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alibi {
    /// One slope per head.
    pub slopes: Vec<f32>,
    /// Position of query 0.
    pub query_offset: usize,
    /// Position of key 0.
    pub key_offset: usize,
}

impl Alibi {
    /// ALiBi with these slopes (one per head).
    pub fn new(slopes: Vec<f32>) -> Self {
        Self {
            slopes,
            query_offset: 0,
            key_offset: 0,
        }
    }

    /// The first query and key at these positions (a KV cache's).
    pub fn offsets(mut self, query: usize, key: usize) -> Self {
        self.query_offset = query;
        self.key_offset = key;
        self
    }
}

impl ScoreMod for Alibi {
    fn depends_on_batch(&self) -> bool {
        false
    }

    fn bias(&self, _batch: usize, head: usize, q: usize, kv: usize) -> f32 {
        let distance = (kv + self.key_offset) as f32 - (q + self.query_offset) as f32;
        -self.slopes[head] * distance.abs()
    }

    fn add_to_row(&self, row: &mut [f32], _batch: usize, head: usize, q: usize, kv_start: usize) {
        let slope = self.slopes[head];
        // Positions below 2^24 are exact in f32; the loop is branch-free and vectorises.
        let first = (kv_start + self.key_offset) as f32 - (q + self.query_offset) as f32;
        for (j, v) in row.iter_mut().enumerate() {
            *v -= slope * (first + j as f32).abs();
        }
    }
}

/// ALiBi with the paper's slopes for `n_heads` heads ([`alibi_slopes`]), the same numbers as
/// [`AlibiBias`](crate::AlibiBias).
pub fn alibi(n_heads: usize) -> Alibi {
    Alibi::new(
        alibi_slopes(n_heads)
            .into_iter()
            .map(|s| s as f32)
            .collect(),
    )
}

/// T5's relative position bias read from a table (inference, or any fixed table): head `h`
/// adds `table[bucket(kv − q)][h]`, buckets as [`relative_position_bucket`]. Every distance
/// from `max_distance` on shares the last bucket, so one value per clamped distance is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeBiasTable {
    /// `values[h][r + max_distance]` for the clamped relative position `r`.
    values: Vec<Vec<f32>>,
    max_distance: usize,
    query_offset: usize,
    key_offset: usize,
}

impl RelativeBiasTable {
    /// From a `[num_buckets, heads]` table, row-major (the layout of
    /// [`RelativePositionBias`](crate::RelativePositionBias)'s embedding).
    ///
    /// # Panics
    /// When the table is not `num_buckets × heads`, or the buckets or `max_distance` are not a
    /// valid T5 layout ([`AttentionPositions::validate`](crate::AttentionPositions::validate)).
    pub fn new(
        table: &[f32],
        heads: usize,
        num_buckets: usize,
        max_distance: usize,
        bidirectional: bool,
    ) -> Self {
        assert_eq!(
            table.len(),
            num_buckets * heads,
            "RelativeBiasTable: a {num_buckets} × {heads} table has {} values, got {}",
            num_buckets * heads,
            table.len()
        );
        let layout = crate::AttentionPositions::Relative {
            num_buckets,
            max_distance,
            bidirectional,
        };
        if let Err(error) = layout.validate(1) {
            panic!("RelativeBiasTable: {error}");
        }
        let limit = max_distance as i64;
        let values = (0..heads)
            .map(|h| {
                (-limit..=limit)
                    .map(|r| {
                        let bucket =
                            relative_position_bucket(r, num_buckets, max_distance, bidirectional);
                        table[bucket * heads + h]
                    })
                    .collect()
            })
            .collect();
        Self {
            values,
            max_distance,
            query_offset: 0,
            key_offset: 0,
        }
    }

    /// The first query and key at these positions (a KV cache's).
    pub fn offsets(mut self, query: usize, key: usize) -> Self {
        self.query_offset = query;
        self.key_offset = key;
        self
    }

    fn slot(&self, q: usize, kv: usize) -> usize {
        let r = (kv + self.key_offset) as i64 - (q + self.query_offset) as i64;
        let m = self.max_distance as i64;
        (r.clamp(-m, m) + m) as usize
    }
}

impl ScoreMod for RelativeBiasTable {
    fn depends_on_batch(&self) -> bool {
        false
    }

    fn bias(&self, _batch: usize, head: usize, q: usize, kv: usize) -> f32 {
        self.values[head][self.slot(q, kv)]
    }

    fn add_to_row(&self, row: &mut [f32], _batch: usize, head: usize, q: usize, kv_start: usize) {
        let values = &self.values[head];
        let width = row.len() as i64;
        let m = self.max_distance as i64;
        // Key j is at relative position p + j: below -m it takes slot 0, above m the top
        // slot, and in between consecutive slots, so the middle is a slice added to a slice.
        let p = (kv_start + self.key_offset) as i64 - (q + self.query_offset) as i64;
        let before = (-m - p).clamp(0, width) as usize;
        let end = (m - p + 1).clamp(before as i64, width) as usize;
        let (first, top) = (values[0], values[values.len() - 1]);
        for v in &mut row[..before] {
            *v += first;
        }
        let slot = (p + before as i64 + m) as usize;
        for (v, &b) in row[before..end]
            .iter_mut()
            .zip(&values[slot.min(values.len())..])
        {
            *v += b;
        }
        for v in &mut row[end..] {
            *v += top;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlibiBias, RelativePositionBias};
    use burn::tensor::Tolerance;

    #[test]
    fn alibi_equals_the_position_module() {
        let device = Device::flex();
        for (offsets, (l_q, l_k)) in [((0, 0), (5, 5)), ((7, 0), (2, 9))] {
            let want = AlibiBias::new(3).forward(l_q, l_k, offsets.0, offsets.1, &device);
            let got = alibi(3)
                .offsets(offsets.0, offsets.1)
                .to_bias([1, 3, l_q, l_k], &device);
            got.into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6));
        }
    }

    /// The row routine (slices below, inside and beyond the clamped distances) equals the
    /// module's bias for every offset and bucket layout tried.
    #[test]
    fn relative_table_equals_the_position_module() {
        let device = Device::flex();
        for (bidirectional, buckets, max_distance) in [(true, 8, 6), (false, 6, 5), (true, 32, 128)]
        {
            let module =
                RelativePositionBias::new(3, buckets, max_distance, bidirectional, &device);
            let weight = Tensor::<2>::random(
                [buckets, 3],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let module = RelativePositionBias {
                embedding: burn::nn::Embedding {
                    weight: burn::module::Param::from_tensor(weight.clone()),
                },
                ..module
            };
            let table: Vec<f32> = weight.into_data().try_to_vec().unwrap();
            for (qo, ko, l_q, l_k) in [(0, 0, 20, 20), (13, 0, 3, 30), (0, 9, 17, 4)] {
                let want = module.forward(l_q, l_k, qo, ko);
                let score = RelativeBiasTable::new(&table, 3, buckets, max_distance, bidirectional)
                    .offsets(qo, ko);
                let got = score.to_bias([1, 3, l_q, l_k], &device);
                got.into_data()
                    .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6));
                // The per-element form agrees with the row form.
                let one = score.bias(0, 2, l_q - 1, l_k - 1);
                let mut row = vec![0f32; l_k];
                score.add_to_row(&mut row, 0, 2, l_q - 1, 0);
                assert_eq!(row[l_k - 1], one);
            }
        }
    }

    #[test]
    fn closures_and_sums_are_score_mods() {
        let device = Device::flex();
        let per_batch =
            |b: usize, h: usize, q: usize, kv: usize| (b * 1000 + h * 100 + q * 10 + kv) as f32;
        let sum = per_batch.plus(|_: usize, _: usize, _: usize, _: usize| 0.5);
        let bias: Vec<f32> = sum
            .to_bias([2, 2, 2, 3], &device)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(bias[0], 0.5);
        assert_eq!(bias[23], 1112.5); // b 1, h 1, q 1, kv 2
        assert_eq!(sum.bias(1, 0, 1, 2), 1012.5);
    }
}
