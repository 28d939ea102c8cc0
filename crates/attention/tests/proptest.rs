//! Random shapes, masks (fully masked rows included) and input scales: outputs, attention weights
//! and every gradient stay finite, and the weights of each query sum to 1 over its unmasked keys
//! (0 for a fully masked row), with every scheme of positions inside attention at random
//! offsets, and multi-query attention. On flex, the fastest CPU backend; the fixed-case tests in
//! `properties.rs` cover ndarray and wgpu.

use attention::{AttentionInput, AttentionPositions, MultiHeadAttentionConfig};
use burn::{prelude::*, tensor::Distribution};
use proptest::prelude::*;

/// One random case: shapes, a mask pattern and an input scale.
#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    heads: usize,
    d_k: usize,
    d_v: usize,
    len_q: usize,
    len_k: usize,
    /// `[batch][len_q][len_k]`, `true` = masked.
    mask: Vec<bool>,
    scale: f64,
    seed: u64,
    /// 0 none, 1 RoPE, 2 ALiBi, 3 T5 relative bias.
    positions: usize,
    /// First query and first key positions.
    offsets: (usize, usize),
    /// One key/value head shared by every query head (multi-query attention).
    multi_query: bool,
}

impl Case {
    fn positions(&self) -> AttentionPositions {
        match self.positions {
            0 => AttentionPositions::None,
            1 => AttentionPositions::rope(),
            2 => AttentionPositions::Alibi,
            _ => AttentionPositions::relative(),
        }
    }

    /// RoPE rotates pairs: its query/key width is even.
    fn d_k(&self) -> usize {
        if self.positions == 1 {
            2 * self.d_k
        } else {
            self.d_k
        }
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        1..4usize,
        1..4usize,
        1..6usize,
        1..6usize,
        1..7usize,
        1..7usize,
    )
        .prop_flat_map(|(batch, heads, d_k, d_v, len_q, len_k)| {
            // Masks biased towards masking, so fully masked rows are common.
            let mask = prop::collection::vec(prop::bool::weighted(0.6), batch * len_q * len_k);
            let scale = prop_oneof![Just(1e-3), Just(1.0), Just(30.0), Just(1e3)];
            (
                Just((batch, heads, d_k, d_v, len_q, len_k)),
                mask,
                scale,
                any::<u64>(),
                (0..4usize, (0..1000usize, 0..1000usize), any::<bool>()),
            )
        })
        .prop_map(
            |(
                (batch, heads, d_k, d_v, len_q, len_k),
                mask,
                scale,
                seed,
                (positions, offsets, multi_query),
            )| {
                Case {
                    batch,
                    heads,
                    d_k,
                    d_v,
                    len_q,
                    len_k,
                    mask,
                    scale,
                    seed,
                    positions,
                    offsets,
                    multi_query,
                }
            },
        )
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn outputs_weights_and_gradients_are_finite(case in case()) {
        let device = Device::flex().autodiff();
        device.seed(case.seed);
        let d_model = 4 * case.heads;
        let mha = MultiHeadAttentionConfig::new(d_model, case.heads)
            .with_d_k(Some(case.d_k()))
            .with_d_v(Some(case.d_v))
            .with_positions(case.positions())
            .with_n_kv_heads(case.multi_query.then_some(1))
            .init(&device);
        let normal = Distribution::Normal(0.0, case.scale);
        let q = Tensor::<3>::random([case.batch, case.len_q, d_model], normal, &device).require_grad();
        let kv = Tensor::<3>::random([case.batch, case.len_k, d_model], normal, &device).require_grad();
        let mask = Tensor::<3, Bool>::from_data(
            TensorData::new(case.mask.clone(), [case.batch, case.len_q, case.len_k]),
            &device,
        );
        let out = mha.forward(
            AttentionInput::new(q.clone(), kv.clone(), kv.clone())
                .mask_attention(mask)
                .offsets(case.offsets.0, case.offsets.1),
        );
        let weights = values(out.weights.clone());
        let output = values(out.context.clone());
        prop_assert!(output.iter().all(|v| v.is_finite()), "output not finite");
        prop_assert!(weights.iter().all(|v| v.is_finite()), "weights not finite");
        // [batch, heads, len_q, len_k]: rows sum to 1, or to 0 where every key is masked.
        for (i, row) in weights.chunks(case.len_k).enumerate() {
            let (b, query) = (i / (case.heads * case.len_q), i % case.len_q);
            let masks = &case.mask[(b * case.len_q + query) * case.len_k..][..case.len_k];
            let sum: f32 = row.iter().sum();
            let expected = if masks.iter().all(|&m| m) { 0.0 } else { 1.0 };
            prop_assert!((sum - expected).abs() < 1e-4, "row {i} sums to {sum}");
            for (w, &masked) in row.iter().zip(masks) {
                prop_assert!(!masked || *w == 0.0, "masked key got weight {w}");
            }
        }
        let grads = out.context.sum().backward();
        for (name, grad) in [("query", q.grad(&grads)), ("key/value", kv.grad(&grads))] {
            let grad = grad.expect("input gradient");
            prop_assert!(values(grad).iter().all(|v| v.is_finite()), "{name} gradient not finite");
        }
        for (name, weight) in [("w_q", &mha.w_q), ("w_k", &mha.w_k), ("w_v", &mha.w_v), ("w_o", &mha.w_o)] {
            let grad = weight.weight.val().grad(&grads).expect("weight gradient");
            prop_assert!(values(grad).iter().all(|v| v.is_finite()), "{name} gradient not finite");
        }
        if let Some(relative) = &mha.positions.relative {
            let grad = relative.embedding.weight.val().grad(&grads).expect("bias gradient");
            prop_assert!(values(grad).iter().all(|v| v.is_finite()), "relative bias gradient not finite");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Encoder stacks of random depth, either norm placement, with padding masks (a fully
    /// padded sequence included): finite outputs and gradients, and each layer's weight rows
    /// sum to 1 over real keys (0 where a sequence has none).
    #[test]
    fn encoder_stacks_stay_finite_and_normalised(
        layers in 1..4usize,
        heads in 1..4usize,
        norm_first in any::<bool>(),
        feed_forward in any::<bool>(),
        lengths in prop::collection::vec(0..6usize, 1..4),
        len in 1..6usize,
        seed in any::<u64>(),
    ) {
        use attention::{EncoderConfig, EncoderInput, EncoderLayerConfig, mask};
        let device = Device::flex().autodiff();
        device.seed(seed);
        let d_model = 4 * heads;
        let encoder = EncoderConfig::new(
            EncoderLayerConfig::new(d_model, heads)
                .with_norm_first(norm_first)
                .with_feed_forward(feed_forward)
                .with_dropout(0.0),
            layers,
        )
        .init(&device);
        let lengths: Vec<usize> = lengths.iter().map(|l| (*l).min(len)).collect();
        let batch = lengths.len();
        let padding = mask::padding_mask_from_lengths(&lengths, len, &device);
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Default, &device).require_grad();
        let out = encoder.forward(EncoderInput::new(x.clone()).mask_padding(padding));
        prop_assert!(values(out.hidden.clone()).iter().all(|v| v.is_finite()), "hidden not finite");
        prop_assert_eq!(out.weights.len(), layers);
        for weights in &out.weights {
            for (i, row) in values(weights.clone()).chunks(len).enumerate() {
                let b = i / (heads * len);
                let sum: f32 = row.iter().sum();
                let expected = if lengths[b] == 0 { 0.0 } else { 1.0 };
                prop_assert!((sum - expected).abs() < 1e-4, "row {i} sums to {sum}");
            }
        }
        let grads = out.hidden.sum().backward();
        let grad = x.grad(&grads).expect("input gradient");
        prop_assert!(values(grad).iter().all(|v| v.is_finite()), "input gradient not finite");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The fused op against the decomposition it replaces, over random shapes (key lengths
    /// past one 64-key tile), masks (fully masked rows common), grouped-query heads, a bias
    /// broadcast each way and input scales: output and the gradients of q, k, v and the bias
    /// are finite and equal.
    #[test]
    fn fused_attention_equals_the_decomposition(
        (batch, kv_heads, group, len_q, len_k) in (1..3usize, 1..3usize, 1..3usize, 1..9usize, 1..80usize),
        (d_k, d_v) in (1..9usize, 1..6usize),
        mask_bits in prop::collection::vec(prop::bool::weighted(0.5), 2 * 8 * 80),
        mask_kind in 0..3usize,
        bias_kind in 0..3usize,
        scale in prop_oneof![Just(1e-2), Just(0.3), Just(3.0)],
        seed in any::<u64>(),
    ) {
        use attention::fused::{fused_attention, reference_attention};
        let device = Device::flex().autodiff();
        device.seed(seed);
        let heads = kv_heads * group;
        let random = |shape: [usize; 4]| {
            Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let (q, k, v) = (random([batch, heads, len_q, d_k]), random([batch, kv_heads, len_k, d_k]), random([batch, kv_heads, len_k, d_v]));
        let mask_shape = match mask_kind {
            0 => [batch, 1, 1, len_k],
            1 => [batch, 1, len_q, len_k],
            _ => [1, 1, len_q, len_k],
        };
        let n: usize = mask_shape.iter().product();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask_bits[..n].to_vec(), mask_shape), &device);
        let bias = match bias_kind {
            0 => None,
            1 => Some(random([1, heads, len_q, len_k])),
            _ => Some(random([batch, 1, 1, len_k])),
        };
        let run = |fused: bool| {
            let op = if fused { fused_attention } else { reference_attention };
            let out = op(q.clone(), k.clone(), v.clone(), Some(mask.clone()), bias.clone(), scale);
            let grads = (out.clone() * out.clone()).sum().backward();
            let mut all = vec![values(out.inner())];
            for t in [Some(&q), Some(&k), Some(&v), bias.as_ref()].into_iter().flatten() {
                all.push(values(t.grad(&grads).expect("a gradient")));
            }
            all
        };
        for (i, (got, want)) in run(true).iter().zip(run(false)).enumerate() {
            prop_assert!(got.iter().all(|v| v.is_finite()), "tensor {i} not finite");
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
            prop_assert!(diff < 1e-4, "tensor {i}: {diff:.2e}");
        }
    }
}
