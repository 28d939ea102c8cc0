//! GELU and dropout as ops with their own backward pass.
//!
//! Under autodiff on flex burn computes exact GELU with libm's scalar `erff`, one call per
//! element forward and another backward, and dropout by drawing one float per element from a
//! ChaCha generator, keeping the mask for the backward. In a fine-tuned BERT these were a fifth
//! of a training step (BENCHMARKS.md). Here [`gelu`] evaluates `erf` as a rational function
//! whose loop vectorises (|error| < 5e-7) and keeps only its input for the backward
//! (`dx = g · (Φ(x) + x·φ(x))`); [`dropout`] keeps an element by a hash of a per-call seed, its
//! row and its column ([`DropoutMask`], as attention dropout inside the fused op), so the
//! backward regenerates the mask instead of storing it.
//!
//! | backend | with autodiff | without |
//! |---|---|---|
//! | flex (feature `flex`), f32 | native kernels, `rayon` over blocks of rows | [`gelu`]: the same kernel; [`dropout`]: nothing dropped |
//! | any other | burn's `gelu` and `Dropout` | the same |
//!
//! ```
//! use attention::fused::{dropout, gelu};
//! use burn::prelude::*;
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<3>::random([2, 5, 8], burn::tensor::Distribution::Default, &device)
//!     .require_grad();
//! let y = dropout(gelu(x.clone()), 0.1);
//! let grads = y.sum().backward();
//! assert_eq!(x.grad(&grads).unwrap().dims(), [2, 5, 8]);
//! ```

use burn::{nn::Dropout, prelude::*, tensor::DType};

use super::DropoutMask;

#[cfg(feature = "flex")]
pub use kernels::{FusedPointwiseBackend, PointwiseKernels};

/// Whether [`gelu`] and [`dropout`] run their own kernels on `device` for inputs of `dtype`:
/// flex and f32. Elsewhere they are burn's `gelu` and `Dropout`.
pub fn pointwise_supported(device: &Device, dtype: DType) -> bool {
    // The same devices as attention dropout inside the fused op: flex, f32.
    super::dropout_supported(device, dtype)
}

/// GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))` (exact, not the tanh approximation), as one op with
/// its own backward where [`pointwise_supported`], and burn's `gelu` elsewhere. The two agree
/// within 1e-6.
///
/// # Shapes
/// - `x`: any
/// - output: as `x`
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !pointwise_supported(&x.device(), x.dtype()) {
        return burn::tensor::activation::gelu(x);
    }
    gelu_kernel(x)
}

/// Dropout with probability `p` while training (an autodiff device; as burn's `Dropout`,
/// nothing is dropped on a plain one): each element is zeroed with probability `p` and the rest
/// scaled by `1 / (1 − p)`. Where [`pointwise_supported`], inside one op whose backward
/// regenerates the mask ([`DropoutMask`] over the rows of the last dimension, its seed drawn
/// from the device's generator, so `Device::seed` makes runs repeat); elsewhere burn's
/// `Dropout`.
///
/// # Shapes
/// - `x`: any
/// - output: as `x`
///
/// # Panics
/// When `p` is not in `[0, 1)`.
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64) -> Tensor<D> {
    assert!(
        (0.0..1.0).contains(&p),
        "dropout must be in [0, 1), got {p}"
    );
    let device = x.device();
    if p == 0.0 || !device.is_autodiff() {
        return x;
    }
    if !pointwise_supported(&device, x.dtype()) {
        return burn::nn::DropoutConfig::new(p).init().forward(x);
    }
    dropout_kernel(x, DropoutMask::new(p, super::draw_seed(&device)))
}

#[cfg(feature = "flex")]
fn gelu_kernel<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let y = <burn::backend::Dispatch as FusedPointwiseBackend>::fused_gelu(
        x.reshape([dims.iter().product::<usize>()]).into_dispatch(),
    );
    Tensor::<1>::from_dispatch(y).reshape(dims)
}

/// The kernels work on rows: `[..., d]` → `[n, d]` is a view of a contiguous tensor.
#[cfg(feature = "flex")]
fn dropout_kernel<const D: usize>(x: Tensor<D>, mask: DropoutMask) -> Tensor<D> {
    let dims = x.dims();
    let n = dims[..D - 1].iter().product::<usize>();
    let y = <burn::backend::Dispatch as FusedPointwiseBackend>::fused_dropout(
        x.reshape([n, dims[D - 1]]).into_dispatch(),
        mask.probability(),
        mask.seed,
    );
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

#[cfg(not(feature = "flex"))]
fn gelu_kernel<const D: usize>(_: Tensor<D>) -> Tensor<D> {
    unreachable!("no backend has pointwise kernels without the flex feature")
}

#[cfg(not(feature = "flex"))]
fn dropout_kernel<const D: usize>(_: Tensor<D>, _: DropoutMask) -> Tensor<D> {
    unreachable!("no backend has pointwise kernels without the flex feature")
}

/// The probability `layer` drops with now: its own, or 0 when it is frozen (burn's `Dropout`
/// stops dropping when [`freeze`](burn::module::Module::freeze) clears its training flag).
pub fn active_probability(layer: &Dropout) -> f64 {
    if layer.training.is_enabled() {
        layer.prob
    } else {
        0.0
    }
}

/// burn's `Dropout` module through [`dropout`]: its probability, and nothing dropped while it
/// is frozen.
///
/// # Shapes
/// As [`dropout`].
pub fn dropout_layer<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    dropout(x, active_probability(layer))
}

/// The backend extension and its autodiff op; flex alone has kernels.
#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::{
        Backend,
        autodiff::{
            Autodiff,
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        tensor::FloatTensor,
    };

    use super::DropoutMask;

    /// The backend extension behind [`gelu`](super::gelu) and [`dropout`](super::dropout):
    /// on flex the kernels of [`PointwiseKernels`], on autodiff flex one recorded node each.
    #[backend_extension(Autodiff, Flex: cfg(feature = "flex"))]
    pub trait FusedPointwiseBackend: Backend {
        /// GELU of `x` `[n]`.
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

        /// `x` `[n, d]` times `DropoutMask::new(p, seed)` over its rows.
        fn fused_dropout(x: FloatTensor<Self>, p: f64, seed: u64) -> FloatTensor<Self>;
    }

    /// The element-wise kernels of a backend without autodiff.
    pub trait PointwiseKernels: Backend {
        /// GELU of `x` `[n]`.
        fn gelu_forward(x: FloatTensor<Self>) -> FloatTensor<Self>;

        /// `grad · GELU'(x)`, `x` and `grad` `[n]`.
        fn gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

        /// `x` `[n, d]` times the mask's factors (row `i`, column `j`): dropout's forward, and
        /// its backward on the gradient.
        fn dropout_apply(x: FloatTensor<Self>, mask: DropoutMask) -> FloatTensor<Self>;
    }

    impl PointwiseKernels for burn::backend::Flex {
        fn gelu_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
            super::super::pointwise_flex::gelu(x)
        }

        fn gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
            super::super::pointwise_flex::gelu_backward(x, grad)
        }

        fn dropout_apply(x: FloatTensor<Self>, mask: DropoutMask) -> FloatTensor<Self> {
            super::super::pointwise_flex::dropout(x, mask)
        }
    }

    impl FusedPointwiseBackend for burn::backend::Flex {
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
            Self::gelu_forward(x)
        }

        fn fused_dropout(x: FloatTensor<Self>, p: f64, seed: u64) -> FloatTensor<Self> {
            Self::dropout_apply(x, DropoutMask::new(p, seed))
        }
    }

    impl<B: PointwiseKernels, C: CheckpointStrategy> FusedPointwiseBackend for Autodiff<B, C> {
        fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
            let (x, node) = x.into_parts();
            match GeluBackward.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let y = B::gelu_forward(x.clone());
                    prep.finish(x, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::gelu_forward(x)),
            }
        }

        fn fused_dropout(x: FloatTensor<Self>, p: f64, seed: u64) -> FloatTensor<Self> {
            let mask = DropoutMask::new(p, seed);
            // Moved, not cloned: a tensor no one else holds is masked in place.
            let (x, node) = x.into_parts();
            match DropoutBackward
                .prepare::<C>([node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(mask, B::dropout_apply(x, mask)),
                OpsKind::UnTracked(prep) => prep.finish(B::dropout_apply(x, mask)),
            }
        }
    }

    #[derive(Debug)]
    struct GeluBackward;

    impl<B: PointwiseKernels> Backward<B, 1> for GeluBackward {
        /// The input.
        type State = FloatTensor<B>;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let grad = grads.consume::<B>(&ops.node);
            if let Some(parent) = &ops.parents[0] {
                grads.register::<B>(
                    parent.id,
                    <B as PointwiseKernels>::gelu_backward(ops.state, grad),
                );
            }
        }
    }

    #[derive(Debug)]
    struct DropoutBackward;

    impl<B: PointwiseKernels> Backward<B, 1> for DropoutBackward {
        type State = DropoutMask;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let grad = grads.consume::<B>(&ops.node);
            if let Some(parent) = &ops.parents[0] {
                grads.register::<B>(parent.id, B::dropout_apply(grad, ops.state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Output and input gradient of `f` under a random upstream gradient.
    fn run(
        device: &Device,
        x: &Tensor<3>,
        upstream: &Tensor<3>,
        f: impl Fn(Tensor<3>) -> Tensor<3>,
    ) -> [TensorData; 2] {
        let x = Tensor::<3>::from_data(x.to_data(), device).require_grad();
        let y = f(x.clone());
        let grads = (y.clone() * Tensor::from_data(upstream.to_data(), device))
            .sum()
            .backward();
        [y.inner().into_data(), x.grad(&grads).unwrap().into_data()]
    }

    /// Inputs across GELU's range (its tails, where `erf` saturates, included) and a size
    /// that several `rayon` tasks share: output and gradient equal burn's GELU and its
    /// backward (libm's `erff`).
    #[test]
    fn gelu_equals_burns_gelu_and_its_gradient() {
        let plain = Device::flex();
        let device = plain.clone().autodiff();
        for shape in [[2, 3, 5], [4, 70, 1536]] {
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 3.0), &plain);
            let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
            let got = run(&device, &x, &upstream, gelu);
            let want = run(&device, &x, &upstream, burn::tensor::activation::gelu);
            for (got, want) in got.iter().zip(&want) {
                got.assert_approx_eq::<f32>(want, Tolerance::absolute(2e-6));
            }
            // Inference: the same kernel.
            gelu(x.clone()).into_data().assert_approx_eq::<f32>(
                &burn::tensor::activation::gelu(x).into_data(),
                Tolerance::absolute(2e-6),
            );
        }
    }

    /// Output and gradient are the input and the upstream gradient times the mask written out
    /// (`DropoutMask::factors`, rows of the last dimension).
    #[test]
    fn dropout_is_the_mask_written_out() {
        let plain = Device::flex();
        let device = plain.clone().autodiff();
        let shape = [3, 40, 77];
        let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
        let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
        // The kernel with a known seed: the device's generator is shared by the tests that
        // run beside this one.
        let mask = DropoutMask::new(0.3, 7);
        let got = run(&device, &x, &upstream, |x| dropout_kernel(x, mask));
        let factors = mask.factors([1, 1, 3 * 40, 77], &plain).reshape(shape);
        let kept = factors
            .clone()
            .greater_elem(0.0)
            .float()
            .mean()
            .into_scalar::<f32>();
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        let close = |got: &TensorData, want: Tensor<3>| {
            got.assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6))
        };
        close(&got[0], x.clone() * factors.clone());
        close(&got[1], upstream * factors);
    }

    /// A caller that keeps its tensor finds it unchanged (the kernel masks in place only a
    /// tensor no one else holds); two calls draw two masks; nothing is dropped on a plain
    /// device, at `p = 0` or through a frozen layer.
    #[test]
    fn dropout_leaves_what_it_should_alone() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([64, 64], Distribution::Normal(1.0, 0.1), &device);
        let before = x.to_data();
        let (a, b) = (dropout(x.clone(), 0.5), dropout(x.clone(), 0.5));
        x.to_data()
            .assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
        let differ = a.equal(b).bool_not().int().sum().into_scalar::<i64>();
        assert!(differ > 1000, "{differ} elements differ");
        let plain = x.clone().inner();
        plain
            .clone()
            .into_data()
            .assert_eq(&dropout(plain, 0.5).into_data(), true);
        dropout(x.clone(), 0.0).into_data().assert_eq(&before, true);
        let layer = burn::nn::DropoutConfig::new(0.5).init();
        assert_eq!(active_probability(&layer), 0.5);
        let frozen = burn::module::Module::freeze(layer);
        assert_eq!(active_probability(&frozen), 0.0);
        dropout_layer(&frozen, x)
            .into_data()
            .assert_eq(&before, true);
    }

    /// Where the kernels do not run (f64 here), burn's ops: same GELU, and dropout that
    /// drops about `p`.
    #[test]
    fn other_dtypes_take_burns_ops() {
        let device = Device::flex().autodiff();
        let x =
            Tensor::<2>::random([32, 32], Distribution::Normal(0.0, 1.0), &device).cast(DType::F64);
        assert!(!pointwise_supported(&device, DType::F64));
        let want = burn::tensor::activation::gelu(x.clone()).into_data();
        gelu(x.clone())
            .into_data()
            .assert_approx_eq::<f64>(&want, Tolerance::absolute(1e-12));
        let dropped = dropout(x.ones_like(), 0.5).equal_elem(0.0).int().sum();
        let dropped = dropped.into_scalar::<i64>() as f64 / 1024.0;
        assert!((dropped - 0.5).abs() < 0.1, "dropped {dropped}");
    }
}
