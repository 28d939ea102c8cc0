//! burn-train's checkpoints in a run folder (`checkpoint/{model,optim,scheduler}-N.bpk`, written
//! at the end of each epoch): their names, which ones are kept, the point a run resumes from,
//! the metric logs of epochs after it, and checkpoint averaging.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use burn::{
    module::{ModuleMapper, ModuleVisitor, Param},
    prelude::*,
    store::ModuleRecord,
    train::{
        checkpoint::{CheckpointingAction, CheckpointingStrategy},
        metric::{
            LossMetric, Metric,
            store::{Aggregate, EventStoreClient, Split},
        },
    },
};

use crate::model::ClassifierConfig;

/// `dir/checkpoint/{kind}-{epoch}.bpk`, `kind` one of `model`, `optim`, `scheduler`.
pub fn path(dir: &Path, kind: &str, epoch: usize) -> PathBuf {
    dir.join("checkpoint").join(format!("{kind}-{epoch}.bpk"))
}

/// The epochs with a model checkpoint in `dir`, in order.
pub fn epochs(dir: &Path) -> Vec<usize> {
    let mut epochs: Vec<usize> = match std::fs::read_dir(dir.join("checkpoint")) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                name.strip_prefix("model-")?
                    .strip_suffix(".bpk")?
                    .parse()
                    .ok()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    epochs.sort_unstable();
    epochs
}

/// The last epoch whose model, optimiser and scheduler checkpoints are all on disk and load; 0
/// when there is none. A damaged newest checkpoint is an error rather than a silent step back,
/// so the user decides whether to delete it and lose that epoch.
pub fn resume_point(dir: &Path, model_config: &ClassifierConfig) -> Result<usize> {
    let Some(&epoch) = epochs(dir).last() else {
        return Ok(0);
    };
    let path = |kind: &str| path(dir, kind, epoch);
    let damaged = |path: &Path, e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "{}: damaged checkpoint ({e}); delete checkpoint/*-{epoch}.bpk to resume from the epoch before",
            path.display()
        )
    };
    for kind in ["optim", "scheduler"] {
        if !path(kind).exists() {
            return Err(damaged(&path(kind), &"missing"));
        }
    }
    let record = ModuleRecord::load(path("model")).map_err(|e| damaged(&path("model"), &e))?;
    // A record of the wrong shapes panics inside burn; it is a damaged file all the same.
    model_config
        .load(record, &Device::flex())
        .map_err(|_| damaged(&path("model"), &"does not fit the run's model"))?;
    burn::optim::OptimizerRecord::load(path("optim")).map_err(|e| damaged(&path("optim"), &e))?;
    burn::optim::lr_scheduler::LrSchedulerRecord::load(path("scheduler"))
        .map_err(|e| damaged(&path("scheduler"), &e))?;
    Ok(epoch)
}

/// Removes the metric logs of epochs after `epoch` (an interrupted epoch's partial lines), so
/// the resumed run's logs continue without gaps or duplicates.
pub fn forget_epochs_after(dir: &Path, epoch: usize) -> Result<()> {
    for split in ["train", "valid"] {
        let Ok(entries) = std::fs::read_dir(dir.join(split)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let later = name
                .to_str()
                .and_then(|n| n.strip_prefix("epoch-")?.parse::<usize>().ok())
                .is_some_and(|n| n > epoch);
            if later {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("{}: cannot remove", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Keeps the checkpoints of the `k` epochs with the lowest validation loss: burn's
/// `MetricCheckpointingStrategy` keeps one, and checkpoint averaging needs `k`. Composed with
/// `KeepLastNCheckpoints`, which keeps what a resumed run needs.
pub struct KeepBest {
    k: usize,
    losses: Vec<(usize, f64)>,
    kept: BTreeSet<usize>,
}

impl KeepBest {
    /// Keeps `k` (at least 1) checkpoints.
    pub fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            losses: Vec::new(),
            kept: BTreeSet::new(),
        }
    }
}

impl CheckpointingStrategy for KeepBest {
    fn checkpointing(
        &mut self,
        epoch: usize,
        store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        let name = LossMetric::new().name();
        if let Some(loss) = store
            .find_metric(&name, epoch, Aggregate::Mean, &Split::Valid)
            .filter(|loss| loss.is_finite())
        {
            self.losses.push((epoch, loss));
        }
        let best: BTreeSet<usize> = lowest(&self.losses, self.k).into_iter().collect();
        let mut actions: Vec<_> = self
            .kept
            .difference(&best)
            .map(|&e| CheckpointingAction::Delete(e))
            .collect();
        // An epoch this strategy does not keep is flagged for deletion at once, so it goes when
        // the composed strategy's other half (the last N) lets it go too.
        actions.push(if best.contains(&epoch) {
            CheckpointingAction::Save
        } else {
            CheckpointingAction::Delete(epoch)
        });
        self.kept = best;
        actions
    }
}

/// The epochs of the `k` lowest losses, lowest first (ties: the earlier epoch).
pub fn lowest(losses: &[(usize, f64)], k: usize) -> Vec<usize> {
    let mut sorted = losses.to_vec();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    sorted.into_iter().take(k).map(|(epoch, _)| epoch).collect()
}

/// The parameter-wise mean of models of one architecture: checkpoint averaging (Vaswani et al.
/// 2017 average their last checkpoints; here the caller chooses which). Every float parameter,
/// in the order the module visits them; `None` for no models.
pub fn average<M: Module>(models: Vec<M>) -> Option<M> {
    let n = models.len();
    let mut models = models.into_iter();
    let first = models.next()?;
    let mut sums = parameters(&first);
    for model in models {
        for (sum, param) in sums.iter_mut().zip(parameters(&model)) {
            *sum = sum.clone() + param;
        }
    }
    let mut mean = Mean {
        sums: sums.into_iter(),
        n: n as f64,
    };
    Some(first.map(&mut mean))
}

/// Every float parameter of a module, flattened, in the order the module visits them.
pub fn parameters<M: Module>(module: &M) -> Vec<Tensor<1>> {
    let mut visitor = Flatten(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

struct Flatten(Vec<Tensor<1>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let n = tensor.shape().num_elements();
        self.0.push(tensor.reshape([n]));
    }
}

/// Replaces each float parameter with its sum over the models, divided by their number.
struct Mean {
    sums: std::vec::IntoIter<Tensor<1>>,
    n: f64,
}

impl ModuleMapper for Mean {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let sum = self.sums.next().expect("one sum per parameter");
        param.map(|tensor| sum.div_scalar(self.n).reshape(tensor.shape()))
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    fn values(module: &Linear) -> Vec<f32> {
        parameters(module)
            .into_iter()
            .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn average_is_the_parameter_wise_mean() {
        let device = Device::flex();
        let models: Vec<Linear> = (0..3)
            .map(|_| LinearConfig::new(3, 2).init(&device))
            .collect();
        let each: Vec<Vec<f32>> = models.iter().map(values).collect();
        // Different initialisations, so a mean that returned one model would fail.
        assert_ne!(each[0], each[1]);
        let mean = values(&average(models).unwrap());
        assert_eq!(mean.len(), 3 * 2 + 2);
        for (i, m) in mean.iter().enumerate() {
            let expected = (each[0][i] + each[1][i] + each[2][i]) / 3.0;
            assert!((m - expected).abs() < 1e-6, "{i}: {m} vs {expected}");
        }
        assert!(average(Vec::<Linear>::new()).is_none());
    }

    #[test]
    fn lowest_ranks_by_loss_then_epoch() {
        let losses = [(1, 0.5), (2, 0.3), (3, 0.4), (4, 0.3), (5, f64::NAN)];
        assert_eq!(lowest(&losses, 3), vec![2, 4, 3]);
        assert_eq!(lowest(&losses, 1), vec![2]);
        assert_eq!(lowest(&losses[..1], 3), vec![1]);
    }
}
