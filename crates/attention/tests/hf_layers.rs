//! qk-norm, soft-capping and sinks against HF transformers' own layers (fixtures from
//! `fixtures/hf_layers/make.py`, float64): Qwen3's attention (RMSNorm on each head's queries
//! and keys before RoPE), Gemma 2's (scores soft-capped) and gpt-oss's (a learned sink logit
//! per head, biased projections), all with RoPE and grouped-query heads under a causal mask.
//! DiffLlama's differential attention is checked the same way (its own module).
//! Output and the gradient of `sum(output²)` with respect to the input (and to the sinks),
//! through the weights path (`forward`) and the fused one (`forward_context`), on every
//! backend.

mod common;

use attention::{
    AttentionInput, AttentionPositions, DifferentialAttentionConfig, MultiHeadAttention,
    MultiHeadAttentionConfig, QkNorm, QkNormLayer, mask,
};
use burn::{module::Param, prelude::*};
use common::*;
use serde_json::Value;

fn devices() -> Vec<(&'static str, Device)> {
    let mut devices = cpu_devices();
    devices.extend(wgpu_device().map(|d| ("wgpu", d)));
    devices
}

/// The HF layer of `fixture` as our module on `device`.
fn module(
    fixture: &Value,
    config: MultiHeadAttentionConfig,
    device: &Device,
) -> MultiHeadAttention {
    let kv_heads = fixture["kv_heads"].as_u64().map_or(2, |n| n as usize);
    let mut mha = config
        .with_n_kv_heads(Some(kv_heads))
        .with_d_k(Some(4))
        .with_d_v(Some(4))
        .with_positions(AttentionPositions::Rope {
            base: fixture["rope_theta"].as_f64().unwrap(),
        })
        .init(device);
    let weights = &fixture["weights"];
    // HF stores `[out, in]`, burn's Linear `[in, out]`.
    let linear = |name: &str| Param::from_tensor(tensor::<2>(&weights[name], device).transpose());
    mha.w_q.weight = linear("q_proj.weight");
    mha.w_k.weight = linear("k_proj.weight");
    mha.w_v.weight = linear("v_proj.weight");
    mha.w_o.weight = linear("o_proj.weight");
    let bias = |name: &str| {
        (!weights[name].is_null()).then(|| Param::from_tensor(tensor::<1>(&weights[name], device)))
    };
    mha.w_q.bias = bias("q_proj.bias");
    mha.w_k.bias = bias("k_proj.bias");
    mha.w_v.bias = bias("v_proj.bias");
    mha.w_o.bias = bias("o_proj.bias");
    if mha.sinks.is_some() {
        mha.sinks = Some(Param::from_tensor(tensor::<1>(&weights["sinks"], device)));
    }
    for (norm, name) in [
        (&mut mha.q_norm, "q_norm.weight"),
        (&mut mha.k_norm, "k_norm.weight"),
    ] {
        if let Some(QkNormLayer::Rms(norm)) = norm {
            norm.gamma = Param::from_tensor(tensor::<1>(&weights[name], device));
        }
    }
    mha
}

fn check(name: &str, config: MultiHeadAttentionConfig) {
    let fixture = load_json(&format!("hf_layers/{name}.json"));
    for (backend, plain) in devices() {
        let device = plain.clone().autodiff();
        let mha = module(&fixture, config.clone(), &device);
        for fused in [false, true] {
            let x = tensor::<3>(&fixture["x"], &device).require_grad();
            let [batch, len, _] = x.dims();
            let input = AttentionInput::self_attention(x.clone())
                .mask_attention(mask::causal_mask(batch, len, &device));
            let out = if fused {
                mha.forward_context(input)
            } else {
                mha.forward(input).context
            };
            let grads = out.clone().powi_scalar(2).sum().backward();
            let (want_out, _) = flatten(&fixture["out"]);
            let (want_grad, _) = flatten(&fixture["grad_x"]);
            let mut checks = vec![
                ("output", values(out.inner()), want_out),
                ("input gradient", values(x.grad(&grads).unwrap()), want_grad),
            ];
            if let Some(sinks) = &mha.sinks {
                let got = values(sinks.val().grad(&grads).expect("the sinks train"));
                checks.push(("sinks gradient", got, flatten(&fixture["grad_sinks"]).0));
            }
            // Relative to the largest value: f32 against float64 (outputs up to ~28, input
            // gradients up to ~1,700 here).
            for (what, got, want) in checks {
                let what = format!("{name} {backend} fused {fused} {what}");
                assert_relative(&what, &got, &want, 2e-6);
            }
        }
    }
}

#[test]
fn qk_norm_equals_qwen3_attention() {
    let fixture = load_json("hf_layers/qwen3_qk_norm.json");
    let eps = fixture["rms_norm_eps"].as_f64().unwrap();
    check(
        "qwen3_qk_norm",
        MultiHeadAttentionConfig::new(16, 4).with_qk_norm(Some(QkNorm::Rms { epsilon: eps })),
    );
}

#[test]
fn softcap_equals_gemma2_attention() {
    let fixture = load_json("hf_layers/gemma2_softcap.json");
    let scalar = fixture["query_pre_attn_scalar"].as_f64().unwrap();
    let cap = fixture["attn_logit_softcapping"].as_f64().unwrap();
    check(
        "gemma2_softcap",
        MultiHeadAttentionConfig::new(16, 4)
            .with_temperature(Some(scalar.sqrt()))
            .with_softcap(Some(cap)),
    );
}

#[test]
fn sinks_equal_gpt_oss_attention() {
    check(
        "gpt_oss_sinks",
        MultiHeadAttentionConfig::new(16, 4)
            .with_bias(true)
            .with_sinks(true),
    );
}

#[test]
fn differential_attention_equals_diffllama_attention() {
    let fixture = load_json("hf_layers/diffllama_differential.json");
    let weights = &fixture["weights"];
    for (backend, plain) in devices() {
        let device = plain.clone().autodiff();
        let heads = fixture["heads"].as_u64().unwrap() as usize;
        let config = DifferentialAttentionConfig::new(MultiHeadAttentionConfig::new(16, heads))
            .with_lambda_init(fixture["lambda_init"].as_f64().unwrap())
            .with_epsilon(fixture["rms_norm_eps"].as_f64().unwrap());
        let mut diff = config.init(&device);
        diff.attention = module(&fixture, config.attention.clone(), &device);
        let vector = |name: &str| Param::from_tensor(tensor::<1>(&weights[name], &device));
        diff.lambda_q1 = vector("lambda_q1");
        diff.lambda_k1 = vector("lambda_k1");
        diff.lambda_q2 = vector("lambda_q2");
        diff.lambda_k2 = vector("lambda_k2");
        let x = tensor::<3>(&fixture["x"], &device).require_grad();
        let [batch, len, _] = x.dims();
        let out = diff.forward(
            AttentionInput::self_attention(x.clone())
                .mask_attention(mask::causal_mask(batch, len, &device)),
        );
        let grads = out.clone().powi_scalar(2).sum().backward();
        let lambda_grad = diff.lambda_q1.val().grad(&grads).expect("λ trains");
        // Inference too: flex's kernels, burn's own op elsewhere (a value twice as wide).
        let inference = diff.valid().forward(
            AttentionInput::self_attention(tensor::<3>(&fixture["x"], &plain))
                .mask_attention(mask::causal_mask(batch, len, &plain)),
        );
        for (what, got, want, tolerance) in [
            (
                "output",
                values(out.inner()),
                flatten(&fixture["out"]).0,
                5e-6,
            ),
            (
                "inference output",
                values(inference),
                flatten(&fixture["out"]).0,
                5e-6,
            ),
            (
                "input gradient",
                values(x.grad(&grads).unwrap()),
                flatten(&fixture["grad_x"]).0,
                5e-6,
            ),
            (
                "lambda_q1 gradient",
                values(lambda_grad),
                flatten(&fixture["grad_lambda_q1"]).0,
                // λ's gradient sums every output's: f32 accumulates more rounding there.
                2e-5,
            ),
        ] {
            assert_relative(
                &format!("diffllama {backend} {what}"),
                &got,
                &want,
                tolerance,
            );
        }
    }
}
