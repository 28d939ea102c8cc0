//! The matrix products of a MiniLM-L6 fine-tuning step (issue 21): 32 texts × 15 tokens = 480
//! rows, hidden 384, feed-forward 1,536, in the three layouts a linear layer runs (forward
//! `x·W`, input gradient `dy·Wᵀ`, weight gradient `xᵀ·dy`, the transposes as views, as burn's
//! linear backward makes them). Each through burn-flex's `matmul` (what training runs) and
//! through `gemm` called directly with its `rayon` threading (what burn-flex calls), in GFLOP/s:
//! the median of 7 timings of 20 products each. One JSON line per product.
//!
//! ```text
//! benches/matmul.sh 1 2      # this bench beside PyTorch's (benches/matmul_torch.py), alternating
//! cargo build --workspace --bench matmul && RAYON_NUM_THREADS=2 target/debug/deps/matmul-* --bench
//! ```

use std::time::Instant;

use burn::{prelude::*, tensor::Distribution};

// As the `experiment` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `(m, k, n, layout)`: `x·W` both row-major, `dy·Wᵀ` the right operand transposed, `xᵀ·dy` the
/// left one.
const PRODUCTS: [(usize, usize, usize, &str); 9] = [
    (480, 384, 384, "x·W"),
    (480, 384, 1536, "x·W"),
    (480, 1536, 384, "x·W"),
    (480, 384, 384, "dy·Wᵀ"),
    (480, 1536, 384, "dy·Wᵀ"),
    (480, 384, 1536, "dy·Wᵀ"),
    (384, 480, 384, "xᵀ·dy"),
    (384, 480, 1536, "xᵀ·dy"),
    (1536, 480, 384, "xᵀ·dy"),
];

/// GFLOP/s of `run` (one product of `m·k·n`): the median of 7 timings of 20 calls, after 5.
fn gflops(m: usize, k: usize, n: usize, mut run: impl FnMut()) -> f64 {
    for _ in 0..5 {
        run();
    }
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..20 {
                run();
            }
            20.0 * 2.0 * (m * k * n) as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[3]
}

/// `[rows, cols]` as a tensor, or as the transposed view of a `[cols, rows]` one.
fn operand(rows: usize, cols: usize, transposed: bool, device: &Device) -> Tensor<2> {
    if transposed {
        Tensor::<2>::random([cols, rows], Distribution::Default, device).swap_dims(0, 1)
    } else {
        Tensor::<2>::random([rows, cols], Distribution::Default, device)
    }
}

/// The same product through `gemm` directly, operands as `Vec`s in the same layouts.
fn gemm_direct(m: usize, k: usize, n: usize, layout: &str) -> impl FnMut() {
    let (lhs, rhs) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
    let mut out = vec![0f32; m * n];
    // (column stride, row stride) of each operand.
    let lhs_strides = if layout == "xᵀ·dy" {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let rhs_strides = if layout == "dy·Wᵀ" {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    move || {
        // SAFETY: the strides address `lhs` (m·k), `rhs` (k·n) and `out` (m·n) within bounds.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs.as_ptr(),
                lhs_strides.0,
                lhs_strides.1,
                rhs.as_ptr(),
                rhs_strides.0,
                rhs_strides.1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            )
        }
    }
}

fn main() {
    let device = Device::flex();
    let threads = rayon::current_num_threads();
    for (m, k, n, layout) in PRODUCTS {
        let lhs = operand(m, k, layout == "xᵀ·dy", &device);
        let rhs = operand(k, n, layout == "dy·Wᵀ", &device);
        // flex computes when the op is called; black_box keeps the result alive until dropped.
        let flex = gflops(m, k, n, || {
            std::hint::black_box(lhs.clone().matmul(rhs.clone()));
        });
        let direct = gflops(m, k, n, gemm_direct(m, k, n, layout));
        for (program, rate) in [("burn-flex", flex), ("gemm", direct)] {
            println!(
                "{{\"program\": \"{program}\", \"threads\": {threads}, \"m\": {m}, \"k\": {k}, \
                 \"n\": {n}, \"layout\": \"{layout}\", \"gflops\": {rate:.1}}}"
            );
        }
    }
}
