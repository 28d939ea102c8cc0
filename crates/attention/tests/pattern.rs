//! Attention patterns as code ([`AttentionPattern`]: mask mods, score mods, soft-capping)
//! through the fused op, against the same attention with the pattern written out as full-size
//! mask and bias tensors (and the cap as `tanh`), on every backend (flex, ndarray, wgpu):
//! outputs and the gradients of q, k, v and a learned bias.

mod common;

use attention::{
    AttentionPattern,
    fused::{pattern_attention, reference_attention},
    mask_mod::{BlockMask, MaskMod, causal, document, prefix_lm, window},
    score_mod::{RelativeBiasTable, ScoreMod, alibi},
};
use burn::{prelude::*, tensor::Distribution};
use common::*;

fn devices() -> Vec<(&'static str, Device)> {
    let mut devices = cpu_devices();
    devices.extend(wgpu_device().map(|d| ("wgpu", d)));
    devices
}

/// One case: a pattern and the full-size tensors it stands for.
struct Case {
    name: &'static str,
    pattern: AttentionPattern,
    /// `[batch | 1, heads | 1, l_q, l_k]`, `true` = masked.
    mask: Option<Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
    softcap: Option<f64>,
}

/// `[batch, heads, l_q, l_k]` of the cases: several 64-wide tiles, the last one short.
const SHAPE: [usize; 4] = [2, 4, 150, 150];

fn cases(device: &Device) -> Vec<Case> {
    let [batch, heads, l_q, l_k] = SHAPE;
    let shared = [1, 1, l_q, l_k];
    let sliding = causal().and(window(40, 0));
    // Two packed texts per row, at different places in each row.
    let ids: Vec<Vec<u32>> = [70, 101]
        .iter()
        .map(|&cut| (0..l_q).map(|i| u32::from(i >= cut)).collect())
        .collect();
    let packed = document(ids).and(causal());
    let prefix = prefix_lm(vec![30, 90]);
    // Each head its own band, from a closure.
    let per_head = move |_b: usize, h: usize, q: usize, kv: usize| q.abs_diff(kv) <= 10 + 20 * h;
    let table: Vec<f32> = (0..32 * heads)
        .map(|i| ((i * 37) % 11) as f32 * 0.1 - 0.5)
        .collect();
    let t5 = RelativeBiasTable::new(&table, heads, 32, 128, true);
    let closure_bias = |b: usize, h: usize, q: usize, kv: usize| {
        ((b + 2 * h + q * 3 + kv * 5) % 7) as f32 * 0.2 - 0.6
    };
    let full = [batch, heads, l_q, l_k];
    vec![
        Case {
            name: "sliding window",
            mask: Some(sliding.to_mask(shared, device)),
            pattern: AttentionPattern::new().with_mask(&sliding, shared),
            bias: None,
            softcap: None,
        },
        Case {
            name: "packed documents + ALiBi",
            mask: Some(packed.to_mask([batch, 1, l_q, l_k], device)),
            pattern: AttentionPattern::new()
                .with_mask(&packed, [batch, 1, l_q, l_k])
                .with_score(alibi(heads)),
            bias: Some(alibi(heads).to_bias([1, heads, l_q, l_k], device)),
            softcap: None,
        },
        Case {
            name: "prefix-LM + T5 table, blocks 16 × 8",
            mask: Some(prefix.to_mask([batch, 1, l_q, l_k], device)),
            pattern: AttentionPattern::new()
                .with_block_mask(BlockMask::new(&prefix, [batch, 1, l_q, l_k], 16, 8))
                .with_score(t5.clone()),
            bias: Some(t5.to_bias([1, heads, l_q, l_k], device)),
            softcap: None,
        },
        Case {
            name: "per-head closure + closure bias + softcap",
            mask: Some(per_head.to_mask([1, heads, l_q, l_k], device)),
            pattern: AttentionPattern::new()
                .with_mask(&per_head, [1, heads, l_q, l_k])
                .with_score(closure_bias)
                .with_softcap(2.0),
            bias: Some(closure_bias.to_bias(full, device)),
            softcap: Some(2.0),
        },
        Case {
            name: "softcap alone",
            mask: None,
            pattern: AttentionPattern::new().with_softcap(0.5),
            bias: None,
            softcap: Some(0.5),
        },
    ]
}

/// The written-out attention: `cap(scale · q·kᵀ) + bias + pattern bias`, both masks, softmax.
#[allow(clippy::too_many_arguments)]
fn explicit(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    padding: Tensor<4, Bool>,
    bias: Tensor<4>,
    case: &Case,
    scale: f64,
) -> Tensor<4> {
    let device = q.device();
    let mask = match &case.mask {
        Some(mask) => {
            let mask = Tensor::<4, Bool>::from_data(mask.to_data(), &device);
            let shape = [SHAPE[0], SHAPE[1], SHAPE[2], SHAPE[3]];
            Some(mask.expand(shape).bool_or(padding.expand(shape)))
        }
        None => Some(padding),
    };
    let bias = match &case.bias {
        Some(extra) => bias + Tensor::<4>::from_data(extra.to_data(), &device),
        None => bias,
    };
    let Some(cap) = case.softcap else {
        return reference_attention(q, k, v, mask, Some(bias), scale);
    };
    // The cap before the bias and the mask (burn's order), written with tensor ops.
    let heads = q.dims()[1];
    let group = |t: Tensor<4>| {
        let [b, kv, l, d] = t.dims();
        t.unsqueeze_dim::<5>(2)
            .expand([b, kv, heads / kv, l, d])
            .reshape([b, heads, l, d])
    };
    let scores = q.matmul(group(k).swap_dims(2, 3)).mul_scalar(scale);
    let scores = scores.div_scalar(cap).tanh().mul_scalar(cap) + bias;
    let scores = scores.mask_fill(mask.unwrap(), f64::NEG_INFINITY);
    burn::tensor::activation::softmax(scores, 3).matmul(group(v))
}

#[test]
fn patterns_equal_their_written_out_masks_and_biases_with_gradients() {
    let [batch, heads, l_q, l_k] = SHAPE;
    let (kv_heads, d) = (2, 8);
    for (backend, device) in devices() {
        let random =
            |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let inputs = [
            random([batch, heads, l_q, d]),
            random([batch, kv_heads, l_k, d]),
            random([batch, kv_heads, l_k, 3]),
            random([batch, heads, l_q, 3]),
        ];
        // A learned per-head bias and a padding mask beside the pattern (row 1 has 120 keys).
        let bias = random([1, heads, l_q, l_k]);
        let padding = attention::mask::padding_mask_from_lengths(&[l_k, 120], l_k, &device)
            .reshape([batch, 1, 1, l_k]);
        for (index, case) in cases(&device).iter().enumerate() {
            // lavapipe compiles kernels per graph (seconds each): two cases there.
            if backend == "wgpu" && !matches!(index, 1 | 3) {
                continue;
            }
            let run = |fused: bool| {
                let ad = device.clone().autodiff();
                let track = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
                let [q, k, v] = [track(&inputs[0]), track(&inputs[1]), track(&inputs[2])];
                let b = track(&bias);
                let pad = Tensor::<4, Bool>::from_data(padding.to_data(), &ad);
                let out = if fused {
                    pattern_attention(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        Some(pad),
                        Some(b.clone()),
                        0.35,
                        &case.pattern,
                    )
                } else {
                    explicit(q.clone(), k.clone(), v.clone(), pad, b.clone(), case, 0.35)
                };
                let weight = Tensor::<4>::from_data(inputs[3].to_data(), &ad);
                let grads = (out.clone() * weight).sum().backward();
                let mut all = vec![values(out.inner())];
                for t in [&q, &k, &v, &b] {
                    all.push(values(t.grad(&grads).expect("a gradient")));
                }
                all
            };
            let (got, want) = (run(true), run(false));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = ["output", "dq", "dk", "dv", "dbias"][i];
                assert!(
                    g.iter().all(|x| x.is_finite()),
                    "{backend} {what}: not finite"
                );
                let diff = max_abs_diff(g, w);
                assert!(diff < 5e-5, "{backend} {} {what}: {diff:.2e}", case.name);
            }
        }
    }
}

/// On flex the kernels never read an empty tile: a NaN value under keys that only empty
/// tiles hold for far queries leaves those queries' outputs and gradients finite (computing
/// the tile, `0 · NaN`, would not), while the queries that may see the key get NaN.
#[test]
fn flex_skips_empty_tiles() {
    let device = Device::flex().autodiff();
    let (len, d) = (256, 4);
    let sliding = causal().and(window(31, 0));
    let pattern =
        AttentionPattern::new().with_block_mask(BlockMask::new(&sliding, [1, 1, len, len], 32, 32));
    let mut values = vec![0.5f32; len * d];
    values[..d].fill(f32::NAN); // key 0's value
    let v = Tensor::<4>::from_data(TensorData::new(values, [1, 1, len, d]), &device).require_grad();
    let q = Tensor::<4>::random([1, 1, len, d], Distribution::Default, &device).require_grad();
    let out = pattern_attention(q.clone(), q.clone(), v, None, None, 0.5, &pattern);
    let grads = out.clone().sum().backward();
    let out = out.inner().into_data().try_to_vec::<f32>().unwrap();
    let dq = q
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    // Queries 0..32 see key 0; from 64 on its tile is empty for them.
    assert!(out[..d].iter().all(|x| x.is_nan()));
    assert!(out[64 * d..].iter().all(|x| x.is_finite()));
    assert!(dq[64 * d..].iter().all(|x| x.is_finite()));
}

/// A block mask that does not fit the call is named.
#[test]
fn a_block_mask_of_another_shape_is_refused() {
    let device = Device::flex();
    let pattern = AttentionPattern::new().with_mask(&causal(), [1, 1, 8, 8]);
    let q = Tensor::<4>::zeros([1, 2, 9, 4], &device);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pattern_attention(q.clone(), q.clone(), q.clone(), None, None, 1.0, &pattern)
    }));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("block mask [1, 1, 8, 8] does not fit"),
        "{message}"
    );
}

/// `MultiHeadAttentionConfig::window` and `softcap` on every backend: the weights path equals
/// the same module with the window as an explicit attention mask (weights 0 outside it), the
/// fused path (`forward_context`, ALiBi inside the kernels on flex) equals the weights path in
/// output and gradients, and decoding through a KV cache equals the causal pass.
#[test]
fn module_window_and_softcap_equal_the_explicit_module() {
    use attention::{AttentionInput, AttentionPositions, KvCache, MultiHeadAttentionConfig};
    let (batch, len, d_model, window) = (2, 70, 16, 9);
    for (backend, device) in devices() {
        let ad = device.clone().autodiff();
        let config = MultiHeadAttentionConfig::new(d_model, 4)
            .with_n_kv_heads(Some(2))
            .with_positions(AttentionPositions::Alibi);
        let windowed = config
            .clone()
            .with_window(Some(window))
            .with_softcap(Some(1.5));
        let plain = config.init(&ad);
        let local = windowed.init(&ad).load_record(plain.clone().into_record());
        let x = Tensor::<3>::random([batch, len, d_model], Distribution::Normal(0.0, 1.0), &ad);
        let padding = attention::mask::padding_mask_from_lengths(&[len, 50], len, &ad);
        let input = || AttentionInput::self_attention(x.clone()).mask_padding(padding.clone());

        // The window alone against the explicit mask (softcap off in both).
        let no_cap = windowed
            .clone()
            .with_softcap(None)
            .init(&ad)
            .load_record(plain.clone().into_record());
        let far: Vec<bool> = (0..batch * len * len)
            .map(|i| (i / len % len).abs_diff(i % len) > window)
            .collect();
        let far = Tensor::<3, Bool>::from_data(TensorData::new(far, [batch, len, len]), &ad);
        let want = plain.forward(input().mask_attention(far.clone()));
        let got = no_cap.forward(input());
        let diff = max_abs_diff(
            &values(got.weights.clone().inner()),
            &values(want.weights.inner()),
        );
        assert!(diff < 1e-6, "{backend} window weights: {diff:.2e}");
        let weights = values(got.weights.inner());
        let outside: Vec<f32> = (weights.iter().enumerate())
            .filter(|(i, _)| (i / len % len).abs_diff(i % len) > window)
            .map(|(_, &w)| w)
            .collect();
        assert!(!outside.is_empty());
        assert!(
            outside.iter().all(|&w| w == 0.0),
            "{backend}: weight outside the window"
        );
        let diff = max_abs_diff(&values(got.context.inner()), &values(want.context.inner()));
        assert!(diff < 1e-5, "{backend} window context: {diff:.2e}");

        // Fused against weights path, window + softcap + ALiBi, with gradients.
        let grads_of = |out: Tensor<3>| {
            let grads = out.clone().powi_scalar(2).sum().backward();
            let g = local.w_q.weight.grad(&grads).expect("a gradient");
            (values(out.inner()), values(g))
        };
        let (fused, fused_grad) = grads_of(local.forward_context(input()));
        let (explicit, explicit_grad) = grads_of(local.forward(input()).context);
        let diff = max_abs_diff(&fused, &explicit);
        assert!(diff < 2e-5, "{backend} fused context: {diff:.2e}");
        let diff = max_abs_diff(&fused_grad, &explicit_grad);
        assert!(diff < 2e-4, "{backend} fused gradient: {diff:.2e}");

        // Decoding: a prompt, then one token at a time, equals the causal pass.
        let plain_device = local.valid();
        let x = Tensor::<3>::from_data(x.to_data(), &device);
        let causal = attention::mask::causal_mask(batch, len, &device);
        let whole =
            plain_device.forward(AttentionInput::self_attention(x.clone()).mask_attention(causal));
        let mut cache = KvCache::new();
        let mut steps = vec![
            plain_device
                .forward_cached(x.clone().slice([0..batch, 0..40]), &mut cache)
                .context,
        ];
        for t in 40..len {
            steps.push(
                plain_device
                    .forward_cached(x.clone().slice([0..batch, t..t + 1]), &mut cache)
                    .context,
            );
        }
        let diff = max_abs_diff(&values(Tensor::cat(steps, 1)), &values(whole.context));
        assert!(diff < 1e-5, "{backend} cached decoding: {diff:.2e}");
    }
}

/// gpt-oss's sinks as HF writes them: the sink as one more score column, a softmax over the
/// widened row, the column dropped. Independent of the crate's sink code (which never widens
/// the scores).
fn sinks_written_out(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    bias: Tensor<4>,
    sinks: Tensor<1>,
    scale: f64,
) -> Tensor<4> {
    let [batch, heads, l_q, _] = q.dims();
    let group = heads / k.dims()[1];
    let repeat = |x: Tensor<4>| {
        let [b, kv, l, d] = x.dims();
        x.reshape([b, kv, 1, l, d])
            .expand([b, kv, group, l, d])
            .reshape([b, heads, l, d])
    };
    let scores = q.matmul(repeat(k).swap_dims(2, 3)).mul_scalar(scale) + bias;
    let scores = scores.mask_fill(mask, -1e30);
    let sinks = sinks
        .reshape([1, heads, 1, 1])
        .expand([batch, heads, l_q, 1]);
    let wide = Tensor::cat(vec![scores, sinks], 3);
    let l_k = wide.dims()[3] - 1;
    let weights = burn::tensor::activation::softmax(wide, 3).narrow(3, 0, l_k);
    weights.matmul(repeat(v))
}

/// Learned sinks through the fused op (flex kernels, ndarray and wgpu chunks), with a mask
/// that empties some rows, a learned bias, grouped-query heads, and with a sliding window's
/// block mask: outputs and the gradients of q, k, v, the bias and the sinks equal the
/// widened-softmax reference.
#[test]
fn sinks_equal_the_widened_softmax_with_gradients() {
    let [batch, heads, kv_heads, l_q, l_k, d] = [2, 4, 2, 70, 70, 8];
    let scale = 0.35;
    for (backend, plain) in devices() {
        let device = plain.clone().autodiff();
        let random = |shape: [usize; 4]| {
            Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let q = random([batch, heads, l_q, d]);
        let k = random([batch, kv_heads, l_k, d]);
        let v = random([batch, kv_heads, l_k, d]);
        let bias = random([1, heads, l_q, l_k]);
        let sinks = Tensor::<1>::from_data([1.5, -0.5, 0.0, 3.0], &device).require_grad();
        // Causal, and row 5 of batch 1 sees nothing: its weights are all the sink's.
        let sliding = causal().and(window(20, 0));
        let pairs: Vec<bool> = (0..batch * l_q * l_k)
            .map(|i| {
                let (b, q, kv) = (i / (l_q * l_k), i / l_k % l_q, i % l_k);
                kv > q || (b, q) == (1, 5)
            })
            .collect();
        let empty_row =
            Tensor::<4, Bool>::from_data(TensorData::new(pairs, [batch, 1, l_q, l_k]), &device);
        for (name, pattern, mask) in [
            ("mask", AttentionPattern::new(), empty_row.clone()),
            (
                "window blocks",
                AttentionPattern::new().with_mask(&sliding, [1, 1, l_q, l_k]),
                sliding
                    .to_mask([1, 1, l_q, l_k], &device)
                    .expand([batch, 1, l_q, l_k]),
            ),
        ] {
            let pattern = pattern.with_sinks(sinks.clone());
            let given = (name == "mask").then(|| empty_row.clone());
            let fused = pattern_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                given,
                Some(bias.clone()),
                scale,
                &pattern,
            );
            let reference = sinks_written_out(
                q.clone(),
                k.clone(),
                v.clone(),
                mask,
                bias.clone(),
                sinks.clone(),
                scale,
            );
            let probe = Tensor::<4>::random(fused.dims(), Distribution::Default, &device);
            let g_fused = (fused.clone() * probe.clone()).sum().backward();
            let g_ref = (reference.clone() * probe).sum().backward();
            let out_diff = max_abs_diff(&values(fused.inner()), &values(reference.inner()));
            assert!(out_diff < 2e-5, "{backend} {name}: output {out_diff}");
            for (what, got, want) in [
                ("dq", q.grad(&g_fused), q.grad(&g_ref)),
                ("dk", k.grad(&g_fused), k.grad(&g_ref)),
                ("dv", v.grad(&g_fused), v.grad(&g_ref)),
                ("dbias", bias.grad(&g_fused), bias.grad(&g_ref)),
            ] {
                let diff = max_abs_diff(&values(got.unwrap()), &values(want.unwrap()));
                assert!(diff < 1e-4, "{backend} {name}: {what} {diff}");
            }
            let (got, want) = (sinks.grad(&g_fused).unwrap(), sinks.grad(&g_ref).unwrap());
            let (got, want) = (values(got), values(want));
            assert!(
                want.iter().all(|g| g.abs() > 1e-3),
                "every sink is used: {want:?}"
            );
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-3, "{backend} {name}: dsinks {got:?} vs {want:?}");
        }
    }
}

/// The weights path (`forward_with_pattern`) takes the same sinks: its weights are the
/// widened softmax's, and a row sums to 1 minus its sink's share.
#[test]
fn sink_weights_sum_to_less_than_one() {
    use attention::ScaledDotProductAttentionConfig;
    let device = Device::flex();
    let q = Tensor::<4>::random([1, 2, 3, 4], Distribution::Default, &device);
    let sinks = Tensor::<1>::from_data([0.0, 10.0], &device);
    let pattern = AttentionPattern::new().with_sinks(sinks);
    let out = ScaledDotProductAttentionConfig::new()
        .init()
        .forward_with_pattern(q.clone(), q.clone(), q, None, None, &pattern);
    let sums = values(out.weights.sum_dim(3));
    // Head 1's sink (logit 10) takes nearly everything; head 0's about a quarter.
    assert!(
        sums[..3].iter().all(|&s| (0.5..0.95).contains(&s)),
        "{sums:?}"
    );
    assert!(sums[3..].iter().all(|&s| s < 1e-3), "{sums:?}");
}

/// A sink far above every score, and a row whose keys are all masked: the row's weights are
/// all the sink's (a zero context) and every gradient stays finite and equal to the widened
/// softmax's (the empty row's log-sum-exp is the lowest finite value; it must not round the
/// sink away).
#[test]
fn a_large_sink_and_an_empty_row_stay_finite() {
    let device = Device::flex().autodiff();
    let random = |shape: [usize; 4]| {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
    };
    let (q, k, v) = (
        random([1, 2, 3, 4]),
        random([1, 2, 5, 4]),
        random([1, 2, 5, 4]),
    );
    let zero_bias = Tensor::<4>::zeros([1, 2, 3, 5], &device);
    let sinks = Tensor::<1>::from_data([100.0, -1.0], &device).require_grad();
    let empty_row = Tensor::<4, Bool>::from_data(
        TensorData::new(
            (0..15).map(|i| i / 5 == 1).collect::<Vec<bool>>(),
            [1, 1, 3, 5],
        ),
        &device,
    );
    let pattern = AttentionPattern::new().with_sinks(sinks.clone());
    let fused = pattern_attention(
        q.clone(),
        k.clone(),
        v.clone(),
        Some(empty_row.clone()),
        None,
        0.5,
        &pattern,
    );
    let reference = sinks_written_out(
        q.clone(),
        k.clone(),
        v.clone(),
        empty_row,
        zero_bias,
        sinks.clone(),
        0.5,
    );
    let out = values(fused.clone().inner());
    assert!(out.iter().all(|x| x.is_finite()), "{out:?}");
    assert!(max_abs_diff(&out, &values(reference.clone().inner())) < 1e-5);
    let g_fused = fused.sum().backward();
    let g_ref = reference.sum().backward();
    let (got, want) = (
        values(sinks.grad(&g_fused).unwrap()),
        values(sinks.grad(&g_ref).unwrap()),
    );
    assert!(got.iter().all(|g| g.is_finite()), "dsinks {got:?}");
    assert!(max_abs_diff(&got, &want) < 1e-4, "{got:?} vs {want:?}");
    let dq = values(q.grad(&g_fused).unwrap());
    assert!(dq.iter().all(|g| g.is_finite()), "dq {dq:?}");
}
