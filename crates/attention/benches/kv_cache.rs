//! KV caches through a long decode: the memory each holds and what int8 costs in accuracy.
//! One multi-head attention layer (d_model 256, 4 heads of 64, 2 key/value heads, RoPE, random
//! weights and inputs), a 64-token prompt, then one token at a time to each length; the f32
//! cache (`KvCache::new`), the int8 one (`KvCache::int8(32)`, KIVI), the paged one
//! (`KvCache::paged(64)`) and the streaming one (`KvCache::streaming(4, 252)`). Prints a table and, with `--json PATH`, the rows.
//!
//! ```text
//! cargo bench --workspace --bench kv_cache [-- --lens 512,2048,8192 --json $PWD/out.json]
//! ```

use attention::{AttentionPositions, KvCache, MultiHeadAttentionConfig};
use burn::{prelude::*, tensor::Distribution};

mod common;

// As the `experiment` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let bench = common::ChildBench::from_env();
    let lens = bench.lens("512,2048,8192");
    let device = Device::flex();
    let mha = MultiHeadAttentionConfig::new(256, 4)
        .with_n_kv_heads(Some(2))
        .with_positions(AttentionPositions::rope())
        .init(&device);
    let longest = *lens.iter().max().expect("a length");
    let x = Tensor::<3>::random([1, longest, 256], Distribution::Normal(0.0, 1.0), &device);
    println!("one layer, d_model 256, 4 heads of 64, 2 key/value heads, RoPE; prompt 64 tokens");
    println!(
        "{:>6} {:>10} {:>12} {:>9} {:>12} {:>12} {:>10}",
        "len", "cache", "KiB held", "÷ f32", "max |err|", "mean |err|", "ms/token"
    );
    let mut rows = Vec::new();
    for &len in &lens {
        let mut outputs = Vec::new();
        for (name, mut cache) in [
            ("f32", KvCache::new()),
            ("int8", KvCache::int8(32)),
            ("paged", KvCache::paged(64)),
            ("streaming", KvCache::streaming(4, 252)),
        ] {
            let started = std::time::Instant::now();
            let mut out = vec![
                mha.forward_cached(x.clone().slice([0..1, 0..64]), &mut cache)
                    .context,
            ];
            for t in 64..len {
                out.push(
                    mha.forward_cached(x.clone().slice([0..1, t..t + 1]), &mut cache)
                        .context,
                );
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0 / len as f64;
            let out = Tensor::cat(out, 1);
            outputs.push(out.clone());
            let full = outputs[0].clone();
            let error = (out - full.clone()).abs();
            let (max, mean) = (
                error.clone().max().into_scalar::<f32>(),
                error.mean().into_scalar::<f32>(),
            );
            let f32_bytes = 4 * 2 * 2 * len * 64;
            println!(
                "{len:>6} {name:>10} {:>12.1} {:>9.2} {max:>12.2e} {mean:>12.2e} {ms:>10.3}",
                cache.bytes() as f64 / 1024.0,
                f32_bytes as f64 / cache.bytes() as f64,
            );
            rows.push(serde_json::json!({
                "len": len, "cache": name, "bytes": cache.bytes(), "f32_bytes": f32_bytes,
                "max_abs_error": max, "mean_abs_error": mean,
                "mean_abs_output": full.abs().mean().into_scalar::<f32>(), "ms_per_token": ms,
            }));
        }
    }
    if let Some(path) = bench.value("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap() + "\n")
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
