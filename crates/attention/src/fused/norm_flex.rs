//! The LayerNorm op's native flex kernels (f32): one pass over each row forward (mean,
//! variance, `x̂`, output) and one backward (`dx` per row, `dγ` and `dβ` summed over the rows).
//! Sums run in eight lanes so that they vectorise; the loops are compiled for AVX2/FMA too and
//! picked at run time. One thread: LayerNorm is memory-bound, and on 2 vCPUs handing blocks of
//! rows to `rayon` measured slower than one thread at every size of `benches/layer_norm.rs`
//! (waking a pool thread costs more than the rows it takes).
//!
//! Other float types go through the tensor-op kernels.

use burn::{
    backend::{Flex, flex::FlexTensor, tensor::FloatTensor},
    tensor::{DType, TensorData},
};

use super::flex::avx2_fma;
use super::norm::{NormGrads, NormSaved};

pub(super) fn forward(
    x: FloatTensor<Flex>,
    gamma: FloatTensor<Flex>,
    beta: FloatTensor<Flex>,
    epsilon: f64,
) -> (FloatTensor<Flex>, NormSaved<Flex>) {
    if [&x, &gamma, &beta].iter().any(|t| t.dtype() != DType::F32) {
        return super::norm::tensor_op_forward::<Flex>(x, gamma, beta, epsilon);
    }
    let [n, d] = dims(&x);
    let (x, gamma_c, beta) = (
        x.to_contiguous(),
        gamma.to_contiguous(),
        beta.to_contiguous(),
    );
    let (xs, g, b) = (values(&x), values(&gamma_c), values(&beta));
    let mut y = vec![0f32; n * d];
    let mut x_hat = vec![0f32; n * d];
    let mut rstd = vec![0f32; n];
    if d > 0 {
        let out = Rows {
            y: &mut y,
            x_hat: &mut x_hat,
            rstd: &mut rstd,
        };
        forward_rows(xs, g, b, epsilon as f32, out, d);
    }
    let saved = NormSaved {
        x_hat: tensor(x_hat, [n, d]),
        rstd: tensor(rstd, [n, 1]),
        gamma: gamma_c,
    };
    (tensor(y, [n, d]), saved)
}

pub(super) fn backward(saved: NormSaved<Flex>, grad_output: FloatTensor<Flex>) -> NormGrads<Flex> {
    if grad_output.dtype() != DType::F32 || saved.x_hat.dtype() != DType::F32 {
        return super::norm::tensor_op_backward::<Flex>(saved, grad_output);
    }
    let [n, d] = dims(&saved.x_hat);
    let grad = grad_output.to_contiguous();
    let (gs, x_hat, rstd, gamma) = (
        values(&grad),
        values(&saved.x_hat),
        values(&saved.rstd),
        values(&saved.gamma),
    );
    let mut dx = vec![0f32; n * d];
    let (mut dgamma, mut dbeta) = (vec![0f32; d], vec![0f32; d]);
    if d > 0 {
        let input = BackwardRows {
            grad: gs,
            x_hat,
            rstd,
            gamma,
        };
        backward_rows(input, &mut dx, &mut dgamma, &mut dbeta, d);
    }
    NormGrads {
        x: tensor(dx, [n, d]),
        gamma: tensor(dgamma, [d]),
        beta: tensor(dbeta, [d]),
    }
}

fn dims(t: &FlexTensor) -> [usize; 2] {
    let s = t.layout().shape();
    [s[0], s[1]]
}

/// A contiguous f32 tensor's values.
fn values(t: &FlexTensor) -> &[f32] {
    let start = t.layout().start_offset();
    let len: usize = t.layout().shape().iter().product();
    &t.storage::<f32>()[start..start + len]
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// One task's outputs of the forward.
struct Rows<'a> {
    y: &'a mut [f32],
    x_hat: &'a mut [f32],
    rstd: &'a mut [f32],
}

/// One task's inputs of the backward.
struct BackwardRows<'a> {
    grad: &'a [f32],
    x_hat: &'a [f32],
    rstd: &'a [f32],
    gamma: &'a [f32],
}

fn forward_rows(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, out: Rows, d: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { forward_rows_avx2(x, gamma, beta, epsilon, out, d) };
    }
    forward_rows_body(x, gamma, beta, epsilon, out, d)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_rows_avx2(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, out: Rows, d: usize) {
    forward_rows_body(x, gamma, beta, epsilon, out, d)
}

#[inline(always)]
fn forward_rows_body(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, out: Rows, d: usize) {
    let inv_d = 1.0 / d as f32;
    let rows = x
        .chunks_exact(d)
        .zip(out.y.chunks_exact_mut(d))
        .zip(out.x_hat.chunks_exact_mut(d))
        .zip(out.rstd.iter_mut());
    for (((x, y), x_hat), rstd) in rows {
        // Two passes (mean, then squared deviations): no cancellation for rows far from 0.
        let mean = lane_sum(x, |v| v) * inv_d;
        let var = lane_sum(x, |v| (v - mean) * (v - mean)) * inv_d;
        let r = 1.0 / (var + epsilon).sqrt();
        for j in 0..d {
            let h = (x[j] - mean) * r;
            x_hat[j] = h;
            y[j] = h * gamma[j] + beta[j];
        }
        *rstd = r;
    }
}

fn backward_rows(
    input: BackwardRows,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    d: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { backward_rows_avx2(input, dx, dgamma, dbeta, d) };
    }
    backward_rows_body(input, dx, dgamma, dbeta, d)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_rows_avx2(
    input: BackwardRows,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    d: usize,
) {
    backward_rows_body(input, dx, dgamma, dbeta, d)
}

/// `dx = (g∘γ − mean(g∘γ) − x̂ · mean(g∘γ∘x̂)) / σ` per row; `dγ += g∘x̂`, `dβ += g`.
#[inline(always)]
fn backward_rows_body(
    input: BackwardRows,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    d: usize,
) {
    let inv_d = 1.0 / d as f32;
    let gamma = input.gamma;
    let rows = input
        .grad
        .chunks_exact(d)
        .zip(input.x_hat.chunks_exact(d))
        .zip(input.rstd)
        .zip(dx.chunks_exact_mut(d));
    for (((g, x_hat), &r), dx) in rows {
        // dx holds g∘γ until the last loop.
        for j in 0..d {
            dx[j] = g[j] * gamma[j];
            dgamma[j] += g[j] * x_hat[j];
            dbeta[j] += g[j];
        }
        let mean_g = lane_sum(dx, |v| v) * inv_d;
        let mean_gx = lane_dot(dx, x_hat) * inv_d;
        for j in 0..d {
            dx[j] = (dx[j] - mean_g - x_hat[j] * mean_gx) * r;
        }
    }
}

/// `Σ f(x_i)` in eight lanes (a single running sum would keep the loop scalar).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (lane, &v) in lanes.iter_mut().zip(c) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// `Σ a_i · b_i` in eight lanes.
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in ca.zip(cb) {
        for ((lane, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use crate::fused::flex::tests::BASELINE;
    use crate::fused::layer_norm;
    use burn::{
        prelude::*,
        tensor::{Distribution, Tolerance},
    };
    use std::sync::atomic::Ordering;

    /// Many rows, widths with and without a remainder of eight lanes, inputs far from zero: output and gradients equal burn's
    /// decomposition under autodiff, with the AVX2/FMA loops where the CPU has them and with
    /// the baseline ones.
    #[test]
    fn kernels_equal_the_decomposition_across_tasks() {
        for baseline in [false, true] {
            BASELINE.store(baseline, Ordering::Relaxed);
            for (n, d) in [(3, 5), (1100, 64), (70, 515)] {
                check(n, d);
            }
        }
        BASELINE.store(false, Ordering::Relaxed);
    }

    fn check(n: usize, d: usize) {
        let plain = Device::flex();
        let device = plain.clone().autodiff();
        let x = Tensor::<2>::random([n, d], Distribution::Normal(100.0, 3.0), &plain);
        let gamma = Tensor::<1>::random([d], Distribution::Normal(1.0, 0.5), &plain);
        let beta = Tensor::<1>::random([d], Distribution::Normal(0.0, 1.0), &plain);
        let upstream = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &plain);
        let run = |fused: bool| {
            let x = Tensor::<2>::from_data(x.to_data(), &device).require_grad();
            let gamma = Tensor::<1>::from_data(gamma.to_data(), &device).require_grad();
            let beta = Tensor::<1>::from_data(beta.to_data(), &device).require_grad();
            let y = if fused {
                layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-5)
            } else {
                burn::tensor::module::layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-5)
            };
            let grads = (y.clone() * Tensor::from_data(upstream.to_data(), &device))
                .sum()
                .backward();
            [
                y.inner().into_data(),
                x.grad(&grads).unwrap().into_data(),
                gamma.grad(&grads).unwrap().into_data(),
                beta.grad(&grads).unwrap().into_data(),
            ]
        };
        // dγ and dβ sum n rows: their tolerance grows with n.
        let tolerances = [1e-4, 1e-3, 1e-5 * n as f64, 1e-5 * n as f64];
        for ((got, want), tol) in run(true).iter().zip(&run(false)).zip(tolerances) {
            got.assert_approx_eq::<f32>(want, Tolerance::absolute(tol));
        }
    }
}
