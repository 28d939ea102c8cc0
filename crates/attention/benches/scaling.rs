//! Time and peak memory of multi-head attention against sequence length, for the module that
//! returns the attention weights (`ours`) and the fused path (`fused`), forward alone and forward +
//! backward (`train`). Each case runs in a child process of its own so that its peak resident
//! memory (Linux `VmHWM`) is its own.
//!
//! ```text
//! cargo bench --workspace --bench scaling                         # flex, lengths 64..1024
//! cargo bench --workspace --bench scaling -- --backend ndarray --lens 64,256 --json $PWD/out.json
//! ```
//! (cargo runs benches from `crates/attention`, so give `--json` an absolute path.)
//! Batch 64, d_model 64, 4 heads, a padding mask with lengths spread over 1..=len. Peak memory
//! is the process's resident memory, so it means something for the CPU backends only.

mod common;

use attention::{AttentionInput, MultiHeadAttentionConfig, mask};
use burn::{prelude::*, tensor::Distribution};
use common::{ChildBench, peak_rss_mib, time_per_iter};

const BATCH: usize = 64;
const D_MODEL: usize = 64;
const HEADS: usize = 4;

fn main() {
    let bench = ChildBench::from_env();
    let backend = bench.value("--backend").unwrap_or_else(|| "flex".into());
    if let Some((which, mode, len)) = bench.case() {
        // Child: one case, one JSON line.
        run_case(&backend, &which, &mode, len);
        return;
    }
    println!("backend {backend}, batch {BATCH}, d_model {D_MODEL}, {HEADS} heads");
    let lens = bench.lens("64,128,256,512,1024");
    bench.run_all(
        &lens,
        &["forward", "train"],
        &["ours", "fused"],
        &[("--backend", backend.clone())],
    );
}

#[allow(deprecated)] // `Device::ndarray` is deprecated upstream but still shipped.
fn device(backend: &str) -> Device {
    match backend {
        "flex" => Device::flex(),
        "ndarray" => Device::ndarray(),
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        other => panic!("--backend: unknown backend `{other}`"),
    }
}

fn run_case(backend: &str, which: &str, mode: &str, len: usize) {
    let plain = device(backend);
    let device = if mode == "train" {
        plain.clone().autodiff()
    } else {
        plain.clone()
    };
    let mha = MultiHeadAttentionConfig::new(D_MODEL, HEADS).init(&device);
    let x = Tensor::<3>::random(
        [BATCH, len, D_MODEL],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let lengths: Vec<usize> = (0..BATCH).map(|i| 1 + (i * 7919) % len).collect();
    let padding = mask::padding_mask_from_lengths(&lengths, len, &device);
    let step = || {
        let x = if mode == "train" {
            x.clone().require_grad()
        } else {
            x.clone()
        };
        let input = AttentionInput::self_attention(x.clone()).mask_padding(padding.clone());
        let out = match which {
            "ours" => mha.forward(input).context,
            "fused" => mha.forward_context(input),
            other => panic!("unknown implementation `{other}`"),
        };
        if mode == "train" {
            let grads = out.sum().backward();
            let _ = x.grad(&grads);
        }
        plain.sync().expect("device sync");
    };
    let (iters, ms) = time_per_iter(step);
    println!(
        "{}",
        serde_json::json!({
            "backend": backend, "impl": which, "mode": mode, "len": len,
            "batch": BATCH, "d_model": D_MODEL, "heads": HEADS,
            "iters": iters, "ms_per_iter": ms, "peak_rss_mib": peak_rss_mib(),
        })
    );
}
