//! Talking-heads attention against the same attention written out in PyTorch (float64,
//! `fixtures/talking_heads/make.py`: x-transformers' order, mixing by `einsum` before and
//! after the softmax, a causal mask): the output and the gradients of `sum(output²)` with
//! respect to the input and both mixing matrices, on every backend.

mod common;

use attention::{AttentionInput, MultiHeadAttentionConfig, TalkingHeadsAttentionConfig, mask};
use burn::module::Param;
use common::*;

#[test]
fn talking_heads_equal_the_pytorch_reference() {
    let fixture = load_json("talking_heads/talking_heads.json");
    let weights = &fixture["weights"];
    let mut devices = cpu_devices();
    devices.extend(wgpu_device().map(|d| ("wgpu", d)));
    for (backend, plain) in devices {
        let device = plain.clone().autodiff();
        let mut talking =
            TalkingHeadsAttentionConfig::new(MultiHeadAttentionConfig::new(16, 4)).init(&device);
        // PyTorch stores `[out, in]`, burn's Linear `[in, out]`.
        let linear =
            |name: &str| Param::from_tensor(tensor::<2>(&weights[name], &device).transpose());
        talking.attention.w_q.weight = linear("q_proj.weight");
        talking.attention.w_k.weight = linear("k_proj.weight");
        talking.attention.w_v.weight = linear("v_proj.weight");
        talking.attention.w_o.weight = linear("o_proj.weight");
        talking.pre_softmax = Param::from_tensor(tensor::<2>(&fixture["pre"], &device));
        talking.post_softmax = Param::from_tensor(tensor::<2>(&fixture["post"], &device));
        let x = tensor::<3>(&fixture["x"], &device).require_grad();
        let [batch, len, _] = x.dims();
        let out = talking
            .forward(
                AttentionInput::self_attention(x.clone())
                    .mask_attention(mask::causal_mask(batch, len, &device)),
            )
            .context;
        let grads = out.clone().powi_scalar(2).sum().backward();
        for (what, got, want) in [
            ("output", values(out.inner()), flatten(&fixture["out"]).0),
            (
                "input gradient",
                values(x.grad(&grads).unwrap()),
                flatten(&fixture["grad_x"]).0,
            ),
            (
                "pre-softmax gradient",
                values(talking.pre_softmax.val().grad(&grads).unwrap()),
                flatten(&fixture["grad_pre"]).0,
            ),
            (
                "post-softmax gradient",
                values(talking.post_softmax.val().grad(&grads).unwrap()),
                flatten(&fixture["grad_post"]).0,
            ),
        ] {
            assert_relative(&format!("{backend} {what}"), &got, &want, 5e-6);
        }
    }
}
