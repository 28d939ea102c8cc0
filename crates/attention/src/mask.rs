//! Attention masks. **`true` = masked** everywhere, as in burn (`mask_fill`, `MhaInput`,
//! `generate_padding_mask`). PyTorch's `scaled_dot_product_attention` uses the opposite
//! polarity for boolean masks, and the reference code's `mask == 0` convention too: negate
//! those with `bool_not()` when porting.
//!
//! Shapes: a padding mask is `[batch, l_k]`; an attention mask is `[batch, l_q, l_k]` and is
//! shared by all heads. [`to_scores_mask`] turns either into the `[batch, 1, l_q | 1, l_k]` form
//! that broadcasts over the heads of a score tensor.
//!
//! ```
//! use attention::mask;
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! let pad = mask::padding_mask_from_lengths(&[3, 1], 4, &device);
//! let expected = [[false, false, false, true], [false, true, true, true]];
//! assert_eq!(pad.into_data(), TensorData::from(expected));
//!
//! let causal = mask::causal_mask(1, 3, &device); // [1, 3, 3]: key j > query i is masked
//! let expected = [[[false, true, true], [false, false, true], [false, false, false]]];
//! assert_eq!(causal.into_data(), TensorData::from(expected));
//! ```

use burn::prelude::*;

/// Padding mask `[batch, max_len]` from sequence lengths: position `p` of row `i` is masked when
/// `p >= lengths[i]`.
pub fn padding_mask_from_lengths(
    lengths: &[usize],
    max_len: usize,
    device: &Device,
) -> Tensor<2, Bool> {
    let batch = lengths.len();
    let positions = Tensor::<1, Int>::arange(0..max_len as i64, device)
        .reshape([1, max_len])
        .expand([batch, max_len]);
    let lengths: Vec<i64> = lengths.iter().map(|&l| l as i64).collect();
    let lengths = Tensor::<2, Int>::from_data(TensorData::new(lengths, [batch, 1]), device);
    positions.greater_equal(lengths.expand([batch, max_len]))
}

/// Padding mask `[batch, len]` from token ids `[batch, len]`: positions holding `pad_id` are masked.
pub fn padding_mask_from_tokens(tokens: Tensor<2, Int>, pad_id: usize) -> Tensor<2, Bool> {
    tokens.equal_elem(pad_id as i64)
}

/// Causal mask `[batch, len, len]`: query `i` may not attend to keys `j > i`.
pub fn causal_mask(batch: usize, len: usize, device: &Device) -> Tensor<3, Bool> {
    Tensor::<2, Bool>::tril_mask([len, len], 0, device)
        .reshape([1, len, len])
        .expand([batch, len, len])
}

/// Document (block-diagonal) mask `[batch, len, len]` from sequence ids `[batch, len]`: query
/// `i` may attend to key `j` only when both belong to the same sequence, as texts packed into
/// one row need ([`mask_mod::document`](crate::mask_mod::document) is the same rule as a mask
/// function). Ids need not be contiguous or sorted.
///
/// ```
/// use attention::mask;
/// use burn::prelude::*;
///
/// let device = Device::flex();
/// let ids = Tensor::<2, Int>::from_data([[4, 4, 9]], &device);
/// let expected = [[[false, false, true], [false, false, true], [true, true, false]]];
/// assert_eq!(mask::document_mask(ids).into_data(), TensorData::from(expected));
/// ```
pub fn document_mask(ids: Tensor<2, Int>) -> Tensor<3, Bool> {
    let [batch, len] = ids.dims();
    let shape = [batch, len, len];
    let queries = ids.clone().reshape([batch, len, 1]).expand(shape);
    queries.not_equal(ids.reshape([batch, 1, len]).expand(shape))
}

/// Combines an optional padding mask `[batch, l_k]` and an optional attention mask
/// `[batch, l_q, l_k]` into one mask `[batch, 1, l_q | 1, l_k]` that broadcasts over heads and
/// queries. Either may be absent; `None` when both are.
pub fn to_scores_mask(
    padding: Option<Tensor<2, Bool>>,
    attention: Option<Tensor<3, Bool>>,
) -> Option<Tensor<4, Bool>> {
    let padding = padding.map(|m| {
        let [batch, l_k] = m.dims();
        m.reshape([batch, 1, 1, l_k])
    });
    let attention = attention.map(|m| {
        let [batch, l_q, l_k] = m.dims();
        m.reshape([batch, 1, l_q, l_k])
    });
    match (padding, attention) {
        (Some(p), Some(a)) => {
            let shape = a.dims();
            Some(p.expand(shape).bool_or(a))
        }
        (p, a) => p.or(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_from_tokens_marks_pad_ids() {
        let device = Device::flex();
        let tokens = Tensor::<2, Int>::from_data([[4, 5, 0], [0, 7, 0]], &device);
        let mask = padding_mask_from_tokens(tokens, 0);
        assert_eq!(
            mask.into_data(),
            TensorData::from([[false, false, true], [true, false, true]])
        );
    }

    #[test]
    fn padding_and_attention_masks_combine_with_or() {
        let device = Device::flex();
        let pad = padding_mask_from_lengths(&[2], 3, &device);
        let causal = causal_mask(1, 3, &device);
        let combined = to_scores_mask(Some(pad), Some(causal)).unwrap();
        assert_eq!(combined.dims(), [1, 1, 3, 3]);
        let expected = [[[
            [false, true, true],
            [false, false, true],
            [false, false, true],
        ]]];
        assert_eq!(combined.into_data(), TensorData::from(expected));
        assert!(to_scores_mask(None, None).is_none());
    }
}
