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

/// Feeding a sequence through the cache (a prompt of 3, then one token at a time) gives the
/// rows of one causal pass, for every position scheme, with and without grouped-query heads.
#[test]
fn cached_decoding_equals_the_full_causal_pass() {
    for (backend, device) in devices() {
        for positions in schemes() {
            for kv_heads in [4, 2, 1] {
                let mut mha = MultiHeadAttentionConfig::new(16, 4)
                    .with_n_kv_heads(Some(kv_heads))
                    .with_positions(positions.clone())
                    .init(&device);
                if let Some(relative) = mha.positions.relative.as_mut() {
                    let table = Tensor::<2>::random([32, 4], Distribution::Default, &device);
                    relative.embedding.weight = Param::from_tensor(table);
                }
                let len = 7;
                let x = Tensor::<3>::random([2, len, 16], Distribution::Default, &device);
                let causal = mask::causal_mask(2, len, &device);
                let full =
                    mha.forward(AttentionInput::self_attention(x.clone()).mask_attention(causal));
                let mut cache = attention::KvCache::new();
                let mut pieces = vec![
                    mha.forward_cached(x.clone().narrow(1, 0, 3), &mut cache)
                        .context,
                ];
                for t in 3..len {
                    pieces.push(
                        mha.forward_cached(x.clone().narrow(1, t, 1), &mut cache)
                            .context,
                    );
                }
                assert_eq!(cache.len(), len);
                let cached = Tensor::cat(pieces, 1);
                let diff = max_abs_diff(&values(cached), &values(full.context));
                eprintln!("{backend} {positions:?} kv {kv_heads}: cached vs full {diff:.2e}");
                assert!(diff < 1e-5, "{backend} {positions:?} kv {kv_heads}: {diff}");
            }
        }
    }
}

/// Grouped-query attention is multi-head attention whose key/value heads are repeated: copying
/// each shared head's projection into every head of its group gives the same output.
#[test]
fn grouped_query_attention_equals_mha_with_repeated_key_value_heads() {
    for (backend, device) in devices() {
        let gqa = MultiHeadAttentionConfig::new(16, 4)
            .with_n_kv_heads(Some(2))
            .init(&device);
        assert_eq!(gqa.w_k.weight.dims(), [16, 8]); // 2 key heads of 4, not 4
        let mut mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
        mha.w_q = gqa.w_q.clone();
        mha.w_o = gqa.w_o.clone();
        // Query heads 0, 1 share key/value head 0; heads 2, 3 share head 1.
        let repeat = |w: Tensor<2>| {
            let idx = Tensor::<1, Int>::from_data(
                [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7],
                &device,
            );
            w.select(1, idx)
        };
        mha.w_k.weight = Param::from_tensor(repeat(gqa.w_k.weight.val()));
        mha.w_v.weight = Param::from_tensor(repeat(gqa.w_v.weight.val()));
        let x = Tensor::<3>::random([2, 5, 16], Distribution::Default, &device);
        let a = gqa.forward(AttentionInput::self_attention(x.clone()));
        let b = mha.forward(AttentionInput::self_attention(x));
        let diff = max_abs_diff(&values(a.context), &values(b.context));
        eprintln!("{backend}: GQA vs repeated MHA {diff:.2e}");
        assert!(diff < 1e-5, "{backend}: {diff}");
        let fewer = 2 * (16 * 16 - 16 * 8);
        assert_eq!(mha.num_params() - gqa.num_params(), fewer);
    }
}

/// The same encoder stack (pre-LN and post-LN, RoPE inside) and the same head importances on
/// every backend: the modules moved from flex give flex's numbers.
#[test]
fn encoder_and_head_importance_agree_across_backends() {
    use attention::{EncoderConfig, EncoderInput, EncoderLayerConfig, head_importance};
    let flex = Device::flex();
    for norm_first in [true, false] {
        let encoder = EncoderConfig::new(
            EncoderLayerConfig::new(16, 4)
                .with_norm_first(norm_first)
                .with_positions(AttentionPositions::rope()),
            2,
        )
        .init(&flex);
        let x = Tensor::<3>::random([2, 6, 16], Distribution::Default, &flex);
        let lengths = [6, 3];
        let run = |device: &Device| {
            let encoder = encoder.clone().to_device(device);
            let x = x.clone().to_device(device);
            let padding = mask::padding_mask_from_lengths(&lengths, 6, device);
            let input = EncoderInput::new(x.clone()).mask_padding(padding.clone());
            let out = encoder.forward(input.clone());
            let fused = encoder.forward_context(input);
            let fused_diff = max_abs_diff(&values(fused), &values(out.hidden.clone()));
            assert!(fused_diff < 1e-5, "fused path differs by {fused_diff}");
            // Importance of the first layer's heads for a squared-output loss.
            let ad = device.clone().autodiff();
            let attention = encoder.layers[0].attention.clone().to_device(&ad);
            let x = x.to_device(&ad);
            let padding = padding.to_device(&ad);
            let importance = head_importance(4, &ad, |gates| {
                let input = AttentionInput::self_attention(x.clone())
                    .mask_padding(padding.clone())
                    .head_gates(gates);
                attention.forward(input).context.powi_scalar(2).mean()
            });
            (values(out.hidden), importance)
        };
        let (expected, importance) = run(&flex);
        for (backend, device) in devices().into_iter().skip(1) {
            let (hidden, got) = run(&device);
            let diff = max_abs_diff(&hidden, &expected);
            let imp = max_abs_diff(&got, &importance);
            eprintln!(
                "{backend} norm_first={norm_first}: encoder {diff:.2e}, importance {imp:.2e}"
            );
            assert!(diff < 1e-5 && imp < 1e-5, "{backend}: {diff}, {imp}");
        }
    }
}

/// The fused inference path equals the explicit one under a padding mask (`[batch, l_k]`,
/// broadcast over heads and queries) on every backend. On wgpu it did not before the mask was
/// expanded to full shape: burn 0.22.1's fused kernel misread the broadcast mask.
#[test]
fn the_fused_path_honours_padding_masks_on_every_backend() {
    for (backend, device) in devices() {
        for positions in schemes() {
            let mha = MultiHeadAttentionConfig::new(16, 4)
                .with_positions(positions.clone())
                .init(&device);
            let x = Tensor::<3>::random([3, 6, 16], Distribution::Default, &device);
            let padding = mask::padding_mask_from_lengths(&[6, 3, 1], 6, &device);
            let input = AttentionInput::self_attention(x).mask_padding(padding);
            let explicit = mha.forward(input.clone()).context;
            let fused = mha.forward_context(input);
            let diff = max_abs_diff(&values(fused), &values(explicit));
            eprintln!("{backend} {positions:?}: fused vs explicit {diff:.2e}");
            assert!(diff < 1e-5, "{backend} {positions:?}: {diff}");
        }
    }
}
