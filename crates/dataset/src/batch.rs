//! Padded batches for burn's `DataLoader`.

#[cfg(feature = "burn")]
use burn::{data::dataloader::batcher::Batcher, prelude::*};

#[cfg(feature = "burn")]
use crate::{PAD, PadTo};

/// One encoded example.
#[derive(Debug, Clone, PartialEq)]
pub struct TextItem {
    /// Token ids (no padding).
    pub tokens: Vec<usize>,
    /// Class id.
    pub label: usize,
}

#[cfg(feature = "burn")]
/// A batch of encoded examples, on the device the batcher was given.
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// `[batch, len]` token ids, `<pad>` (0) after each sequence's end.
    pub tokens: Tensor<2, Int>,
    /// `[batch, len]`, `true` = padding (the polarity the `attention` crate expects).
    pub mask_padding: Tensor<2, Bool>,
    /// `[batch]` class ids.
    pub labels: Tensor<1, Int>,
}

#[cfg(feature = "burn")]
/// Pads each batch to its longest sequence (or the next length of a fixed ladder, see
/// [`PadTo`]), truncating sequences longer than `max_len`.
#[derive(Debug, Clone)]
pub struct TextBatcher {
    /// Longest sequence kept; longer ones are cut at the end.
    pub max_len: usize,
    /// How long the padded batch is.
    pub pad_to: PadTo,
}

#[cfg(feature = "burn")]
impl TextBatcher {
    /// A batcher that keeps at most `max_len` tokens per example.
    pub fn new(max_len: usize) -> Self {
        assert!(max_len > 0, "max_len must be at least 1");
        Self {
            max_len,
            pad_to: PadTo::Longest,
        }
    }

    /// The same batcher padding as `pad_to` says.
    pub fn with_pad_to(self, pad_to: PadTo) -> Self {
        Self { pad_to, ..self }
    }
}

#[cfg(feature = "burn")]
impl Batcher<TextItem, TextBatch> for TextBatcher {
    /// # Shapes
    /// `items.len()` examples → tokens and mask `[batch, len]`, labels `[batch]`, where `len` is
    /// `min(longest, max_len)` padded as [`PadTo`] says.
    fn batch(&self, items: Vec<TextItem>, device: &Device) -> TextBatch {
        let batch = items.len();
        // At least one column, so a batch of empty texts still has a (fully masked) shape.
        let longest = items.iter().map(|i| i.tokens.len()).max().unwrap_or(0);
        let len = self.pad_to.length(longest, self.max_len);
        let mut tokens = vec![PAD as i64; batch * len];
        let mut padding = vec![true; batch * len];
        for (row, item) in items.iter().enumerate() {
            for (col, &token) in item.tokens.iter().take(len).enumerate() {
                tokens[row * len + col] = token as i64;
                padding[row * len + col] = false;
            }
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        TextBatch {
            tokens: Tensor::from_data(TensorData::new(tokens, [batch, len]), device),
            mask_padding: Tensor::from_data(TensorData::new(padding, [batch, len]), device),
            labels: Tensor::from_data(TensorData::new(labels, [batch]), device),
        }
    }
}

#[cfg(all(test, feature = "burn"))]
mod tests {
    use super::*;

    #[test]
    fn pads_to_longest_and_truncates_at_max_len() {
        let device = Device::flex();
        let items = vec![
            TextItem {
                tokens: vec![5, 6],
                label: 1,
            },
            TextItem {
                tokens: vec![7, 8, 9, 10, 11],
                label: 0,
            },
        ];
        let b = TextBatcher::new(4).batch(items.clone(), &device);
        assert_eq!(b.tokens.dims(), [2, 4]);
        assert_eq!(
            b.tokens.into_data().try_into_vec_as::<i64>().unwrap(),
            [5, 6, 0, 0, 7, 8, 9, 10]
        );
        let padding = b
            .mask_padding
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        assert_eq!(
            padding,
            [false, false, true, true, false, false, false, false]
        );
        assert_eq!(
            b.labels.into_data().try_into_vec_as::<i64>().unwrap(),
            [1, 0]
        );

        let b = TextBatcher::new(64).batch(items.clone(), &device);
        assert_eq!(b.tokens.dims(), [2, 5]);

        let b = TextBatcher::new(64)
            .with_pad_to(PadTo::Ladder)
            .batch(items, &device);
        assert_eq!(b.tokens.dims(), [2, 8]);
        let padding = b
            .mask_padding
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        assert_eq!(padding.iter().filter(|&&p| !p).count(), 7, "7 real tokens");
    }
}
