//! The classifier's training and validation steps for burn-train's learner.

use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use dataset::TextBatch;

use super::{fault, step_metrics::StepOutput, workers};
use crate::model::Classifier;

impl TrainStep for Classifier {
    type Input = TextBatch;
    // Loss and correct count as one device tensor, read back once per batch
    // (`super::step_metrics`), rather than the logits and targets burn's metrics read apart.
    type Output = StepOutput;

    fn step(&self, batch: TextBatch) -> TrainOutput<StepOutput> {
        workers::enter();
        let mut item = self.classify(batch);
        if fault::nan_loss_now() {
            item.loss = item.loss.mul_scalar(f32::NAN);
        }
        let stats = StepOutput::new(&item.loss, &item.output, &item.targets);
        TrainOutput::new(self, item.loss.backward(), stats)
    }
}

impl InferenceStep for Classifier {
    type Input = TextBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: TextBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}
