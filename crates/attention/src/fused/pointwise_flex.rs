//! The flex kernels of GELU and dropout (f32). `erf` is a rational function of `x²` on
//! `[-4, 4]` (Eigen's and XLA's `erf` for f32; beyond ±4 it is ±1 in f32), `exp` the fused
//! attention kernels' polynomial, and dropout's mask a hash of the seed, row and column: all
//! branch-free, so the loops vectorise. They are compiled for the baseline x86-64 and for
//! AVX2/FMA, picked at run time; blocks of 32 Ki elements go to `rayon`: MiniLM's smallest
//! tensors on SST-2 (`32×15×384`, 184 Ki elements) still split over several threads, and a block
//! (tens of microseconds of work) outweighs the cost of a task.
//!
//! Other float types go through burn's own ops.

use burn::{
    backend::{Flex, flex::FlexTensor, ops::ActivationOps, tensor::FloatTensor},
    tensor::{DType, Shape, TensorData},
};
use rayon::prelude::*;

use super::DropoutMask;
use super::flex::{avx2_fma, exp};

/// Elements per `rayon` task (the AdamW kernel's too).
pub(super) const TASK: usize = 1 << 15;

pub(super) fn gelu(x: FloatTensor<Flex>) -> FloatTensor<Flex> {
    if x.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu(x);
    }
    let x = x.to_contiguous();
    let xs = values(&x);
    let mut y = vec![0f32; xs.len()];
    y.par_chunks_mut(TASK)
        .zip(xs.par_chunks(TASK))
        .for_each(|(y, x)| gelu_block(x, y));
    tensor(y, x.layout().shape().clone())
}

pub(super) fn gelu_backward(x: FloatTensor<Flex>, grad: FloatTensor<Flex>) -> FloatTensor<Flex> {
    if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
    }
    let x = x.to_contiguous();
    // The gradient is usually this op's alone: it becomes dx in place.
    let mut dx = owned(grad);
    let xs = values(&x);
    dx.storage_mut::<f32>()
        .par_chunks_mut(TASK)
        .zip(xs.par_chunks(TASK))
        .for_each(|(g, x)| gelu_backward_block(x, g));
    dx
}

pub(super) fn dropout(x: FloatTensor<Flex>, mask: DropoutMask) -> FloatTensor<Flex> {
    assert_eq!(
        x.dtype(),
        DType::F32,
        "the dropout kernel takes f32 (pointwise_supported)"
    );
    let d = x.layout().shape()[1];
    let mut y = owned(x);
    if d == 0 {
        return y;
    }
    let rows = TASK.div_ceil(d);
    y.storage_mut::<f32>()
        .par_chunks_mut(rows * d)
        .enumerate()
        .for_each(|(task, block)| dropout_block(block, d, (task * rows) as u64, mask));
    y
}

/// `t` contiguous from offset 0 and held by no one else, so that its storage can be written
/// in place (a copy otherwise).
pub(super) fn owned(t: FlexTensor) -> FlexTensor {
    let whole = t.layout().start_offset() == 0
        && t.layout().is_contiguous()
        && t.storage::<f32>().len() == t.layout().num_elements();
    if whole {
        t
    } else {
        let shape = t.layout().shape().clone();
        let data: Vec<f32> = values(&t.to_contiguous()).to_vec();
        tensor(data, shape)
    }
}

/// A contiguous f32 tensor's values.
pub(super) fn values(t: &FlexTensor) -> &[f32] {
    let start = t.layout().start_offset();
    &t.storage::<f32>()[start..start + t.layout().num_elements()]
}

pub(super) fn tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn gelu_block(x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { gelu_block_avx2(x, y) };
    }
    gelu_block_body::<false>(x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_block_avx2(x: &[f32], y: &mut [f32]) {
    gelu_block_body::<true>(x, y)
}

#[inline(always)]
fn gelu_block_body<const FMA: bool>(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x * cdf::<FMA>(x);
    }
}

fn gelu_backward_block(x: &[f32], g: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { gelu_backward_block_avx2(x, g) };
    }
    gelu_backward_block_body::<false>(x, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_backward_block_avx2(x: &[f32], g: &mut [f32]) {
    gelu_backward_block_body::<true>(x, g)
}

/// `g ← g · (Φ(x) + x·φ(x))`.
#[inline(always)]
fn gelu_backward_block_body<const FMA: bool>(x: &[f32], g: &mut [f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for (g, &x) in g.iter_mut().zip(x) {
        let pdf = INV_SQRT_2PI * exp::<FMA>(-0.5 * x * x);
        *g *= cdf::<FMA>(x) + x * pdf;
    }
}

fn dropout_block(block: &mut [f32], d: usize, first_row: u64, mask: DropoutMask) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { dropout_block_avx2(block, d, first_row, mask) };
    }
    dropout_block_body(block, d, first_row, mask)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dropout_block_avx2(block: &mut [f32], d: usize, first_row: u64, mask: DropoutMask) {
    dropout_block_body(block, d, first_row, mask)
}

#[inline(always)]
fn dropout_block_body(block: &mut [f32], d: usize, first_row: u64, mask: DropoutMask) {
    for (i, row) in block.chunks_exact_mut(d).enumerate() {
        mask.apply(row, mask.row_key(first_row + i as u64), 0);
    }
}

/// `Φ(x) = (1 + erf(x/√2)) / 2`.
#[inline(always)]
fn cdf<const FMA: bool>(x: f32) -> f32 {
    0.5 + 0.5 * erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2)
}

/// `erf(x)` within 5e-7, branch-free: `x·P(x²)/Q(x²)` on `[-4, 4]`, where `x` is clamped
/// (beyond it `erf` is ±1 in f32). Eigen's `generic_fast_erf_float` (also XLA's).
#[inline(always)]
fn erf<const FMA: bool>(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_6e-3,
        -7.349_906_4e-4,
        -5.692_506_2e-5,
        -2.101_024e-6,
        2.770_681_5e-8,
        -2.726_142_4e-10,
    ];
    const BETA: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329_3e-3,
        -1.682_827e-3,
        -2.133_740_5e-4,
        -1.456_607_15e-5,
    ];
    // a·b + c, fused where the CPU has it (without, `mul_add` would be a libm call).
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for &c in ALPHA[..6].iter().rev() {
        p = madd(x2, p, c);
    }
    let mut q = BETA[4];
    for &c in BETA[..4].iter().rev() {
        q = madd(x2, q, c);
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `erf` by its Taylor series in f64: for `|x| ≤ 4` the terms stay below 1e6, so the sum
    /// is good to ~1e-10; beyond, `erf` is ±1 within 2e-8.
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_5e_7_and_odd_with_and_without_fma() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            for got in [erf::<false>(x), erf::<true>(x)] {
                worst = worst.max((got as f64 - erf_reference(x as f64)).abs());
            }
            assert_eq!(erf::<true>(-x), -erf::<true>(x));
        }
        assert!(worst < 5e-7, "error {worst}");
        assert!((erf::<true>(f32::INFINITY) - 1.0).abs() < 5e-7);
        assert!(erf::<true>(f32::NAN).is_nan());
    }

    /// Rows that straddle task boundaries (a width not dividing the task) keep their own keys:
    /// the blocks equal one pass over all rows.
    #[test]
    fn dropout_blocks_equal_one_pass() {
        let (n, d) = (3 * TASK / 100 + 7, 100);
        let mask = DropoutMask::new(0.4, 99);
        let x = FlexTensor::from_data(TensorData::new(vec![1f32; n * d], [n, d]));
        let got: Vec<f32> = dropout(x, mask).into_data().to_vec().unwrap();
        let mut want = vec![1f32; n * d];
        dropout_block_body(&mut want, d, 0, mask);
        assert_eq!(got, want);
    }
}
