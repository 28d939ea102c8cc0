//! Equivalences that hold on every backend (flex, ndarray, wgpu): a pruned module equals the
//! full one with those heads' gates at 0, for every position scheme.

mod common;

use attention::{AttentionInput, AttentionPositions, MultiHeadAttentionConfig, mask};
use burn::{module::Param, prelude::*, tensor::Distribution};
use common::*;

fn devices() -> Vec<(&'static str, Device)> {
    let mut devices = cpu_devices();
    devices.extend(wgpu_device().map(|d| ("wgpu", d)));
    devices
}

fn schemes() -> [AttentionPositions; 4] {
    [
        AttentionPositions::None,
        AttentionPositions::rope(),
        AttentionPositions::Alibi,
        AttentionPositions::relative(),
    ]
}

#[test]
fn pruned_heads_equal_gated_heads() {
    for (backend, device) in devices() {
        for positions in schemes() {
            let mut mha = MultiHeadAttentionConfig::new(16, 4)
                .with_positions(positions.clone())
                .init(&device);
            if let Some(relative) = mha.positions.relative.as_mut() {
                let table = Tensor::<2>::random([32, 4], Distribution::Default, &device);
                relative.embedding.weight = Param::from_tensor(table);
            }
            let x = Tensor::<3>::random([2, 6, 16], Distribution::Default, &device);
            let padding = mask::padding_mask_from_lengths(&[6, 2], 6, &device);
            let input = AttentionInput::self_attention(x)
                .mask_padding(padding)
                .offsets(3, 3);
            let gates = Tensor::<1>::from_data([0.0, 1.0, 1.0, 0.0], &device);
            let gated = mha.forward_context(input.clone().head_gates(gates));
            let pruned = mha.prune_heads(&[0, 3]).unwrap().forward_context(input);
            let diff = max_abs_diff(&values(pruned), &values(gated));
            eprintln!("{backend} {positions:?}: pruned vs gated {diff:.2e}");
            assert!(diff < 1e-5, "{backend} {positions:?}: {diff}");
        }
    }
}
