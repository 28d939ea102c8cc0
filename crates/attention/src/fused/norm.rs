//! LayerNorm as one differentiable op with its own backward pass.
//!
//! Under autodiff burn records LayerNorm as its decomposition: mean, centre, square, mean, add
//! ε, square root, divide, scale and shift, each an op on the tape and most keeping an `[n, d]`
//! tensor for the backward pass. [`layer_norm`] records one op whose state is the normalised
//! input `x̂` and each row's `1/σ`; its backward is one pass over the rows:
//! `dx = (g∘γ − mean(g∘γ) − x̂ · mean(g∘γ∘x̂)) / σ`, `dγ = Σ g∘x̂`, `dβ = Σ g`.
//!
//! | backend | with autodiff | without |
//! |---|---|---|
//! | flex (feature `flex`) | native f32 kernels, `rayon` over rows | burn's own kernel |
//! | ndarray, wgpu/cuda | the backend's tensor ops, one recorded node | burn's own op |
//! | any other | burn's `layer_norm` (its decomposition under autodiff) | the same |
//!
//! ```
//! use attention::fused::layer_norm;
//! use burn::prelude::*;
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<3>::random([2, 5, 8], burn::tensor::Distribution::Default, &device)
//!     .require_grad();
//! let gamma = Tensor::<1>::ones([8], &device).require_grad();
//! let y = layer_norm(x.clone(), gamma.clone(), None, 1e-5);
//! let grads = y.powi_scalar(2).sum().backward();
//! assert_eq!(x.grad(&grads).unwrap().dims(), [2, 5, 8]);
//! assert!(gamma.grad(&grads).is_some());
//! ```

use burn::{
    backend::{
        Backend, DispatchTensor,
        autodiff::{
            Autodiff,
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        tensor::FloatTensor,
    },
    prelude::*,
};

use super::{Wrap, is_supported};

/// The backend extension behind [`layer_norm`]: burn's own op on plain backends, and on
/// autodiff backends one recorded node with the backward of [`NormKernels`].
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "cube")
)]
pub trait FusedLayerNormBackend: Backend {
    /// `(x − mean) / sqrt(var + epsilon) · gamma + beta` over the rows of `x` `[n, d]`;
    /// `gamma`, `beta` `[d]`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct NormSaved<B: Backend> {
    /// The normalised input `(x − mean) / σ`, `[n, d]`.
    pub x_hat: FloatTensor<B>,
    /// `1 / σ = 1 / sqrt(var + ε)` per row, `[n, 1]`.
    pub rstd: FloatTensor<B>,
    /// The scale, `[d]`.
    pub gamma: FloatTensor<B>,
}

/// Gradients of one LayerNorm call.
#[derive(Debug)]
pub struct NormGrads<B: Backend> {
    /// `[n, d]`
    pub x: FloatTensor<B>,
    /// `[d]`
    pub gamma: FloatTensor<B>,
    /// `[d]`
    pub beta: FloatTensor<B>,
}

/// Forward (output and what the backward needs) and backward of LayerNorm on a backend
/// without autodiff.
pub trait NormKernels: Backend {
    /// The output `[n, d]`, and `x̂` and `1/σ` for the backward.
    fn norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, NormSaved<Self>);

    /// dx, dγ, dβ from the gradient of the output.
    fn norm_backward(saved: NormSaved<Self>, grad_output: FloatTensor<Self>) -> NormGrads<Self>;
}

#[cfg(feature = "flex")]
impl NormKernels for burn::backend::Flex {
    fn norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, NormSaved<Self>) {
        super::norm_flex::forward(x, gamma, beta, epsilon)
    }

    fn norm_backward(saved: NormSaved<Self>, grad_output: FloatTensor<Self>) -> NormGrads<Self> {
        super::norm_flex::backward(saved, grad_output)
    }
}

/// Backends whose kernels are [`forward_tensors`] and [`backward_tensors`].
macro_rules! tensor_op_kernels {
    ($backend:ty, $feature:literal) => {
        #[cfg(feature = $feature)]
        impl NormKernels for $backend {
            fn norm_forward(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                epsilon: f64,
            ) -> (FloatTensor<Self>, NormSaved<Self>) {
                tensor_op_forward::<Self>(x, gamma, beta, epsilon)
            }

            fn norm_backward(
                saved: NormSaved<Self>,
                grad_output: FloatTensor<Self>,
            ) -> NormGrads<Self> {
                tensor_op_backward::<Self>(saved, grad_output)
            }
        }
    };
}
tensor_op_kernels!(burn::backend::NdArray, "ndarray");
tensor_op_kernels!(burn::backend::Cube, "cube");

/// Plain backends: burn's own LayerNorm op (a native kernel where the backend has one).
macro_rules! inference {
    ($backend:ty, $feature:literal) => {
        #[cfg(feature = $feature)]
        impl FusedLayerNormBackend for $backend {
            fn fused_layer_norm(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                epsilon: f64,
            ) -> FloatTensor<Self> {
                <Self as burn::backend::ops::ModuleOps<Self>>::layer_norm(
                    x,
                    gamma,
                    Some(beta),
                    epsilon,
                )
            }
        }
    };
}
inference!(burn::backend::Flex, "flex");
inference!(burn::backend::NdArray, "ndarray");
inference!(burn::backend::Cube, "cube");

impl<B: NormKernels, C: CheckpointStrategy> FusedLayerNormBackend for Autodiff<B, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (xp, gp, bp) = (
            x.primitive().clone(),
            gamma.primitive().clone(),
            beta.primitive().clone(),
        );
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, saved) = B::norm_forward(xp, gp, bp, epsilon);
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::norm_forward(xp, gp, bp, epsilon).0),
        }
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: NormKernels> Backward<B, 3> for LayerNormBackward {
    type State = NormSaved<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad_output = grads.consume::<B>(&ops.node);
        let g = B::norm_backward(ops.state, grad_output);
        for (parent, grad) in ops.parents.into_iter().zip([g.x, g.gamma, g.beta]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// LayerNorm over the last dimension, `(x − mean) / sqrt(var + epsilon) · gamma + beta`, as
/// one op with its own backward on the backends [`is_supported`] names, and as burn's
/// `layer_norm` elsewhere. Same numbers as `burn::nn::LayerNorm` (biased variance).
///
/// # Shapes
/// - `x`: `[..., d]`
/// - `gamma`, `beta`: `[d]`
/// - output: as `x`
///
/// # Panics
/// When `gamma` or `beta` is not `[d]`.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    epsilon: f64,
) -> Tensor<D> {
    let kernels = is_supported(&x.device());
    layer_norm_or_fallback(x, gamma, beta, epsilon, kernels)
}

/// [`layer_norm`] through the kernels, or (a backend they do not know) burn's op.
fn layer_norm_or_fallback<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    epsilon: f64,
    kernels: bool,
) -> Tensor<D> {
    let dims = x.dims();
    let d = dims[D - 1];
    for (name, t) in [("gamma", Some(&gamma)), ("beta", beta.as_ref())] {
        if let Some(t) = t {
            assert!(
                t.dims() == [d],
                "layer_norm: {name} {:?} does not fit the input's last dimension {d}",
                t.dims()
            );
        }
    }
    if !kernels {
        return burn::tensor::module::layer_norm(x, gamma, beta, epsilon);
    }
    // The op works on rows: `[..., d]` → `[n, d]` is a view for the contiguous inputs a
    // model hands it.
    let n = dims[..D - 1].iter().product();
    let beta = beta.unwrap_or_else(|| gamma.zeros_like());
    let y = <burn::backend::Dispatch as FusedLayerNormBackend>::fused_layer_norm(
        x.reshape([n, d]).into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

pub(super) fn tensor_op_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, NormSaved<B>)
where
    DispatchTensor: Wrap<B>,
{
    let (y, x_hat, rstd) = forward_tensors(
        <DispatchTensor as Wrap<B>>::float(x),
        <DispatchTensor as Wrap<B>>::float(gamma.clone()),
        <DispatchTensor as Wrap<B>>::float(beta),
        epsilon,
    );
    let saved = NormSaved {
        x_hat: <DispatchTensor as Wrap<B>>::unwrap_float(x_hat),
        rstd: <DispatchTensor as Wrap<B>>::unwrap_float(rstd),
        gamma,
    };
    (<DispatchTensor as Wrap<B>>::unwrap_float(y), saved)
}

pub(super) fn tensor_op_backward<B: Backend>(
    saved: NormSaved<B>,
    grad_output: FloatTensor<B>,
) -> NormGrads<B>
where
    DispatchTensor: Wrap<B>,
{
    let (dx, dgamma, dbeta) = backward_tensors(
        <DispatchTensor as Wrap<B>>::float(saved.x_hat),
        <DispatchTensor as Wrap<B>>::float(saved.rstd),
        <DispatchTensor as Wrap<B>>::float(saved.gamma),
        <DispatchTensor as Wrap<B>>::float(grad_output),
    );
    NormGrads {
        x: <DispatchTensor as Wrap<B>>::unwrap_float(dx),
        gamma: <DispatchTensor as Wrap<B>>::unwrap_float(dgamma),
        beta: <DispatchTensor as Wrap<B>>::unwrap_float(dbeta),
    }
}

/// Output, `x̂` and `1/σ` (`[n, 1]`) from the tensor API on a plain device.
fn forward_tensors(
    x: Tensor<2>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let centered = x.clone() - x.mean_dim(1);
    let var = centered.clone().square().mean_dim(1);
    let rstd = var.add_scalar(epsilon).sqrt().recip();
    let x_hat = centered * rstd.clone();
    let y = x_hat.clone() * gamma.unsqueeze_dim(0) + beta.unsqueeze_dim(0);
    (y, x_hat, rstd)
}

/// dx, dγ, dβ from the tensor API on a plain device.
fn backward_tensors(
    x_hat: Tensor<2>,
    rstd: Tensor<2>,
    gamma: Tensor<1>,
    grad: Tensor<2>,
) -> (Tensor<2>, Tensor<1>, Tensor<1>) {
    let d = x_hat.dims()[1];
    let dbeta = grad.clone().sum_dim(0).reshape([d]);
    let dgamma = (grad.clone() * x_hat.clone()).sum_dim(0).reshape([d]);
    let g = grad * gamma.unsqueeze_dim(0);
    let mean_g = g.clone().mean_dim(1);
    let mean_gx = (g.clone() * x_hat.clone()).mean_dim(1);
    let dx = (g - mean_g - x_hat * mean_gx) * rstd;
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.5, 2.0), device)
    }

    /// Output and the three gradients of `layer_norm` (kernels on or off) under a random
    /// upstream gradient.
    fn run(
        device: &Device,
        x: &Tensor<3>,
        gamma: &Tensor<1>,
        beta: Option<&Tensor<1>>,
        upstream: &Tensor<3>,
        kernels: bool,
    ) -> Vec<TensorData> {
        let track = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), device).require_grad();
        let x = Tensor::<3>::from_data(x.to_data(), device).require_grad();
        let (gamma, beta) = (track(gamma), beta.map(track));
        let y = layer_norm_or_fallback(x.clone(), gamma.clone(), beta.clone(), 1e-5, kernels);
        let grads = (y.clone() * Tensor::from_data(upstream.to_data(), device))
            .sum()
            .backward();
        let mut out = vec![
            y.inner().into_data(),
            x.grad(&grads).unwrap().into_data(),
            gamma.grad(&grads).unwrap().into_data(),
        ];
        out.extend(beta.map(|b| b.grad(&grads).unwrap().into_data()));
        out
    }

    /// The tensor-op kernels and the backend's kernels give burn's decomposition and its
    /// gradients, with and without a shift.
    #[test]
    fn kernels_give_the_decomposition_and_its_gradients() {
        let plain = Device::flex();
        let device = plain.clone().autodiff();
        let x = random([3, 5, 7], &plain);
        let (gamma, beta) = (random([7], &plain), random([7], &plain));
        let upstream = random([3, 5, 7], &plain);
        for beta in [Some(&beta), None] {
            let want = run(&device, &x, &gamma, beta, &upstream, false);
            let got = run(&device, &x, &gamma, beta, &upstream, true);
            for (got, want) in got.iter().zip(&want) {
                got.assert_approx_eq::<f32>(want, Tolerance::absolute(1e-4));
            }
        }
        // The tensor-op path on its own (what ndarray and wgpu run).
        let x2 = x.clone().reshape([15, 7]);
        let (y, x_hat, rstd) = forward_tensors(x2.clone(), gamma.clone(), beta.clone(), 1e-5);
        let g = upstream.clone().reshape([15, 7]);
        let (dx, dgamma, dbeta) = backward_tensors(x_hat, rstd, gamma.clone(), g);
        let want = run(&device, &x, &gamma, Some(&beta), &upstream, false);
        let close = |got: TensorData, want: &TensorData| {
            got.assert_approx_eq::<f32>(want, Tolerance::absolute(1e-4))
        };
        close(y.reshape([3, 5, 7]).into_data(), &want[0]);
        close(dx.reshape([3, 5, 7]).into_data(), &want[1]);
        close(dgamma.into_data(), &want[2]);
        close(dbeta.into_data(), &want[3]);
    }

    /// On a device without autodiff the op is burn's own LayerNorm.
    #[test]
    fn inference_is_burns_layer_norm() {
        let device = Device::flex();
        let x = random([4, 6], &device);
        let (gamma, beta) = (random([6], &device), random([6], &device));
        let want =
            burn::tensor::module::layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-5);
        layer_norm(x, gamma, Some(beta), 1e-5)
            .into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn a_misshapen_scale_is_named() {
        let device = Device::flex();
        let result = std::panic::catch_unwind(|| {
            layer_norm(
                Tensor::<2>::zeros([2, 4], &device),
                Tensor::<1>::ones([3], &device),
                None,
                1e-5,
            )
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("gamma [3] does not fit"), "{message}");
    }
}
