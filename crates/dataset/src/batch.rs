//! Padded batches for burn's `DataLoader`.

#[cfg(feature = "burn")]
use burn::{data::dataloader::batcher::Batcher, prelude::*};

#[cfg(feature = "burn")]
use crate::{PAD, PadTo, bucket::packed_rows};

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
    /// `[texts]` class ids: one per row, or one per text of a packed batch.
    pub labels: Tensor<1, Int>,
    /// `None`: one text per row. `Some`: several texts per row ([`TextBatcher::pack`]).
    pub packing: Option<Packing>,
}

#[cfg(feature = "burn")]
/// Where the tokens of a packed batch belong: what a model needs to keep its texts apart (a
/// document mask from `text_ids`), give each its own positions and pool each text alone.
#[derive(Debug, Clone)]
pub struct Packing {
    /// How many texts the rows hold (`labels`' length).
    pub texts: usize,
    /// `[rows, len]`: the text each token belongs to, as its index in `labels`. Padding holds
    /// the number of texts (one past the last), so it is a segment of its own in every row.
    pub text_ids: Tensor<2, Int>,
    /// `[rows, len]`: each token's position in its text, 0 at every text's first token (and
    /// on padding).
    pub positions: Tensor<2, Int>,
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

    /// The texts packed several to a row ([`pack_rows`](crate::pack_rows)), each cut at `max_len`: rows as long
    /// as the longest text (padded as [`PadTo`] says, and filled up to that length), so no row
    /// is longer than in a batch of one text per row, and there are fewer of them. The number
    /// of rows varies from batch to batch (a GPU sees more shapes than with one text per row).
    ///
    /// # Shapes
    /// `items.len()` texts → tokens, mask, `text_ids` and `positions` `[rows, len]`, labels
    /// `[texts]` in the items' order.
    ///
    /// ```
    /// use burn::prelude::*;
    /// use dataset::{TextBatcher, TextItem};
    ///
    /// let items = [vec![5, 6, 7], vec![8], vec![9, 10]]
    ///     .map(|tokens| TextItem { tokens, label: 0 })
    ///     .to_vec();
    /// let batch = TextBatcher::new(64).pack(items, &Device::flex());
    /// let ids = |t: Tensor<2, Int>| t.into_data().try_into_vec_as::<i64>().unwrap();
    /// // Rows of 3: [5 6 7] and [9 10 8]; text 1 ([8]) fills the second row's last slot.
    /// assert_eq!(ids(batch.tokens), [5, 6, 7, 9, 10, 8]);
    /// let packing = batch.packing.unwrap();
    /// assert_eq!(ids(packing.text_ids), [0, 0, 0, 2, 2, 1]);
    /// assert_eq!(ids(packing.positions), [0, 1, 2, 0, 1, 0]);
    /// ```
    pub fn pack(&self, items: Vec<TextItem>, device: &Device) -> TextBatch {
        let texts = items.len();
        let lengths: Vec<usize> = items
            .iter()
            .map(|i| i.tokens.len().min(self.max_len))
            .collect();
        let (rows, len) = packed_rows(&lengths, self.pad_to, self.max_len);
        let slots = rows.len() * len;
        let mut tokens = vec![PAD as i64; slots];
        let mut padding = vec![true; slots];
        let mut text_ids = vec![texts as i64; slots];
        let mut positions = vec![0i64; slots];
        for (row, row_texts) in rows.iter().enumerate() {
            let mut col = row * len;
            for &text in row_texts {
                for (position, &token) in items[text].tokens[..lengths[text]].iter().enumerate() {
                    tokens[col] = token as i64;
                    padding[col] = false;
                    text_ids[col] = text as i64;
                    positions[col] = position as i64;
                    col += 1;
                }
            }
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        let shape = [rows.len(), len];
        let int = |values: Vec<i64>| Tensor::from_data(TensorData::new(values, shape), device);
        TextBatch {
            tokens: int(tokens),
            mask_padding: Tensor::from_data(TensorData::new(padding, shape), device),
            labels: Tensor::from_data(TensorData::new(labels, [texts]), device),
            packing: Some(Packing {
                texts,
                text_ids: int(text_ids),
                positions: int(positions),
            }),
        }
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
            packing: None,
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

#[cfg(all(test, feature = "burn"))]
mod packing_tests {
    use burn::data::dataloader::DataLoader;

    use super::*;
    use crate::{Batching, TextLoader};

    fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
        t.into_data().try_into_vec_as::<i64>().unwrap()
    }

    #[test]
    fn packed_rows_keep_each_text_whole_and_numbered_from_zero() {
        let device = Device::flex();
        let items: Vec<TextItem> = [7, 2, 5, 1, 3, 9]
            .iter()
            .enumerate()
            .map(|(i, &n)| TextItem {
                // Text i's tokens are 100·i + position, so each can be traced back.
                tokens: (0..n).map(|p| 100 * (i + 1) + p).collect(),
                label: i % 2,
            })
            .collect();
        // Uncut, the longest text (9) sets the rows' length, padded to the ladder's 12 and
        // filled up to it: 9 + 3 | 7 + 5 | 2 + 1.
        let ladder = TextBatcher::new(64)
            .with_pad_to(PadTo::Ladder)
            .pack(items.clone(), &device);
        assert_eq!(ladder.tokens.dims(), [3, 12]);
        // max_len 8 cuts the text of 9: 8 | 7 + 1 | 5 + 3 | 2, rows of 8.
        let batch = TextBatcher::new(8).pack(items.clone(), &device);
        let [rows, len] = batch.tokens.dims();
        assert_eq!([rows, len], [4, 8]);
        let packing = batch.packing.unwrap();
        let (tokens, ids, positions) = (
            ints(batch.tokens),
            ints(packing.text_ids),
            ints(packing.positions),
        );
        let padding = batch
            .mask_padding
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        for (text, item) in items.iter().enumerate() {
            let slots: Vec<usize> = (0..rows * len).filter(|&s| ids[s] == text as i64).collect();
            let kept = item.tokens.len().min(8);
            assert_eq!(slots.len(), kept, "text {text}");
            // Contiguous, in one row, in order, positions from 0.
            assert_eq!(slots[0] / len, slots[kept - 1] / len, "text {text} split");
            for (p, &s) in slots.iter().enumerate() {
                assert_eq!(s, slots[0] + p);
                assert_eq!(tokens[s], item.tokens[p] as i64);
                assert_eq!(positions[s], p as i64);
                assert!(!padding[s]);
            }
        }
        for s in 0..rows * len {
            let pad = ids[s] == items.len() as i64;
            assert_eq!(padding[s], pad, "slot {s}");
            if pad {
                assert_eq!((tokens[s], positions[s]), (PAD as i64, 0));
            }
        }
        assert_eq!(ints(batch.labels), [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn a_packing_loader_draws_shuffled_batches_and_counts_padding_without_drawing() {
        let loader_items = || -> Vec<TextItem> {
            (0..40)
                .map(|i| TextItem {
                    tokens: (0..1 + (i * 7) % 13).map(|t| 2 + t + i).collect(),
                    label: i % 3,
                })
                .collect()
        };
        let loader = TextLoader::new(
            loader_items(),
            TextBatcher::new(64),
            8,
            Batching::Pack,
            Device::flex(),
        )
        .shuffle(5);
        let share = loader.padding_share();
        let epoch = |loader: &TextLoader| -> Vec<(Vec<i64>, [usize; 2])> {
            loader
                .iter()
                .map(|b| {
                    let b = b.unwrap();
                    assert!(b.packing.is_some());
                    (ints(b.tokens.clone()), b.tokens.dims())
                })
                .collect()
        };
        let batches = epoch(&loader);
        let twin = TextLoader::new(
            loader_items(),
            TextBatcher::new(64),
            8,
            Batching::Pack,
            Device::flex(),
        )
        .shuffle(5);
        assert_eq!(batches, epoch(&twin), "counting padding draws nothing");
        assert_ne!(batches, epoch(&twin), "the next epoch draws anew");
        assert_eq!(batches.len(), 5);
        // The padding of the first epoch is the share counted before it.
        let (real, slots) = batches
            .iter()
            .fold((0, 0), |(r, s), (tokens, [rows, len])| {
                (
                    r + tokens.iter().filter(|&&t| t != PAD as i64).count(),
                    s + rows * len,
                )
            });
        assert!((share - (1.0 - real as f64 / slots as f64)).abs() < 1e-12);
        // Packed rows: fewer rows than texts.
        assert!(batches.iter().all(|(_, [rows, _])| *rows < 8));
    }
}
