//! Helpers shared by the binary's end-to-end tests.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use dataset::synthetic::{self, SyntheticConfig};

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_experiment"))
}

/// `experiment train --no-tui` of a small, fast model (flex, batch 32, max_len 32, 2 heads,
/// d_model 16) on the TSV folder `data` into `out`; more flags with `.args`.
pub fn small_train(data: &Path, out: &Path) -> Command {
    let mut command = binary();
    command
        .args(["train", "--no-tui", "--batch-size", "32", "--max-len", "32"])
        .args(["--heads", "2", "--d-model", "16"])
        .arg("--dataset")
        .arg(data)
        .arg("--out")
        .arg(out);
    command
}

/// A synthetic dataset of `train` examples (64 validation, 64 test) written as the TSV folder
/// `dir/name`, with a `labels.txt`.
pub fn synthetic_folder(dir: &Path, name: &str, train: usize) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let data = synthetic::generate(&SyntheticConfig {
        train,
        validation: 64,
        test: 64,
        seed: 5,
        ..SyntheticConfig::default()
    });
    for (split, examples) in data.splits() {
        let lines: String = examples
            .iter()
            .map(|e| format!("{}\t{}\n", e.label, e.text))
            .collect();
        std::fs::write(folder.join(format!("{split}.tsv")), lines).unwrap();
    }
    std::fs::write(folder.join("labels.txt"), "0\tnegative\n1\tpositive\n").unwrap();
    folder
}

/// Asserts that a run of the binary succeeded, showing its stderr when it did not.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `experiment train --resume DIR --no-tui`, asserting that it succeeded; returns its stdout.
pub fn resume(dir: &Path) -> String {
    let output = binary()
        .args(["train", "--no-tui", "--resume"])
        .arg(dir)
        .output()
        .unwrap();
    assert_success(&output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}
