//! Properties that hold for any weights: masking, normalisation, equivariance, gradients, and
//! agreement between the single-head, multi-head and fused paths.

mod common;

use attention::{
    AttentionInput, MultiHeadAttentionConfig, ScaledDotProductAttentionConfig,
    SingleHeadSelfAttentionConfig, mask,
};
use burn::{prelude::*, tensor::Distribution};
use common::*;

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Lengths with a zero-length row, so one batch element has every key masked.
const LENGTHS: [usize; 3] = [6, 3, 0];

#[test]
fn weights_are_normalised_over_unmasked_keys_and_zero_elsewhere() {
    for (backend, device) in cpu_devices() {
        device.seed(7);
        let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
        let x = random([3, 6, 16], &device);
        let padding = mask::padding_mask_from_lengths(&LENGTHS, 6, &device);
        let out = mha.forward(AttentionInput::self_attention(x).mask_padding(padding));
        let weights = values(out.weights); // [3, 4, 6, 6]
        let output = values(out.context);
        assert!(
            weights.iter().chain(&output).all(|v| v.is_finite()),
            "{backend}: NaN or inf"
        );
        for (b, &len) in LENGTHS.iter().enumerate() {
            for row in weights[b * 144..(b + 1) * 144].chunks(6) {
                assert!(
                    row[len..].iter().all(|&w| w == 0.0),
                    "{backend}: masked key got weight {row:?}"
                );
                let sum: f32 = row[..len].iter().sum();
                let expected = if len == 0 { 0.0 } else { 1.0 };
                assert!(
                    (sum - expected).abs() < 1e-5,
                    "{backend}: row sums to {sum}"
                );
            }
        }
        // The fully masked sequence has a zero context, so its output is w_o(0) = 0 (no bias).
        assert!(output[2 * 96..].iter().all(|&v| v == 0.0), "{backend}");
    }
}

#[test]
fn causal_mask_hides_the_future() {
    let device = Device::flex();
    let mha = MultiHeadAttentionConfig::new(8, 2).init(&device);
    let out = mha.forward(
        AttentionInput::self_attention(random([2, 5, 8], &device))
            .mask_attention(mask::causal_mask(2, 5, &device)),
    );
    let weights = values(out.weights);
    for (i, row) in weights.chunks(5).enumerate() {
        let query = i % 5;
        assert!(
            row[query + 1..].iter().all(|&w| w == 0.0),
            "query {query}: {row:?}"
        );
    }
}

#[test]
fn self_attention_is_permutation_equivariant_without_positions() {
    let device = Device::flex();
    let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
    let x = random([2, 7, 16], &device);
    let perm = [3i64, 0, 6, 1, 5, 2, 4];
    let index = Tensor::<1, Int>::from_data(perm, &device);
    let permuted_then = mha
        .forward(AttentionInput::self_attention(
            x.clone().select(1, index.clone()),
        ))
        .context;
    let then_permuted = mha
        .forward(AttentionInput::self_attention(x))
        .context
        .select(1, index);
    assert!(max_abs_diff(&values(permuted_then), &values(then_permuted)) < 1e-5);
}

#[test]
fn fused_path_matches_explicit_path_with_masks() {
    let mut backends = cpu_devices();
    backends.extend(wgpu_device().map(|d| ("wgpu", d)));
    for (backend, device) in backends {
        let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
        let single = SingleHeadSelfAttentionConfig::new(16).init(&device);
        let padding = mask::padding_mask_from_lengths(&LENGTHS, 6, &device);
        let input = AttentionInput::self_attention(random([3, 6, 16], &device))
            .mask_padding(padding)
            .mask_attention(mask::causal_mask(3, 6, &device));
        let explicit = values(mha.forward(input.clone()).context);
        let fused = values(mha.forward_context(input.clone()));
        assert!(
            fused.iter().all(|v| v.is_finite()),
            "{backend}: fused path gave NaN"
        );
        let err = max_abs_diff(&explicit, &fused);
        assert!(err < 1e-5, "{backend}: fused differs by {err}");
        let err = max_abs_diff(
            &values(single.forward(input.clone()).context),
            &values(single.forward_context(input)),
        );
        assert!(err < 1e-5, "{backend}: single-head fused differs by {err}");
    }
}

#[test]
fn gradients_exist_and_are_finite_with_fully_masked_rows() {
    for (backend, device) in cpu_devices() {
        let device = device.autodiff();
        let mha = MultiHeadAttentionConfig::new(16, 4)
            .with_dropout(0.1)
            .init(&device);
        let x = random([3, 6, 16], &device).require_grad();
        let padding = mask::padding_mask_from_lengths(&LENGTHS, 6, &device);
        let out = mha.forward(AttentionInput::self_attention(x.clone()).mask_padding(padding));
        let grads = out.context.sum().backward();
        let grad_values = |grad: Option<Tensor<2>>| grad.map(values);
        for (name, grad) in [
            ("x", x.grad(&grads).map(values)),
            ("w_q", grad_values(mha.w_q.weight.val().grad(&grads))),
            ("w_k", grad_values(mha.w_k.weight.val().grad(&grads))),
            ("w_v", grad_values(mha.w_v.weight.val().grad(&grads))),
            ("w_o", grad_values(mha.w_o.weight.val().grad(&grads))),
        ] {
            let grad = grad.unwrap_or_else(|| panic!("{backend}: no gradient for {name}"));
            assert!(
                grad.iter().all(|v| v.is_finite()),
                "{backend}: non-finite gradient for {name}"
            );
            assert!(
                grad.iter().any(|&v| v != 0.0),
                "{backend}: zero gradient for {name}"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let sdpa = ScaledDotProductAttentionConfig::new().init();
    let shape = [1, 2, 3, 4];
    let q = random(shape, &device);
    let k = random(shape, &device);
    let v = random(shape, &device);
    let r = random(shape, &device); // loss = Σ context · r, so every output matters
    let mask = Tensor::<4, Bool>::from_data([[[[false, false, true]]]], &device);
    // Rebuilding from data puts a tensor on `device` with or without autodiff, as the device says.
    let on = |t: &Tensor<4>, device: &Device| Tensor::<4>::from_data(t.to_data(), device);
    let loss = |q: Tensor<4>, k: Tensor<4>, device: &Device| {
        let out = sdpa.forward(q, k, on(&v, device), Some(mask.clone()));
        (out.context * on(&r, device)).sum()
    };

    let q_ad = on(&q, &ad).require_grad();
    let k_ad = on(&k, &ad).require_grad();
    let grads = loss(q_ad.clone(), k_ad.clone(), &ad).backward();
    let analytic = [
        values(q_ad.grad(&grads).unwrap()),
        values(k_ad.grad(&grads).unwrap()),
    ];

    let eps = 1e-2f32;
    let q_vals = values(q.clone());
    let k_vals = values(k.clone());
    for (which, base) in [(0, &q_vals), (1, &k_vals)] {
        for i in 0..base.len() {
            let nudged = |delta: f32| {
                let mut vals = base.clone();
                vals[i] += delta;
                let t = Tensor::<4>::from_data(TensorData::new(vals, shape), &device);
                let (qq, kk) = if which == 0 {
                    (t, k.clone())
                } else {
                    (q.clone(), t)
                };
                loss(qq, kk, &device).into_scalar::<f32>()
            };
            let numeric = (nudged(eps) - nudged(-eps)) / (2.0 * eps);
            let exact = analytic[which][i];
            assert!(
                (numeric - exact).abs() < 2e-3 + 1e-2 * exact.abs(),
                "input {which} element {i}: analytic {exact}, numeric {numeric}"
            );
        }
    }
}
