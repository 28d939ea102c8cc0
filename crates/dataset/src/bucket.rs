//! Length-bucketed batches: which examples go together, and a burn `DataLoader` that draws a new
//! grouping every epoch.
//!
//! Texts vary in length (SST-2's training phrases from 1 to 52 tokens), and a batch padded to
//! its longest text spends most of its attention work on padding when lengths are mixed.
//! [`Batching::Bucket`] shuffles, takes pools of [`POOL_BATCHES`] batches, sorts each pool by
//! length, cuts it into batches and shuffles the batch order (the `BucketIterator` recipe of
//! torchtext and fairseq): batches hold texts of similar length, and the order of the examples
//! and of the batches is still random from epoch to epoch. [`Batching::Pack`] draws batches as
//! `Shuffle` does and packs each one's texts several to a row ([`pack_rows`]): no padding between
//! texts, and the model keeps them apart with a document mask and per-text pooling.

use rand::{rngs::StdRng, seq::SliceRandom};

/// How training examples are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Batching {
    /// Shuffle, sort pools of [`POOL_BATCHES`] batches by length, cut, shuffle the batches.
    #[default]
    Bucket,
    /// Shuffle and cut: each batch is a random draw of lengths.
    Shuffle,
    /// Shuffle and cut as [`Shuffle`](Self::Shuffle), then pack each batch's texts several to
    /// a row ([`pack_rows`], [`TextBatcher::pack`](crate::TextBatcher::pack)).
    Pack,
}

/// Batches per sorted pool in [`Batching::Bucket`]: large enough that neighbours in a pool have
/// close lengths, small enough that a batch still mixes examples from all over the split.
pub const POOL_BATCHES: usize = 50;

/// The indices of `lengths.len()` examples grouped into batches of at most `batch_size`.
///
/// With an `rng` (training) the grouping is drawn as [`Batching`] says; without one (evaluation)
/// it is deterministic: [`Batching::Bucket`] sorts the whole split by length (least padding),
/// [`Batching::Shuffle`] keeps file order. Every index appears exactly once; only the last
/// batch of a pool (bucket) or of the split may be short.
///
/// # Panics
/// When `batch_size` is 0.
pub fn batch_indices(
    lengths: &[usize],
    batch_size: usize,
    batching: Batching,
    rng: Option<&mut StdRng>,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch_size must be at least 1");
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    let Some(rng) = rng else {
        if batching == Batching::Bucket {
            order.sort_by_key(|&i| lengths[i]);
        }
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    };
    order.shuffle(rng);
    match batching {
        Batching::Shuffle | Batching::Pack => {
            order.chunks(batch_size).map(<[usize]>::to_vec).collect()
        }
        Batching::Bucket => {
            let mut batches: Vec<Vec<usize>> = order
                .chunks_mut(batch_size * POOL_BATCHES)
                .flat_map(|pool| {
                    // Stable: equal lengths keep their shuffled order.
                    pool.sort_by_key(|&i| lengths[i]);
                    pool.chunks(batch_size)
                        .map(<[usize]>::to_vec)
                        .collect::<Vec<_>>()
                })
                .collect();
            batches.shuffle(rng);
            batches
        }
    }
}

/// How many batches [`batch_indices`] cuts `n` examples into (a learning-rate schedule's length).
pub fn batch_count(n: usize, batch_size: usize, batching: Batching) -> usize {
    match batching {
        Batching::Shuffle | Batching::Pack => n.div_ceil(batch_size),
        Batching::Bucket => {
            let pool = batch_size * POOL_BATCHES;
            (n / pool) * POOL_BATCHES + (n % pool).div_ceil(batch_size)
        }
    }
}

/// Texts of `lengths` tokens packed into rows of at most `capacity` tokens: first-fit
/// decreasing (each text, longest first, goes into the first row with room), which leaves at
/// most one row less than half full. Returns each row's texts as indices into `lengths`, in
/// the order they were placed; texts longer than `capacity` get a row of their own (the
/// batcher cuts them first).
///
/// ```
/// // 5 + 3 fill one row of 8, 4 + 2 + 2 the next.
/// assert_eq!(dataset::pack_rows(&[2, 5, 3, 4, 2], 8), [vec![1, 2], vec![3, 0, 4]]);
/// ```
pub fn pack_rows(lengths: &[usize], capacity: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable: equal lengths keep the batch's order.
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut rows: Vec<(usize, Vec<usize>)> = Vec::new(); // (tokens used, texts)
    for i in order {
        match rows
            .iter_mut()
            .find(|(used, _)| used + lengths[i] <= capacity)
        {
            Some((used, texts)) => {
                *used += lengths[i];
                texts.push(i);
            }
            None => rows.push((lengths[i], vec![i])),
        }
    }
    rows.into_iter().map(|(_, texts)| texts).collect()
}

/// The rows of a packed batch of texts with `lengths` tokens (already cut at `max_len`), and
/// their length: the longest text, padded as `pad_to` says; the rows are filled up to that
/// length, so a ladder's slack holds texts, not padding.
pub(crate) fn packed_rows(
    lengths: &[usize],
    pad_to: PadTo,
    max_len: usize,
) -> (Vec<Vec<usize>>, usize) {
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let len = pad_to.length(longest, max_len);
    (pack_rows(lengths, len), len)
}

/// The share of a batch grouping's token slots that hold padding: `batches` of texts with
/// `lengths` tokens (cut at `max_len`), padded as `pad_to` says, one text per row or packed
/// ([`Batching::Pack`], rows as long as each batch's longest text, padded).
pub fn padding_share(
    lengths: &[usize],
    batches: &[Vec<usize>],
    batching: Batching,
    pad_to: PadTo,
    max_len: usize,
) -> f64 {
    let (mut real, mut slots) = (0usize, 0usize);
    for batch in batches {
        let cut: Vec<usize> = batch.iter().map(|&i| lengths[i].min(max_len)).collect();
        let (rows, len) = match batching {
            Batching::Pack => {
                let (rows, len) = packed_rows(&cut, pad_to, max_len);
                (rows.len(), len)
            }
            Batching::Bucket | Batching::Shuffle => {
                let longest = cut.iter().copied().max().unwrap_or(0);
                (cut.len(), pad_to.length(longest, max_len))
            }
        };
        real += cut.iter().sum::<usize>();
        slots += rows * len;
    }
    if slots == 0 {
        0.0
    } else {
        1.0 - real as f64 / slots as f64
    }
}

/// The padded lengths a GPU backend sees with [`PadTo::Ladder`]: 8, 12, 16, 24, 32, 48, 64, 96,
/// … (powers of two and 1.5× powers of two from 8), each at most 1.5× the one before, so
/// padding adds at most half of a batch's longest text (above 8 tokens); `max_len` closes the
/// ladder. Two shapes per doubling of length: 7 up to 64 tokens, 15 up to 1,024.
pub fn pad_ladder(max_len: usize) -> Vec<usize> {
    let mut ladder = Vec::new();
    let mut power = 8;
    while power < max_len {
        ladder.push(power);
        if power + power / 2 < max_len {
            ladder.push(power + power / 2);
        }
        power *= 2;
    }
    ladder.retain(|&l| l < max_len);
    ladder.push(max_len);
    ladder
}

/// How long a batch's padded sequences are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadTo {
    /// The batch's longest text: the least work, but one tensor shape per distinct length.
    #[default]
    Longest,
    /// The shortest length of [`pad_ladder`] that holds the batch's longest text: a GPU
    /// compiles and autotunes its kernels for a handful of shapes, once each.
    Ladder,
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Batching::Bucket => "bucket",
            Batching::Shuffle => "shuffle",
            Batching::Pack => "pack",
        })
    }
}

impl std::str::FromStr for Batching {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bucket" => Ok(Batching::Bucket),
            "shuffle" => Ok(Batching::Shuffle),
            "pack" => Ok(Batching::Pack),
            other => Err(format!(
                "unknown batching `{other}`; expected bucket, shuffle or pack"
            )),
        }
    }
}

impl PadTo {
    /// The padded length of a batch whose longest text has `longest` tokens (at least 1 and at
    /// most `max_len`).
    pub fn length(self, longest: usize, max_len: usize) -> usize {
        let longest = longest.clamp(1, max_len);
        match self {
            PadTo::Longest => longest,
            PadTo::Ladder => pad_ladder(max_len)
                .into_iter()
                .find(|&l| l >= longest)
                .unwrap_or(max_len),
        }
    }
}

#[cfg(feature = "burn")]
mod loader {
    use std::sync::{Arc, Mutex};

    use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress, batcher::Batcher as _};
    use burn::prelude::Device;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::{Batching, batch_indices, padding_share};
    use crate::{TextBatch, TextBatcher, TextItem};

    /// A fresh seed for a loader copy, drawn from `rng` (so copies do not repeat each other).
    fn fork(rng: &mut StdRng) -> u64 {
        rng.random()
    }

    /// A burn `DataLoader` of [`TextBatch`]es grouped by [`Batching`], drawing a new grouping
    /// each epoch (each call of `iter`). Hand it to burn-train's `SupervisedTraining` like the
    /// loaders `DataLoaderBuilder` makes.
    ///
    /// ```
    /// use burn::data::dataloader::DataLoader;
    /// use burn::prelude::*;
    /// use dataset::{Batching, TextBatcher, TextItem, TextLoader};
    ///
    /// let items: Vec<TextItem> = (1..=10)
    ///     .map(|n| TextItem { tokens: vec![2; n], label: n % 2 })
    ///     .collect();
    /// let loader = TextLoader::new(items, TextBatcher::new(64), 4, Batching::Bucket, Device::flex())
    ///     .shuffle(42);
    /// let lengths: Vec<usize> = loader.iter().map(|b| b.unwrap().tokens.dims()[1]).collect();
    /// // 10 texts of lengths 1..=10 in one pool: sorted, cut in 4, 4, 2, batch order shuffled.
    /// let mut sorted = lengths.clone();
    /// sorted.sort();
    /// assert_eq!(sorted, [4, 8, 10]);
    /// ```
    #[derive(Clone)]
    pub struct TextLoader {
        items: Arc<[TextItem]>,
        batcher: TextBatcher,
        batch_size: usize,
        batching: Batching,
        rng: Option<Arc<Mutex<StdRng>>>,
        /// The seed `rng` started from: it draws the first epoch again.
        seed: Option<u64>,
        device: Device,
    }

    impl TextLoader {
        /// A loader over `items` in batches of `batch_size`, deterministic until
        /// [`shuffle`](Self::shuffle) is called.
        ///
        /// # Panics
        /// When `batch_size` is 0.
        pub fn new(
            items: impl Into<Arc<[TextItem]>>,
            batcher: TextBatcher,
            batch_size: usize,
            batching: Batching,
            device: Device,
        ) -> Self {
            assert!(batch_size > 0, "batch_size must be at least 1");
            Self {
                items: items.into(),
                batcher,
                batch_size,
                batching,
                rng: None,
                seed: None,
                device,
            }
        }

        /// Draws a new grouping each epoch from `seed`.
        pub fn shuffle(mut self, seed: u64) -> Self {
            self.rng = Some(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))));
            self.seed = Some(seed);
            self
        }

        /// This epoch's batches, as indices into the items.
        fn epoch(&self) -> Vec<Vec<usize>> {
            let mut rng = self.rng.as_ref().map(|r| r.lock().unwrap());
            batch_indices(
                &self.lengths(),
                self.batch_size,
                self.batching,
                rng.as_deref_mut(),
            )
        }

        fn lengths(&self) -> Vec<usize> {
            self.items.iter().map(|i| i.tokens.len()).collect()
        }

        /// The share of token slots that padding fills in an epoch's batches: the grouping
        /// this loader's seed draws first, drawn again (its own generator is untouched). Other
        /// epochs, and the copies burn-train makes for its devices (each with a seed of its
        /// own), draw other groupings alike: an estimate of theirs, not their count.
        pub fn padding_share(&self) -> f64 {
            let lengths = self.lengths();
            let mut rng = self.seed.map(StdRng::seed_from_u64);
            let batches = batch_indices(&lengths, self.batch_size, self.batching, rng.as_mut());
            let TextBatcher { max_len, pad_to } = self.batcher;
            padding_share(&lengths, &batches, self.batching, pad_to, max_len)
        }

        fn copy(&self, items: Arc<[TextItem]>, device: Device) -> Arc<dyn DataLoader<TextBatch>> {
            let seed = self.rng.as_ref().map(|r| fork(&mut r.lock().unwrap()));
            Arc::new(Self {
                items,
                rng: seed.map(|s| Arc::new(Mutex::new(StdRng::seed_from_u64(s)))),
                seed,
                device,
                ..self.clone()
            })
        }
    }

    impl DataLoader<TextBatch> for TextLoader {
        fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TextBatch> + 'a> {
            Box::new(Iter {
                loader: self,
                batches: self.epoch().into_iter(),
                done: 0,
            })
        }

        fn num_items(&self) -> usize {
            self.items.len()
        }

        fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TextBatch>> {
            self.copy(self.items.clone(), device.clone())
        }

        fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TextBatch>> {
            self.copy(self.items[start..end].into(), self.device.clone())
        }
    }

    struct Iter<'a> {
        loader: &'a TextLoader,
        batches: std::vec::IntoIter<Vec<usize>>,
        done: usize,
    }

    impl Iterator for Iter<'_> {
        type Item = Result<TextBatch, burn::data::dataset::DatasetError>;

        fn next(&mut self) -> Option<Self::Item> {
            let indices = self.batches.next()?;
            self.done += indices.len();
            let items = indices
                .iter()
                .map(|&i| self.loader.items[i].clone())
                .collect();
            let (batcher, device) = (&self.loader.batcher, &self.loader.device);
            Some(Ok(match self.loader.batching {
                Batching::Pack => batcher.pack(items, device),
                Batching::Bucket | Batching::Shuffle => batcher.batch(items, device),
            }))
        }
    }

    impl DataLoaderIterator<TextBatch> for Iter<'_> {
        fn progress(&self) -> Progress {
            Progress::new(self.done, self.loader.items.len(), None)
        }
    }
}

#[cfg(feature = "burn")]
pub use loader::TextLoader;

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn lengths(n: usize) -> Vec<usize> {
        // Mixed lengths 1..=40 in a scrambled order.
        (0..n).map(|i| (i * 17) % 40 + 1).collect()
    }

    fn assert_partition(batches: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "every index exactly once");
    }

    #[test]
    fn buckets_partition_the_split_and_cut_padding() {
        let lengths = lengths(10_000);
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len())
                .sum()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let bucket = batch_indices(&lengths, 64, Batching::Bucket, Some(&mut rng));
        let shuffle = batch_indices(&lengths, 64, Batching::Shuffle, Some(&mut rng));
        assert_partition(&bucket, lengths.len());
        assert_partition(&shuffle, lengths.len());
        for (batches, batching) in [(&bucket, Batching::Bucket), (&shuffle, Batching::Shuffle)] {
            assert_eq!(batches.len(), batch_count(lengths.len(), 64, batching));
        }
        assert_eq!(batch_count(3201, 64, Batching::Bucket), 51);
        // Sorted pools: within a batch the lengths span a few values, not the whole 1..=40.
        let spread = |b: &Vec<usize>| {
            let (min, max) = b
                .iter()
                .map(|&i| lengths[i])
                .fold((usize::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
            max - min
        };
        let mean_spread = bucket.iter().map(spread).sum::<usize>() as f64 / bucket.len() as f64;
        assert!(mean_spread < 4.0, "mean spread {mean_spread}");
        // About half the padded work of random batches (mean length 20.5 against ~40).
        let (b, s) = (padded(&bucket) as f64, padded(&shuffle) as f64);
        assert!(b < 0.6 * s, "bucketed {b} vs shuffled {s}");
    }

    #[test]
    fn batch_order_is_shuffled_and_changes_with_the_seed() {
        let lengths = lengths(64 * POOL_BATCHES * 3);
        let draw = |seed| {
            batch_indices(
                &lengths,
                64,
                Batching::Bucket,
                Some(&mut StdRng::seed_from_u64(seed)),
            )
        };
        let (a, b) = (draw(1), draw(2));
        assert_eq!(a, draw(1), "same seed, same epoch");
        assert_ne!(a, b, "another seed, another grouping");
        // Batch lengths are not in sorted order: the pools' batches are shuffled.
        let first: Vec<usize> = a.iter().map(|b| lengths[b[0]]).collect();
        assert!(first.windows(2).any(|w| w[0] > w[1]), "{first:?}");
    }

    #[test]
    fn without_rng_order_is_deterministic() {
        let lengths = [3, 1, 2, 5, 4];
        assert_eq!(
            batch_indices(&lengths, 2, Batching::Bucket, None),
            [vec![1, 2], vec![0, 4], vec![3]]
        );
        assert_eq!(
            batch_indices(&lengths, 2, Batching::Shuffle, None),
            [vec![0, 1], vec![2, 3], vec![4]]
        );
    }

    #[test]
    fn packed_rows_hold_every_text_once_within_capacity() {
        let lengths = lengths(1_000);
        for capacity in [40, 64, 100] {
            let rows = pack_rows(&lengths, capacity);
            assert_partition(&rows, lengths.len());
            let fills: Vec<usize> = rows
                .iter()
                .map(|r| r.iter().map(|&i| lengths[i]).sum())
                .collect();
            assert!(fills.iter().all(|&f| f <= capacity), "{fills:?}");
            // First-fit: no two rows could have been one (at most one row half full or less).
            let half_empty = fills.iter().filter(|&&f| 2 * f <= capacity).count();
            assert!(half_empty <= 1, "{half_empty} rows at most half full");
            let total: usize = lengths.iter().sum();
            assert!(
                rows.len() < total.div_ceil(capacity) + 2,
                "{} rows",
                rows.len()
            );
        }
        // A text longer than the capacity gets a row of its own.
        assert_eq!(pack_rows(&[9, 1], 4), [vec![0], vec![1]]);
        assert!(pack_rows(&[], 4).is_empty());
    }

    #[test]
    fn packing_leaves_less_padding_than_buckets_or_shuffles() {
        let lengths = lengths(6_400);
        let share = |batching| {
            let mut rng = StdRng::seed_from_u64(3);
            let batches = batch_indices(&lengths, 64, batching, Some(&mut rng));
            padding_share(&lengths, &batches, batching, PadTo::Longest, 64)
        };
        let (bucket, shuffle, pack) = (
            share(Batching::Bucket),
            share(Batching::Shuffle),
            share(Batching::Pack),
        );
        // Lengths uniform on 1..=40: a random batch pads to ~40 (half its slots padding).
        assert!((0.4..0.55).contains(&shuffle), "shuffle {shuffle}");
        // Packed rows as long as each batch's longest text: the last rows of a batch are part
        // full (~5 %); sorted pools pad less still (~2 %) on lengths this regular.
        assert!(pack < 0.1 && bucket < 0.1, "pack {pack}, bucket {bucket}");
        assert!(pack < shuffle / 5.0, "pack {pack}, shuffle {shuffle}");
        // Cut at max_len: a text of 50 in rows of 8 counts 8 tokens.
        let one = padding_share(&[50, 4], &[vec![0, 1]], Batching::Pack, PadTo::Longest, 8);
        assert!((one - 4.0 / 16.0).abs() < 1e-12, "{one}");
    }

    #[test]
    fn ladder_is_short_and_bounds_padding() {
        assert_eq!(pad_ladder(64), [8, 12, 16, 24, 32, 48, 64]);
        assert_eq!(pad_ladder(50), [8, 12, 16, 24, 32, 48, 50]);
        assert_eq!(pad_ladder(5), [5]);
        assert_eq!(pad_ladder(1024).len(), 15);
        for max_len in [1, 7, 8, 9, 64, 100, 1024] {
            for longest in 1..=max_len {
                let l = PadTo::Ladder.length(longest, max_len);
                assert!(
                    l >= longest && l <= max_len,
                    "{longest} -> {l} (max {max_len})"
                );
                assert!(
                    l <= 8 || 2 * l <= 3 * longest,
                    "{longest} -> {l}: over 1.5x"
                );
            }
        }
        assert_eq!(PadTo::Longest.length(0, 64), 1);
        assert_eq!(PadTo::Longest.length(70, 64), 64);
    }
}
