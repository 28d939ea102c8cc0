//! The run-folder contract: the files a run leaves (configuration, labels, per-epoch metrics,
//! summary), the lock a training process holds on its folder, and claiming a folder for a new
//! run. Checkpoints: [`crate::checkpoint`].

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use burn::train::LearnerSummary;
use serde::{Deserialize, Serialize};

/// Files a run leaves, relative to its folder.
pub mod files {
    pub const CONFIG: &str = "config.toml";
    pub const MODEL_CONFIG: &str = "model.json";
    pub const VOCAB: &str = "vocab.json";
    /// A pretrained encoder's tokenizer, copied from its folder (in place of `vocab.json`).
    pub const TOKENIZER: &str = "tokenizer.json";
    pub const LABELS: &str = "labels.json";
    pub const MODEL: &str = "model.bpk";
    pub const METRICS: &str = "metrics.jsonl";
    pub const SUMMARY: &str = "summary.json";
    /// Which heads matter on the validation split, written by `compare` (a cache: deleting it
    /// only costs its recomputation).
    pub const HEADS: &str = "heads.json";
}

/// `run.lock` in a run folder, held while a process trains into it: an operating-system file
/// lock (`flock` on Unix), taken without a gap between looking and taking, so of two processes
/// starting together exactly one gets the folder. The kernel releases it when the process ends,
/// however it ends, so a lock left by a killed run is no obstacle; the file holds the holder's
/// process id for the message another process prints.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    _file: File,
}

impl RunLock {
    pub const FILE: &str = "run.lock";

    /// Takes `dir`'s lock, or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse::<u32>().ok())
                        .map_or_else(
                            || "another experiment".to_string(),
                            |pid| format!("another experiment (process {pid})"),
                        );
                    bail!("{}: {holder} is training into this folder", dir.display());
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("{}: cannot lock", path.display()));
                }
            }
            // The holder before us removes the file as it lets go: if that happened between our
            // open and our lock, we hold a file no one else can see, so start again.
            if !same_file(&file, &path) {
                continue;
            }
            file.set_len(0)
                .and_then(|()| write!(file, "{}", std::process::id()))
                .with_context(|| format!("{}: cannot write", path.display()))?;
            return Ok(Self { path, _file: file });
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked (the lock goes with `_file`, dropped after this).
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Claims `out` for a new run and returns its lock: creates the folder, takes the lock, and
/// only then refuses a folder that holds a run (or, with `overwrite`, empties it). A folder
/// whose lock another process holds is never touched.
pub fn claim(out: &Path, overwrite: bool) -> Result<RunLock> {
    if out.exists() && !out.is_dir() {
        bail!(
            "{}: exists and is not a folder; pass --out DIR",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the output folder", out.display()))?;
    let lock = RunLock::acquire(out)?;
    let others: Vec<PathBuf> = std::fs::read_dir(out)
        .with_context(|| format!("{}: cannot read", out.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name() != RunLock::FILE)
        .map(|entry| entry.path())
        .collect();
    if !others.is_empty() {
        if !overwrite {
            bail!(
                "{}: output folder already holds a run; pass --resume DIR to continue it, --overwrite to replace it, or --out DIR for a new one",
                out.display()
            );
        }
        for path in others {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed
                .with_context(|| format!("{}: cannot clear the output folder", path.display()))?;
        }
    }
    Ok(lock)
}

/// Writes `content` to `out/name`.
pub fn write(out: &Path, name: &str, content: &str) -> Result<()> {
    let path = out.join(name);
    std::fs::write(&path, content).with_context(|| format!("{}: cannot write", path.display()))
}

/// A text file of a run folder, without the byte-order mark an editor saving it may add; errors
/// name the file.
pub fn read_text(path: &Path) -> Result<String> {
    Ok(dataset::read_text(path)?)
}

/// The class names a run folder's `labels.json` lists.
pub fn read_labels(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(files::LABELS);
    let text = read_text(&path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON list of class names", path.display()))
}

/// Per-epoch metrics, as written to `metrics.jsonl`. Accuracies are fractions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (dropout on).
    pub train_loss: f64,
    /// Training accuracy over the epoch (dropout on).
    pub train_acc: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation accuracy.
    pub valid_acc: f64,
}

/// What `summary.json` holds. Accuracies are fractions in `[0, 1]`; the train, validation and
/// test numbers are the kept model's (the best validation loss), measured without dropout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub dataset: String,
    pub backend: String,
    pub heads: usize,
    pub d_model: usize,
    /// Attention layers (absent before there was a choice: 1).
    #[serde(default = "one")]
    pub layers: usize,
    /// Any positions (every scheme but `none`).
    pub pe: bool,
    /// The position scheme (absent in summaries written before there was a choice, when `pe`
    /// meant the sinusoidal table).
    #[serde(default)]
    pub positions: Option<crate::model::Positions>,
    pub seed: u64,
    pub params: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// The epochs whose weights were averaged into the kept model, lowest validation loss
    /// first; empty when the best epoch was kept alone (`average = 1`, and older summaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub averaged_epochs: Vec<usize>,
    pub train_loss: f64,
    pub train_acc: f64,
    pub valid_loss: f64,
    pub valid_acc: f64,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    /// Macro-F1 of the kept model (absent in summaries written before it was measured).
    #[serde(default)]
    pub valid_macro_f1: Option<f64>,
    #[serde(default)]
    pub test_macro_f1: Option<f64>,
    /// `confusion[true][predicted]` counts, classes in `labels.json` order.
    #[serde(default)]
    pub valid_confusion: Option<Vec<Vec<usize>>>,
    #[serde(default)]
    pub test_confusion: Option<Vec<Vec<usize>>>,
    pub train_samples_per_s: f64,
    /// The share of the training batches' token slots that padding fills (`batching`), over
    /// one epoch's grouping drawn as the loader draws them.
    #[serde(default)]
    pub train_padding: Option<f64>,
    /// Training samples/s of each epoch this process trained (the first one includes a GPU's
    /// kernel compilation and autotuning).
    #[serde(default)]
    pub epoch_samples_per_s: Vec<f64>,
    pub seconds: f64,
    pub interrupted: bool,
}

fn one() -> usize {
    1
}

/// The `summary.json` a run in `dir` wrote.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join(files::SUMMARY);
    let text = read_text(&path)?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))
}

/// Per-epoch means read back from burn's metric logs in the run folder.
pub fn epoch_metrics(out: &Path) -> Result<Vec<EpochMetrics>> {
    let summary = LearnerSummary::new(out, &["Loss", "Accuracy"])
        .map_err(|e| anyhow::anyhow!("reading the metric logs: {e}"))?;
    let series = |metrics: &[burn::train::MetricSummary], name: &str| -> Vec<f64> {
        metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.entries.iter().map(|e| e.value).collect())
            .unwrap_or_default()
    };
    let (train, valid) = (&summary.metrics.train, &summary.metrics.valid);
    let (train_loss, train_acc) = (series(train, "Loss"), series(train, "Accuracy"));
    let (valid_loss, valid_acc) = (series(valid, "Loss"), series(valid, "Accuracy"));
    let n = [
        train_loss.len(),
        train_acc.len(),
        valid_loss.len(),
        valid_acc.len(),
    ]
    .into_iter()
    .min()
    .unwrap_or(0);
    Ok((0..n)
        .map(|i| EpochMetrics {
            epoch: i + 1,
            train_loss: train_loss[i],
            train_acc: train_acc[i] / 100.0,
            valid_loss: valid_loss[i],
            valid_acc: valid_acc[i] / 100.0,
        })
        .collect())
}

/// The per-epoch metrics a finished run wrote.
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path = dir.join(files::METRICS);
    let text = read_text(&path)?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not an epoch record", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_taker_even_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "another experiment (process {}) is training into this folder",
                std::process::id()
            )),
            "{err}"
        );
        drop(held);
        assert!(!dir.path().join(RunLock::FILE).exists());
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_lock_file_left_by_a_killed_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // The process id of this very process: a pid alone proves nothing, only the lock does.
        std::fs::write(
            dir.path().join(RunLock::FILE),
            std::process::id().to_string(),
        )
        .unwrap();
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn overwrite_never_clears_a_folder_whose_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let held = claim(&out, false).unwrap();
        write(&out, files::CONFIG, "heads = 2\n").unwrap();
        let err = claim(&out, true).unwrap_err().to_string();
        assert!(err.contains("is training into this folder"), "{err}");
        assert!(out.join(files::CONFIG).exists());
        drop(held);
        let err = claim(&out, false).unwrap_err().to_string();
        assert!(err.contains("already holds a run"), "{err}");
        let _lock = claim(&out, true).unwrap();
        assert!(!out.join(files::CONFIG).exists());
    }

    #[test]
    fn of_threads_claiming_one_folder_together_exactly_one_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let barrier = std::sync::Barrier::new(8);
        let won: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        // Holding the lock until every thread has tried.
                        let lock = claim(&out, true);
                        barrier.wait();
                        lock.is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    }
}
