//! The fused op's algorithm from a backend's own tensor ops, for backends without a native
//! kernel (ndarray, wgpu, cuda): queries in chunks, so that no tensor is larger than
//! `[batch, heads, chunk, l_k]` and none outlives its chunk; the backward recomputes each
//! chunk's probabilities from the saved log-sum-exp (FlashAttention-2 with one key block).

use burn::{
    backend::{Backend, DispatchTensor},
    prelude::*,
    tensor::{kind::Basic, s},
};

use super::{KernelGrads, KernelInputs, Saved, Wrap, repeat_kv};

/// Elements of one `[batch, heads, chunk, l_k]` tensor: 16 MiB of f32. The backward keeps
/// about four of them alive at once.
const CHUNK_ELEMENTS: usize = 1 << 22;

/// The plain-device tensors of one call.
struct Inputs {
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
    /// The pattern's mask and score-mod bias as tensors (kept by the pattern per shape), apart
    /// from `mask` and `bias` so that the bias gradient keeps the bias's own shape.
    pattern_mask: Option<Tensor<4, Bool>>,
    pattern_bias: Option<Tensor<4>>,
    softcap: Option<f64>,
    scale: f64,
    /// Query rows per chunk.
    chunk: usize,
}

impl Inputs {
    fn wrap<B: Backend>(inputs: KernelInputs<B>) -> Self
    where
        DispatchTensor: Wrap<B>,
    {
        let q: Tensor<4> = <DispatchTensor as Wrap<B>>::float(inputs.query);
        let k: Tensor<4> = <DispatchTensor as Wrap<B>>::float(inputs.key);
        let [batch, heads, l_q, _] = q.dims();
        let l_k = k.dims()[2];
        let (pattern_mask, pattern_bias) = inputs
            .pattern
            .tensors([batch, heads, l_q, l_k], &q.device());
        Self {
            q,
            k,
            v: <DispatchTensor as Wrap<B>>::float(inputs.value),
            mask: inputs.mask.map(<DispatchTensor as Wrap<B>>::bool),
            bias: inputs.bias.map(<DispatchTensor as Wrap<B>>::float),
            pattern_mask,
            pattern_bias,
            softcap: inputs.pattern.softcap(),
            scale: inputs.scale,
            chunk: (CHUNK_ELEMENTS / (batch * heads * l_k).max(1)).clamp(1, l_q.max(1)),
        }
    }

    /// Masked, biased, scaled (and soft-capped) scores of query rows `rows`,
    /// `[batch, heads, rows, l_k]`; masked pairs are `-inf`. `k_t` is the (repeated) keys
    /// transposed. With a soft-cap, also its `tanh`, from which the backward takes the cap's
    /// derivative `1 − tanh²`.
    fn scores(
        &self,
        rows: std::ops::Range<usize>,
        q: Tensor<4>,
        k_t: Tensor<4>,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        let mut scores = q.mul_scalar(self.scale).matmul(k_t);
        let mut capped = None;
        if let Some(cap) = self.softcap {
            let tanh = scores.div_scalar(cap).tanh();
            scores = tanh.clone().mul_scalar(cap);
            capped = Some(tanh);
        }
        for bias in [&self.bias, &self.pattern_bias].into_iter().flatten() {
            scores = scores + query_rows(bias.clone(), &rows);
        }
        for mask in [&self.mask, &self.pattern_mask].into_iter().flatten() {
            scores = scores.mask_fill(query_rows(mask.clone(), &rows), f64::NEG_INFINITY);
        }
        (scores, capped)
    }
}

/// Rows `rows` of a mask or bias whose query dimension is not broadcast.
fn query_rows<K: Basic>(x: Tensor<4, K>, rows: &std::ops::Range<usize>) -> Tensor<4, K> {
    if x.dims()[2] == 1 {
        x
    } else {
        x.slice(s![.., .., rows.clone(), ..])
    }
}

/// The context and row log-sum-exp.
pub(crate) fn forward<B: Backend>(
    inputs: KernelInputs<B>,
) -> (
    burn::backend::tensor::FloatTensor<B>,
    burn::backend::tensor::FloatTensor<B>,
)
where
    DispatchTensor: Wrap<B>,
{
    assert!(
        inputs.dropout.is_none(),
        "dropout inside the fused op is the flex kernels' (see `dropout_supported`)"
    );
    let x = Inputs::wrap(inputs);
    let (output, lse) = forward_tensors(&x);
    (
        <DispatchTensor as Wrap<B>>::unwrap_float(output),
        <DispatchTensor as Wrap<B>>::unwrap_float(lse),
    )
}

fn forward_tensors(x: &Inputs) -> (Tensor<4>, Tensor<3>) {
    let [_, heads, l_q, _] = x.q.dims();
    let info = x.q.dtype().finfo().expect("attention inputs are floats");
    let k_t = repeat_kv(x.k.clone(), heads).swap_dims(2, 3);
    let v = repeat_kv(x.v.clone(), heads);
    let chunk = x.chunk;
    let (mut outputs, mut lses) = (Vec::new(), Vec::new());
    for start in (0..l_q).step_by(chunk) {
        let rows = start..(start + chunk).min(l_q);
        let q = x.q.clone().slice(s![.., .., rows.clone(), ..]);
        let (scores, _) = x.scores(rows, q, k_t.clone());
        // As `masked_softmax`: a fully masked row has max = lowest and sum = tiny, so its
        // probabilities are 0 and its log-sum-exp stays finite.
        let max = scores.clone().max_dim(3).clamp_min(info.min);
        let exp = (scores - max.clone()).exp();
        let sum = exp.clone().sum_dim(3).clamp_min(info.min_positive);
        outputs.push(exp.matmul(v.clone()) / sum.clone());
        lses.push((max + sum.log()).squeeze_dim::<3>(3));
    }
    (Tensor::cat(outputs, 2), Tensor::cat(lses, 2))
}

/// dQ, dK, dV and the bias gradient.
pub(crate) fn backward<B: Backend>(
    saved: Saved<B>,
    grad_output: burn::backend::tensor::FloatTensor<B>,
    bias_grad: bool,
) -> KernelGrads<B>
where
    DispatchTensor: Wrap<B>,
{
    let output: Tensor<4> = <DispatchTensor as Wrap<B>>::float(saved.output);
    let lse: Tensor<3> = <DispatchTensor as Wrap<B>>::float(saved.lse);
    let grad: Tensor<4> = <DispatchTensor as Wrap<B>>::float(grad_output);
    let x = Inputs::wrap(saved.inputs);
    let (dq, dk, dv, dbias) = backward_tensors(&x, output, lse, grad, bias_grad);
    KernelGrads {
        query: <DispatchTensor as Wrap<B>>::unwrap_float(dq),
        key: <DispatchTensor as Wrap<B>>::unwrap_float(dk),
        value: <DispatchTensor as Wrap<B>>::unwrap_float(dv),
        bias: dbias.map(<DispatchTensor as Wrap<B>>::unwrap_float),
    }
}

#[allow(clippy::type_complexity)]
fn backward_tensors(
    x: &Inputs,
    output: Tensor<4>,
    lse: Tensor<3>,
    grad: Tensor<4>,
    bias_grad: bool,
) -> (Tensor<4>, Tensor<4>, Tensor<4>, Option<Tensor<4>>) {
    let [batch, heads, l_q, _] = x.q.dims();
    let [_, kv_heads, l_k, d_k] = x.k.dims();
    let d_v = x.v.dims()[3];
    let k = repeat_kv(x.k.clone(), heads);
    let v_t = repeat_kv(x.v.clone(), heads).swap_dims(2, 3);
    let k_t = k.clone().swap_dims(2, 3);
    // D_i = Σ_d dO_id · O_id, [batch, heads, l_q, 1]
    let delta = (grad.clone() * output).sum_dim(3);
    let lse = lse.unsqueeze_dim::<4>(3);
    let device = x.q.device();
    let mut dk = Tensor::<4>::zeros([batch, heads, l_k, d_k], &device);
    let mut dv = Tensor::<4>::zeros([batch, heads, l_k, d_v], &device);
    let (mut dqs, mut dbias) = (Vec::new(), BiasGrad::new(x.bias.as_ref(), bias_grad));
    let chunk = x.chunk;
    for start in (0..l_q).step_by(chunk) {
        let rows = start..(start + chunk).min(l_q);
        let slice = |t: &Tensor<4>| t.clone().slice(s![.., .., rows.clone(), ..]);
        let (q, d_out) = (slice(&x.q), slice(&grad));
        let (scores, tanh) = x.scores(rows.clone(), q.clone(), k_t.clone());
        // Masked pairs: exp(-inf - lse) = 0, so they carry no gradient.
        let p = (scores - slice(&lse)).exp();
        dv = dv + p.clone().swap_dims(2, 3).matmul(d_out.clone());
        let dp = d_out.matmul(v_t.clone());
        let mut ds = p * (dp - slice(&delta));
        // The bias is added after the cap: its gradient is dS; q and k's pass through the cap.
        dbias.add(ds.clone());
        if let Some(tanh) = tanh {
            ds = ds * tanh.powi_scalar(2).neg().add_scalar(1.0);
        }
        dqs.push(ds.clone().matmul(k.clone()).mul_scalar(x.scale));
        dk = dk + ds.swap_dims(2, 3).matmul(q).mul_scalar(x.scale);
    }
    let group = |t: Tensor<4>| {
        let [b, h, l, d] = t.dims();
        if h == kv_heads {
            return t;
        }
        t.reshape([b, kv_heads, h / kv_heads, l, d])
            .sum_dim(2)
            .reshape([b, kv_heads, l, d])
    };
    (Tensor::cat(dqs, 2), group(dk), group(dv), dbias.finish())
}

/// The bias gradient, chunk by chunk: `dS` summed over the dimensions the bias broadcasts.
struct BiasGrad {
    /// The bias's dims, when its gradient is wanted.
    dims: Option<[usize; 4]>,
    chunks: Vec<Tensor<4>>,
}

impl BiasGrad {
    fn new(bias: Option<&Tensor<4>>, wanted: bool) -> Self {
        Self {
            dims: bias.filter(|_| wanted).map(Tensor::dims),
            chunks: Vec::new(),
        }
    }

    fn add(&mut self, ds: Tensor<4>) {
        let Some(dims) = self.dims else { return };
        let mut ds = ds;
        for (axis, &size) in dims.iter().enumerate() {
            if size == 1 && ds.dims()[axis] != 1 {
                ds = ds.sum_dim(axis);
            }
        }
        self.chunks.push(ds);
    }

    fn finish(self) -> Option<Tensor<4>> {
        let dims = self.dims?;
        if dims[2] == 1 {
            // Broadcast over queries: every chunk adds to the same row.
            self.chunks.into_iter().reduce(|a, b| a + b)
        } else {
            Some(Tensor::cat(self.chunks, 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::reference_attention;
    use burn::tensor::{Distribution, Tolerance};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Chunks of 2 query rows (the last one short), GQA, a padding mask with a fully masked
    /// row's worth of keys, and a per-head bias broadcast over the batch: forward and every
    /// gradient equal the decomposition's under autodiff.
    #[test]
    fn chunks_give_the_decomposition_and_its_gradients() {
        let device = Device::flex();
        let q = random([2, 4, 5, 3], &device);
        let k = random([2, 2, 6, 3], &device);
        let v = random([2, 2, 6, 2], &device);
        // Batch 0 masks one key per query; batch 1 is padded to 3 keys and its query 2 sees
        // none (a fully masked row).
        let pattern: Vec<bool> = (0..2 * 5 * 6)
            .map(|i| {
                let (b, q, k) = (i / 30, i / 6 % 5, i % 6);
                if b == 0 {
                    k == (q + 1) % 6
                } else {
                    k >= 3 || q == 2
                }
            })
            .collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(pattern, [2, 1, 5, 6]), &device);
        let bias = random([1, 4, 5, 6], &device);
        let grad = random([2, 4, 5, 2], &device);
        let x = Inputs {
            q: q.clone(),
            k: k.clone(),
            v: v.clone(),
            mask: Some(mask.clone()),
            bias: Some(bias.clone()),
            pattern_mask: None,
            pattern_bias: None,
            softcap: None,
            scale: 0.4,
            chunk: 2,
        };
        let (out, lse) = forward_tensors(&x);
        let (dq, dk, dv, dbias) = backward_tensors(&x, out.clone(), lse, grad.clone(), true);

        let ad = device.clone().autodiff();
        let track = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
        let (aq, ak, av, ab) = (track(&q), track(&k), track(&v), track(&bias));
        let mask = Tensor::<4, Bool>::from_data(mask.to_data(), &ad);
        let expected = reference_attention(
            aq.clone(),
            ak.clone(),
            av.clone(),
            Some(mask),
            Some(ab.clone()),
            0.4,
        );
        let grads = (expected.clone() * Tensor::from_data(grad.to_data(), &ad))
            .sum()
            .backward();
        let close = |got: Tensor<4>, want: Tensor<4>| {
            got.into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
        };
        close(out, expected.inner());
        close(dq, aq.grad(&grads).unwrap());
        close(dk, ak.grad(&grads).unwrap());
        close(dv, av.grad(&grads).unwrap());
        close(dbias.unwrap(), ab.grad(&grads).unwrap());
    }
}
