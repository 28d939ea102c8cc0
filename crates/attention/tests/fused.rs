//! The fused attention op against the decomposition it replaces, on every backend (flex,
//! ndarray, wgpu): outputs and the gradients of q, k, v and a learned bias, for every mask
//! kind, biases broadcast over batch or heads, grouped-query heads and fully masked rows; and
//! against PyTorch's `F.scaled_dot_product_attention` (fixtures from `fixtures/sdpa/grads.py`);
//! and the fused LayerNorm against burn's on every backend.

mod common;

use attention::{
    AttentionInput, AttentionPositions, MultiHeadAttentionConfig,
    fused::{fused_attention, is_supported, reference_attention},
    mask,
};
use burn::{module::Param, prelude::*, tensor::Distribution};
use common::*;

fn devices() -> Vec<(&'static str, Device)> {
    let mut devices = cpu_devices();
    devices.extend(wgpu_device().map(|d| ("wgpu", d)));
    devices
}

/// A mask kind of the cases below, `[batch, 1 | heads, 1 | l_q, l_k]`.
fn masks(
    batch: usize,
    heads: usize,
    l_q: usize,
    l_k: usize,
    device: &Device,
) -> Vec<(&'static str, Option<Tensor<4, Bool>>)> {
    let padding =
        mask::padding_mask_from_lengths(&[l_k, 2], l_k, device).reshape([batch, 1, 1, l_k]);
    let causal = Tensor::<2, Bool>::tril_mask([l_q, l_k], 0, device)
        .reshape([1, 1, l_q, l_k])
        .expand([batch, 1, l_q, l_k]);
    // Per head and pair, with every key of query 1 masked in batch 1 head 0.
    let arbitrary: Vec<bool> = (0..batch * heads * l_q * l_k)
        .map(|i| {
            let (b, h, q, k) = (
                i / (heads * l_q * l_k),
                i / (l_q * l_k) % heads,
                i / l_k % l_q,
                i % l_k,
            );
            (b == 1 && h == 0 && q == 1) || (q * 3 + k * 5 + h) % 4 == 0
        })
        .collect();
    let arbitrary =
        Tensor::<4, Bool>::from_data(TensorData::new(arbitrary, [batch, heads, l_q, l_k]), device);
    vec![
        ("none", None),
        ("padding", Some(padding)),
        ("causal", Some(causal)),
        ("arbitrary", Some(arbitrary)),
    ]
}

/// `t`'s values on `device`.
fn on<const D: usize>(t: &Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), device)
}

/// [`fused_attention`] or [`reference_attention`].
type AttentionFn = fn(
    Tensor<4>,
    Tensor<4>,
    Tensor<4>,
    Option<Tensor<4, Bool>>,
    Option<Tensor<4>>,
    f64,
) -> Tensor<4>;

/// The op's output and gradients, `[out, dq, dk, dv, dbias?]`, as flat values; `inputs` are
/// q, k, v and the output's cotangent.
fn run(
    op: AttentionFn,
    inputs: &[Tensor<4>; 4],
    mask: Option<Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
    scale: f64,
) -> Vec<Vec<f32>> {
    let device = inputs[0].device().autodiff();
    let track = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &device).require_grad();
    let [q, k, v] = [track(&inputs[0]), track(&inputs[1]), track(&inputs[2])];
    let bias = bias.map(|b| track(&b));
    let mask = mask.map(|m| Tensor::<4, Bool>::from_data(m.to_data(), &device));
    let out = op(q.clone(), k.clone(), v.clone(), mask, bias.clone(), scale);
    let weight = Tensor::<4>::from_data(inputs[3].to_data(), &device);
    let grads = (out.clone() * weight).sum().backward();
    let mut all = vec![values(out.inner())];
    for t in [Some(q), Some(k), Some(v), bias].into_iter().flatten() {
        all.push(values(t.grad(&grads).expect("a gradient for every input")));
    }
    all
}

#[test]
fn fused_equals_the_decomposition_with_gradients() {
    let (batch, heads, l_q, l_k, d) = (2, 4, 5, 6, 3);
    for (backend, device) in devices() {
        // Without the backend's feature the op takes the decomposition: same numbers.
        let kernels = match backend {
            "flex" => cfg!(feature = "flex"),
            "ndarray" => cfg!(feature = "ndarray"),
            _ => cfg!(feature = "cube"),
        };
        assert_eq!(is_supported(&device), kernels, "{backend}");
        for kv_heads in [4, 2, 1] {
            let random = |shape: [usize; 4]| {
                Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            };
            let inputs = [
                random([batch, heads, l_q, d]),
                random([batch, kv_heads, l_k, d]),
                random([batch, kv_heads, l_k, 2]),
                random([batch, heads, l_q, 2]),
            ];
            let biases = [
                ("no bias", None),
                ("per-head bias", Some(random([1, heads, l_q, l_k]))),
                ("per-key bias", Some(random([batch, 1, 1, l_k]))),
            ];
            for (mask_kind, mask) in masks(batch, heads, l_q, l_k, &device) {
                for (bias_kind, bias) in &biases {
                    // wgpu compiles kernels per graph (seconds each on lavapipe): there, one
                    // case per key/value-head count, together covering every mask and bias.
                    let wgpu_case = matches!(
                        (kv_heads, mask_kind, *bias_kind),
                        (4, "padding", "no bias")
                            | (2, "arbitrary", "per-head bias")
                            | (1, "causal", "per-key bias")
                    );
                    if backend == "wgpu" && !wgpu_case {
                        continue;
                    }
                    let got = run(fused_attention, &inputs, mask.clone(), bias.clone(), 0.45);
                    // The decomposition on flex (every backend's own is checked in parity.rs):
                    // on wgpu that halves the kernels lavapipe compiles.
                    let flex = Device::flex();
                    let want = run(
                        reference_attention,
                        &inputs.clone().map(|t| on(&t, &flex)),
                        mask.as_ref().map(|m| Tensor::from_data(m.to_data(), &flex)),
                        bias.as_ref().map(|b| on(b, &flex)),
                        0.45,
                    );
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let what = ["output", "dq", "dk", "dv", "dbias"][i];
                        assert!(
                            g.iter().all(|x| x.is_finite()),
                            "{backend} {what}: not finite"
                        );
                        let diff = max_abs_diff(g, w);
                        assert!(
                            diff < 2e-5,
                            "{backend} kv {kv_heads} {mask_kind} {bias_kind} {what}: {diff:.2e}"
                        );
                    }
                }
            }
        }
    }
}

/// PyTorch's SDPA in float64, forward and backward (padding, causal cross-attention, a learned
/// bias with grouped-query heads and a temperature, an arbitrary mask with a per-key bias and one
/// key/value head, and a case across several tiles): the fused op's output and gradients on
/// every backend. Regenerate with `python3 crates/attention/tests/fixtures/sdpa/grads.py`.
#[test]
fn fused_equals_pytorch_sdpa_with_gradients() {
    let fixtures = load_json("sdpa/grads.json");
    let cases = fixtures["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5, "expected the SDPA cases");
    for (backend, device) in devices() {
        for case in cases {
            let name = case["name"].as_str().unwrap();
            if backend == "wgpu" && name != "arbitrary_mask_and_bias_mqa" {
                continue; // kernel compilation on lavapipe: the case with every input
            }
            let get = |key: &str| tensor::<4>(&case[key], &device);
            let inputs = [get("q"), get("k"), get("v"), get("d_out")];
            let mask = (!case["attend"].is_null()).then(|| get("attend").equal_elem(0.0));
            let bias = (!case["bias"].is_null()).then(|| get("bias"));
            let scale = case["scale"].as_f64().unwrap();
            let got = run(fused_attention, &inputs, mask, bias, scale);
            for (i, got) in got.iter().enumerate() {
                let what = ["out", "dq", "dk", "dv", "dbias"][i];
                let (want, _) = flatten(&case[what]);
                let diff = max_abs_diff(got, &want);
                eprintln!("{backend} {name} {what}: {diff:.2e}");
                assert!(diff < 2e-5, "{backend} {name} {what}: {diff:.2e}");
            }
        }
    }
}

/// A fully masked row gives zeros in the output and in every gradient, not NaN.
#[test]
fn fully_masked_rows_are_zero_in_forward_and_backward() {
    for (backend, device) in devices() {
        let random = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Default, &device);
        let inputs = [
            random([1, 2, 3, 4]),
            random([1, 2, 5, 4]),
            random([1, 2, 5, 3]),
            random([1, 2, 3, 3]),
        ];
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(vec![true; 15], [1, 1, 3, 5]), &device);
        let got = run(fused_attention, &inputs, Some(mask), None, 0.45);
        for (i, values) in got.iter().enumerate() {
            assert!(
                values.iter().all(|&x| x == 0.0),
                "{backend} output/grad {i}: {values:?}"
            );
        }
    }
}

/// Through the module: `forward_context` on an autodiff device (the fused op) equals
/// `forward` (the decomposition) with their gradients, for every position scheme (RoPE
/// offsets, ALiBi, T5's learned table) and grouped-query heads.
#[test]
fn training_through_forward_context_equals_forward() {
    for (backend, device) in devices() {
        let device = device.autodiff();
        let mut schemes = vec![AttentionPositions::relative(), AttentionPositions::rope()];
        if backend != "wgpu" {
            // Kernel compilation on lavapipe: there the learned bias and the offsets suffice.
            schemes.extend([AttentionPositions::None, AttentionPositions::Alibi]);
        }
        for positions in schemes {
            let mut mha = MultiHeadAttentionConfig::new(16, 4)
                .with_n_kv_heads(Some(2))
                .with_positions(positions.clone())
                .init(&device);
            if let Some(relative) = mha.positions.relative.as_mut() {
                let table = Tensor::<2>::random([32, 4], Distribution::Default, &device);
                relative.embedding.weight = Param::from_tensor(table.require_grad());
            }
            let x = Tensor::<3>::random([2, 6, 16], Distribution::Default, &device);
            let padding = mask::padding_mask_from_lengths(&[6, 2], 6, &device);
            let input = AttentionInput::self_attention(x)
                .mask_padding(padding)
                .offsets(2, 2);
            let fused = gradients(&mha, mha.forward_context(input.clone()));
            // The explicit path on flex, same weights and input (on wgpu this halves the
            // kernels lavapipe compiles; `forward` itself is checked on every backend elsewhere).
            let flex = Device::flex().autodiff();
            let on_flex = AttentionInput {
                query: on(&input.query, &flex),
                key: on(&input.key, &flex),
                value: on(&input.value, &flex),
                mask_padding: input
                    .mask_padding
                    .as_ref()
                    .map(|m| Tensor::from_data(m.to_data(), &flex)),
                ..input
            };
            let mha_flex = mha.clone().fork(&flex);
            let explicit = gradients(&mha_flex, mha_flex.forward(on_flex).context);
            for (i, (f, e)) in fused.iter().zip(&explicit).enumerate() {
                let diff = max_abs_diff(f, e);
                assert!(diff < 2e-5, "{backend} {positions:?} #{i}: {diff:.2e}");
            }
        }
    }
}

/// The output and the gradients of `mha`'s query and key weights (and T5 table) under the
/// loss `Σ out²`.
fn gradients(mha: &attention::MultiHeadAttention, out: Tensor<3>) -> Vec<Vec<f32>> {
    let grads = (out.clone() * out.clone()).sum().backward();
    let mut all = vec![values(out.inner())];
    all.push(values(mha.w_q.weight.val().grad(&grads).unwrap()));
    all.push(values(mha.w_k.weight.val().grad(&grads).unwrap()));
    if let Some(relative) = &mha.positions.relative {
        let table = relative.embedding.weight.val().grad(&grads).unwrap();
        all.push(values(table));
    }
    all
}

/// `attention::LayerNorm` (the fused LayerNorm op) on every backend equals burn's `LayerNorm`
/// (its decomposition, on flex) with the same weights: output and the gradients of the input,
/// the scale and the shift.
#[test]
fn fused_layer_norm_equals_burns_on_every_backend() {
    let flex = Device::flex().autodiff();
    let burns = burn::nn::LayerNormConfig::new(8).init(&flex);
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(3.0, 2.0), &flex);
    let upstream = Tensor::<3>::random([2, 3, 8], Distribution::Default, &flex);
    let gamma = Tensor::<1>::random([8], Distribution::Normal(1.0, 0.5), &flex);
    let beta = Tensor::<1>::random([8], Distribution::Default, &flex);
    let run = |device: &Device, fused: bool| {
        let x = on(&x, device).require_grad();
        let (gamma, beta) = (on(&gamma, device), on(&beta, device));
        let mut norm = attention::LayerNormConfig::new(8).init(device);
        norm.gamma = Param::from_tensor(gamma);
        norm.beta = Some(Param::from_tensor(beta));
        // Either module, with the parameters whose gradients to read.
        let (y, gamma, beta) = if fused {
            let beta = norm.beta.as_ref().unwrap().val();
            (norm.forward(x.clone()), norm.gamma.val(), beta)
        } else {
            let burns = burns.clone().load_record(norm.into_record());
            let beta = burns.beta.as_ref().unwrap().val();
            (burns.forward(x.clone()), burns.gamma.val(), beta)
        };
        let grads = (y.clone() * on(&upstream, device)).sum().backward();
        vec![
            values(y.inner()),
            values(x.grad(&grads).unwrap()),
            values(gamma.grad(&grads).unwrap()),
            values(beta.grad(&grads).unwrap()),
        ]
    };
    let want = run(&flex, false);
    for (backend, device) in devices() {
        let got = run(&device.autodiff(), true);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let diff = max_abs_diff(g, w);
            assert!(diff < 1e-4, "{backend} #{i}: {diff:.2e}");
        }
    }
}
