//! A transformer encoder layer and a stack of them, returning every layer's per-head weights
//! (burn's `TransformerEncoder` returns none).

use burn::{
    nn::{Dropout, DropoutConfig, Gelu, Linear, LinearConfig},
    prelude::*,
};

use crate::{
    AttentionError, AttentionInput, AttentionPositions, LayerNorm, LayerNormConfig,
    MultiHeadAttention, MultiHeadAttentionConfig, QkNorm, fused,
};

/// Configuration of [`EncoderLayer`].
#[derive(Config, Debug)]
pub struct EncoderLayerConfig {
    /// Width of the inputs and outputs.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads for grouped-query attention. Default: `None`, one per head.
    pub n_kv_heads: Option<usize>,
    /// Hidden width of the feed-forward block. Default: `None`, meaning `4 · d_model`.
    pub d_ff: Option<usize>,
    /// Whether the layer has a feed-forward block; without it the layer is attention, residual
    /// and LayerNorm alone (the seed experiment's classifier). Default: `true`.
    #[config(default = true)]
    pub feed_forward: bool,
    /// Pre-LN (`x + f(norm(x))`, GPT-2 and most models since) or post-LN
    /// (`norm(x + f(x))`, the original transformer). Default: `true`, pre-LN.
    #[config(default = true)]
    pub norm_first: bool,
    /// Dropout on each sub-block's output before the residual sum. Default: `0.1`.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Dropout on the feed-forward block's hidden activations (after GELU). Default: `None`,
    /// the same as `dropout`, as PyTorch's `TransformerEncoderLayer`; BERT has none (`0.0`).
    pub activation_dropout: Option<f64>,
    /// Dropout on the attention weights. Default: `0.0`.
    #[config(default = 0.0)]
    pub attention_dropout: f64,
    /// Positions inside attention. Default: none.
    #[config(default = "AttentionPositions::None")]
    pub positions: AttentionPositions,
    /// Whether the attention projections have biases (the feed-forward block always has).
    /// Default: `false`, as the reference code; BERT has them.
    #[config(default = false)]
    pub bias: bool,
    /// The LayerNorms' ε. Default: `1e-5`, as burn and PyTorch; BERT uses `1e-12`.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Local attention: keys within this many positions of the query
    /// ([`MultiHeadAttentionConfig::window`]). Default: `None`, every key.
    pub window: Option<usize>,
    /// Soft-cap of the attention scores ([`MultiHeadAttentionConfig::softcap`]). Default: `None`.
    pub softcap: Option<f64>,
    /// qk-norm ([`MultiHeadAttentionConfig::qk_norm`]). Default: `None`.
    pub qk_norm: Option<QkNorm>,
    /// Learned attention sinks ([`MultiHeadAttentionConfig::sinks`]). Default: `false`.
    #[config(default = false)]
    pub sinks: bool,
}

impl EncoderLayerConfig {
    fn attention_config(&self) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig::new(self.d_model, self.n_heads)
            .with_n_kv_heads(self.n_kv_heads)
            .with_dropout(self.attention_dropout)
            .with_positions(self.positions.clone())
            .with_bias(self.bias)
            .with_window(self.window)
            .with_softcap(self.softcap)
            .with_qk_norm(self.qk_norm.clone())
            .with_sinks(self.sinks)
    }

    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        self.attention_config().validate()?;
        if self.d_ff == Some(0) {
            return Err(AttentionError::config("d_ff", "must be at least 1"));
        }
        for (field, p) in [
            ("dropout", Some(self.dropout)),
            ("activation_dropout", self.activation_dropout),
        ] {
            if let Some(p) = p.filter(|p| !(p.is_finite() && (0.0..1.0).contains(p))) {
                return Err(AttentionError::config(
                    field,
                    format!("must be in [0, 1), got {p}"),
                ));
            }
        }
        Ok(())
    }

    fn norm_config(&self) -> LayerNormConfig {
        LayerNormConfig::new(self.d_model).with_epsilon(self.layer_norm_eps)
    }

    /// Builds the layer on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> EncoderLayer {
        if let Err(err) = self.validate() {
            panic!("EncoderLayerConfig: {err}");
        }
        let d_ff = self.d_ff.unwrap_or(4 * self.d_model);
        EncoderLayer {
            attention: self.attention_config().init(device),
            norm_1: self.norm_config().init(device),
            feed_forward: self.feed_forward.then(|| FeedForward {
                linear_in: LinearConfig::new(self.d_model, d_ff).init(device),
                linear_out: LinearConfig::new(d_ff, self.d_model).init(device),
                norm: self.norm_config().init(device),
                activation: Gelu::new(),
            }),
            dropout: DropoutConfig::new(self.dropout).init(),
            activation_dropout: DropoutConfig::new(self.activation_dropout.unwrap_or(self.dropout))
                .init(),
            norm_first: self.norm_first,
        }
    }
}

/// The feed-forward sub-block: `linear_out(dropout(gelu(linear_in(x))))`, with its norm; GELU
/// and dropout through [`fused::gelu`] and [`fused::dropout_layer`] (one op each with its own
/// backward on flex).
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff`.
    pub linear_in: Linear,
    /// `d_ff → d_model`.
    pub linear_out: Linear,
    /// The sub-block's LayerNorm.
    pub norm: LayerNorm,
    /// GELU (the forward calls [`fused::gelu`], the same function).
    pub activation: Gelu,
}

/// One encoder layer: self-attention and (optionally) a feed-forward block, each with a
/// residual connection and a LayerNorm, pre-LN or post-LN.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Self-attention.
    pub attention: MultiHeadAttention,
    /// The attention sub-block's LayerNorm.
    pub norm_1: LayerNorm,
    /// The feed-forward sub-block, if any.
    pub feed_forward: Option<FeedForward>,
    /// Dropout on sub-block outputs.
    pub dropout: Dropout,
    /// Dropout on the feed-forward block's hidden activations.
    pub activation_dropout: Dropout,
    /// Pre-LN when `true`, post-LN when `false`.
    pub norm_first: bool,
}

/// The input of an [`EncoderLayer`] or [`Encoder`]: a sequence and its masks.
#[derive(Debug, Clone)]
pub struct EncoderInput {
    /// `[batch, len, d_model]`
    pub x: Tensor<3>,
    /// `[batch, len]`, `true` = padding.
    pub mask_padding: Option<Tensor<2, Bool>>,
    /// `[batch, len, len]`, `true` = masked (e.g. [`causal_mask`](crate::mask::causal_mask)).
    pub mask_attention: Option<Tensor<3, Bool>>,
    /// `[n_heads]`: each head's context scaled by its gate (0 prunes the head), as
    /// [`AttentionInput::head_gates`].
    pub head_gates: Option<Tensor<1>>,
}

impl EncoderInput {
    /// A sequence without masks.
    pub fn new(x: Tensor<3>) -> Self {
        Self {
            x,
            mask_padding: None,
            mask_attention: None,
            head_gates: None,
        }
    }

    /// Masks padding keys, `[batch, len]`, `true` = padding.
    pub fn mask_padding(mut self, mask: Tensor<2, Bool>) -> Self {
        self.mask_padding = Some(mask);
        self
    }

    /// Masks (query, key) pairs, `[batch, len, len]`, `true` = masked.
    pub fn mask_attention(mut self, mask: Tensor<3, Bool>) -> Self {
        self.mask_attention = Some(mask);
        self
    }

    fn attention(&self, x: Tensor<3>) -> AttentionInput {
        let mut input = AttentionInput::self_attention(x);
        input.mask_padding = self.mask_padding.clone();
        input.mask_attention = self.mask_attention.clone();
        input.head_gates = self.head_gates.clone();
        input
    }
}

impl EncoderLayer {
    /// The layer's output and, when `with_weights`, its attention weights.
    ///
    /// # Shapes
    /// - input `[batch, len, d_model]`, masks as [`EncoderInput`]
    /// - output `[batch, len, d_model]`, weights `[batch, n_heads, len, len]`
    pub fn forward(
        &self,
        input: &EncoderInput,
        with_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let x = input.x.clone();
        let attend = |h: Tensor<3>| {
            let attention_input = input.attention(h);
            if with_weights {
                let out = self.attention.forward(attention_input);
                (out.context, Some(out.weights))
            } else {
                (self.attention.forward_context(attention_input), None)
            }
        };
        let (x, weights) = if self.norm_first {
            let (context, weights) = attend(self.norm_1.forward(x.clone()));
            (x + fused::dropout_layer(&self.dropout, context), weights)
        } else {
            let (context, weights) = attend(x.clone());
            (
                self.norm_1
                    .forward(x + fused::dropout_layer(&self.dropout, context)),
                weights,
            )
        };
        let Some(ff) = &self.feed_forward else {
            return (x, weights);
        };
        let block = |h: Tensor<3>| {
            let hidden = fused::dropout_layer(
                &self.activation_dropout,
                fused::gelu(ff.linear_in.forward(h)),
            );
            fused::dropout_layer(&self.dropout, ff.linear_out.forward(hidden))
        };
        let x = if self.norm_first {
            x.clone() + block(ff.norm.forward(x))
        } else {
            ff.norm.forward(x.clone() + block(x))
        };
        (x, weights)
    }
}

/// Configuration of [`Encoder`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Every layer's configuration.
    pub layer: EncoderLayerConfig,
    /// Number of layers.
    pub n_layers: usize,
    /// A LayerNorm after the last layer. Default: `None`, meaning yes for pre-LN layers (whose
    /// outputs are not normalised) and no for post-LN ones.
    pub final_norm: Option<bool>,
}

impl EncoderConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        if self.n_layers == 0 {
            return Err(AttentionError::config("n_layers", "must be at least 1"));
        }
        self.layer.validate()
    }

    /// Builds the stack on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> Encoder {
        if let Err(err) = self.validate() {
            panic!("EncoderConfig: {err}");
        }
        let final_norm = self.final_norm.unwrap_or(self.layer.norm_first);
        Encoder {
            layers: (0..self.n_layers)
                .map(|_| self.layer.init(device))
                .collect(),
            norm: final_norm.then(|| self.layer.norm_config().init(device)),
        }
    }
}

/// A stack of [`EncoderLayer`]s, usable as a field of any burn model.
///
/// ```
/// use attention::{EncoderConfig, EncoderInput, EncoderLayerConfig, mask};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let encoder = EncoderConfig::new(EncoderLayerConfig::new(16, 4), 2).init(&device);
/// let x = Tensor::<3>::ones([2, 5, 16], &device);
/// let padding = mask::padding_mask_from_lengths(&[5, 3], 5, &device);
/// let out = encoder.forward(EncoderInput::new(x).mask_padding(padding));
/// assert_eq!(out.hidden.dims(), [2, 5, 16]);
/// assert_eq!(out.weights.len(), 2); // one [batch, heads, len, len] per layer
/// assert_eq!(out.weights[1].dims(), [2, 4, 5, 5]);
/// ```
#[derive(Module, Debug)]
pub struct Encoder {
    /// The layers, first to last.
    pub layers: Vec<EncoderLayer>,
    /// The final LayerNorm, if any.
    pub norm: Option<LayerNorm>,
}

/// What [`Encoder::forward`] returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[batch, len, d_model]`
    pub hidden: Tensor<3>,
    /// Each layer's attention weights, `[batch, n_heads, len, len]`.
    pub weights: Vec<Tensor<4>>,
}

impl Encoder {
    /// The stack's output and every layer's attention weights.
    ///
    /// # Shapes
    /// input `[batch, len, d_model]` → hidden `[batch, len, d_model]`, weights `n_layers ×
    /// [batch, n_heads, len, len]`
    pub fn forward(&self, input: EncoderInput) -> EncoderOutput {
        let (hidden, weights) = self.run(input, true);
        EncoderOutput { hidden, weights }
    }

    /// The output alone, `[batch, len, d_model]`, through the fused attention kernel at
    /// inference (see [`MultiHeadAttention::forward_context`]).
    pub fn forward_context(&self, input: EncoderInput) -> Tensor<3> {
        self.run(input, false).0
    }

    fn run(&self, mut input: EncoderInput, with_weights: bool) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut weights = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (x, w) = layer.forward(&input, with_weights);
            input.x = x;
            weights.extend(w);
        }
        let hidden = match &self.norm {
            Some(norm) => norm.forward(input.x),
            None => input.x,
        };
        (hidden, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    /// Only the feed-forward's hidden dropout is on (outputs and attention dropout 0): a
    /// training pass differs from inference with it, equals inference without it (BERT's
    /// setting) and when the layer is frozen.
    #[test]
    fn activation_dropout_drops_the_hidden_activations_alone() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([2, 5, 8], Distribution::Default, &device);
        let run = |activation_dropout, frozen: bool| {
            let layer = EncoderLayerConfig::new(8, 2)
                .with_dropout(0.0)
                .with_activation_dropout(activation_dropout)
                .init(&device);
            assert_eq!(
                layer.activation_dropout.prob,
                activation_dropout.unwrap_or(0.0)
            );
            // Inference first: `freeze` consumes the layer.
            let (want, _) = layer
                .valid()
                .forward(&EncoderInput::new(x.clone().inner()), false);
            let layer = if frozen { layer.freeze() } else { layer };
            let (got, _) = layer.forward(&EncoderInput::new(x.clone()), false);
            (values(got.inner()), values(want))
        };
        let (got, want) = run(Some(0.5), false);
        assert_ne!(got, want);
        for (activation_dropout, frozen) in [(Some(0.0), false), (None, false), (Some(0.5), true)] {
            let (got, want) = run(activation_dropout, frozen);
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{activation_dropout:?} {frozen}: {diff}");
        }
        assert!(
            EncoderLayerConfig::new(8, 2)
                .with_activation_dropout(Some(1.0))
                .validate()
                .unwrap_err()
                .to_string()
                .contains("activation_dropout")
        );
    }

    #[test]
    fn an_attention_only_post_ln_layer_is_attention_residual_and_norm() {
        let device = Device::flex();
        let layer = EncoderLayerConfig::new(8, 2)
            .with_feed_forward(false)
            .with_norm_first(false)
            .init(&device);
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Default, &device);
        let (out, _) = layer.forward(&EncoderInput::new(x.clone()), false);
        let context = layer
            .attention
            .forward(AttentionInput::self_attention(x.clone()))
            .context;
        let expected = layer.norm_1.forward(x + context);
        let diff = values(out)
            .iter()
            .zip(values(expected))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn the_stack_with_and_without_weights_agree_and_padding_does_not_leak() {
        let device = Device::flex();
        for norm_first in [true, false] {
            let encoder =
                EncoderConfig::new(EncoderLayerConfig::new(8, 2).with_norm_first(norm_first), 3)
                    .init(&device);
            let x = Tensor::<3>::random([1, 4, 8], Distribution::Default, &device);
            let padding = Tensor::<2, Bool>::from_data([[false, false, true, true]], &device);
            let input = EncoderInput::new(x.clone()).mask_padding(padding);
            let full = encoder.forward(input.clone());
            assert_eq!(full.weights.len(), 3);
            let fused = encoder.forward_context(input);
            let a = values(full.hidden.clone());
            let diff = a
                .iter()
                .zip(values(fused))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "fused differs by {diff}");
            // The real tokens' outputs do not depend on what the padding holds.
            let other = Tensor::cat(vec![x.narrow(1, 0, 2), Tensor::ones([1, 2, 8], &device)], 1);
            let padding = Tensor::<2, Bool>::from_data([[false, false, true, true]], &device);
            let again = encoder.forward(EncoderInput::new(other).mask_padding(padding));
            let b = values(again.hidden.narrow(1, 0, 2));
            let diff = a[..16]
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "padding leaked by {diff}");
        }
    }

    #[test]
    fn zero_layers_are_an_error() {
        let err = EncoderConfig::new(EncoderLayerConfig::new(8, 2), 0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("n_layers"), "{err}");
    }
}
