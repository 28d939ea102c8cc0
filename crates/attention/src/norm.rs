//! LayerNorm that trains through [`fused::layer_norm`](crate::fused::layer_norm): burn's
//! `LayerNorm` with the same parameters and records, one recorded op instead of its
//! decomposition on autodiff devices.

use burn::{
    module::{Content, DisplaySettings, ModuleDisplay, Param},
    nn::Initializer,
    prelude::*,
};

/// Configuration of [`LayerNorm`], as burn's `LayerNormConfig`.
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// Width of the normalised (last) dimension.
    pub d_model: usize,
    /// Added to the variance before the square root. Default: `1e-5`.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Whether the layer has a learned shift `beta`. Default: `true`.
    #[config(default = true)]
    pub bias: bool,
}

impl LayerNormConfig {
    /// Builds the layer on `device`: `gamma` ones, `beta` zeros.
    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: self
                .bias
                .then(|| Initializer::Zeros.init([self.d_model], device)),
            epsilon: self.epsilon,
        }
    }
}

/// `(x − mean) / sqrt(var + ε) · gamma + beta` over the last dimension. Its fields and records
/// are burn's `LayerNorm`'s (`gamma`, `beta`), so saved models load either way.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct LayerNorm {
    /// The scale, `[d_model]`.
    pub gamma: Param<Tensor<1>>,
    /// The shift, `[d_model]`, if the layer has one.
    pub beta: Option<Param<Tensor<1>>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl LayerNorm {
    /// # Shapes
    /// - input `[..., d_model]`
    /// - output: as the input
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::fused::layer_norm(
            x,
            self.gamma.val(),
            self.beta.as_ref().map(Param::val),
            self.epsilon,
        )
    }
}

impl ModuleDisplay for LayerNorm {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("d_model", &self.gamma.dims()[0])
            .add("epsilon", &self.epsilon)
            .add("bias", &self.beta.is_some())
            .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Same output and parameter gradients as burn's `LayerNorm` with the same weights, and a
    /// record of either loads into the other.
    #[test]
    fn equals_burns_layer_norm_and_shares_its_records() {
        let device = Device::flex().autodiff();
        let ours = LayerNormConfig::new(6).with_epsilon(1e-3).init(&device);
        let ours = ours.map(&mut RandomParams(&device));
        let burns = burn::nn::LayerNormConfig::new(6)
            .with_epsilon(1e-3)
            .init(&device)
            .load_record(ours.clone().into_record());
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Default, &device).require_grad();
        let (a, b) = (ours.forward(x.clone()), burns.forward(x.clone()));
        let (ga, gb) = (
            a.clone().powi_scalar(3).sum().backward(),
            b.clone().powi_scalar(3).sum().backward(),
        );
        let tol = Tolerance::absolute(1e-4);
        a.into_data().assert_approx_eq::<f32>(&b.into_data(), tol);
        for (pa, pb) in [
            (ours.gamma.val(), burns.gamma.val()),
            (
                ours.beta.as_ref().unwrap().val(),
                burns.beta.as_ref().unwrap().val(),
            ),
        ] {
            pa.grad(&ga)
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(&pb.grad(&gb).unwrap().into_data(), tol);
        }
        let back = LayerNormConfig::new(6)
            .init(&device)
            .load_record(burns.into_record());
        back.gamma
            .val()
            .into_data()
            .assert_eq(&ours.gamma.val().into_data(), true);
    }

    /// Random values for every parameter (a fresh layer's ones and zeros hide mix-ups).
    struct RandomParams<'a>(&'a Device);

    impl burn::module::ModuleMapper for RandomParams<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let shape = param.shape();
            param.map(|_| Tensor::random(shape, Distribution::Default, self.0).require_grad())
        }
    }
}

/// Normalisation of each head's queries and keys before the scores (qk-norm): it bounds the
/// logits without a soft-cap (Dehghani et al., 2023; Qwen3, OLMo 2, Gemma 3). One scale of
/// `d_k` values, shared by the heads, for the queries and one for the keys.
#[derive(Config, Debug, PartialEq)]
pub enum QkNorm {
    /// RMSNorm `x / sqrt(mean(x²) + epsilon) · γ` (Qwen3's `q_norm` / `k_norm`, epsilon 1e-6).
    Rms {
        /// Added to the mean square.
        epsilon: f64,
    },
    /// LayerNorm with a scale and a shift (ViT-22B).
    Layer {
        /// Added to the variance.
        epsilon: f64,
    },
}

impl QkNorm {
    /// RMSNorm with Qwen3's epsilon, 1e-6.
    pub fn rms() -> Self {
        Self::Rms { epsilon: 1e-6 }
    }

    /// LayerNorm with burn's epsilon, 1e-5.
    pub fn layer() -> Self {
        Self::Layer { epsilon: 1e-5 }
    }

    pub(crate) fn init(&self, d_k: usize, device: &Device) -> QkNormLayer {
        match *self {
            Self::Rms { epsilon } => QkNormLayer::Rms(
                burn::nn::RmsNormConfig::new(d_k)
                    .with_epsilon(epsilon)
                    .init(device),
            ),
            Self::Layer { epsilon } => {
                QkNormLayer::Layer(LayerNormConfig::new(d_k).with_epsilon(epsilon).init(device))
            }
        }
    }

    pub(crate) fn epsilon(&self) -> f64 {
        match *self {
            Self::Rms { epsilon } | Self::Layer { epsilon } => epsilon,
        }
    }
}

/// One qk-norm layer ([`QkNorm`]) over the last dimension of `[batch, heads, l, d_k]`.
#[derive(Module, Debug)]
pub enum QkNormLayer {
    /// burn's RMSNorm.
    Rms(burn::nn::RmsNorm),
    /// The crate's LayerNorm.
    Layer(LayerNorm),
}

impl QkNormLayer {
    /// # Shapes
    /// `[batch, heads, l, d_k]` → the same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Rms(norm) => norm.forward(x),
            Self::Layer(norm) => norm.forward(x),
        }
    }
}
