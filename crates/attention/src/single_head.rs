//! Single-head self-attention: the seed experiment's baseline.

use burn::{nn::Initializer, prelude::*};

use crate::{AttentionError, AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig};

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
    /// The one-head [`MultiHeadAttentionConfig`] this is.
    pub fn multi_head(&self) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig::new(self.d_model, 1)
            .with_d_k(Some(self.d_k.unwrap_or(self.d_model)))
            .with_d_v(Some(self.d_v.unwrap_or(self.d_model)))
            .with_dropout(self.dropout)
            .with_bias(self.bias)
            .with_temperature(self.temperature)
            .with_initializer(self.initializer.clone())
    }

    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        self.multi_head().validate()
    }

    /// Builds the module on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> SingleHeadSelfAttention {
        if let Err(err) = self.validate() {
            panic!("SingleHeadSelfAttentionConfig: {err}");
        }
        SingleHeadSelfAttention {
            attention: self.multi_head().init(device),
        }
    }
}

/// One attention head over the whole model width, followed by an output projection: a
/// [`MultiHeadAttention`] with one head, whose weights come back without the head axis.
///
/// With `d_k = d_v = d_model` it has exactly as many parameters as a
/// [`MultiHeadAttention`] of the same `d_model` with derived head widths, which makes the two
/// directly comparable.
///
/// ```
/// use attention::{AttentionInput, SingleHeadSelfAttentionConfig};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let head = SingleHeadSelfAttentionConfig::new(8).with_d_k(Some(4)).init(&device);
/// let out = head.forward(AttentionInput::self_attention(Tensor::<3>::ones([2, 5, 8], &device)));
/// assert_eq!(out.context.dims(), [2, 5, 8]);
/// assert_eq!(out.weights.dims(), [2, 5, 5]);
/// ```
#[derive(Module, Debug)]
pub struct SingleHeadSelfAttention {
    /// The attention, with one head (its projections are `attention.w_q`, …).
    pub attention: MultiHeadAttention,
}

/// What [`SingleHeadSelfAttention::forward`] returns.
#[derive(Debug, Clone)]
pub struct SingleHeadOutput {
    /// `[batch, l_q, d_model]`
    pub context: Tensor<3>,
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
        let out = self.attention.forward(input);
        SingleHeadOutput {
            context: out.context,
            weights: out.weights.squeeze_dim::<3>(1),
        }
    }

    /// [`forward`](Self::forward) after checking every shape.
    pub fn try_forward(&self, input: AttentionInput) -> Result<SingleHeadOutput, AttentionError> {
        input.check(self.attention.d_model)?;
        Ok(self.forward(input))
    }

    /// The output alone: burn's fused attention kernel for inference, [`forward`](Self::forward)
    /// without returning the weights while training.
    pub fn forward_context(&self, input: AttentionInput) -> Tensor<3> {
        self.attention.forward_context(input)
    }

    /// [`forward_context`](Self::forward_context), under its former name.
    #[deprecated(
        since = "0.2.0",
        note = "renamed `forward_context`, as burn names the output"
    )]
    pub fn forward_without_weights(&self, input: AttentionInput) -> Tensor<3> {
        self.forward_context(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn it_is_the_one_head_multi_head_config_with_every_option_kept() {
        let config = SingleHeadSelfAttentionConfig::new(12)
            .with_d_v(Some(5))
            .with_dropout(0.25)
            .with_bias(true)
            .with_temperature(Some(2.0))
            .multi_head();
        assert_eq!((config.d_model, config.n_heads), (12, 1));
        assert_eq!((config.d_k, config.d_v), (Some(12), Some(5)));
        assert_eq!((config.dropout, config.bias), (0.25, true));
        assert_eq!(config.temperature, Some(2.0));
        let head = SingleHeadSelfAttentionConfig::new(12)
            .with_d_v(Some(5))
            .init(&Device::flex());
        assert_eq!((head.attention.d_k, head.attention.d_v), (12, 5));
    }
}
