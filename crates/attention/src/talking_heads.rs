//! Talking-heads attention (Shazeer et al., 2020): the heads' score maps are mixed by a learned
//! `[heads, heads]` matrix before the softmax, and their weight maps by another after it, so a
//! head's attention can draw on every head's.
//!
//! The order is x-transformers' (`Attend`: `pre_softmax_talking_heads`, then the bias, the mask,
//! the softmax, `post_softmax_talking_heads`, dropout): scaled scores mixed; plus the positions'
//! bias (ALiBi, T5: each head keeps its own); masked; softmax; mixed; dropout; times the values.
//! Mixing across heads after the softmax needs the whole `[batch, heads, l_q, l_k]` weights, so
//! this is the decomposition (no fused op): memory grows with `l²`. x-transformers keeps each
//! mixing as a `Conv2d` weight `[out, in, 1, 1]`, the transpose of ours (and its newer versions
//! add the identity: `sim + conv(sim)`); convert its checkpoints accordingly.

use burn::{module::Param, prelude::*};

use crate::{
    AttentionError, AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig, MultiHeadOutput,
    scaled_dot_product::masked_softmax,
};

/// Configuration of [`TalkingHeadsAttention`].
#[derive(Config, Debug)]
pub struct TalkingHeadsAttentionConfig {
    /// The projections, heads, positions and attention dropout (on the mixed weights) of the
    /// underlying attention; without a window, soft-cap or sinks: they are patterns of the
    /// fused op, which this does not take (also when set on the module after `init`: ignored).
    pub attention: MultiHeadAttentionConfig,
}

impl TalkingHeadsAttentionConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        self.attention.validate()?;
        for (field, set) in [
            ("window", self.attention.window.is_some()),
            ("softcap", self.attention.softcap.is_some()),
            ("sinks", self.attention.sinks),
        ] {
            if set {
                return Err(AttentionError::config(
                    field,
                    "talking heads mix whole weight maps; this option is for the fused op",
                ));
            }
        }
        Ok(())
    }

    /// Builds the module on `device`, both mixing matrices the identity (an untrained module
    /// is multi-head attention).
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> TalkingHeadsAttention {
        if let Err(err) = self.validate() {
            panic!("TalkingHeadsAttentionConfig: {err}");
        }
        let heads = self.attention.n_heads;
        let identity = || Param::from_tensor(Tensor::<2>::eye(heads, device));
        TalkingHeadsAttention {
            attention: self.attention.init(device),
            pre_softmax: identity(),
            post_softmax: identity(),
        }
    }
}

/// Talking-heads attention: see the [module documentation](self).
///
/// ```
/// use attention::{AttentionInput, MultiHeadAttentionConfig, TalkingHeadsAttentionConfig};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let talking = TalkingHeadsAttentionConfig::new(MultiHeadAttentionConfig::new(16, 4)).init(&device);
/// let x = Tensor::<3>::ones([2, 5, 16], &device);
/// let out = talking.forward(AttentionInput::self_attention(x));
/// assert_eq!(out.context.dims(), [2, 5, 16]);
/// assert_eq!(out.weights.dims(), [2, 4, 5, 5]); // after the second mixing
/// ```
#[derive(Module, Debug)]
pub struct TalkingHeadsAttention {
    /// Projections, heads and positions.
    pub attention: MultiHeadAttention,
    /// `[heads, heads]`: head `k`'s scores are `Σ_h pre_softmax[h, k] · scores_h`.
    pub pre_softmax: Param<Tensor<2>>,
    /// `[heads, heads]`: head `k`'s weights are `Σ_h post_softmax[h, k] · softmax_h`.
    pub post_softmax: Param<Tensor<2>>,
}

impl TalkingHeadsAttention {
    /// # Shapes
    /// - input: as [`MultiHeadAttention::forward`]
    /// - context `[batch, l_q, d_model]`, weights (after the second mixing)
    ///   `[batch, heads, l_q, l_k]`
    pub fn forward(&self, input: AttentionInput) -> MultiHeadOutput {
        let mha = &self.attention;
        let [batch, l_q, _] = input.query.dims();
        let mask = input.scores_mask();
        let gates = input.head_gates.clone();
        let (q, k, v, bias) = mha.project(input);
        let (k, v) = (mha.repeat_kv(k), mha.repeat_kv(v));
        let temperature = mha.attention.temperature_for(mha.d_k);
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar(temperature);
        let mut scores = mix_heads(scores, self.pre_softmax.val());
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let weights = mix_heads(masked_softmax(scores, mask), self.post_softmax.val());
        let weights = mha.attention.dropout.forward(weights);
        let context = weights.clone().matmul(v);
        MultiHeadOutput {
            context: mha.merge_heads(context, gates, batch, l_q),
            weights,
        }
    }
}

/// `out[b, k, i, j] = Σ_h x[b, h, i, j] · mix[h, k]`.
///
/// # Shapes
/// x `[batch, heads, l_q, l_k]`, mix `[heads, heads]` → `[batch, heads, l_q, l_k]`
fn mix_heads(x: Tensor<4>, mix: Tensor<2>) -> Tensor<4> {
    let [batch, heads, l_q, l_k] = x.dims();
    let rows = x.permute([0, 2, 3, 1]).reshape([batch * l_q * l_k, heads]);
    rows.matmul(mix)
        .reshape([batch, l_q, l_k, heads])
        .permute([0, 3, 1, 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Identity mixing is multi-head attention; a permutation of the heads permutes them.
    #[test]
    fn identity_mixing_is_multi_head_attention_and_permutations_permute() {
        let device = Device::flex();
        let config = TalkingHeadsAttentionConfig::new(MultiHeadAttentionConfig::new(8, 2));
        let mut talking = config.init(&device);
        let x = Tensor::<3>::random([2, 4, 8], Distribution::Default, &device);
        let input = || AttentionInput::self_attention(x.clone());
        let plain = talking.attention.forward(input());
        let ours = talking.forward(input());
        let gap: f32 = (plain.weights.clone() - ours.weights)
            .abs()
            .max()
            .into_scalar();
        assert!(gap < 1e-6, "{gap}");
        // Swap the heads after the softmax: head 0's weights become head 1's.
        let swap = Tensor::<2>::from_data([[0.0, 1.0], [1.0, 0.0]], &device);
        talking.post_softmax = Param::from_tensor(swap);
        let swapped = talking.forward(input()).weights;
        let gap: f32 = (swapped.narrow(1, 0, 1) - plain.weights.narrow(1, 1, 1))
            .abs()
            .max()
            .into_scalar();
        assert!(gap < 1e-6, "{gap}");
        let windowed = TalkingHeadsAttentionConfig::new(
            MultiHeadAttentionConfig::new(8, 2).with_window(Some(2)),
        );
        assert!(windowed.validate().is_err());
    }

    /// The positions' bias is added after the first mixing: each head keeps its own ALiBi slope
    /// (x-transformers' order), whatever the mixing.
    #[test]
    fn the_bias_is_added_after_the_first_mixing() {
        let device = Device::flex();
        let config = TalkingHeadsAttentionConfig::new(
            MultiHeadAttentionConfig::new(8, 2).with_positions(crate::AttentionPositions::Alibi),
        );
        let mut talking = config.init(&device);
        let swap = Tensor::<2>::from_data([[0.0, 1.0], [1.0, 0.0]], &device);
        talking.pre_softmax = Param::from_tensor(swap);
        let x = Tensor::<3>::random([1, 5, 8], Distribution::Default, &device);
        let weights = talking
            .forward(AttentionInput::self_attention(x.clone()))
            .weights;
        let mha = &talking.attention;
        let (q, k, _, bias) = mha.project(AttentionInput::self_attention(x));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((mha.d_k as f64).sqrt());
        // Head 0 takes head 1's scores and its own bias.
        let head0 = scores.narrow(1, 1, 1) + bias.unwrap().narrow(1, 0, 1);
        let expected = burn::tensor::activation::softmax(head0, 3);
        let gap: f32 = (weights.narrow(1, 0, 1) - expected)
            .abs()
            .max()
            .into_scalar();
        assert!(gap < 1e-6, "{gap}");
    }
}
