//! Loss and accuracy of a trained model, without dropout.

use std::sync::Arc;

use burn::{data::dataloader::DataLoader, prelude::*};
use dataset::{Batching, TextBatcher, TextItem, TextLoader};

use crate::model::{Classifier, correct_predictions};

/// Mean loss and accuracy of `model` over `items` (no dropout: a plain device has no tape),
/// in batches of similar length (the result does not depend on the grouping; the time does).
pub fn evaluate(
    model: &Classifier,
    items: impl Into<Arc<[TextItem]>>,
    batcher: &TextBatcher,
    batch_size: usize,
    device: &Device,
) -> (f64, f64) {
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
) -> (f64, f64) {
    let loader = TextLoader::new(
        items,
        batcher.clone(),
        batch_size,
        Batching::Bucket,
        device.clone(),
    );
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for batch in loader.iter() {
        let batch = batch.expect("in-memory batches cannot fail");
        let n = batch.labels.dims()[0];
        let out = model.classify_gated(batch, gates.clone());
        loss_sum += out.loss.into_scalar::<f32>() as f64 * n as f64;
        correct += correct_predictions(out.output, out.targets).into_scalar::<i64>() as usize;
    }
    let n = loader.num_items().max(1) as f64;
    (loss_sum / n, correct as f64 / n)
}
