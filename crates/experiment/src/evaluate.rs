//! Loss, accuracy and per-class figures of a trained model, without dropout.

use std::sync::Arc;

use burn::{data::dataloader::DataLoader, prelude::*};
use dataset::{Batching, TextBatcher, TextItem, TextLoader};
use serde::{Deserialize, Serialize};

use crate::model::Classifier;

/// What [`evaluate`] measures on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction predicted right.
    pub accuracy: f64,
    /// `confusion[true][predicted]`: example counts.
    pub confusion: Vec<Vec<usize>>,
}

/// One class's figures, from a confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassFigures {
    /// Of the examples predicted as this class, the fraction that are (0 when none are).
    pub precision: f64,
    /// Of this class's examples, the fraction predicted as it (0 when it has none).
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
    /// Examples of this class.
    pub support: usize,
}

/// Precision, recall and F1 of every class of `confusion[true][predicted]`.
pub fn per_class(confusion: &[Vec<usize>]) -> Vec<ClassFigures> {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (0..confusion.len())
        .map(|c| {
            let hits = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassFigures {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect()
}

/// Unweighted mean of the F1 of the classes that have examples (macro-F1), from
/// `confusion[true][predicted]`.
pub fn macro_f1(confusion: &[Vec<usize>]) -> f64 {
    let present: Vec<f64> = per_class(confusion)
        .iter()
        .filter(|c| c.support > 0)
        .map(|c| c.f1)
        .collect();
    present.iter().sum::<f64>() / present.len().max(1) as f64
}

/// Loss, accuracy and confusion matrix of `model` over `items` (no dropout: a plain device has
/// no tape), in batches of similar length (the result does not depend on the grouping; the
/// time does).
pub fn evaluate(
    model: &Classifier,
    items: impl Into<Arc<[TextItem]>>,
    batcher: &TextBatcher,
    batch_size: usize,
    device: &Device,
) -> Evaluation {
    evaluate_gated(model, items, batcher, batch_size, device, None)
}

/// [`evaluate`] with the first layer's heads gated, `gates` `[heads]` (0 masks a head).
pub fn evaluate_gated(
    model: &Classifier,
    items: impl Into<Arc<[TextItem]>>,
    batcher: &TextBatcher,
    batch_size: usize,
    device: &Device,
    gates: Option<Tensor<1>>,
) -> Evaluation {
    let loader = TextLoader::new(
        items,
        batcher.clone(),
        batch_size,
        Batching::Bucket,
        device.clone(),
    );
    let classes = model.classes();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    for batch in loader.iter() {
        let batch = batch.expect("in-memory batches cannot fail");
        let n = batch.labels.dims()[0];
        let out = model.classify_gated(batch, gates.clone());
        loss_sum += out.loss.into_scalar::<f32>() as f64 * n as f64;
        // One read-back per batch: predictions and targets together.
        let pairs = Tensor::cat(vec![out.output.argmax(1).reshape([n]), out.targets], 0)
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap_or_default();
        for (&predicted, &target) in pairs[..n].iter().zip(&pairs[n..]) {
            confusion[target as usize][predicted as usize] += 1;
        }
    }
    let n = loader.num_items().max(1) as f64;
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_figures_and_macro_f1_from_a_confusion_matrix() {
        // Class 0: 8 of 10 right, 2 called class 1; class 1: 3 of 5 right; class 2: none.
        let confusion = vec![vec![8, 2, 0], vec![1, 3, 1], vec![0, 0, 0]];
        let figures = per_class(&confusion);
        assert!((figures[0].precision - 8.0 / 9.0).abs() < 1e-12);
        assert!((figures[0].recall - 0.8).abs() < 1e-12);
        assert!((figures[1].precision - 0.6).abs() < 1e-12);
        assert!((figures[1].recall - 0.6).abs() < 1e-12);
        assert_eq!((figures[2].precision, figures[2].support), (0.0, 0));
        let f1_0 = 2.0 * (8.0 / 9.0) * 0.8 / (8.0 / 9.0 + 0.8);
        // Class 2 has no examples and is left out of the mean.
        assert!((macro_f1(&confusion) - (f1_0 + 0.6) / 2.0).abs() < 1e-12);
    }
}
