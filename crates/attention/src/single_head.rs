//! Single-head self-attention: the seed experiment's baseline.

use burn::{
    nn::{Initializer, Linear, LinearConfig},
    prelude::*,
};

use crate::{
    AttentionError, AttentionInput, ScaledDotProductAttention, ScaledDotProductAttentionConfig,
};

/// Configuration of [`SingleHeadSelfAttention`].
#[derive(Config, Debug)]
pub struct SingleHeadSelfAttentionConfig {
    /// Width of the inputs and of the output.
    pub d_model: usize,
    /// Query and key width. Default: `None`, meaning `d_model`.
    pub d_k: Option<usize>,
    /// Value width. Default: `None`, meaning `d_model`.
    pub d_v: Option<usize>,
    /// Dropout probability on the attention weights. Default: `0.0`.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Whether the four projections have a bias. Default: `false`.
    #[config(default = false)]
    pub bias: bool,
    /// Score divisor. Default: `None`, meaning `sqrt(d_k)`.
    pub temperature: Option<f64>,
    /// Initializer of the projection weights. Default: `U(±1/sqrt(d_in))` (burn's and PyTorch's
    /// `Linear` default).
    #[config(
        default = "Initializer::KaimingUniform{gain: 0.577_350_269_189_625_8, fan_out_only: false}"
    )]
    pub initializer: Initializer,
}

impl SingleHeadSelfAttentionConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        if self.d_model == 0 {
            return Err(AttentionError::config("d_model", "must be at least 1"));
        }
        if self.d_k == Some(0) || self.d_v == Some(0) {
            return Err(AttentionError::config("d_k/d_v", "must be at least 1"));
        }
        self.attention_config().validate()
    }

    fn attention_config(&self) -> ScaledDotProductAttentionConfig {
        ScaledDotProductAttentionConfig::new()
            .with_temperature(self.temperature)
            .with_dropout(self.dropout)
    }

    /// Builds the module on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> SingleHeadSelfAttention {
        if let Err(err) = self.validate() {
            panic!("SingleHeadSelfAttentionConfig: {err}");
        }
        let d_k = self.d_k.unwrap_or(self.d_model);
        let d_v = self.d_v.unwrap_or(self.d_model);
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .init(device)
        };
        SingleHeadSelfAttention {
            w_q: linear(self.d_model, d_k),
            w_k: linear(self.d_model, d_k),
            w_v: linear(self.d_model, d_v),
            w_o: linear(d_v, self.d_model),
            attention: self.attention_config().init(),
        }
    }
}

/// One attention head over the whole model width, followed by an output projection.
///
/// With `d_k = d_v = d_model` it has exactly as many parameters as a
/// [`MultiHeadAttention`](crate::MultiHeadAttention) of the same `d_model` with derived head
/// widths, which makes the two directly comparable.
///
/// ```
/// use attention::{AttentionInput, SingleHeadSelfAttentionConfig};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let head = SingleHeadSelfAttentionConfig::new(8).with_d_k(Some(4)).init(&device);
/// let out = head.forward(AttentionInput::self_attention(Tensor::<3>::ones([2, 5, 8], &device)));
/// assert_eq!(out.output.dims(), [2, 5, 8]);
/// assert_eq!(out.weights.dims(), [2, 5, 5]);
/// ```
#[derive(Module, Debug)]
pub struct SingleHeadSelfAttention {
    /// Query projection `d_model → d_k`.
    pub w_q: Linear,
    /// Key projection `d_model → d_k`.
    pub w_k: Linear,
    /// Value projection `d_model → d_v`.
    pub w_v: Linear,
    /// Output projection `d_v → d_model`.
    pub w_o: Linear,
    /// The attention itself.
    pub attention: ScaledDotProductAttention,
}

/// What [`SingleHeadSelfAttention::forward`] returns.
#[derive(Debug, Clone)]
pub struct SingleHeadOutput {
    /// `[batch, l_q, d_model]`
    pub output: Tensor<3>,
    /// `[batch, l_q, l_k]`; masked keys get exactly 0.
    pub weights: Tensor<3>,
}

impl SingleHeadSelfAttention {
    /// # Shapes
    /// - query `[batch, l_q, d_model]`, key and value `[batch, l_k, d_model]` (the same tensor
    ///   for self-attention)
    /// - masks: padding `[batch, l_k]`, attention `[batch, l_q, l_k]` (`true` = masked)
    /// - output `[batch, l_q, d_model]`, weights `[batch, l_q, l_k]`
    pub fn forward(&self, input: AttentionInput) -> SingleHeadOutput {
        let mask = input.scores_mask();
        // One head is a head axis of size 1 for the shared scaled dot-product code.
        let q = self.w_q.forward(input.query).unsqueeze_dim::<4>(1);
        let k = self.w_k.forward(input.key).unsqueeze_dim::<4>(1);
        let v = self.w_v.forward(input.value).unsqueeze_dim::<4>(1);
        let out = self.attention.forward(q, k, v, mask);
        SingleHeadOutput {
            output: self.w_o.forward(out.context.squeeze_dim::<3>(1)),
            weights: out.weights.squeeze_dim::<3>(1),
        }
    }

    /// [`forward`](Self::forward) after checking every shape.
    pub fn try_forward(&self, input: AttentionInput) -> Result<SingleHeadOutput, AttentionError> {
        input.check(self.w_q.weight.dims()[0])?;
        Ok(self.forward(input))
    }

    /// The output alone: burn's fused attention kernel for inference, [`forward`](Self::forward)
    /// without returning the weights while training.
    pub fn forward_without_weights(&self, input: AttentionInput) -> Tensor<3> {
        let mask = input.scores_mask();
        let q = self.w_q.forward(input.query).unsqueeze_dim::<4>(1);
        let k = self.w_k.forward(input.key).unsqueeze_dim::<4>(1);
        let v = self.w_v.forward(input.value).unsqueeze_dim::<4>(1);
        let context = self.attention.forward_context(q, k, v, mask);
        self.w_o.forward(context.squeeze_dim::<3>(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MultiHeadAttentionConfig;

    #[test]
    fn same_parameter_count_as_multi_head() {
        let device = Device::flex();
        let single = SingleHeadSelfAttentionConfig::new(64).init(&device);
        let multi = MultiHeadAttentionConfig::new(64, 4).init(&device);
        assert_eq!(single.num_params(), 4 * 64 * 64);
        assert_eq!(single.num_params(), multi.num_params());
    }

    #[test]
    fn zero_width_is_rejected() {
        let err = SingleHeadSelfAttentionConfig::new(8)
            .with_d_k(Some(0))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("d_k"), "{err}");
    }
}
