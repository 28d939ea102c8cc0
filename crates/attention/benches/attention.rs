//! Multi-head attention, forward and forward + backward, against burn's own
//! `nn::attention::MultiHeadAttention` and the fused `burn::tensor::module::attention` path.
//!
//! Same shapes for all three: batch 64, d_model 64, no biases, no dropout, a padding mask with
//! random lengths (every row keeps at least one key). Benchmark names are
//! `{forward|train}/{backend}/h{heads}-l{len}/{ours|fused|burn}`:
//! - `ours`: [`MultiHeadAttention::forward`], which also returns the attention weights;
//! - `fused`: [`MultiHeadAttention::forward_context`], burn's fused attention kernel;
//! - `burn`: `burn::nn::attention::MultiHeadAttention` (always materialises the weights).
//!
//! ```text
//! cargo bench --workspace --bench attention                      # everything (long)
//! cargo bench --workspace --bench attention -- 'forward/flex'    # a filter
//! ATTENTION_BENCH_BACKENDS=flex,wgpu ATTENTION_BENCH_LENS=32,128 cargo bench --workspace --bench attention
//! ```
//! Backends default to flex and ndarray, and wgpu when an adapter answers; lengths to 32, 128
//! and 512. `benches/attention_table.py` turns criterion's output into the table in
//! BENCHMARKS.md.

use attention::{AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig, mask};
use burn::{
    nn::attention::{
        MhaInput, MultiHeadAttention as BurnMha, MultiHeadAttentionConfig as BurnMhaConfig,
    },
    prelude::*,
    tensor::Distribution,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;

const BATCH: usize = 64;
const D_MODEL: usize = 64;
const HEADS: [usize; 3] = [1, 4, 8];

/// Both modules with the same weights, and an input with its padding mask.
struct Case {
    ours: MultiHeadAttention,
    burn: BurnMha,
    x: Tensor<3>,
    padding: Tensor<2, Bool>,
}

impl Case {
    fn new(heads: usize, len: usize, device: &Device) -> Self {
        let ours = MultiHeadAttentionConfig::new(D_MODEL, heads).init(device);
        let mut burn = BurnMhaConfig::new(D_MODEL, heads)
            .with_dropout(0.0)
            .with_query_bias(false)
            .with_key_bias(false)
            .with_value_bias(false)
            .with_output_bias(false)
            .init(device);
        // Same weights: both store `[d_in, d_out]`.
        burn.query.weight = ours.w_q.weight.clone();
        burn.key.weight = ours.w_k.weight.clone();
        burn.value.weight = ours.w_v.weight.clone();
        burn.output.weight = ours.w_o.weight.clone();
        let x = Tensor::random(
            [BATCH, len, D_MODEL],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        // Lengths spread over 1..=len, as in a padded batch of sentences.
        let lengths: Vec<usize> = (0..BATCH).map(|i| 1 + (i * 7919) % len).collect();
        let padding = mask::padding_mask_from_lengths(&lengths, len, device);
        Self {
            ours,
            burn,
            x,
            padding,
        }
    }

    fn run(&self, which: &str, x: Tensor<3>) -> Tensor<3> {
        match which {
            "ours" => {
                self.ours
                    .forward(AttentionInput::self_attention(x).mask_padding(self.padding.clone()))
                    .context
            }
            "fused" => self.ours.forward_context(
                AttentionInput::self_attention(x).mask_padding(self.padding.clone()),
            ),
            "burn" => {
                self.burn
                    .forward(MhaInput::self_attn(x).mask_pad(self.padding.clone()))
                    .context
            }
            _ => unreachable!(),
        }
    }
}

const IMPLS: [&str; 3] = ["ours", "fused", "burn"];

fn bench(c: &mut Criterion) {
    for (backend, device) in common::devices("flex,ndarray,wgpu") {
        for len in common::lens("32,128,512") {
            for heads in HEADS {
                let shape = format!("h{heads}-l{len}");
                let case = Case::new(heads, len, &device);
                // GPU backends compile and autotune kernels per shape on first use; criterion's
                // short warm-up would charge that to whichever implementation runs first.
                for which in IMPLS {
                    for _ in 0..3 {
                        case.run(which, case.x.clone());
                    }
                }
                device.sync().expect("device sync");
                let mut group = c.benchmark_group(format!("forward/{backend}/{shape}"));
                for which in IMPLS {
                    group.bench_function(BenchmarkId::from_parameter(which), |b| {
                        b.iter(|| {
                            let out = case.run(which, case.x.clone());
                            device.sync().expect("device sync");
                            out
                        })
                    });
                }
                group.finish();

                let ad = device.clone().autodiff();
                let case = Case::new(heads, len, &ad);
                for which in IMPLS {
                    for _ in 0..3 {
                        let x = case.x.clone().require_grad();
                        case.run(which, x).sum().backward();
                    }
                }
                device.sync().expect("device sync");
                let mut group = c.benchmark_group(format!("train/{backend}/{shape}"));
                for which in IMPLS {
                    group.bench_function(BenchmarkId::from_parameter(which), |b| {
                        b.iter(|| {
                            let x = case.x.clone().require_grad();
                            let grads = case.run(which, x.clone()).sum().backward();
                            let grad = x.grad(&grads).expect("input gradient");
                            device.sync().expect("device sync");
                            grad
                        })
                    });
                }
                group.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
