//! Training-step loss and accuracy with one read-back per batch.
//!
//! burn-train's `LossMetric` and `AccuracyMetric` read a `ClassificationOutput`'s tensors on the
//! learner's event thread: a device flush, the accuracy's argmax/compare/sum, and two
//! read-backs per batch. On a GPU backend each read waits for the device. Here the training step
//! computes `[loss, correct]` on the device as one small tensor, the event thread reads it once
//! ([`ItemLazy::sync`]), and the two metrics below update from those host numbers. They keep
//! burn's names ("Loss", "Accuracy"), units and weighting (loss: one entry per batch; accuracy:
//! weighted by the batch size), so logs, the dashboard and the run summary read them as before.
//! Validation keeps burn's own metrics.

use std::sync::Arc;

use burn::{
    prelude::*,
    tensor::TensorReadError,
    train::metric::{
        Adaptor, ItemLazy, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
        NumericAttributes, NumericEntry, SerializedEntry,
        state::{FormatOptions, NumericMetricState},
    },
};
use burn_std::ExecutionError;

use crate::model::correct_predictions;

/// What a training step hands the learner's metrics.
pub struct StepOutput {
    stats: Stats,
}

enum Stats {
    /// `[loss, correct]` on the training device, and the batch size (boxed: a tensor handle is
    /// ten times the size of the host numbers).
    Device(Box<Tensor<1>>, usize),
    /// Read back on the event thread.
    Host(StepStats),
}

/// One batch's loss, correct predictions and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Examples.
    pub n: usize,
}

impl StepOutput {
    /// # Shapes
    /// `loss` `[1]`, `logits` `[batch, classes]`, `targets` `[batch]`.
    pub fn new(loss: &Tensor<1>, logits: &Tensor<2>, targets: &Tensor<1, Int>) -> Self {
        let n = targets.dims()[0];
        let correct = correct_predictions(logits.clone().detach(), targets.clone()).float();
        let stats = Tensor::cat(vec![loss.clone().detach().reshape([1]), correct], 0);
        Self {
            stats: Stats::Device(Box::new(stats), n),
        }
    }

    fn host(&self) -> StepStats {
        match &self.stats {
            Stats::Host(stats) => *stats,
            // burn-train syncs every item before a metric sees it.
            Stats::Device(..) => unreachable!("metrics read synced items only"),
        }
    }
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        let stats = match self.stats {
            Stats::Device(tensor, n) => {
                let values: Vec<f64> = tensor.without_autodiff().try_into_data()?.iter().collect();
                StepStats {
                    loss: values[0],
                    correct: values[1].round() as usize,
                    n,
                }
            }
            host => return Ok(Self { stats: host }),
        };
        Ok(Self {
            stats: Stats::Host(stats),
        })
    }
}

impl Adaptor<StepStats> for StepOutput {
    fn adapt(&self) -> StepStats {
        self.host()
    }
}

/// burn's "Loss" for training steps, from [`StepStats`].
#[derive(Clone)]
pub struct StepLoss {
    name: MetricName,
    state: NumericMetricState,
}

/// burn's "Accuracy" (in %) for training steps, from [`StepStats`].
#[derive(Clone)]
pub struct StepAccuracy {
    name: MetricName,
    state: NumericMetricState,
}

impl Default for StepLoss {
    fn default() -> Self {
        Self {
            name: Arc::new("Loss".into()),
            state: NumericMetricState::default(),
        }
    }
}

impl Default for StepAccuracy {
    fn default() -> Self {
        Self {
            name: Arc::new("Accuracy".into()),
            state: NumericMetricState::default(),
        }
    }
}

/// The parts of [`Metric`] and [`Numeric`] both metrics share, around their own update.
macro_rules! host_metric {
    ($ty:ty, $format:expr, $higher:expr, $unit:expr, |$s:ident| $value_count:expr) => {
        impl Metric for $ty {
            type Input = StepStats;

            fn update(
                &mut self,
                $s: &StepStats,
                _metadata: &MetricMetadata,
            ) -> Result<SerializedEntry, TensorReadError> {
                let (value, count) = $value_count;
                self.state.update(value, count);
                Ok(self.state.compute_update($format(self.name())))
            }

            fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
                Ok(self.state.compute_final($format(self.name())))
            }

            fn clear(&mut self) {
                self.state.reset()
            }

            fn name(&self) -> MetricName {
                self.name.clone()
            }

            fn attributes(&self) -> MetricAttributes {
                NumericAttributes {
                    unit: $unit,
                    higher_is_better: $higher,
                }
                .into()
            }
        }

        impl Numeric for $ty {
            fn value(&self) -> Option<NumericEntry> {
                Some(self.state.current_value())
            }

            fn running_value(&self) -> Option<NumericEntry> {
                Some(self.state.running_value())
            }

            fn final_value(&self) -> NumericEntry {
                self.state.final_value()
            }
        }
    };
}

host_metric!(
    StepLoss,
    |name| FormatOptions::new(name).precision(2),
    false,
    None,
    |s| (s.loss, 1)
);
host_metric!(
    StepAccuracy,
    |name| FormatOptions::new(name).unit("%").precision(2),
    true,
    Some("%".to_string()),
    |s| (100.0 * s.correct as f64 / s.n.max(1) as f64, s.n)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_back_gives_loss_and_correct_count() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_floats([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], &device);
        let targets = Tensor::<1, Int>::from_ints([0, 0, 0], &device);
        let loss = Tensor::<1>::from_floats([0.75], &device);
        let synced = StepOutput::new(&loss, &logits, &targets).sync().unwrap();
        let stats: StepStats = synced.adapt();
        assert_eq!(
            stats,
            StepStats {
                loss: 0.75,
                correct: 2,
                n: 3
            }
        );

        let meta = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1, None),
            iteration: None,
            lr: None,
        };
        let second = StepStats {
            loss: 0.25,
            correct: 1,
            n: 1,
        };
        let (mut acc, mut loss) = (StepAccuracy::default(), StepLoss::default());
        for batch in [stats, second] {
            acc.update(&batch, &meta).unwrap();
            loss.update(&batch, &meta).unwrap();
        }
        // Accuracy weighted by examples (3 correct of 4); loss one entry per batch, as burn's.
        assert!((acc.running_value().unwrap().current() - 75.0).abs() < 1e-9);
        assert!((loss.running_value().unwrap().current() - 0.5).abs() < 1e-9);
        assert_eq!(loss.name().as_str(), "Loss");
        assert_eq!(acc.name().as_str(), "Accuracy");
    }
}
