//! Which heads matter: pruning heads out of a [`MultiHeadAttention`], each head's importance
//! (Michel et al., 2019, *Are Sixteen Heads Really Better than One?*) and the entropy of its
//! attention (Voita et al., 2019).
//!
//! Masking a head is a gate: [`AttentionInput::head_gates`](crate::AttentionInput::head_gates).

use burn::{module::Param, nn::Linear, prelude::*};

use crate::{AttentionError, MultiHeadAttention};

impl MultiHeadAttention {
    /// A smaller module without the heads in `remove` (indices into `0..n_heads`): the
    /// remaining heads' projection weights, the output projection's matching rows, and their
    /// ALiBi slopes or relative-bias columns. Its output equals this module's with the removed
    /// heads' gates at 0.
    ///
    /// ```
    /// use attention::{AttentionInput, MultiHeadAttentionConfig};
    /// use burn::prelude::*;
    ///
    /// let device = Device::flex();
    /// let mha = MultiHeadAttentionConfig::new(16, 4).init(&device);
    /// let pruned = mha.prune_heads(&[1, 3]).unwrap();
    /// assert_eq!((pruned.n_heads, pruned.w_q.weight.dims()), (2, [16, 8]));
    /// assert!(mha.prune_heads(&[0, 1, 2, 3]).is_err()); // at least one head stays
    /// ```
    pub fn prune_heads(&self, remove: &[usize]) -> Result<Self, AttentionError> {
        if let Some(&h) = remove.iter().find(|&&h| h >= self.n_heads) {
            return Err(AttentionError::config(
                "heads",
                format!(
                    "head {h} does not exist; this module has {} heads",
                    self.n_heads
                ),
            ));
        }
        if self.n_kv_heads != self.n_heads {
            return Err(AttentionError::config(
                "heads",
                "pruning heads of grouped-query attention is not supported: a key/value head is shared by a group; gate the heads instead",
            ));
        }
        let keep: Vec<usize> = (0..self.n_heads).filter(|h| !remove.contains(h)).collect();
        if keep.is_empty() {
            return Err(AttentionError::config(
                "heads",
                "pruning every head leaves no attention; keep at least one",
            ));
        }
        let device = self.w_q.weight.device();
        // Detached: the pruned module's parameters are new leaves (trainable on an autodiff
        // device), not functions of this module's.
        // The columns (or rows) of each kept head in a projection of `width` per head.
        let indices = |width: usize| {
            let idx: Vec<i64> = keep
                .iter()
                .flat_map(|&h| (h * width..(h + 1) * width).map(|i| i as i64))
                .collect();
            let len = idx.len();
            Tensor::<1, Int>::from_data(TensorData::new(idx, [len]), &device)
        };
        let columns = |linear: &Linear, width: usize| Linear {
            weight: Param::from_tensor(linear.weight.val().select(1, indices(width)).detach()),
            bias: linear
                .bias
                .as_ref()
                .map(|b| Param::from_tensor(b.val().select(0, indices(width)).detach())),
        };
        let mut pruned = self.clone();
        pruned.w_q = columns(&self.w_q, self.d_k);
        pruned.w_k = columns(&self.w_k, self.d_k);
        pruned.w_v = columns(&self.w_v, self.d_v);
        pruned.w_o = Linear {
            weight: Param::from_tensor(self.w_o.weight.val().select(0, indices(self.d_v)).detach()),
            bias: self.w_o.bias.clone(),
        };
        pruned.n_heads = keep.len();
        pruned.n_kv_heads = keep.len();
        if let Some(sinks) = &self.sinks {
            pruned.sinks = Some(Param::from_tensor(
                sinks.val().select(0, indices(1)).detach(),
            ));
        }
        if let Some(alibi) = pruned.positions.alibi.as_mut() {
            alibi.slopes = keep.iter().map(|&h| alibi.slopes[h]).collect();
        }
        if let Some(relative) = pruned.positions.relative.as_mut() {
            let table = relative
                .embedding
                .weight
                .val()
                .select(1, indices(1))
                .detach();
            relative.embedding.weight = Param::from_tensor(table);
        }
        Ok(pruned)
    }
}

/// Each head's importance: `|∂loss/∂gate_h|` at gates of 1 (Michel et al., 2019), for one
/// batch. `loss` runs the model with the given `[n_heads]` gates (passed to
/// [`AttentionInput::head_gates`](crate::AttentionInput::head_gates) of the attention to
/// score) and returns its scalar loss; `device` must have autodiff. Sum the results over
/// batches (and normalise, as the paper does, if heads of several layers are compared).
///
/// ```
/// use attention::{AttentionInput, MultiHeadAttentionConfig, head_importance};
/// use burn::prelude::*;
///
/// let device = Device::flex().autodiff();
/// let mha = MultiHeadAttentionConfig::new(8, 2).init(&device);
/// let x = Tensor::<3>::random([2, 5, 8], burn::tensor::Distribution::Default, &device);
/// let importance = head_importance(2, &device, |gates| {
///     let out = mha.forward(AttentionInput::self_attention(x.clone()).head_gates(gates));
///     out.context.powi_scalar(2).mean()
/// });
/// assert_eq!(importance.len(), 2);
/// assert!(importance.iter().all(|i| i.is_finite() && *i > 0.0));
/// ```
pub fn head_importance(
    n_heads: usize,
    device: &Device,
    loss: impl FnOnce(Tensor<1>) -> Tensor<1>,
) -> Vec<f32> {
    let gates = Tensor::<1>::ones([n_heads], device).require_grad();
    let grads = loss(gates.clone()).backward();
    gates
        .grad(&grads)
        .map(|g| {
            g.abs()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap_or_default()
        })
        .unwrap_or_else(|| vec![0.0; n_heads])
}

/// Mean entropy (in nats) of each head's attention distribution, over the batch and the
/// queries whose weights are not all zero (fully masked queries are left out). `ln(l_k)` is
/// uniform attention; 0 is attention on one key. Each query's weights are normalised to sum
/// to 1 first: with learned sinks they sum to less (the entropy is that of the keys' share).
///
/// # Shapes
/// weights `[batch, heads, l_q, l_k]` → `[heads]`
pub fn head_entropy(weights: Tensor<4>) -> Tensor<1> {
    let [batch, heads, l_q, _] = weights.dims();
    let sums = weights.clone().sum_dim(3); // [b, h, l_q, 1]
    let attended = sums.clone().greater_elem(0.0).float(); // rows with any weight
    let weights = weights / sums.clamp_min(f32::MIN_POSITIVE);
    // 0·ln 0 = 0: the log of a zero weight is replaced by 0 before the product.
    let logs = weights
        .clone()
        .clamp_min(f32::MIN_POSITIVE)
        .log()
        .mask_fill(weights.clone().equal_elem(0.0), 0.0);
    let per_query = (weights * logs).sum_dim(3).neg(); // [b, h, l_q, 1]
    let total = (per_query * attended.clone())
        .swap_dims(0, 1)
        .reshape([heads, batch * l_q])
        .sum_dim(1);
    let count = attended
        .swap_dims(0, 1)
        .reshape([heads, batch * l_q])
        .sum_dim(1)
        .clamp_min(1.0);
    (total / count).reshape([heads])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttentionInput, AttentionPositions, MultiHeadAttentionConfig};
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn pruning_equals_masking_for_every_position_scheme() {
        let device = Device::flex();
        for positions in [
            AttentionPositions::None,
            AttentionPositions::rope(),
            AttentionPositions::Alibi,
            AttentionPositions::relative(),
        ] {
            let mut mha = MultiHeadAttentionConfig::new(12, 6)
                .with_bias(true)
                .with_positions(positions.clone())
                .init(&device);
            if let Some(relative) = mha.positions.relative.as_mut() {
                // A non-zero table, so that dropping the wrong column would show.
                let table = Tensor::<2>::random([32, 6], Distribution::Default, &device);
                relative.embedding.weight = Param::from_tensor(table);
            }
            let x = Tensor::<3>::random([2, 5, 12], Distribution::Default, &device);
            let padding = crate::mask::padding_mask_from_lengths(&[5, 3], 5, &device);
            let input = AttentionInput::self_attention(x).mask_padding(padding);
            let gates = Tensor::<1>::from_data([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], &device);
            let masked = mha.forward(input.clone().head_gates(gates));
            let pruned = mha.prune_heads(&[1, 4]).unwrap();
            let out = pruned.forward(input);
            let diff = max_diff(&values(out.context), &values(masked.context));
            assert!(diff < 1e-5, "{positions:?}: pruned differs by {diff}");
            // The kept heads' weights are the original heads 0, 2, 3, 5.
            let kept = masked
                .weights
                .select(1, Tensor::<1, Int>::from_data([0, 2, 3, 5], &device));
            let diff = max_diff(&values(out.weights), &values(kept));
            assert!(diff < 1e-5, "{positions:?}: weights differ by {diff}");
        }
    }

    #[test]
    fn bad_prunes_are_errors() {
        let mha = MultiHeadAttentionConfig::new(8, 2).init(&Device::flex());
        let err = mha.prune_heads(&[2]).unwrap_err().to_string();
        assert!(err.contains("head 2 does not exist"), "{err}");
        assert!(mha.prune_heads(&[0, 1]).is_err());
    }

    #[test]
    fn a_head_that_does_not_reach_the_loss_has_no_importance() {
        let device = Device::flex().autodiff();
        let mha = MultiHeadAttentionConfig::new(8, 2).init(&device);
        let x = Tensor::<3>::random([2, 4, 8], Distribution::Default, &device);
        // Head 1's gate is multiplied by 0 inside the loss: its importance must be exactly 0.
        let importance = head_importance(2, &device, |gates| {
            let gates = gates * Tensor::<1>::from_data([1.0, 0.0], &device);
            let input = AttentionInput::self_attention(x.clone()).head_gates(gates);
            mha.forward(input).context.powi_scalar(2).mean()
        });
        assert!(
            importance[0] > 0.0 && importance[1] == 0.0,
            "{importance:?}"
        );
    }

    #[test]
    fn entropy_of_uniform_and_one_hot_attention() {
        let device = Device::flex();
        // Head 0 uniform over 4 keys, head 1 on one key; the second query of batch 0 is fully
        // masked (all zeros) and left out.
        let weights = Tensor::<4>::from_data(
            [[
                [[0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]],
                [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
            ]],
            &device,
        );
        let entropy = values(head_entropy(weights.clone()));
        assert!((entropy[0] - 4f32.ln()).abs() < 1e-6, "{entropy:?}");
        assert_eq!(entropy[1], 0.0);
        // With sinks a row sums to less than 1: the keys' share is what the entropy measures.
        let sunk = values(head_entropy(weights.mul_scalar(0.3)));
        assert!((sunk[0] - 4f32.ln()).abs() < 1e-6, "{sunk:?}");
        assert_eq!(sunk[1], 0.0);
    }

    #[test]
    fn pruning_keeps_the_kept_heads_sinks_and_the_reference_layout_refuses_them() {
        let device = Device::flex();
        let mut mha = MultiHeadAttentionConfig::new(8, 4)
            .with_sinks(true)
            .init(&device);
        let sinks = Tensor::<1>::from_data([1.0, 2.0, 3.0, 4.0], &device);
        mha.sinks = Some(burn::module::Param::from_tensor(sinks));
        let pruned = mha.prune_heads(&[0, 2]).unwrap();
        assert_eq!(values(pruned.sinks.as_ref().unwrap().val()), [2.0, 4.0]);
        let x = Tensor::<3>::random([1, 5, 8], Distribution::Default, &device);
        let input = || AttentionInput::self_attention(x.clone());
        // The pruned module equals the gated one, sinks included.
        let gated = mha.forward_context(AttentionInput {
            head_gates: Some(Tensor::from_data([0.0, 1.0, 0.0, 1.0], &device)),
            ..input()
        });
        let diff = values((gated - pruned.forward_context(input())).abs().max());
        assert!(diff[0] < 1e-5, "{diff:?}");
        let dir = tempfile::tempdir().unwrap();
        let err = mha
            .save_pytorch_safetensors(dir.path().join("w.safetensors"))
            .unwrap_err();
        assert!(err.to_string().contains("learned sinks"), "{err}");
    }
}
