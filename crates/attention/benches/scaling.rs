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

use std::{process::Command, time::Instant};

mod common;

use attention::{AttentionInput, MultiHeadAttentionConfig, mask};
use burn::{prelude::*, tensor::Distribution};
use common::peak_rss_mib;

const BATCH: usize = 64;
const D_MODEL: usize = 64;
const HEADS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let backend = value("--backend").unwrap_or_else(|| "flex".into());
    if let Some(case) = value("--case") {
        // Child: one case, one JSON line.
        let [which, mode, len]: [&str; 3] = case
            .splitn(3, ':')
            .collect::<Vec<_>>()
            .try_into()
            .expect("--case impl:mode:len");
        run_case(&backend, which, mode, len.parse().expect("length"));
        return;
    }
    let lens: Vec<usize> = value("--lens")
        .unwrap_or_else(|| "64,128,256,512,1024".into())
        .split(',')
        .map(|l| l.parse().expect("--lens: comma-separated lengths"))
        .collect();
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    println!("backend {backend}, batch {BATCH}, d_model {D_MODEL}, {HEADS} heads");
    println!(
        "{:>6} {:>6} {:>6} {:>12} {:>14}",
        "len", "mode", "impl", "ms/iter", "peak RSS MiB"
    );
    for len in lens {
        for mode in ["forward", "train"] {
            for which in ["ours", "fused"] {
                let output = Command::new(&exe)
                    .args([
                        "--backend",
                        &backend,
                        "--case",
                        &format!("{which}:{mode}:{len}"),
                    ])
                    .output()
                    .expect("running a case");
                let line = String::from_utf8_lossy(&output.stdout);
                let Ok(result) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                    println!(
                        "{len:>6} {mode:>6} {which:>6} failed: {}",
                        String::from_utf8_lossy(&output.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                    continue;
                };
                println!(
                    "{len:>6} {mode:>6} {which:>6} {:>12.1} {:>14.0}",
                    result["ms_per_iter"].as_f64().unwrap_or(f64::NAN),
                    result["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
                );
                results.push(result);
            }
        }
    }
    if let Some(path) = value("--json") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&results).unwrap() + "\n",
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
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
    step(); // warm-up (kernel compilation, allocator)
    let started = Instant::now();
    let mut iters = 0;
    // At least 3 iterations and 2 seconds.
    while iters < 3 || started.elapsed().as_secs_f64() < 2.0 {
        step();
        iters += 1;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / iters as f64;
    println!(
        "{}",
        serde_json::json!({
            "backend": backend, "impl": which, "mode": mode, "len": len,
            "batch": BATCH, "d_model": D_MODEL, "heads": HEADS,
            "iters": iters, "ms_per_iter": ms, "peak_rss_mib": peak_rss_mib(),
        })
    );
}
