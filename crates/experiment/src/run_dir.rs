//! The run-folder contract: the files a run leaves, the lock a training process holds on its
//! folder, and claiming a folder for a new run.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// Files a run leaves, relative to its folder.
pub mod files {
    pub const CONFIG: &str = "config.toml";
    pub const MODEL_CONFIG: &str = "model.json";
    pub const VOCAB: &str = "vocab.json";
    pub const LABELS: &str = "labels.json";
    pub const MODEL: &str = "model.bpk";
    pub const METRICS: &str = "metrics.jsonl";
    pub const SUMMARY: &str = "summary.json";
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

/// The class names a run folder's `labels.json` lists.
pub fn read_labels(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(files::LABELS);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON list of class names", path.display()))
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
