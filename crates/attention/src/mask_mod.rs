//! Attention patterns written as code (issue 22, first part): a [`MaskMod`] says whether query
//! `q` of head `h` in batch row `b` may attend to key `kv`, as PyTorch's `flex_attention`
//! `mask_mod` does. Closures are mask mods; [`MaskMod::and`], [`MaskMod::or`] and
//! [`MaskMod::not`] combine them; [`causal`], [`window`], [`prefix_lm`], [`document`] and
//! [`padding`] are ready-made.
//!
//! **Polarity**: a mask mod returns `true` where attention is *allowed* (as `flex_attention`);
//! the crate's mask tensors are `true` where it is *masked* (as burn). [`MaskMod::to_mask`]
//! converts, so its result goes wherever a mask tensor does.
//!
//! [`BlockMask`] sorts the `[q-block, kv-block]` tiles of a shape into empty, full and partial
//! ones: what a tiled kernel needs to skip empty tiles and to skip the mask on full ones.
//!
//! Indices are those of the score matrix: with a KV cache, query `q` is the `q`-th new token;
//! shift it in a closure (`move |b, h, q, kv| inner.allows(b, h, q + offset, kv)`).
//!
//! ```
//! use attention::fused::fused_attention;
//! use attention::mask_mod::{MaskMod, causal, window};
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! // Mistral's sliding window: the last 3 tokens, the query's own included.
//! let sliding = causal().and(window(2, 0));
//! // Any closure `(batch, head, q, kv) -> bool` is a mask mod: here, head 0 sees everything.
//! let per_head = sliding.or(|_b: usize, h: usize, _q: usize, _kv: usize| h == 0);
//! let mask = per_head.to_mask([1, 2, 6, 6], &device); // [batch, heads, l_q, l_k], true = masked
//!
//! // Equal scores, so each query averages the values it may see; value = the key's position.
//! let q = Tensor::<4>::ones([1, 2, 6, 8], &device);
//! let v = Tensor::<1, Int>::arange(0..6, &device).float().reshape([1, 1, 6, 1]).expand([1, 2, 6, 1]);
//! let context = fused_attention(q.clone(), q, v, Some(mask), None, 8f64.sqrt());
//! let last: Vec<f32> = context.slice([0..1, 0..2, 5..6, 0..1]).into_data().try_to_vec().unwrap();
//! assert_eq!(last, [2.5, 4.0]); // head 0: keys 0..=5; head 1: keys 3..=5
//! ```

use std::ops::Range;

use burn::prelude::*;

/// Whether query `q` of head `head` in batch row `batch` may attend to key `kv`: `true` =
/// allowed. Implemented by every `Fn(usize, usize, usize, usize) -> bool`.
pub trait MaskMod: Send + Sync {
    /// `true` when `(batch, head, q, kv)` may attend.
    fn allows(&self, batch: usize, head: usize, q: usize, kv: usize) -> bool;

    /// What the tile of queries `q` × keys `kv` holds, when the mask mod can tell without
    /// evaluating every pair; `None` (the default): evaluate them. [`BlockMask::new`] then
    /// evaluates only the partial tiles, so a causal window costs `O(l · window)` to build
    /// instead of `O(l²)`. An implementation must be exact when it answers.
    fn tile_kind(
        &self,
        _batch: usize,
        _head: usize,
        _q: Range<usize>,
        _kv: Range<usize>,
    ) -> Option<BlockKind> {
        None
    }

    /// Allowed where both allow.
    fn and<M: MaskMod>(self, other: M) -> And<Self, M>
    where
        Self: Sized,
    {
        And(self, other)
    }

    /// Allowed where either allows.
    fn or<M: MaskMod>(self, other: M) -> Or<Self, M>
    where
        Self: Sized,
    {
        Or(self, other)
    }

    /// Allowed where this one masks.
    fn not(self) -> Not<Self>
    where
        Self: Sized,
    {
        Not(self)
    }

    /// The mask tensor `[batch, heads, l_q, l_k]` of this pattern, **`true` = masked** (the
    /// crate's and burn's polarity), for every mask argument of the crate.
    fn to_mask(&self, shape: [usize; 4], device: &Device) -> Tensor<4, Bool> {
        let [batch, heads, l_q, l_k] = shape;
        let mut masked = Vec::with_capacity(batch * heads * l_q * l_k);
        for b in 0..batch {
            for h in 0..heads {
                for q in 0..l_q {
                    masked.extend((0..l_k).map(|kv| !self.allows(b, h, q, kv)));
                }
            }
        }
        Tensor::from_data(TensorData::new(masked, shape), device)
    }
}

impl<F: Fn(usize, usize, usize, usize) -> bool + Send + Sync> MaskMod for F {
    fn allows(&self, batch: usize, head: usize, q: usize, kv: usize) -> bool {
        self(batch, head, q, kv)
    }
}

/// [`MaskMod::and`].
#[derive(Debug, Clone)]
pub struct And<A, B>(A, B);

impl<A: MaskMod, B: MaskMod> MaskMod for And<A, B> {
    fn allows(&self, batch: usize, head: usize, q: usize, kv: usize) -> bool {
        self.0.allows(batch, head, q, kv) && self.1.allows(batch, head, q, kv)
    }

    fn tile_kind(
        &self,
        b: usize,
        h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        // Two partial tiles may still have no pair in common: evaluated.
        combine_kinds(
            self.0.tile_kind(b, h, q.clone(), kv.clone()),
            self.1.tile_kind(b, h, q, kv),
            BlockKind::Empty,
        )
    }
}

/// The kind of a tile under `a` and `b` combined by an operator for which `absorbing` decides
/// alone (`Empty` for [`And`], `Full` for [`Or`]) and the other of the two leaves the other
/// side's kind; `None` (evaluate the tile) when neither settles it.
fn combine_kinds(
    a: Option<BlockKind>,
    b: Option<BlockKind>,
    absorbing: BlockKind,
) -> Option<BlockKind> {
    use BlockKind::*;
    let neutral = match absorbing {
        Empty => Full,
        Full => Empty,
        Partial => unreachable!("Partial decides nothing alone"),
    };
    match (a, b) {
        _ if a == Some(absorbing) || b == Some(absorbing) => Some(absorbing),
        (Some(kind), other) if kind == neutral => other,
        (other, Some(kind)) if kind == neutral => other,
        _ => None,
    }
}

/// [`MaskMod::or`].
#[derive(Debug, Clone)]
pub struct Or<A, B>(A, B);

impl<A: MaskMod, B: MaskMod> MaskMod for Or<A, B> {
    fn allows(&self, batch: usize, head: usize, q: usize, kv: usize) -> bool {
        self.0.allows(batch, head, q, kv) || self.1.allows(batch, head, q, kv)
    }

    fn tile_kind(
        &self,
        b: usize,
        h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        // Two partial tiles may cover it together: evaluated.
        combine_kinds(
            self.0.tile_kind(b, h, q.clone(), kv.clone()),
            self.1.tile_kind(b, h, q, kv),
            BlockKind::Full,
        )
    }
}

/// [`MaskMod::not`].
#[derive(Debug, Clone)]
pub struct Not<A>(A);

impl<A: MaskMod> MaskMod for Not<A> {
    fn allows(&self, batch: usize, head: usize, q: usize, kv: usize) -> bool {
        !self.0.allows(batch, head, q, kv)
    }

    fn tile_kind(
        &self,
        b: usize,
        h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        self.0.tile_kind(b, h, q, kv).map(|kind| match kind {
            BlockKind::Empty => BlockKind::Full,
            BlockKind::Full => BlockKind::Empty,
            BlockKind::Partial => BlockKind::Partial,
        })
    }
}

/// The kind of a tile under the band `from ≤ q − kv ≤ to`: the tile's differences `q − kv`
/// form one interval, so it is full when that interval lies inside the band, empty when it
/// misses it.
pub(crate) fn band_kind(q: Range<usize>, kv: Range<usize>, from: i64, to: i64) -> BlockKind {
    if q.is_empty() || kv.is_empty() {
        return BlockKind::Empty;
    }
    let low = q.start as i64 - (kv.end - 1) as i64;
    let high = (q.end - 1) as i64 - kv.start as i64;
    if high < from || low > to {
        BlockKind::Empty
    } else if low >= from && high <= to {
        BlockKind::Full
    } else {
        BlockKind::Partial
    }
}

/// The band `from ≤ q − kv ≤ to` in score-matrix indices, bounds of either sign: a window
/// whose queries and keys start at different positions (a module's window over a KV cache or a
/// cross-attention).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Band {
    pub(crate) from: i64,
    pub(crate) to: i64,
}

impl MaskMod for Band {
    fn allows(&self, _batch: usize, _head: usize, q: usize, kv: usize) -> bool {
        (self.from..=self.to).contains(&(q as i64 - kv as i64))
    }

    fn tile_kind(
        &self,
        _b: usize,
        _h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        Some(band_kind(q, kv, self.from, self.to))
    }
}

/// [`causal`]: keys up to the query's own position.
#[derive(Debug, Clone, Copy)]
pub struct Causal;

impl MaskMod for Causal {
    fn allows(&self, _batch: usize, _head: usize, q: usize, kv: usize) -> bool {
        kv <= q
    }

    fn tile_kind(
        &self,
        _b: usize,
        _h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        Some(band_kind(q, kv, 0, i64::MAX))
    }
}

/// Query `q` attends to keys `kv ≤ q` (the crate's [`causal_mask`](crate::mask::causal_mask),
/// per head).
pub fn causal() -> Causal {
    Causal
}

/// [`window`]: keys within a band around the query.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Keys before the query that are allowed.
    pub left: usize,
    /// Keys after the query that are allowed.
    pub right: usize,
}

impl MaskMod for Window {
    fn allows(&self, _batch: usize, _head: usize, q: usize, kv: usize) -> bool {
        kv + self.left >= q && kv <= q + self.right
    }

    fn tile_kind(
        &self,
        _b: usize,
        _h: usize,
        q: Range<usize>,
        kv: Range<usize>,
    ) -> Option<BlockKind> {
        Some(band_kind(q, kv, -(self.right as i64), self.left as i64))
    }
}

/// Query `q` attends to keys `q − left ..= q + right`. `causal().and(window(w - 1, 0))` is a
/// causal sliding window of `w` tokens (Mistral, Gemma 2's local layers); `window(w, w)` a
/// symmetric one (Longformer's local attention).
pub fn window(left: usize, right: usize) -> Window {
    Window { left, right }
}

/// [`prefix_lm`]: a bidirectional prefix, causal after it.
#[derive(Debug, Clone)]
pub struct PrefixLm {
    /// Each batch row's prefix length.
    pub prefix: Vec<usize>,
}

impl MaskMod for PrefixLm {
    fn allows(&self, batch: usize, _head: usize, q: usize, kv: usize) -> bool {
        kv < self.prefix[batch] || kv <= q
    }
}

/// Prefix-LM (T5, UniLM): every query sees the first `prefix[b]` keys of its row, and the keys
/// up to its own position after them.
///
/// # Panics
/// At use, when a batch row has no prefix length.
pub fn prefix_lm(prefix: Vec<usize>) -> PrefixLm {
    PrefixLm { prefix }
}

/// [`document`]: block-diagonal attention over packed sequences.
#[derive(Debug, Clone)]
pub struct Document {
    /// Each batch row's sequence id per position, `[batch][len]`.
    pub ids: Vec<Vec<u32>>,
}

impl MaskMod for Document {
    fn allows(&self, batch: usize, _head: usize, q: usize, kv: usize) -> bool {
        let ids = &self.ids[batch];
        ids[q] == ids[kv]
    }
}

/// Packed sequences: a query attends only to keys of the same sequence, `ids[b][q] ==
/// ids[b][kv]` (self-attention; combine with [`causal`] for packed causal training).
///
/// # Panics
/// At use, when an index is beyond a row's ids.
pub fn document(ids: Vec<Vec<u32>>) -> Document {
    Document { ids }
}

/// [`padding`]: keys beyond each row's length masked.
#[derive(Debug, Clone)]
pub struct Padding {
    /// Each batch row's number of real keys.
    pub lengths: Vec<usize>,
}

impl MaskMod for Padding {
    fn allows(&self, batch: usize, _head: usize, _q: usize, kv: usize) -> bool {
        kv < self.lengths[batch]
    }
}

/// Keys `kv < lengths[b]` only (the crate's
/// [`padding_mask_from_lengths`](crate::mask::padding_mask_from_lengths), for every query).
pub fn padding(lengths: Vec<usize>) -> Padding {
    Padding { lengths }
}

/// What a `[q-block, kv-block]` tile of the score matrix holds under a [`MaskMod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Every pair is masked: the tile can be skipped.
    Empty,
    /// Every pair is allowed: the tile needs no mask.
    Full,
    /// Some of each: the mask is applied inside the tile.
    Partial,
}

/// The tiles of one shape under a [`MaskMod`], computed once per shape (every pair evaluated
/// once, `rayon` over the query blocks), as `flex_attention`'s `create_block_mask`: each tile's
/// [`BlockKind`], and the allowed pairs of the partial ones, so that the fused kernels need
/// neither the mask mod nor a full-size mask. A batch or head dimension of 1 is shared by
/// every batch row or head (a sliding window is the same for all).
#[derive(Debug, Clone)]
pub struct BlockMask {
    shape: [usize; 4],
    block: [usize; 2],
    kinds: Vec<BlockKind>,
    /// Per tile, the index of its flags in `bits` (in tiles) when it is partial.
    partial: Vec<u32>,
    /// The allowed flags of the partial tiles, `block_q × block_kv` each, row-major (pairs
    /// beyond the lengths in the last tiles `false`).
    bits: Vec<bool>,
}

/// The block size [`BlockMask::with_default_blocks`] takes: the flex kernels' key tile.
pub const DEFAULT_BLOCK: usize = 64;

impl BlockMask {
    /// Sorts the tiles of `shape` (`[batch, heads, l_q, l_k]`, batch or heads 1 when the
    /// pattern does not depend on them) into blocks of `block_q` queries × `block_kv` keys
    /// (the last ones shorter where the lengths are not multiples).
    ///
    /// # Panics
    /// When a block size is 0.
    pub fn new(
        mask_mod: &impl MaskMod,
        shape: [usize; 4],
        block_q: usize,
        block_kv: usize,
    ) -> Self {
        use rayon::prelude::*;
        assert!(
            block_q > 0 && block_kv > 0,
            "BlockMask: block sizes must be at least 1, got {block_q} × {block_kv}"
        );
        let [batch, heads, l_q, l_k] = shape;
        let (n_q, n_kv) = (l_q.div_ceil(block_q), l_k.div_ceil(block_kv));
        // One row of tiles per (batch, head, query block), in parallel.
        let rows: Vec<(Vec<BlockKind>, Vec<Vec<bool>>)> = (0..batch * heads * n_q)
            .into_par_iter()
            .map(|row| {
                let (bh, qb) = (row / n_q, row % n_q);
                let (b, h) = (bh / heads, bh % heads);
                let queries = qb * block_q..((qb + 1) * block_q).min(l_q);
                let mut kinds = Vec::with_capacity(n_kv);
                let mut partial = Vec::new();
                // One buffer per row of tiles, copied out for the partial tiles only.
                let mut flags = vec![false; block_q * block_kv];
                for kb in 0..n_kv {
                    let keys = kb * block_kv..((kb + 1) * block_kv).min(l_k);
                    let known = mask_mod.tile_kind(b, h, queries.clone(), keys.clone());
                    if let Some(kind @ (BlockKind::Empty | BlockKind::Full)) = known {
                        kinds.push(kind);
                        continue;
                    }
                    flags.fill(false);
                    let (mut any, mut all) = (false, true);
                    for q in queries.clone() {
                        for kv in keys.clone() {
                            let allowed = mask_mod.allows(b, h, q, kv);
                            flags[(q - queries.start) * block_kv + kv - keys.start] = allowed;
                            any |= allowed;
                            all &= allowed;
                        }
                    }
                    kinds.push(match (any, all) {
                        (false, _) => BlockKind::Empty,
                        (true, true) => BlockKind::Full,
                        (true, false) => {
                            partial.push(flags.clone());
                            BlockKind::Partial
                        }
                    });
                }
                (kinds, partial)
            })
            .collect();
        let mut mask = Self {
            shape,
            block: [block_q, block_kv],
            kinds: Vec::with_capacity(batch * heads * n_q * n_kv),
            partial: Vec::with_capacity(batch * heads * n_q * n_kv),
            bits: Vec::new(),
        };
        let mut next = 0u32;
        for (kinds, partial) in rows {
            for kind in &kinds {
                mask.partial.push(if *kind == BlockKind::Partial {
                    next += 1;
                    next - 1
                } else {
                    u32::MAX
                });
            }
            mask.kinds.extend(kinds);
            for flags in partial {
                mask.bits.extend(flags);
            }
        }
        mask
    }

    /// [`BlockMask::new`] with [`DEFAULT_BLOCK`]-sized tiles each way.
    pub fn with_default_blocks(mask_mod: &impl MaskMod, shape: [usize; 4]) -> Self {
        Self::new(mask_mod, shape, DEFAULT_BLOCK, DEFAULT_BLOCK)
    }

    /// `[batch, heads, l_q, l_k]` the tiles cover (batch or heads 1: shared).
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// `[block_q, block_kv]`.
    pub fn block(&self) -> [usize; 2] {
        self.block
    }

    /// Query blocks and key blocks per head: `[n_q, n_kv]`.
    pub fn blocks(&self) -> [usize; 2] {
        let [_, _, l_q, l_k] = self.shape;
        [l_q.div_ceil(self.block[0]), l_k.div_ceil(self.block[1])]
    }

    fn index(&self, batch: usize, head: usize, q_block: usize, kv_block: usize) -> usize {
        let [batches, heads, _, _] = self.shape;
        let [n_q, n_kv] = self.blocks();
        assert!(
            q_block < n_q && kv_block < n_kv,
            "BlockMask: tile ({q_block}, {kv_block}) beyond {n_q} × {n_kv}"
        );
        // A dimension of 1 is shared.
        let (b, h) = (
            if batches == 1 { 0 } else { batch },
            if heads == 1 { 0 } else { head },
        );
        assert!(
            b < batches && h < heads,
            "BlockMask: batch {batch}, head {head} beyond {batches} × {heads}"
        );
        ((b * heads + h) * n_q + q_block) * n_kv + kv_block
    }

    /// The tile of query block `q_block` and key block `kv_block` of `(batch, head)`.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn kind(&self, batch: usize, head: usize, q_block: usize, kv_block: usize) -> BlockKind {
        self.kinds[self.index(batch, head, q_block, kv_block)]
    }

    /// A partial tile's allowed flags, `block_q × block_kv` row-major (`true` = allowed);
    /// `None` for an empty or full tile.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn tile(
        &self,
        batch: usize,
        head: usize,
        q_block: usize,
        kv_block: usize,
    ) -> Option<&[bool]> {
        let slot = self.partial[self.index(batch, head, q_block, kv_block)];
        let len = self.block[0] * self.block[1];
        (slot != u32::MAX).then(|| &self.bits[slot as usize * len..(slot as usize + 1) * len])
    }

    /// How many tiles are empty, full and partial.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.kinds
            .iter()
            .fold((0, 0, 0), |(e, f, p), kind| match kind {
                BlockKind::Empty => (e + 1, f, p),
                BlockKind::Full => (e, f + 1, p),
                BlockKind::Partial => (e, f, p + 1),
            })
    }

    /// The mask tensor of the shape, **`true` = masked**, from the tiles alone (the mask mod is
    /// not called again): what the backends without the flex kernels take.
    pub fn to_mask(&self, device: &Device) -> Tensor<4, Bool> {
        let [batch, heads, l_q, l_k] = self.shape;
        let [block_q, block_kv] = self.block;
        let mut masked = vec![true; batch * heads * l_q * l_k];
        for (plane, out) in masked.chunks_mut((l_q * l_k).max(1)).enumerate() {
            let (b, h) = (plane / heads, plane % heads);
            for q in 0..l_q {
                for kv in 0..l_k {
                    let (qb, kb) = (q / block_q, kv / block_kv);
                    out[q * l_k + kv] = match self.kind(b, h, qb, kb) {
                        BlockKind::Empty => true,
                        BlockKind::Full => false,
                        BlockKind::Partial => {
                            let tile = self.tile(b, h, qb, kb).expect("a partial tile");
                            !tile[(q % block_q) * block_kv + kv % block_kv]
                        }
                    };
                }
            }
        }
        Tensor::from_data(TensorData::new(masked, self.shape), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask;

    fn flags(mask: Tensor<4, Bool>) -> Vec<bool> {
        mask.into_data().try_to_vec::<bool>().unwrap()
    }

    #[test]
    fn causal_and_padding_equal_the_mask_functions() {
        let device = Device::flex();
        let (batch, len) = (2, 5);
        let want = mask::causal_mask(batch, len, &device).reshape([batch, 1, len, len]);
        assert_eq!(
            flags(causal().to_mask([batch, 1, len, len], &device)),
            flags(want)
        );
        // A closure is a mask mod too.
        let closure = |_: usize, _: usize, q: usize, kv: usize| kv <= q;
        assert_eq!(
            flags(closure.to_mask([batch, 1, len, len], &device)),
            flags(causal().to_mask([batch, 1, len, len], &device))
        );
        let pad = mask::padding_mask_from_lengths(&[3, 5], len, &device)
            .reshape([batch, 1, 1, len])
            .expand([batch, 1, len, len]);
        assert_eq!(
            flags(padding(vec![3, 5]).to_mask([batch, 1, len, len], &device)),
            flags(pad)
        );
    }

    #[test]
    fn window_prefix_and_document_allow_what_they_say() {
        let sliding = causal().and(window(1, 0));
        let prefix = prefix_lm(vec![2]);
        let docs = document(vec![vec![7, 7, 3, 3, 3]]);
        for q in 0..5 {
            for kv in 0..5 {
                assert_eq!(sliding.allows(0, 0, q, kv), kv <= q && q - kv <= 1);
                assert_eq!(window(1, 2).allows(0, 0, q, kv), kv + 1 >= q && kv <= q + 2);
                assert_eq!(prefix.allows(0, 0, q, kv), kv < 2 || kv <= q);
                assert_eq!(docs.allows(0, 0, q, kv), (q < 2) == (kv < 2));
            }
        }
    }

    #[test]
    fn combinators_follow_boolean_logic() {
        let heads = |_: usize, h: usize, _: usize, _: usize| h == 1;
        let either = causal().or(heads);
        let neither = causal()
            .not()
            .and(|_: usize, h: usize, _: usize, _: usize| h != 1);
        for h in 0..2 {
            for q in 0..4 {
                for kv in 0..4 {
                    let (c, one) = (kv <= q, h == 1);
                    assert_eq!(either.allows(0, h, q, kv), c || one);
                    assert_eq!(neither.allows(0, h, q, kv), !(c || one));
                }
            }
        }
        let device = Device::flex();
        let shape = [1, 2, 4, 4];
        let (a, b) = (
            flags(either.to_mask(shape, &device)),
            flags(neither.to_mask(shape, &device)),
        );
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }

    #[test]
    fn block_masks_sort_the_tiles() {
        let shape = [1, 1, 64, 64];
        // Causal, blocks of 16: the 4 diagonal tiles partial, 6 below full, 6 above empty.
        let blocks = BlockMask::new(&causal(), shape, 16, 16);
        assert_eq!(blocks.counts(), (6, 6, 4));
        assert_eq!(blocks.kind(0, 0, 2, 1), BlockKind::Full);
        assert_eq!(blocks.kind(0, 0, 1, 2), BlockKind::Empty);
        assert_eq!(blocks.kind(0, 0, 3, 3), BlockKind::Partial);
        // A causal window of 16 tokens: the diagonal and the one below it partial, the rest
        // empty: 7 of 16 tiles are computed instead of 10.
        let sliding = BlockMask::new(&causal().and(window(15, 0)), shape, 16, 16);
        assert_eq!(sliding.counts(), (9, 0, 7));
        // Lengths that are not multiples of the block: the last tiles are shorter.
        let ragged = BlockMask::new(&causal(), [2, 3, 10, 7], 4, 4);
        assert_eq!(ragged.blocks(), [3, 2]);
        assert_eq!(ragged.kind(1, 2, 2, 1), BlockKind::Full);
        assert_eq!(ragged.kind(1, 2, 0, 1), BlockKind::Empty);
    }

    /// The tile shortcuts of causal, window and their combinations give the same block masks
    /// (kinds and partial flags) as evaluating every pair (a closure hides the shortcuts), on
    /// ragged shapes and block sizes.
    #[test]
    fn tile_shortcuts_equal_evaluation() {
        fn check(name: &str, mask_mod: &impl MaskMod) {
            let hidden = |b: usize, h: usize, q: usize, kv: usize| mask_mod.allows(b, h, q, kv);
            for (shape, bq, bk) in [
                ([1, 1, 37, 37], 8, 8),
                ([1, 2, 30, 45], 7, 4),
                ([1, 1, 64, 64], 16, 16),
            ] {
                let (fast, slow) = (
                    BlockMask::new(mask_mod, shape, bq, bk),
                    BlockMask::new(&hidden, shape, bq, bk),
                );
                assert_eq!(fast.kinds, slow.kinds, "{name} {shape:?} {bq}×{bk}");
                assert_eq!(fast.bits, slow.bits, "{name} {shape:?} {bq}×{bk}");
            }
        }
        check("causal", &causal());
        check("window", &window(5, 2));
        check("causal window", &causal().and(window(9, 0)));
        check("not causal", &causal().not());
        check("causal or window", &causal().or(window(0, 3)));
        check(
            "window and document",
            &window(4, 4).and(document(vec![(0..64).map(|i| (i / 11) as u32).collect()])),
        );
    }

    #[test]
    fn each_tile_kind_agrees_with_the_dense_mask() {
        let mask_mod = document(vec![vec![0, 0, 0, 1, 1, 2, 2, 2, 2]]).and(causal());
        let shape = [1, 1, 9, 9];
        let dense = flags(mask_mod.to_mask(shape, &Device::flex()));
        let blocks = BlockMask::new(&mask_mod, shape, 2, 3);
        let [n_q, n_kv] = blocks.blocks();
        for qb in 0..n_q {
            for kb in 0..n_kv {
                let masked: Vec<bool> = (qb * 2..(qb * 2 + 2).min(9))
                    .flat_map(|q| (kb * 3..kb * 3 + 3).map(move |kv| (q, kv)))
                    .map(|(q, kv)| dense[q * 9 + kv])
                    .collect();
                let want = if masked.iter().all(|&m| m) {
                    BlockKind::Empty
                } else if masked.iter().all(|&m| !m) {
                    BlockKind::Full
                } else {
                    BlockKind::Partial
                };
                assert_eq!(blocks.kind(0, 0, qb, kb), want, "tile ({qb}, {kb})");
            }
        }
    }
}
