//! burn-train's checkpoints in a run folder (`checkpoint/{model,optim,scheduler}-N.bpk`, written
//! at the end of each epoch): their names, the point a run resumes from, and the metric logs
//! of epochs after it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::{prelude::*, store::ModuleRecord};

use crate::config::ExperimentConfig;

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
pub fn resume_point(
    dir: &Path,
    config: &ExperimentConfig,
    vocab_size: usize,
    n_classes: usize,
) -> Result<usize> {
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
    let model_config = config.model_config(vocab_size, n_classes);
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
