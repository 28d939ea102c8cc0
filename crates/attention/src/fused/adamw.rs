//! AdamW as one pass over each parameter tensor.
//!
//! burn's `AdamW` updates a parameter through about fifteen tensor ops (the moments, their bias
//! correction, the square root, the division, the decay, the step), each a single-threaded pass
//! over memory on flex and several a fresh allocation: for a 22.6 M-parameter BERT about 3 GB
//! of traffic per step. [`FusedAdamW`] reads the parameter, its gradient and both moments once
//! and writes them once, in `rayon` blocks, on flex with f32; elsewhere (another backend, another
//! float type, AMSGrad) it is burn's `AdamW`. The two give the same numbers (the same f32
//! operations in the same order) and keep the same state type, [`AdamWState`].
//!
//! ```
//! use attention::fused::FusedAdamWConfig;
//!
//! let optimizer = FusedAdamWConfig::new().with_weight_decay(0.01).init();
//! # let _ = optimizer;
//! ```

use burn::{
    optim::{AdamW, AdamWConfig, AdamWState, LearningRate, ModuleOptimizer, Optimizer},
    prelude::*,
};

/// [`FusedAdamW`]'s configuration; defaults are burn's `AdamWConfig`'s.
#[derive(Config, Debug)]
pub struct FusedAdamWConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to the second moment's square root (burn's default, PyTorch's is 1e-8).
    #[config(default = 1e-5)]
    pub epsilon: f32,
    /// Decoupled weight decay (Loshchilov & Hutter), times the learning rate per step.
    #[config(default = 1e-4)]
    pub weight_decay: f32,
}

impl FusedAdamWConfig {
    /// The optimizer alone (for `ModuleOptimizer::with_group`).
    pub fn build(&self) -> FusedAdamW {
        FusedAdamW {
            config: self.clone(),
            fallback: AdamWConfig::new()
                .with_beta_1(self.beta_1)
                .with_beta_2(self.beta_2)
                .with_epsilon(self.epsilon)
                .with_weight_decay(self.weight_decay)
                .build(),
        }
    }

    /// The optimizer for a whole module, as `AdamWConfig::init`.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// AdamW with a fused step on flex (f32); burn's `AdamW` elsewhere. Built by
/// [`FusedAdamWConfig`].
#[derive(Clone)]
pub struct FusedAdamW {
    config: FusedAdamWConfig,
    fallback: AdamW,
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    /// One step of `tensor` along `grad`.
    ///
    /// # Shapes
    /// - `tensor`, `grad` and the state's moments: the same, any
    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "flex")]
        if fused_supported(&tensor, &grad, state.as_ref()) {
            return self.fused_step(lr, tensor, grad, state);
        }
        self.fallback.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

/// Whether a step takes the flex kernel: plain (not autodiff) f32 flex tensors, no AMSGrad.
#[cfg(feature = "flex")]
fn fused_supported<const D: usize>(
    tensor: &Tensor<D>,
    grad: &Tensor<D>,
    state: Option<&AdamWState<D>>,
) -> bool {
    let plain_f32 =
        |t: &Tensor<D>| !t.is_autodiff() && super::pointwise_supported(&t.device(), t.dtype());
    plain_f32(tensor)
        && plain_f32(grad)
        && state.is_none_or(|s| {
            plain_f32(&s.momentum.moment_1)
                && plain_f32(&s.momentum.moment_2)
                && s.momentum.max_moment_2.is_none()
        })
}

#[cfg(feature = "flex")]
impl FusedAdamW {
    fn fused_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        use super::adamw_flex::{Step, adamw};
        use burn::{backend::Flex, optim::AdaptiveMomentumState};

        let primitive = |t: Tensor<D>| {
            t.try_into_primitive::<Flex>()
                .expect("fused_supported checked a flex tensor")
        };
        let (time, moments) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some((
                    primitive(s.momentum.moment_1),
                    primitive(s.momentum.moment_2),
                )),
            ),
            None => (1, None),
        };
        let c = &self.config;
        // As burn's AdamW: the bias corrections in f32 with `powi`, the decay factor in f64.
        let decay_rate = lr * c.weight_decay as f64;
        let step = Step {
            beta_1: c.beta_1,
            beta_2: c.beta_2,
            epsilon: c.epsilon,
            lr: lr as f32,
            decay: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
            bias_1: 1.0 - c.beta_1.powi(time as i32),
            bias_2: 1.0 - c.beta_2.powi(time as i32),
        };
        let [p, m, v] = adamw(primitive(tensor), primitive(grad), moments, step);
        let state = AdamWState::new(AdaptiveMomentumState::new(
            time,
            Tensor::from_primitive::<Flex>(m),
            Tensor::from_primitive::<Flex>(v),
        ));
        (Tensor::from_primitive::<Flex>(p), Some(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Three steps with weight decay from no state: the parameter and both moments equal burn's
    /// AdamW's, on a tensor several `rayon` blocks long.
    fn equals_burns_adamw(device: &Device, weight_decay: f32) {
        let config = FusedAdamWConfig::new()
            .with_weight_decay(weight_decay)
            .with_beta_2(0.99);
        let ours = config.build();
        let burns = AdamWConfig::new()
            .with_weight_decay(weight_decay)
            .with_beta_2(0.99)
            .build();
        let shape = [300, 257];
        let start = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let (mut p_ours, mut p_burn) = (start.clone(), start);
        let (mut s_ours, mut s_burn) = (None, None);
        for step in 0..3 {
            let grad = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), device);
            let lr = 1e-3 * (step + 1) as f64;
            (p_ours, s_ours) = ours.step(lr, p_ours, grad.clone(), s_ours);
            (p_burn, s_burn) = burns.step(lr, p_burn, grad, s_burn);
        }
        let tolerance = Tolerance::<f32>::absolute(1e-6);
        p_ours
            .into_data()
            .assert_approx_eq::<f32>(&p_burn.into_data(), tolerance);
        let (s_ours, s_burn) = (s_ours.unwrap().momentum, s_burn.unwrap().momentum);
        assert_eq!(s_ours.time, s_burn.time);
        s_ours
            .moment_1
            .into_data()
            .assert_approx_eq::<f32>(&s_burn.moment_1.into_data(), tolerance);
        s_ours
            .moment_2
            .into_data()
            .assert_approx_eq::<f32>(&s_burn.moment_2.into_data(), tolerance);
    }

    #[cfg(feature = "flex")]
    #[test]
    fn the_flex_kernel_equals_burns_adamw() {
        let plain = Tensor::<2>::zeros([2, 3], &Device::flex());
        assert!(
            fused_supported(&plain, &plain, None),
            "flex f32 takes the kernel"
        );
        let tracked = Tensor::<2>::zeros([2, 3], &Device::flex().autodiff());
        assert!(!fused_supported(&tracked, &tracked, None));
        let f64s = plain.clone().cast(burn::tensor::DType::F64);
        assert!(!fused_supported(&f64s, &f64s, None));
        equals_burns_adamw(&Device::flex(), 0.01);
        equals_burns_adamw(&Device::flex(), 0.0);
    }

    /// Another backend takes burn's AdamW itself.
    #[cfg(feature = "ndarray")]
    #[test]
    #[allow(deprecated)]
    fn other_backends_take_burns_adamw() {
        equals_burns_adamw(&Device::ndarray(), 0.01);
    }

    /// The parameter the learner still holds (its model is a clone) is not written in place.
    #[cfg(feature = "flex")]
    #[test]
    fn a_shared_parameter_is_left_as_it_was() {
        let device = Device::flex();
        let p = Tensor::<1>::ones([70_000], &device);
        let held = p.clone();
        let grad = Tensor::<1>::ones([70_000], &device);
        let (updated, _) = FusedAdamWConfig::new().build().step(0.1, p, grad, None);
        assert_eq!(
            held.into_data(),
            Tensor::<1>::ones([70_000], &device).into_data()
        );
        let changed = updated.lower_elem(1.0).all().into_scalar::<bool>();
        assert!(changed, "every element moved against a positive gradient");
    }
}
