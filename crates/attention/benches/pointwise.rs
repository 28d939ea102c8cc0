//! GELU and dropout forward + backward on an autodiff device: `attention::fused::{gelu,
//! dropout}` (one op each with its own backward; vectorised `erf`, a hashed mask regenerated in
//! the backward) against burn's `gelu` and `Dropout` (libm's `erff`; a stored mask drawn from
//! ChaCha), loss = sum of the output times a fixed random tensor.
//!
//! Shapes `[batch, len, d]`: MiniLM-L6 fine-tuned on SST-2's bucketed batches (the
//! feed-forward's hidden activations `32×15×1536`, where GELU runs, and the hidden states
//! `32×15×384`, where dropout runs) and a BERT-base-sized batch (`16×256×3072`). Names are
//! `{backend}/{op}/{batch}x{len}x{d}/{fused|burn}`.
//!
//! ```text
//! cargo bench --workspace --bench pointwise
//! RAYON_NUM_THREADS=1 cargo bench --workspace --bench pointwise -- 'gelu/32x15'
//! ```
//! Backends default to flex (`ATTENTION_BENCH_BACKENDS`); threads from `RAYON_NUM_THREADS`.

use attention::fused;
use burn::{prelude::*, tensor::Distribution};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;

// As the `experiment` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHAPES: [[usize; 3]; 3] = [[32, 15, 384], [32, 15, 1536], [16, 256, 3072]];

fn bench(c: &mut Criterion) {
    let burn_dropout = burn::nn::DropoutConfig::new(0.1).init();
    for (name, plain) in common::devices("flex") {
        let device = plain.autodiff();
        for shape in SHAPES {
            let [batch, len, d] = shape;
            let x =
                Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let step = |y: Tensor<3>| {
                let grads = (y * upstream.clone()).sum().backward();
                x.grad(&grads).expect("x is tracked").into_data()
            };
            type Op<'a> = (&'a str, Box<dyn Fn(Tensor<3>) -> Tensor<3> + 'a>);
            let ops: [(&str, Op, Op); 2] = [
                (
                    "gelu",
                    ("fused", Box::new(fused::gelu)),
                    ("burn", Box::new(burn::tensor::activation::gelu)),
                ),
                (
                    "dropout",
                    ("fused", Box::new(|x| fused::dropout(x, 0.1))),
                    ("burn", Box::new(|x| burn_dropout.forward(x))),
                ),
            ];
            for (op, ours, theirs) in ops {
                let mut group = c.benchmark_group(format!("{name}/{op}/{batch}x{len}x{d}"));
                group.sample_size(20);
                for (label, f) in [ours, theirs] {
                    group.bench_function(BenchmarkId::from_parameter(label), |b| {
                        b.iter(|| step(f(x.clone())))
                    });
                }
                group.finish();
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
