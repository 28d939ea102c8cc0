//! An attention pattern as code for the fused op (issue 22): which pairs may attend
//! ([`BlockMask`] of a [`MaskMod`]), what is added to their scores ([`ScoreMod`]) and whether the
//! scores are soft-capped; given to [`fused::pattern_attention`](crate::fused::pattern_attention).
//!
//! On flex (f32) the fused kernels read the pattern itself: empty tiles are skipped in the
//! forward and the backward (a sliding window costs `O(l · window)` per call), the mask is
//! applied only on partial tiles, the score mod is added row by row. Building the block mask
//! evaluates the mask mod on every pair of the tiles it cannot classify at once
//! ([`MaskMod::tile_kind`](crate::mask_mod::MaskMod::tile_kind): `causal` and `window` can, so a
//! window builds in `O(l · window)`; a closure is `O(l²)`, in parallel): build a pattern once
//! per shape and keep it, as `MultiHeadAttention` does for its window. Other backends get the mask and bias
//! tensors the pattern stands for, built once per shape and device and kept in the pattern.
//!
//! A pattern may also carry learned attention sinks ([`AttentionPattern::with_sinks`], gpt-oss):
//! a logit per head that joins every row's softmax without a value, so a head can attend to
//! nothing. They are a parameter, not a shape's pattern: attach them to a clone at each call.

use std::sync::Arc;

use burn::prelude::*;

use crate::mask_mod::{BlockMask, MaskMod};
use crate::recent::Recent;
use crate::score_mod::ScoreMod;

/// Mask tensors and bias tensors a pattern keeps per (device, shape): a few shapes (a model
/// sees a handful of lengths), the oldest dropped first.
const CACHED_SHAPES: usize = 8;

/// The mask and bias tensors of one shape on one device.
type Tensors = (Option<Tensor<4, Bool>>, Option<Tensor<4>>);

/// A [`BlockMask`], a [`ScoreMod`], a soft-cap and sink logits, each optional. Cheap to clone
/// (shared).
#[derive(Clone, Default)]
pub struct AttentionPattern {
    blocks: Option<Arc<BlockMask>>,
    score: Option<Arc<dyn ScoreMod>>,
    softcap: Option<f64>,
    sinks: Option<Tensor<1>>,
    cache: Arc<Recent<([usize; 4], Device), Tensors, CACHED_SHAPES>>,
}

impl std::fmt::Debug for AttentionPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttentionPattern")
            .field(
                "blocks",
                &self.blocks.as_ref().map(|b| (b.shape(), b.counts())),
            )
            .field("score", &self.score.is_some())
            .field("softcap", &self.softcap)
            .field("sinks", &self.sinks.as_ref().map(Tensor::dims))
            .finish()
    }
}

impl AttentionPattern {
    /// Every pair allowed, no bias, no cap: plain attention.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the pairs `mask_mod` allows, for calls of `shape` (`[batch, heads, l_q, l_k]`,
    /// batch or heads 1 when the pattern does not depend on them), in tiles of
    /// [`DEFAULT_BLOCK`](crate::mask_mod::DEFAULT_BLOCK).
    pub fn with_mask(self, mask_mod: &impl MaskMod, shape: [usize; 4]) -> Self {
        self.with_block_mask(BlockMask::with_default_blocks(mask_mod, shape))
    }

    /// Only the pairs `blocks` allows (its tiles are the flex kernels' tiles).
    pub fn with_block_mask(mut self, blocks: BlockMask) -> Self {
        self.blocks = Some(Arc::new(blocks));
        self.cache = Arc::default();
        self
    }

    /// `score_mod`'s term added to every score.
    pub fn with_score(mut self, score_mod: impl ScoreMod + 'static) -> Self {
        self.score = Some(Arc::new(score_mod));
        self.cache = Arc::default();
        self
    }

    /// [`with_score`](Self::with_score) with a shared score mod.
    pub(crate) fn with_shared_score(mut self, score_mod: Arc<dyn ScoreMod>) -> Self {
        self.score = Some(score_mod);
        self.cache = Arc::default();
        self
    }

    /// Scores soft-capped to `(-cap, cap)`: `cap · tanh(s / cap)` of the scaled score, before
    /// the score mod, the bias and the mask (Gemma 2; burn's `softcap` option).
    ///
    /// # Panics
    /// When `cap` is not positive and finite.
    pub fn with_softcap(mut self, cap: f64) -> Self {
        assert!(
            cap > 0.0 && cap.is_finite(),
            "AttentionPattern: softcap must be positive and finite, got {cap}"
        );
        self.softcap = Some(cap);
        self
    }

    /// Learned attention sinks (gpt-oss), `[heads]`: head `h`'s logit `sinks[h]` joins the
    /// softmax of each of its rows as one more score whose value is zero, so the weights
    /// `exp(s_ij) / (Σ_j exp(s_ij) + exp(sinks[h]))` of a row sum to less than 1. Gradients
    /// reach `sinks` (`dsinks[h] = −Σ_rows P_sink · Σ_d dout · out`). Not cached by shape: a
    /// trained parameter, attach it to the call's pattern.
    ///
    /// ```
    /// use attention::{AttentionPattern, fused::pattern_attention};
    /// use burn::prelude::*;
    ///
    /// let device = Device::flex().autodiff();
    /// let sinks = Tensor::<1>::from_data([0.0, 2.0], &device).require_grad();
    /// let pattern = AttentionPattern::new().with_sinks(sinks.clone());
    /// // Equal scores over 2 keys: head 0 gives each 1 / (2 + e⁰), head 1 each 1 / (2 + e²).
    /// let q = Tensor::<4>::zeros([1, 2, 1, 4], &device);
    /// let v = Tensor::<4>::ones([1, 2, 2, 4], &device);
    /// let out = pattern_attention(q.clone(), q.clone().repeat_dim(2, 2), v, None, None, 0.5, &pattern);
    /// let heads: Vec<f32> = out.clone().mean_dim(3).into_data().to_vec().unwrap();
    /// assert!((heads[0] - 2.0 / 3.0).abs() < 1e-6);
    /// assert!((heads[1] - 2.0 / (2.0 + 2f32.exp())).abs() < 1e-6);
    /// let grads = out.sum().backward();
    /// assert_eq!(sinks.grad(&grads).unwrap().dims(), [2]);
    /// ```
    pub fn with_sinks(mut self, sinks: Tensor<1>) -> Self {
        self.sinks = Some(sinks);
        self
    }

    /// The sink logits, if any.
    pub fn sinks(&self) -> Option<&Tensor<1>> {
        self.sinks.as_ref()
    }

    /// The pattern without its sinks (what the kernels read; the op handles the sinks).
    pub(crate) fn without_sinks(&self) -> Self {
        Self {
            sinks: None,
            ..self.clone()
        }
    }

    /// Whether the pattern adds nothing (plain attention).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_none()
            && self.score.is_none()
            && self.softcap.is_none()
            && self.sinks.is_none()
    }

    /// The block mask, if any.
    pub fn block_mask(&self) -> Option<&BlockMask> {
        self.blocks.as_deref()
    }

    /// The score mod, if any.
    pub fn score_mod(&self) -> Option<&dyn ScoreMod> {
        self.score.as_deref()
    }

    /// The soft-cap, if any.
    pub fn softcap(&self) -> Option<f64> {
        self.softcap
    }

    pub(crate) fn shared_score(&self) -> Option<Arc<dyn ScoreMod>> {
        self.score.clone()
    }

    /// The mask (`true` = masked) and bias tensors of the pattern's mask and score mod for
    /// calls of `[batch, heads, l_q, l_k]` on `device`, built on first use and kept. The mask
    /// has the block mask's shape; the bias has batch 1 when the score mod does not
    /// [depend on the batch row](ScoreMod::depends_on_batch).
    pub fn tensors(
        &self,
        shape: [usize; 4],
        device: &Device,
    ) -> (Option<Tensor<4, Bool>>, Option<Tensor<4>>) {
        if self.blocks.is_none() && self.score.is_none() {
            return (None, None);
        }
        self.cache.get_or_insert_with((shape, device.clone()), || {
            let mask = self.blocks.as_ref().map(|blocks| blocks.to_mask(device));
            let bias = self.score.as_ref().map(|score| {
                let batch = if score.depends_on_batch() {
                    shape[0]
                } else {
                    1
                };
                score.to_bias([batch, shape[1], shape[2], shape[3]], device)
            });
            (mask, bias)
        })
    }
}
