//! One attention layer's training step (forward + backward) at one length, as
//! `benches/torch_attn_train.py` runs it in PyTorch: `MultiHeadAttentionConfig::new(64, 4)`,
//! batch 16, a padding mask (lengths from `len / 2` to `len`, the first row full), loss = mean
//! of the squared output, 1 warm-up and `STEPS` timed steps. One case per process, so that the
//! peak resident memory (`VmHWM`) is the case's own; threads from `RAYON_NUM_THREADS`;
//! mimalloc, as the `experiment` binary.
//!
//! ```text
//! cargo bench --workspace --bench train_step -- fused 1024          # the fused op (flex)
//! cargo bench --workspace --bench train_step -- decomposition 1024  # the recorded ops
//! ```
//! Arguments: `IMPL LEN [BATCH=16] [STEPS=5] [BACKEND=flex] [LR=0] [DROPOUT=0]`; prints one JSON
//! line. `DROPOUT` is the attention dropout (inside the fused op on flex, burn's `Dropout` on the
//! decomposition's weights).
//! `benches/attention_train.sh` runs the grid beside PyTorch, alternating. With `LR > 0` every
//! step (the warm-up too) also updates the layer with Adam towards a random target, and the
//! line holds each step's loss: `benches/loss_curve.sh` compares the fused op's curve with
//! the decomposition's.

mod common;

use std::time::Instant;

use attention::{AttentionInput, MultiHeadAttention, MultiHeadAttentionConfig, mask};
use burn::{
    optim::{AdamConfig, GradientsParams},
    prelude::*,
    tensor::Distribution,
};

// As the `experiment` binary: the system allocator maps and faults in fresh pages for every
// large tensor of every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const D_MODEL: usize = 64;
const HEADS: usize = 4;

#[allow(deprecated)] // `Device::ndarray` is deprecated upstream but still shipped.
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let which = arg(0, "fused");
    let len: usize = arg(1, "128").parse().expect("LEN: a number");
    let batch: usize = arg(2, "16").parse().expect("BATCH: a number");
    let steps: usize = arg(3, "5").parse().expect("STEPS: a number");
    let backend = arg(4, "flex");
    let lr: f64 = arg(5, "0").parse().expect("LR: a number");
    let dropout: f64 = arg(6, "0").parse().expect("DROPOUT: a number");
    let plain = match backend.as_str() {
        "flex" => Device::flex(),
        "ndarray" => Device::ndarray(),
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        other => panic!("BACKEND: unknown backend `{other}`"),
    };
    let device = plain.clone().autodiff();
    device.seed(0);
    let mut mha = MultiHeadAttentionConfig::new(D_MODEL, HEADS)
        .with_dropout(dropout)
        .init(&device);
    let x = Tensor::<3>::random(
        [batch, len, D_MODEL],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let lengths: Vec<usize> = (0..batch)
        .map(|i| {
            if i == 0 {
                len
            } else {
                len / 2 + (i * 7919) % (len - len / 2 + 1)
            }
        })
        .collect();
    let padding = mask::padding_mask_from_lengths(&lengths, len, &device);
    let mut optim = (lr > 0.0).then(|| AdamConfig::new().init());
    // Trained, the layer regresses a fixed random target (towards zero, Adam would only shrink
    // the weights).
    let target = optim.is_some().then(|| {
        Tensor::<3>::random(
            [batch, len, D_MODEL],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
    });
    let mut losses = Vec::new();
    let mut step = |mha: MultiHeadAttention| {
        let input = AttentionInput::self_attention(x.clone()).mask_padding(padding.clone());
        let out = match which.as_str() {
            "fused" => mha.forward_context(input),
            "decomposition" => mha.forward(input).context,
            other => panic!("IMPL: `fused` or `decomposition`, not `{other}`"),
        };
        let loss = match &target {
            Some(target) => (out - target.clone()).powi_scalar(2).mean(),
            None => out.powi_scalar(2).mean(),
        };
        let grads = loss.backward();
        let mha = match optim.as_mut() {
            Some(optim) => {
                losses.push(loss.into_scalar::<f32>());
                let grads = GradientsParams::from_grads(grads, &mha);
                optim.step(lr, mha, grads)
            }
            None => {
                let _ = mha.w_q.weight.val().grad(&grads);
                mha
            }
        };
        plain.sync().expect("device sync");
        mha
    };
    mha = step(mha); // warm-up: allocator, kernels
    let started = Instant::now();
    for _ in 0..steps {
        mha = step(mha);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / steps as f64;
    let threads = std::env::var("RAYON_NUM_THREADS").ok();
    println!(
        "{}",
        serde_json::json!({
            "program": "attention", "mode": which, "backend": backend, "len": len,
            "batch": batch, "threads": threads, "steps": steps, "ms_per_step": ms,
            "peak_rss_mib": common::peak_rss_mib(), "lr": lr, "dropout": dropout, "losses": losses,
        })
    );
}
