//! Differential attention (Ye et al., 2024, *Differential Transformer*; HF's `DiffLlama`): each
//! head pair subtracts one softmax map from another, `(softmax(q₁k₁ᵀ) − λ · softmax(q₂k₂ᵀ)) · v`,
//! which cancels the attention both maps give to irrelevant tokens.
//!
//! Laid out as HF transformers' `DiffLlamaAttention`, so that its checkpoints load as they are:
//! `n_heads` ordinary heads over `[v₁ | v₂]` (the two halves of the key/value heads, each
//! repeated over them), then head `h` minus `λ` times head `h + n_heads / 2`, an RMSNorm without
//! scale over each pair's `2 · d_v` features, `(1 − λ_init)`, and the output projection. One
//! call of the attention op serves both maps (a value twice as wide), so it trains through the
//! fused op and its kernels (position biases as tensors: the flex kernels' ALiBi/T5 score mods
//! are `MultiHeadAttention::forward_context`'s).
//!
//! DiffLlama uses RoPE. Other options of the underlying attention apply per map, not per pair:
//! ALiBi slopes, T5 tables and learned sinks are set up for `n_heads` heads, so the two maps
//! of a pair get their own. Attention dropout is refused, as HF does (the paper defines none
//! for the difference), and so are head gates. There is no cached decoding; calling
//! `attention.forward*` directly gives plain multi-head attention, not this.

use burn::{module::Param, nn::Initializer, prelude::*};

use crate::{AttentionError, AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig};

/// Configuration of [`DifferentialAttention`].
#[derive(Config, Debug)]
pub struct DifferentialAttentionConfig {
    /// The projections, heads, positions and options of the underlying attention (`n_heads`
    /// and the key/value heads even, `d_k = d_v`).
    pub attention: MultiHeadAttentionConfig,
    /// `λ_init`: the constant part of `λ` and the output scale `1 − λ_init`. Default: `0.2`,
    /// the paper's (and HF's) value for the first layer; [`lambda_init_for_layer`] gives the
    /// others.
    #[config(default = 0.2)]
    pub lambda_init: f64,
    /// Standard deviation of the normal initialisation of the four `λ` vectors. Default: `0.1`.
    #[config(default = 0.1)]
    pub lambda_std: f64,
    /// ε of the RMSNorm over each head pair. Default: `1e-6`, as HF's `rms_norm_eps`.
    #[config(default = 1e-6)]
    pub epsilon: f64,
}

/// The paper's `λ_init` for layer `layer` (0-based): `0.8 − 0.6 · exp(−0.3 · layer)`.
pub fn lambda_init_for_layer(layer: usize) -> f64 {
    0.8 - 0.6 * (-0.3 * layer as f64).exp()
}

impl DifferentialAttentionConfig {
    /// Checks the values without building anything.
    pub fn validate(&self) -> Result<(), AttentionError> {
        self.attention.validate()?;
        let (d_k, d_v) = self.attention.head_dims()?;
        let (heads, kv) = (self.attention.n_heads, self.attention.kv_heads());
        if !heads.is_multiple_of(2) || !kv.is_multiple_of(2) {
            return Err(AttentionError::config(
                if heads.is_multiple_of(2) {
                    "n_kv_heads"
                } else {
                    "n_heads"
                },
                format!(
                    "differential attention pairs heads and splits the key/value heads in two: both must be even, got {heads} and {kv}"
                ),
            ));
        }
        if d_k != d_v {
            return Err(AttentionError::config(
                "d_k/d_v",
                format!("differential attention needs d_k = d_v, got {d_k} and {d_v}"),
            ));
        }
        if self.attention.dropout > 0.0 {
            return Err(AttentionError::config(
                "dropout",
                "differential attention has no defined attention dropout (HF's DiffLlama refuses it too)",
            ));
        }
        if !(self.lambda_init.is_finite() && (0.0..1.0).contains(&self.lambda_init)) {
            return Err(AttentionError::config(
                "lambda_init",
                format!("must be in [0, 1), got {}", self.lambda_init),
            ));
        }
        for (field, value) in [("lambda_std", self.lambda_std), ("epsilon", self.epsilon)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(AttentionError::config(
                    field,
                    format!("must be positive and finite, got {value}"),
                ));
            }
        }
        Ok(())
    }

    /// Builds the module on `device`.
    ///
    /// # Panics
    /// When [`validate`](Self::validate) fails; call it first to get the error as a value.
    pub fn init(&self, device: &Device) -> DifferentialAttention {
        if let Err(err) = self.validate() {
            panic!("DifferentialAttentionConfig: {err}");
        }
        let attention = self.attention.init(device);
        let lambda = || {
            Initializer::Normal {
                mean: 0.0,
                std: self.lambda_std,
            }
            .init([attention.d_k], device)
        };
        DifferentialAttention {
            lambda_q1: lambda(),
            lambda_k1: lambda(),
            lambda_q2: lambda(),
            lambda_k2: lambda(),
            attention,
            lambda_init: self.lambda_init,
            epsilon: self.epsilon,
        }
    }
}

/// Differential attention: see the [module documentation](self).
///
/// ```
/// use attention::{AttentionInput, DifferentialAttentionConfig, MultiHeadAttentionConfig, mask};
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let config = DifferentialAttentionConfig::new(MultiHeadAttentionConfig::new(16, 4));
/// let diff = config.init(&device);
/// let x = Tensor::<3>::ones([2, 5, 16], &device);
/// let causal = mask::causal_mask(2, 5, &device);
/// let out = diff.forward(AttentionInput::self_attention(x).mask_attention(causal));
/// assert_eq!(out.dims(), [2, 5, 16]);
/// ```
#[derive(Module, Debug)]
pub struct DifferentialAttention {
    /// Projections, heads and positions (its `w_o` maps the pairs' `n_heads · d_v` features).
    pub attention: MultiHeadAttention,
    /// `λ = exp(λ_q1 · λ_k1) − exp(λ_q2 · λ_k2) + λ_init`, each vector `[d_k]`.
    pub lambda_q1: Param<Tensor<1>>,
    /// See `lambda_q1`.
    pub lambda_k1: Param<Tensor<1>>,
    /// See `lambda_q1`.
    pub lambda_q2: Param<Tensor<1>>,
    /// See `lambda_q1`.
    pub lambda_k2: Param<Tensor<1>>,
    /// `λ_init` ([`DifferentialAttentionConfig::lambda_init`]).
    pub lambda_init: f64,
    /// ε of the RMSNorm over each head pair.
    pub epsilon: f64,
}

impl DifferentialAttention {
    /// `λ`, a one-element tensor.
    pub fn lambda(&self) -> Tensor<1> {
        let dot = |a: &Param<Tensor<1>>, b: &Param<Tensor<1>>| (a.val() * b.val()).sum().exp();
        (dot(&self.lambda_q1, &self.lambda_k1) - dot(&self.lambda_q2, &self.lambda_k2))
            .add_scalar(self.lambda_init)
    }

    /// # Shapes
    /// - input: as [`MultiHeadAttention::forward`] (query `[batch, l_q, d_model]`, key and value
    ///   `[batch, l_k, d_model]`, masks, offsets)
    /// - output `[batch, l_q, d_model]`
    ///
    /// # Panics
    /// With head gates in the input: a pair of maps is one head here, which gates do not
    /// describe.
    pub fn forward(&self, input: AttentionInput) -> Tensor<3> {
        assert!(
            input.head_gates.is_none(),
            "DifferentialAttention: head gates are not supported"
        );
        let mha = &self.attention;
        let [batch, l_q, _] = input.query.dims();
        let mask = input.scores_mask();
        let pattern = mha.own_pattern(&input);
        let (q, k, v, bias) = mha.project(input);
        // Every head reads [v₁ | v₂]: HF's two halves of the key/value heads, each repeated
        // over them (`chunk(v, 2, dim=1)`, `repeat(1, 2, 1, 1)`).
        let half = mha.n_kv_heads / 2;
        let twice = |x: Tensor<4>| Tensor::cat(vec![x.clone(), x], 1);
        let (v1, v2) = (v.clone().narrow(1, 0, half), v.narrow(1, half, half));
        let v = Tensor::cat(vec![twice(v1), twice(v2)], 3);
        let context = mha
            .attention
            .forward_context_with_pattern(q, k, v, mask, bias, &pattern); // [b, h, l_q, 2 d_v]
        let pairs = mha.n_heads / 2;
        let first = context.clone().narrow(1, 0, pairs);
        let second = context.narrow(1, pairs, pairs);
        let diff = first - second * self.lambda().reshape([1, 1, 1, 1]);
        let rms = diff
            .clone()
            .powi_scalar(2)
            .mean_dim(3)
            .add_scalar(self.epsilon)
            .sqrt();
        let out = (diff / rms).mul_scalar(1.0 - self.lambda_init);
        let concat = out
            .swap_dims(1, 2)
            .reshape([batch, l_q, pairs * 2 * mha.d_v]);
        mha.w_o.forward(concat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_heads_and_bad_lambdas_are_refused() {
        let odd = DifferentialAttentionConfig::new(MultiHeadAttentionConfig::new(12, 3));
        assert!(odd.validate().unwrap_err().to_string().contains("even"));
        let gqa = DifferentialAttentionConfig::new(
            MultiHeadAttentionConfig::new(16, 4).with_n_kv_heads(Some(1)),
        );
        assert!(gqa.validate().is_err());
        let lambda = DifferentialAttentionConfig::new(MultiHeadAttentionConfig::new(16, 4))
            .with_lambda_init(1.0);
        assert!(lambda.validate().is_err());
        let dropout = DifferentialAttentionConfig::new(
            MultiHeadAttentionConfig::new(16, 4).with_dropout(0.1),
        );
        assert!(
            dropout
                .validate()
                .unwrap_err()
                .to_string()
                .contains("dropout")
        );
        let kv = DifferentialAttentionConfig::new(
            MultiHeadAttentionConfig::new(16, 4).with_n_kv_heads(Some(1)),
        );
        assert!(
            kv.validate()
                .unwrap_err()
                .to_string()
                .contains("n_kv_heads")
        );
        assert!((lambda_init_for_layer(0) - 0.2).abs() < 1e-12);
        assert!((lambda_init_for_layer(1) - (0.8 - 0.6 * (-0.3f64).exp())).abs() < 1e-12);
    }

    /// With the second map's λ at 0 (λ_q2·λ_k2 = λ_q1·λ_k1 and λ_init 0), a pair is the first
    /// head alone over [v₁ | v₂], RMS-normalised: the subtraction is what differs.
    #[test]
    fn lambda_zero_leaves_the_first_map() {
        let device = Device::flex();
        let mut diff = DifferentialAttentionConfig::new(MultiHeadAttentionConfig::new(8, 2))
            .with_lambda_init(0.0)
            .init(&device);
        diff.lambda_q2 = diff.lambda_q1.clone();
        diff.lambda_k2 = diff.lambda_k1.clone();
        let lambda: f32 = diff.lambda().into_scalar();
        assert_eq!(lambda, 0.0);
        let x = Tensor::<3>::random([1, 3, 8], burn::tensor::Distribution::Default, &device);
        let out = diff.forward(AttentionInput::self_attention(x.clone()));
        // By hand: head 0's context over [v₁ | v₂] (one key/value head each side, 2 kv heads).
        let mha = &diff.attention;
        let (q, k, v, _) = mha.project(AttentionInput::self_attention(x));
        let weights = burn::tensor::activation::softmax(
            q.narrow(1, 0, 1)
                .matmul(k.narrow(1, 0, 1).swap_dims(2, 3))
                .div_scalar((mha.d_k as f64).sqrt()),
            3,
        );
        let context = weights.matmul(Tensor::cat(
            vec![v.clone().narrow(1, 0, 1), v.narrow(1, 1, 1)],
            3,
        ));
        let rms = context
            .clone()
            .powi_scalar(2)
            .mean_dim(3)
            .add_scalar(1e-6)
            .sqrt();
        let by_hand = mha
            .w_o
            .forward((context / rms).swap_dims(1, 2).reshape([1, 3, 8]));
        let gap: f32 = (out - by_hand).abs().max().into_scalar();
        assert!(gap < 1e-5, "{gap}");
    }
}
