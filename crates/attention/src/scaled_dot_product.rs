//! Scaled dot-product attention: `softmax(q·kᵀ / temperature)·v`.

use burn::{
    nn::{Dropout, DropoutConfig},
    prelude::*,
    tensor::{activation::softmax, module::attention, ops::AttentionModuleOptions},
};

use crate::{
    AttentionError, AttentionPattern,
    fused::{mask_union, pattern_attention, pattern_attention_dropout, pattern_kernels, repeat_kv},
};

/// Configuration of [`ScaledDotProductAttention`].
#[derive(Config, Debug)]
pub struct ScaledDotProductAttentionConfig {
    /// Divisor of the scores `q·kᵀ`. Default: `None`, which uses `sqrt(d_k)` of each input.
    pub temperature: Option<f64>,
    /// Dropout probability on the attention weights, active only while training on an autodiff
    /// device. Default: `0.0`.
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl ScaledDotProductAttentionConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        if let Some(t) = self.temperature
            && !(t.is_finite() && t > 0.0)
        {
            return Err(AttentionError::config(
                "temperature",
                format!("must be finite and > 0, got {t}"),
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(AttentionError::config(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    /// Builds the module. It has no parameters, so it needs no device (like burn's `Dropout`).
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self) -> ScaledDotProductAttention {
        if let Err(err) = self.validate() {
            panic!("ScaledDotProductAttentionConfig: {err}");
        }
        ScaledDotProductAttention {
            temperature: self.temperature,
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Scaled dot-product attention over already split heads.
///
/// ```
/// use attention::ScaledDotProductAttentionConfig;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let sdpa = ScaledDotProductAttentionConfig::new().init();
/// let q = Tensor::<4>::ones([2, 4, 5, 8], &device); // [batch, heads, l_q, d_k]
/// let k = Tensor::<4>::ones([2, 4, 7, 8], &device); // [batch, heads, l_k, d_k]
/// let v = Tensor::<4>::ones([2, 4, 7, 3], &device); // [batch, heads, l_k, d_v]
/// let out = sdpa.forward(q, k, v, None);
/// assert_eq!(out.context.dims(), [2, 4, 5, 3]);
/// assert_eq!(out.weights.dims(), [2, 4, 5, 7]);
/// ```
#[derive(Module, Debug)]
pub struct ScaledDotProductAttention {
    /// Score divisor; `None` means `sqrt(d_k)`.
    pub temperature: Option<f64>,
    /// Dropout on the attention weights.
    pub dropout: Dropout,
}

/// What [`ScaledDotProductAttention::forward`] returns.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// Weighted values, `[batch, heads, l_q, d_v]`.
    pub context: Tensor<4>,
    /// Attention weights after the softmax (and after dropout while training),
    /// `[batch, heads, l_q, l_k]`. Masked keys get exactly 0.
    pub weights: Tensor<4>,
}

impl ScaledDotProductAttention {
    /// Attention with its weights.
    ///
    /// # Shapes
    /// - `q`: `[batch, heads, l_q, d_k]`
    /// - `k`: `[batch, heads, l_k, d_k]`
    /// - `v`: `[batch, heads, l_k, d_v]`
    /// - `mask`: broadcastable to `[batch, heads, l_q, l_k]` (e.g. `[batch, 1, 1, l_k]` for
    ///   padding), `true` = masked
    /// - output: context `[batch, heads, l_q, d_v]`, weights `[batch, heads, l_q, l_k]`
    pub fn forward(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
    ) -> AttentionOutput {
        self.forward_with_bias(q, k, v, mask, None)
    }

    /// [`forward`](Self::forward) with `bias` added to the scaled scores before the softmax
    /// (ALiBi, relative position biases); masked entries stay masked.
    ///
    /// # Shapes
    /// As [`forward`](Self::forward); `bias` broadcastable to `[batch, heads, l_q, l_k]`.
    pub fn forward_with_bias(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        bias: Option<Tensor<4>>,
    ) -> AttentionOutput {
        self.forward_with_pattern(q, k, v, mask, bias, &AttentionPattern::new())
    }

    /// [`forward_with_bias`](Self::forward_with_bias) with an [`AttentionPattern`] on top, its
    /// mask and bias written out (cached in the pattern per shape) and its soft-cap applied to
    /// the scaled scores before the biases.
    ///
    /// # Shapes
    /// As [`forward_with_bias`](Self::forward_with_bias); the block mask's shape is
    /// `[batch | 1, heads | 1, l_q, l_k]`.
    pub fn forward_with_pattern(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        bias: Option<Tensor<4>>,
        pattern: &AttentionPattern,
    ) -> AttentionOutput {
        let temperature = self.temperature_for(q.dims()[3]);
        // Scaling q rather than the scores touches d_k values per query instead of l_k.
        let scores = q.div_scalar(temperature).matmul(k.swap_dims(2, 3));
        let weights = self
            .dropout
            .forward(pattern_softmax(scores, mask, bias, pattern));
        let context = weights.clone().matmul(v);
        AttentionOutput { context, weights }
    }

    /// The context alone, never materialising the weights where a backend allows: while
    /// training (an autodiff device) through [`fused_attention`](crate::fused::fused_attention), one recorded op with its own
    /// backward whose memory grows with `l`, not `l²`; for inference through burn's fused
    /// [`attention`] kernel. Dropout on the weights happens inside the fused op where
    /// [`dropout_supported`](crate::fused::dropout_supported) (flex); elsewhere, with dropout active, this is
    /// [`forward`](Self::forward)'s decomposition.
    ///
    /// # Shapes
    /// As [`forward`](Self::forward), except that `k` and `v` may have fewer heads than `q`,
    /// dividing them (grouped-query attention); returns the context `[batch, heads, l_q, d_v]`.
    pub fn forward_context(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
    ) -> Tensor<4> {
        self.forward_context_with_bias(q, k, v, mask, None)
    }

    /// [`forward_context`](Self::forward_context) with a score bias (for inference passed to
    /// burn's fused kernel as its `attn_bias`, expanded to the full `[batch, heads, l_q, l_k]`
    /// it expects).
    ///
    /// # Shapes
    /// As [`forward_context`](Self::forward_context); `bias` broadcastable to
    /// `[batch, heads, l_q, l_k]`.
    pub fn forward_context_with_bias(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        bias: Option<Tensor<4>>,
    ) -> Tensor<4> {
        self.forward_context_with_pattern(q, k, v, mask, bias, &AttentionPattern::new())
    }

    /// [`forward_context_with_bias`](Self::forward_context_with_bias) with an
    /// [`AttentionPattern`] on top (a block mask, a score mod, a soft-cap): while training
    /// through [`pattern_attention_dropout`]; for inference through the fused kernels where
    /// they read patterns ([`pattern_kernels`]: flex), elsewhere through burn's fused kernel
    /// with the pattern's mask and bias tensors (cached in the pattern per shape) and its
    /// `softcap` option.
    ///
    /// # Shapes
    /// As [`forward_context_with_bias`](Self::forward_context_with_bias); the block mask's shape
    /// is `[batch | 1, heads | 1, l_q, l_k]`.
    pub fn forward_context_with_pattern(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Option<Tensor<4, Bool>>,
        bias: Option<Tensor<4>>,
        pattern: &AttentionPattern,
    ) -> Tensor<4> {
        let [batch, heads, l_q, d_k] = q.dims();
        let temperature = self.temperature_for(d_k);
        let scale = 1.0 / temperature;
        let device = q.device();
        if device.is_autodiff() {
            // A frozen module drops nothing, as burn's `Dropout`.
            let p = crate::fused::active_probability(&self.dropout);
            return pattern_attention_dropout(q, k, v, mask, bias, scale, p, pattern);
        }
        // On flex the fused kernels beat burn-flex 0.22.1's attention kernels with or
        // without a pattern: BENCHMARKS.md, "Attention patterns".
        // burn's op has no sinks; the crate's kernels (chunked on ndarray and wgpu) do.
        if pattern_kernels(&device, q.dtype()) || pattern.sinks().is_some() {
            return pattern_attention(q, k, v, mask, bias, scale, pattern);
        }
        let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
        let l_k = k.dims()[2];
        let shape = [batch, heads, l_q, l_k];
        let (pattern_mask, pattern_bias) = pattern.tensors(shape, &device);
        let bias = match (bias, pattern_bias) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        let bias = bias.map(|b| b.expand(shape));
        // Full shape too: wgpu's fused kernel in burn 0.22.1 misreads a mask broadcast over the
        // queries (a `[batch, 1, 1, l_k]` padding mask gave outputs off by ~0.08; tested).
        let mask = mask_union(mask, pattern_mask).map(|m| m.expand(shape));
        let options = AttentionModuleOptions {
            // `None` lets CubeCL backends pick their flash kernels; they only take the default scale.
            scale: self.temperature.map(|t| 1.0 / t),
            softcap: pattern.softcap(),
            is_causal: false,
        };
        attention(q, k, v, mask, bias, options)
    }

    /// The divisor applied to the scores for keys of width `d_k`.
    pub fn temperature_for(&self, d_k: usize) -> f64 {
        self.temperature.unwrap_or((d_k as f64).sqrt())
    }
}

/// The weights of scaled `scores` `[batch, heads, l_q, l_k]` under `pattern`, in burn's order:
/// its soft-cap, then `bias` and the pattern's bias, then `mask` and the pattern's mask
/// ([`masked_softmax`]). The weights path and the fused op's decomposition both take it.
pub(crate) fn pattern_softmax(
    scores: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
    pattern: &AttentionPattern,
) -> Tensor<4> {
    let (pattern_mask, pattern_bias) = pattern.tensors(scores.dims(), &scores.device());
    let mut scores = scores;
    if let Some(cap) = pattern.softcap() {
        scores = scores.div_scalar(cap).tanh().mul_scalar(cap);
    }
    for bias in [bias, pattern_bias].into_iter().flatten() {
        scores = scores + bias;
    }
    let mask = mask_union(mask, pattern_mask);
    match pattern.sinks() {
        Some(sinks) => sink_softmax(scores, mask, sinks.clone()),
        None => masked_softmax(scores, mask),
    }
}

/// [`masked_softmax`] with a sink logit per head, `sinks` `[heads]`, in every row's sum: HF's
/// gpt-oss concatenates the sink as a last column and drops it after the softmax; here its
/// `exp` joins the row sum directly, the same weights without the copy.
fn sink_softmax(scores: Tensor<4>, mask: Option<Tensor<4, Bool>>, sinks: Tensor<1>) -> Tensor<4> {
    let [batch, heads, l_q, _] = scores.dims();
    let info = scores.dtype().finfo().expect("attention scores are floats");
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask, f64::NEG_INFINITY),
        None => scores,
    };
    let sinks = sinks
        .reshape([1, heads, 1, 1])
        .expand([batch, heads, l_q, 1]);
    // The shift includes the sink (detached: it cancels out of the gradient), so a row whose
    // keys are all masked gives the sink all of its weight and its keys 0.
    let max = scores
        .clone()
        .detach()
        .max_dim(3)
        .max_pair(sinks.clone().detach())
        .clamp_min(info.min);
    let numerator = (scores - max.clone()).exp();
    let sum = numerator.clone().sum_dim(3) + (sinks - max).exp();
    numerator / sum
}

/// Softmax over the last dimension that gives masked entries exactly 0 and rows whose entries
/// are all masked all zeros.
///
/// The reference PyTorch code fills with `-inf`, which makes a fully masked row `0/0 = NaN`.
/// Here the row maximum is clamped to the lowest finite value and the row sum to the smallest
/// positive one, so such a row is `0 / tiny = 0` (burn's fused fallback does the same). `-inf`
/// rather than a large finite fill matters for speed: `exp` of a finite value below about
/// -104 takes libm's slow underflow path, and on CPU most entries of a padded batch are masked.
/// The gradient of a fully masked row is zeroed by the mask fill's own backward.
pub(crate) fn masked_softmax(scores: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let Some(mask) = mask else {
        return softmax(scores, 3);
    };
    let info = scores.dtype().finfo().expect("attention scores are floats");
    let scores = scores.mask_fill(mask, f64::NEG_INFINITY);
    // Detached like burn's `softmax`: the shift cancels out of the gradient.
    let max = scores.clone().detach().max_dim(3).clamp_min(info.min);
    let numerator = (scores - max).exp();
    let sum = numerator.clone().sum_dim(3).clamp_min(info.min_positive);
    numerator / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn equal_scores_average_the_values() {
        let device = device();
        let sdpa = ScaledDotProductAttentionConfig::new().init();
        let q = Tensor::<4>::zeros([1, 1, 2, 3], &device);
        let k = Tensor::<4>::ones([1, 1, 4, 3], &device);
        let v = Tensor::<4>::from_data([[[[1.0], [2.0], [3.0], [6.0]]]], &device);
        let out = sdpa.forward(q, k, v, None);
        out.weights.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[[[0.25f32; 4]; 2]]]),
            Tolerance::default(),
        );
        out.context.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[[[3.0f32], [3.0]]]]),
            Tolerance::default(),
        );
    }

    #[test]
    fn known_scores_give_known_weights() {
        // d_k = 4, so temperature 2: scores [0, 2] / 2 → softmax([0, 1]).
        let device = device();
        let sdpa = ScaledDotProductAttentionConfig::new().init();
        let q = Tensor::<4>::from_data([[[[1.0, 1.0, 0.0, 0.0]]]], &device);
        let k = Tensor::<4>::from_data([[[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]]], &device);
        let v = Tensor::<4>::from_data([[[[0.0], [1.0]]]], &device);
        let out = sdpa.forward(q, k, v, None);
        let e = std::f32::consts::E;
        let expected = [1.0 / (1.0 + e), e / (1.0 + e)];
        out.weights
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[[expected]]]), Tolerance::default());
    }

    #[test]
    fn explicit_temperature_is_used() {
        let sdpa = ScaledDotProductAttentionConfig::new()
            .with_temperature(Some(0.5))
            .init();
        assert_eq!(sdpa.temperature_for(64), 0.5);
        let default = ScaledDotProductAttentionConfig::new().init();
        assert_eq!(default.temperature_for(64), 8.0);
    }

    #[test]
    fn masked_keys_get_zero_and_fully_masked_rows_are_zero() {
        let device = device();
        let sdpa = ScaledDotProductAttentionConfig::new().init();
        let q = Tensor::<4>::random([1, 1, 2, 4], burn::tensor::Distribution::Default, &device);
        let k = Tensor::<4>::random([1, 1, 3, 4], burn::tensor::Distribution::Default, &device);
        let v = Tensor::<4>::ones([1, 1, 3, 2], &device);
        // Row 0 masks key 1; row 1 masks everything.
        let mask =
            Tensor::<4, Bool>::from_data([[[[false, true, false], [true, true, true]]]], &device);
        let out = sdpa.forward(q, k, v, Some(mask));
        let w = out.weights.into_data().try_into_vec_as::<f32>().unwrap();
        assert_eq!(w[1], 0.0);
        assert!((w[0] + w[2] - 1.0).abs() < 1e-6);
        assert_eq!(&w[3..], &[0.0, 0.0, 0.0]);
        let c = out.context.into_data().try_into_vec_as::<f32>().unwrap();
        assert!((c[0] - 1.0).abs() < 1e-6 && (c[1] - 1.0).abs() < 1e-6);
        assert_eq!(&c[2..], &[0.0, 0.0]);
    }

    /// While training, `forward_context` drops weights (inside the fused op on flex); a frozen
    /// module drops none, as burn's `Dropout`.
    #[test]
    fn a_frozen_module_drops_no_weights() {
        let device = Device::flex().autodiff();
        let sdpa = ScaledDotProductAttentionConfig::new()
            .with_dropout(0.5)
            .init();
        let qkv = || Tensor::<4>::random([2, 2, 6, 4], Distribution::Default, &device);
        let (q, k, v) = (qkv(), qkv(), qkv());
        let inference = sdpa
            .forward_context(
                q.clone().inner(),
                k.clone().inner(),
                v.clone().inner(),
                None,
            )
            .into_data();
        let training = sdpa.forward_context(q.clone(), k.clone(), v.clone(), None);
        assert_ne!(training.inner().into_data(), inference);
        let frozen = burn::module::Module::freeze(sdpa).forward_context(q, k, v, None);
        frozen
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&inference, Tolerance::absolute(1e-5));
    }

    #[test]
    fn invalid_config_is_reported() {
        let err = ScaledDotProductAttentionConfig::new()
            .with_dropout(1.0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("dropout"), "{err}");
        let err = ScaledDotProductAttentionConfig::new()
            .with_temperature(Some(0.0))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("temperature"), "{err}");
    }
}
