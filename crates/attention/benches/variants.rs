//! Positions inside attention and grouped-query attention against plain multi-head attention,
//! forward and forward + backward.
//!
//! Batch 64, d_model 64, 8 heads, a padding mask with lengths spread over 1..=len. Names are
//! `{forward|train}/{backend}/l{len}/{variant}`, variants:
//! - `mha`: plain [`MultiHeadAttention`] (no positions inside, 8 key/value heads);
//! - `rope`, `alibi`, `relative`: the same with that position scheme;
//! - `gqa2`, `mqa`: 2 key/value heads, 1 key/value head.
//!
//! `forward` is the inference path ([`MultiHeadAttention::forward_context`], burn's fused kernel
//! with the score bias as its `attn_bias`); `train` is [`MultiHeadAttention::forward`] and its
//! backward on the autodiff device.
//!
//! ```text
//! cargo bench --workspace --bench variants
//! ATTENTION_BENCH_BACKENDS=flex,wgpu ATTENTION_BENCH_LENS=32,128 cargo bench --workspace --bench variants
//! ```
//! Backends default to flex, and wgpu when an adapter answers; lengths to 32 and 128.

use attention::{
    AttentionInput, AttentionPositions, MultiHeadAttention, MultiHeadAttentionConfig, mask,
};
use burn::{prelude::*, tensor::Distribution};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;

const BATCH: usize = 64;
const D_MODEL: usize = 64;
const HEADS: usize = 8;

const VARIANTS: [&str; 6] = ["mha", "rope", "alibi", "relative", "gqa2", "mqa"];

fn module(variant: &str, device: &Device) -> MultiHeadAttention {
    let config = MultiHeadAttentionConfig::new(D_MODEL, HEADS);
    let config = match variant {
        "mha" => config,
        "rope" => config.with_positions(AttentionPositions::rope()),
        "alibi" => config.with_positions(AttentionPositions::Alibi),
        "relative" => config.with_positions(AttentionPositions::relative()),
        "gqa2" => config.with_n_kv_heads(Some(2)),
        "mqa" => config.with_n_kv_heads(Some(1)),
        _ => unreachable!(),
    };
    config.init(device)
}

fn input(len: usize, device: &Device) -> (Tensor<3>, Tensor<2, Bool>) {
    let x = Tensor::random(
        [BATCH, len, D_MODEL],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let lengths: Vec<usize> = (0..BATCH).map(|i| 1 + (i * 7919) % len).collect();
    (x, mask::padding_mask_from_lengths(&lengths, len, device))
}

fn bench(c: &mut Criterion) {
    for (backend, device) in common::devices("flex,wgpu") {
        for len in common::lens("32,128") {
            let (x, padding) = input(len, &device);
            let attend = |m: &MultiHeadAttention, x: Tensor<3>| {
                m.forward_context(AttentionInput::self_attention(x).mask_padding(padding.clone()))
            };
            let mut group = c.benchmark_group(format!("forward/{backend}/l{len}"));
            for variant in VARIANTS {
                let m = module(variant, &device);
                // GPU backends compile and autotune per shape on first use.
                for _ in 0..3 {
                    attend(&m, x.clone());
                }
                device.sync().expect("device sync");
                group.bench_function(BenchmarkId::from_parameter(variant), |b| {
                    b.iter(|| {
                        let out = attend(&m, x.clone());
                        device.sync().expect("device sync");
                        out
                    })
                });
            }
            group.finish();

            let ad = device.clone().autodiff();
            let (x, padding) = input(len, &ad);
            let step = |m: &MultiHeadAttention| {
                let x = x.clone().require_grad();
                let out = m.forward(
                    AttentionInput::self_attention(x.clone()).mask_padding(padding.clone()),
                );
                let grads = out.context.sum().backward();
                x.grad(&grads).expect("input gradient")
            };
            let mut group = c.benchmark_group(format!("train/{backend}/l{len}"));
            for variant in VARIANTS {
                let m = module(variant, &ad);
                for _ in 0..3 {
                    step(&m);
                }
                device.sync().expect("device sync");
                group.bench_function(BenchmarkId::from_parameter(variant), |b| {
                    b.iter(|| {
                        let grad = step(&m);
                        device.sync().expect("device sync");
                        grad
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
