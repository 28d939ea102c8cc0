//! The bag-of-words baseline every report carries: TF-IDF features of the same vocabulary and
//! a multinomial logistic regression, trained on the same splits. Word order is invisible to
//! it, so where attention beats it, order (or interactions between words) is what it used.
//!
//! Hand-written rather than from a crate: the features are sparse (a sentence touches a few
//! of ~14k vocabulary entries), and the Rust logistic-regression crates we looked at take dense
//! matrices, which for SST-2 would be 67k × 14k floats.

use dataset::TextItem;
use serde::{Deserialize, Serialize};

use crate::evaluate::macro_f1;

/// How the baseline is trained: plain SGD with L2 regularisation and a step size decaying as
/// `lr / (1 + epoch)`, keeping the epoch with the lowest validation loss.
#[derive(Debug, Clone, Copy)]
pub struct BaselineConfig {
    /// Initial step size.
    pub lr: f64,
    /// L2 penalty per example.
    pub l2: f64,
    /// Most epochs.
    pub epochs: usize,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    /// Seed of the example order.
    pub seed: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            lr: 0.5,
            l2: 1e-5,
            epochs: 30,
            patience: 3,
            seed: 1,
        }
    }
}

/// What the baseline scores. Accuracies and macro-F1 are fractions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// What it is, in words.
    pub name: String,
    pub train_acc: f64,
    pub valid_loss: f64,
    pub valid_acc: f64,
    pub valid_macro_f1: f64,
    pub test_acc: Option<f64>,
    pub test_macro_f1: Option<f64>,
    /// The epoch kept.
    pub best_epoch: usize,
}

/// One document's L2-normalised TF-IDF features: `(token id, value)`, ids ascending.
type Features = Vec<(usize, f32)>;

struct Model {
    classes: usize,
    /// `[vocab][classes]`, row-major by token so a document touches a few contiguous rows.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Model {
    fn probabilities(&self, x: &Features) -> Vec<f64> {
        let mut logits: Vec<f64> = self.bias.iter().map(|&b| b as f64).collect();
        for &(t, v) in x {
            let row = &self.weights[t * self.classes..(t + 1) * self.classes];
            for (l, w) in logits.iter_mut().zip(row) {
                *l += (w * v) as f64;
            }
        }
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        exp.iter().map(|e| e / sum).collect()
    }

    /// Mean loss, accuracy and the confusion matrix over `data`.
    fn score(&self, data: &[(Features, usize)]) -> (f64, f64, Vec<Vec<usize>>) {
        let mut confusion = vec![vec![0usize; self.classes]; self.classes];
        let mut loss = 0.0;
        for (x, y) in data {
            let p = self.probabilities(x);
            loss -= p[*y].max(1e-12).ln();
            let predicted = (0..self.classes)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0);
            confusion[*y][predicted] += 1;
        }
        let n = data.len().max(1) as f64;
        let correct: usize = (0..self.classes).map(|c| confusion[c][c]).sum();
        (loss / n, correct as f64 / n, confusion)
    }
}

/// TF-IDF featuriser fitted on the training split.
struct Tfidf {
    idf: Vec<f32>,
}

impl Tfidf {
    fn fit(train: &[TextItem], vocab: usize) -> Self {
        let mut df = vec![0usize; vocab];
        for item in train {
            let mut seen: Vec<usize> = item.tokens.clone();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                df[t.min(vocab - 1)] += 1;
            }
        }
        let n = train.len() as f32;
        // scikit-learn's smoothed idf: ln((1 + n) / (1 + df)) + 1.
        let idf = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        Self { idf }
    }

    fn transform(&self, item: &TextItem) -> Features {
        let mut tokens: Vec<usize> = item
            .tokens
            .iter()
            .map(|&t| t.min(self.idf.len() - 1))
            .collect();
        tokens.sort_unstable();
        let mut features: Features = Vec::new();
        for t in tokens {
            match features.last_mut() {
                Some((last, count)) if *last == t => *count += 1.0,
                _ => features.push((t, 1.0)),
            }
        }
        for (t, v) in features.iter_mut() {
            *v *= self.idf[*t];
        }
        let norm = features.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            features.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        features
    }
}

/// Trains the baseline on `train` (items of a vocabulary of `vocab` entries, `classes`
/// classes), keeps the epoch with the lowest loss on `valid`, and scores it there and on `test`.
pub fn bag_of_words(
    train: &[TextItem],
    valid: &[TextItem],
    test: Option<&[TextItem]>,
    vocab: usize,
    classes: usize,
    config: BaselineConfig,
) -> BaselineResult {
    let tfidf = Tfidf::fit(train, vocab.max(1));
    let featurise = |items: &[TextItem]| -> Vec<(Features, usize)> {
        items
            .iter()
            .map(|i| (tfidf.transform(i), i.label))
            .collect()
    };
    let (train, valid) = (featurise(train), featurise(valid));
    let test = test.map(featurise);
    let mut model = Model {
        classes,
        weights: vec![0.0; vocab.max(1) * classes],
        bias: vec![0.0; classes],
    };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let (mut best, mut best_loss, mut best_epoch, mut since) = (None, f64::MAX, 0, 0);
    for epoch in 0..config.epochs {
        // Fisher-Yates with xorshift: a fixed order per seed, no dependency.
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let lr = config.lr / (1.0 + epoch as f64);
        let shrink = (1.0 - lr * config.l2) as f32;
        for &i in &order {
            let (x, y) = &train[i];
            let p = model.probabilities(x);
            for (c, p) in p.iter().enumerate() {
                let g = (p - if c == *y { 1.0 } else { 0.0 }) * lr;
                model.bias[c] -= g as f32;
                for &(t, v) in x {
                    let w = &mut model.weights[t * classes + c];
                    // The L2 shrink applied lazily, to the weights this document touches.
                    *w = *w * shrink - (g as f32) * v;
                }
            }
        }
        let (loss, _, _) = model.score(&valid);
        if loss < best_loss {
            (best_loss, best_epoch, since) = (loss, epoch + 1, 0);
            best = Some((model.weights.clone(), model.bias.clone()));
        } else {
            since += 1;
            if since >= config.patience {
                break;
            }
        }
    }
    if let Some((weights, bias)) = best {
        (model.weights, model.bias) = (weights, bias);
    }
    let (_, train_acc, _) = model.score(&train);
    let (valid_loss, valid_acc, confusion) = model.score(&valid);
    let test = test.map(|t| model.score(&t));
    BaselineResult {
        name: "bag of words (TF-IDF + logistic regression)".into(),
        train_acc,
        valid_loss,
        valid_acc,
        valid_macro_f1: macro_f1(&confusion),
        test_acc: test.as_ref().map(|t| t.1),
        test_macro_f1: test.as_ref().map(|t| macro_f1(&t.2)),
        best_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tokens: &[usize], label: usize) -> TextItem {
        TextItem {
            tokens: tokens.to_vec(),
            label,
        }
    }

    #[test]
    fn words_that_decide_the_label_are_learned_and_order_is_not() {
        // Class 1 has token 5 somewhere, class 0 does not; token 6 is noise.
        let data: Vec<TextItem> = (0..200)
            .map(|i| {
                let label = i % 2;
                let mut tokens = vec![6, 2 + i % 3, 7];
                if label == 1 {
                    tokens.insert(i % 3, 5);
                }
                item(&tokens, label)
            })
            .collect();
        let result = bag_of_words(&data, &data, Some(&data), 10, 2, BaselineConfig::default());
        assert_eq!(result.valid_acc, 1.0, "{result:?}");
        assert_eq!(result.test_macro_f1, Some(1.0));
        // Labels decided by order alone ([5, 6] vs [6, 5]) are beyond it: chance.
        let order: Vec<TextItem> = (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    item(&[5, 6], 0)
                } else {
                    item(&[6, 5], 1)
                }
            })
            .collect();
        let result = bag_of_words(&order, &order, None, 10, 2, BaselineConfig::default());
        assert!((result.valid_acc - 0.5).abs() < 1e-9, "{result:?}");
    }
}
