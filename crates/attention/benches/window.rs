//! Sliding-window attention through [`AttentionPattern`] against full attention and against the
//! same window written out as a mask tensor, forward + backward (`train`) or forward alone, at
//! growing lengths: time per iteration and the process's peak resident memory (Linux `VmHWM`),
//! each case in a child process of its own.
//!
//! ```text
//! cargo bench --workspace --bench window                      # lengths 1024,2048,4096
//! cargo bench --workspace --bench window -- --lens 512,1024 --window 128 --json $PWD/out.json
//! ```
//! (cargo runs benches from `crates/attention`, so give `--json` an absolute path.)
//! Batch 1, 8 heads of 64, a causal window of `--window` tokens (default 256), on flex.
//! Implementations:
//! - `pattern`: [`pattern_attention`] with the window's [`BlockMask`] (tiles of 64), built once
//!   per shape outside the timed loop (its build time is the JSON's `block_mask_ms`): empty
//!   tiles skipped;
//! - `mask`: [`fused_attention`] with the window as a `[1, 1, l, l]` mask tensor (every tile
//!   computed, the mask read per pair): what the crate did before patterns;
//! - `full`: [`fused_attention`] without a mask (causal-free full attention: the `l²` bound).
//!
//! PyTorch's side is `benches/window_torch.py` (SDPA with the mask, and `flex_attention`).

mod common;

use attention::{
    AttentionPattern,
    fused::{fused_attention, pattern_attention},
    mask_mod::{BlockMask, MaskMod, causal, window},
};
use burn::{prelude::*, tensor::Distribution};
use common::{ChildBench, peak_rss_mib, time_per_iter};

// As the `experiment` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1;
const HEADS: usize = 8;
const D_HEAD: usize = 64;

fn main() {
    let bench = ChildBench::from_env();
    let size: usize = bench
        .value("--window")
        .map(|w| w.parse().expect("--window: a number of tokens"))
        .unwrap_or(256);
    if let Some((which, mode, len)) = bench.case() {
        // Child: one case, one JSON line.
        run_case(&which, &mode, len, size);
        return;
    }
    println!("flex, batch {BATCH}, {HEADS} heads of {D_HEAD}, causal window {size}");
    let lens = bench.lens("1024,2048,4096");
    bench.run_all(
        &lens,
        &["train", "forward"],
        &["pattern", "mask", "full"],
        &[("--window", size.to_string())],
    );
}

fn run_case(which: &str, mode: &str, len: usize, size: usize) {
    let plain = Device::flex();
    let device = if mode == "train" {
        plain.clone().autodiff()
    } else {
        plain.clone()
    };
    let random = || {
        Tensor::<4>::random(
            [BATCH, HEADS, len, D_HEAD],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
    };
    let (q, k, v) = (random(), random(), random());
    let sliding = causal().and(window(size - 1, 0));
    let shape = [1, 1, len, len];
    // Built once per shape, as a model would (outside the timed loop).
    let started = std::time::Instant::now();
    let blocks = BlockMask::with_default_blocks(&sliding, shape);
    let block_mask_ms = started.elapsed().as_secs_f64() * 1000.0;
    let pattern = AttentionPattern::new().with_block_mask(blocks);
    let mask = (which == "mask").then(|| sliding.to_mask(shape, &device));
    let scale = 1.0 / (D_HEAD as f64).sqrt();
    let step = || {
        let track = |t: &Tensor<4>| {
            if mode == "train" {
                t.clone().require_grad()
            } else {
                t.clone()
            }
        };
        let (q, k, v) = (track(&q), track(&k), track(&v));
        let out = match which {
            "pattern" => pattern_attention(q.clone(), k, v, None, None, scale, &pattern),
            "mask" => fused_attention(q.clone(), k, v, mask.clone(), None, scale),
            "full" => fused_attention(q.clone(), k, v, None, None, scale),
            other => panic!("unknown implementation `{other}`"),
        };
        if mode == "train" {
            let grads = out.sum().backward();
            let _ = q.grad(&grads);
        } else {
            let _ = out.into_data();
        }
    };
    let (iters, ms) = time_per_iter(step);
    println!(
        "{}",
        serde_json::json!({
            "backend": "flex", "impl": which, "mode": mode, "len": len, "window": size,
            "batch": BATCH, "heads": HEADS, "d_head": D_HEAD,
            "iters": iters, "ms_per_iter": ms, "peak_rss_mib": peak_rss_mib(),
            "block_mask_ms": block_mask_ms,
        })
    );
}
