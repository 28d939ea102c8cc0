//! LayerNorm forward + backward on an autodiff device: [`attention::LayerNorm`] (one op with its
//! own backward, `attention::fused::layer_norm`) against `burn::nn::LayerNorm` (its
//! decomposition recorded op by op), same weights, loss = sum of the output times a fixed
//! random tensor.
//!
//! Shapes `[batch, len, d]`: the seed classifier on SST-2's bucketed batches (`64×10×64`,
//! `64×40×64`), a MiniLM-sized encoder (`32×128×384`) and a BERT-base-sized one (`16×256×768`).
//! Names are `{backend}/{batch}x{len}x{d}/{fused|burn}`.
//!
//! ```text
//! cargo bench --workspace --bench layer_norm
//! ATTENTION_BENCH_BACKENDS=flex,ndarray cargo bench --workspace --bench layer_norm -- '64x10'
//! ```
//! Backends default to flex; threads from `RAYON_NUM_THREADS`.

use attention::LayerNormConfig;
use burn::{prelude::*, tensor::Distribution};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;

// As the `experiment` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHAPES: [[usize; 3]; 4] = [[64, 10, 64], [64, 40, 64], [32, 128, 384], [16, 256, 768]];

fn bench(c: &mut Criterion) {
    for (name, plain) in common::devices("flex") {
        let device = plain.autodiff();
        for shape in SHAPES {
            let [batch, len, d] = shape;
            let ours = LayerNormConfig::new(d).init(&device);
            let burn = burn::nn::LayerNormConfig::new(d)
                .init(&device)
                .load_record(ours.clone().into_record());
            let x =
                Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let mut group = c.benchmark_group(format!("{name}/{batch}x{len}x{d}"));
            group.sample_size(20);
            let step = |y: Tensor<3>| {
                let grads = (y * upstream.clone()).sum().backward();
                x.grad(&grads).expect("x is tracked").into_data()
            };
            group.bench_function(BenchmarkId::from_parameter("fused"), |b| {
                b.iter(|| step(ours.forward(x.clone())))
            });
            group.bench_function(BenchmarkId::from_parameter("burn"), |b| {
                b.iter(|| step(burn.forward(x.clone())))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
