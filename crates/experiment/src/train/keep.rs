//! The model a run keeps: the epoch with the lowest validation loss, or the mean of the
//! `average` lowest (checkpoint averaging), among the epochs whose checkpoint is on disk.

use std::path::Path;

use anyhow::{Result, bail};
use burn::{prelude::*, store::ModuleRecord};

use crate::{
    checkpoint,
    model::{Classifier, ClassifierConfig},
    run_dir::{EpochMetrics, files},
};

/// The epochs to keep, lowest validation loss first: at most `average` of them, and at least
/// one, else an error that says why (`diverged`: what the NaN guard saw).
pub(super) fn choose(
    out: &Path,
    epochs: &[EpochMetrics],
    average: usize,
    diverged: Option<&str>,
) -> Result<Vec<usize>> {
    // burn-train keeps the `average` best checkpoints and the last two.
    let on_disk: Vec<(usize, f64)> = epochs
        .iter()
        .filter(|e| checkpoint::path(out, "model", e.epoch).exists() && e.valid_loss.is_finite())
        .map(|e| (e.epoch, e.valid_loss))
        .collect();
    let chosen = checkpoint::lowest(&on_disk, average);
    if chosen.is_empty() {
        match diverged {
            Some(what) => {
                bail!("{what}, before any epoch finished; nothing to keep (try a lower --lr)")
            }
            None => bail!("no epoch finished, so there is no model to keep"),
        }
    }
    Ok(chosen)
}

/// Loads the checkpoints of `epochs` (not empty), averages them, and saves the result as the
/// run's model.
pub(super) fn load_mean(
    out: &Path,
    epochs: &[usize],
    model_config: &ClassifierConfig,
    device: &Device,
) -> Result<Classifier> {
    let models = epochs
        .iter()
        .map(|&epoch| {
            let path = checkpoint::path(out, "model", epoch);
            let record = ModuleRecord::load(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            model_config
                .load(record, device)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let kept = checkpoint::average(models).expect("`choose` returns at least one epoch");
    kept.clone()
        .into_record()
        .save(out.join(files::MODEL))
        .map_err(|e| anyhow::anyhow!("saving the model: {e}"))?;
    Ok(kept)
}
