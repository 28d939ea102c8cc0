//! Which heads matter in a trained classifier (the first layer of a model from scratch, every
//! layer of a pretrained encoder): accuracy with each head masked, each head's importance
//! (Michel et al., 2019, through the attention crate's [`head_importance`]), the pruning curve
//! by importance and in random orders, and how spread out each head's attention is.

use std::sync::Arc;

use attention::{head_entropy, head_importance};
use burn::{data::dataloader::DataLoader, prelude::*};
use dataset::{Batching, TextBatcher, TextItem, TextLoader};
use rand::{SeedableRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::{evaluate::evaluate_gated, model::Classifier};

/// What [`analyse_heads`] measures, on one split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadAnalysis {
    /// Accuracy with every head.
    pub accuracy: f64,
    /// Per head: accuracy with that head masked.
    pub masked_accuracy: Vec<f64>,
    /// Per head: loss with that head masked.
    pub masked_loss: Vec<f64>,
    /// Per head: `|∂loss/∂gate|` summed over batches, normalised to sum to 1.
    pub importance: Vec<f64>,
    /// Heads from least to most important.
    pub pruning_order: Vec<usize>,
    /// Accuracy with the `k` least important heads masked, for each `k` of
    /// [`pruning_counts`](Self::pruning_counts).
    pub pruning_accuracy: Vec<f64>,
    /// How many heads each point of the pruning curves masks: `0 ..= heads − 1` for up to 16
    /// heads, else every tenth of them up to nine tenths (empty in files written before: the
    /// former).
    #[serde(default)]
    pub pruning_counts: Vec<usize>,
    /// The same curve with heads masked in random orders instead (one row per order), the
    /// baseline importance has to beat.
    #[serde(default)]
    pub random_pruning_accuracy: Vec<Vec<f64>>,
    /// Per head: mean attention entropy over the uniform one (1 = uniform attention, 0 = on
    /// one key), over every query of the split.
    pub entropy_ratio: Vec<f64>,
}

/// Examples per batch for every measurement here.
const BATCH: usize = 128;

/// Seed of the random pruning orders.
const RANDOM_ORDER_SEED: u64 = 7;

/// `items` in batches of similar length on `device` (the measures do not depend on the
/// grouping).
fn batches(items: &Arc<[TextItem]>, batcher: &TextBatcher, device: &Device) -> TextLoader {
    TextLoader::new(
        items.clone(),
        batcher.clone(),
        BATCH,
        Batching::Bucket,
        device.clone(),
    )
}

/// Above this mean entropy ratio a head's attention is called nearly uniform.
pub const NEARLY_UNIFORM: f64 = 0.9;

/// How many heads each point of a pruning curve masks (see [`HeadAnalysis::pruning_counts`]).
pub fn pruning_counts(heads: usize) -> Vec<usize> {
    if heads <= 16 {
        return (0..heads).collect();
    }
    let mut counts: Vec<usize> = (0..10).map(|tenth| (tenth * heads + 5) / 10).collect();
    counts.dedup();
    counts
}

/// Analyses the gated heads of `model` (see [`Classifier::heads`]) on `items`, with
/// `random_orders` pruning curves in random orders (seeded, so repeatable) beside the one by
/// importance; `None` for a one-head model.
pub fn analyse_heads(
    model: &Classifier,
    items: &Arc<[TextItem]>,
    batcher: &TextBatcher,
    device: &Device,
    random_orders: usize,
) -> Option<HeadAnalysis> {
    let heads = model.heads();
    if heads < 2 || items.is_empty() {
        return None;
    }
    let gated = |gates: Vec<f32>| {
        let gates = Tensor::<1>::from_data(TensorData::new(gates, [heads]), device);
        let e = evaluate_gated(model, items.clone(), batcher, BATCH, device, Some(gates));
        (e.loss, e.accuracy)
    };
    let (_, accuracy) = gated(vec![1.0; heads]);
    let (mut masked_loss, mut masked_accuracy) = (Vec::new(), Vec::new());
    for h in 0..heads {
        let mut gates = vec![1.0; heads];
        gates[h] = 0.0;
        let (loss, acc) = gated(gates);
        masked_loss.push(loss);
        masked_accuracy.push(acc);
    }
    let importance = importance(model, items, batcher, device);
    let mut pruning_order: Vec<usize> = (0..heads).collect();
    pruning_order.sort_by(|&a, &b| importance[a].total_cmp(&importance[b]));
    let counts = pruning_counts(heads);
    let curve = |order: &[usize]| -> Vec<f64> {
        counts
            .iter()
            .map(|&k| {
                if k == 0 {
                    return accuracy;
                }
                let mut gates = vec![1.0; heads];
                for &h in &order[..k] {
                    gates[h] = 0.0;
                }
                gated(gates).1
            })
            .collect()
    };
    let pruning_accuracy = curve(&pruning_order);
    let mut rng = rand::rngs::StdRng::seed_from_u64(RANDOM_ORDER_SEED);
    let random_pruning_accuracy = (0..random_orders)
        .map(|_| {
            let mut order: Vec<usize> = (0..heads).collect();
            order.shuffle(&mut rng);
            curve(&order)
        })
        .collect();
    Some(HeadAnalysis {
        accuracy,
        masked_accuracy,
        masked_loss,
        importance,
        pruning_order,
        pruning_accuracy,
        pruning_counts: counts,
        random_pruning_accuracy,
        entropy_ratio: entropy_ratio(model, items, batcher, device),
    })
}

/// Normalised `|∂loss/∂gate|` per head, summed over the batches.
fn importance(
    model: &Classifier,
    items: &Arc<[TextItem]>,
    batcher: &TextBatcher,
    device: &Device,
) -> Vec<f64> {
    let heads = model.heads();
    let autodiff = device.clone().autodiff();
    // Frozen: on an autodiff device dropout is active, and a random mask per call made the
    // importance differ from one measurement of the same model to the next (tested). Only the
    // gates need gradients.
    let model = model.clone().to_device(&autodiff).freeze();
    let loader = batches(items, batcher, &autodiff);
    let mut total = vec![0.0f64; heads];
    for batch in loader.iter() {
        let batch = batch.expect("in-memory batches cannot fail");
        let n = batch.labels.dims()[0] as f64;
        let grads = head_importance(heads, &autodiff, |gates| {
            model.classify_gated(batch, Some(gates)).loss
        });
        for (t, g) in total.iter_mut().zip(grads) {
            *t += g as f64 * n;
        }
    }
    let sum: f64 = total.iter().sum();
    total
        .iter()
        .map(|t| t / sum.max(f64::MIN_POSITIVE))
        .collect()
}

/// Per head: mean attention entropy over the mean entropy of uniform attention on the same
/// keys (`ln(length)` for each sequence's rows).
fn entropy_ratio(
    model: &Classifier,
    items: &Arc<[TextItem]>,
    batcher: &TextBatcher,
    device: &Device,
) -> Vec<f64> {
    let loader = batches(items, batcher, device);
    let heads = model.heads();
    let (mut entropy, mut uniform) = (vec![0.0f64; heads], 0.0f64);
    for batch in loader.iter() {
        let batch = batch.expect("in-memory batches cannot fail");
        let [b, len] = batch.tokens.dims();
        let lengths = batch
            .mask_padding
            .clone()
            .bool_not()
            .int()
            .sum_dim(1)
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap_or_default();
        let out = model.forward(batch.tokens, batch.mask_padding);
        let rows = (b * len) as f64;
        // The gated heads: the first layer's, or every layer's in order.
        let weights = if heads == model.heads_per_layer() {
            out.weights
        } else {
            Tensor::cat(out.layer_weights, 1)
        };
        let per_head = head_entropy(weights)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default();
        for (e, h) in entropy.iter_mut().zip(per_head) {
            *e += h as f64 * rows;
        }
        // Every row of a sequence (padded queries too) attends to its real keys.
        uniform += lengths
            .iter()
            .map(|&l| len as f64 * (l.max(1) as f64).ln())
            .sum::<f64>();
    }
    entropy
        .iter()
        .map(|e| if uniform > 0.0 { e / uniform } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClassifierConfig, ModelOptions};

    #[test]
    fn an_untrained_model_has_every_measure_per_head() {
        let device = Device::flex();
        let model = ClassifierConfig::new(30, 2)
            .with_options(ModelOptions {
                heads: 4,
                d_model: 16,
                ..ModelOptions::default()
            })
            .init(&device);
        let items: Arc<[TextItem]> = (0..40)
            .map(|i| TextItem {
                tokens: (0..(2 + i % 7)).map(|t| 2 + ((i + t) % 28)).collect(),
                label: i % 2,
            })
            .collect();
        let analysis = analyse_heads(&model, &items, &TextBatcher::new(16), &device, 2).unwrap();
        // The same model measures the same (dropout, 0.1 here, must not act).
        let again = analyse_heads(&model, &items, &TextBatcher::new(16), &device, 2).unwrap();
        assert_eq!(analysis, again);
        assert_eq!(analysis.pruning_counts, [0, 1, 2, 3]);
        assert_eq!(analysis.random_pruning_accuracy.len(), 2);
        assert!(
            analysis
                .random_pruning_accuracy
                .iter()
                .all(|curve| curve.len() == 4 && curve[0] == analysis.accuracy)
        );
        assert_eq!(analysis.masked_accuracy.len(), 4);
        assert!((analysis.importance.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(analysis.pruning_accuracy.len(), 4);
        assert_eq!(analysis.pruning_accuracy[0], analysis.accuracy);
        let mut order = analysis.pruning_order.clone();
        order.sort();
        assert_eq!(order, [0, 1, 2, 3]);
        // Small random weights attend almost uniformly.
        assert!(
            analysis
                .entropy_ratio
                .iter()
                .all(|r| (0.0..=1.0 + 1e-6).contains(r) && *r > 0.5),
            "{:?}",
            analysis.entropy_ratio
        );
        let one = ClassifierConfig::new(30, 2)
            .with_options(ModelOptions {
                heads: 1,
                d_model: 16,
                ..ModelOptions::default()
            })
            .init(&device);
        assert!(analyse_heads(&one, &items, &TextBatcher::new(16), &device, 0).is_none());
    }

    #[test]
    fn large_models_are_pruned_in_tenths() {
        assert_eq!(pruning_counts(4), [0, 1, 2, 3]);
        assert_eq!(pruning_counts(72), [0, 7, 14, 22, 29, 36, 43, 50, 58, 65]);
    }
}
