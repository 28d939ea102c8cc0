//! `experiment train --embeddings FILE` end to end: word vectors in GloVe's text format start
//! the embedding table (with a projection when their width is not d_model), the run folder
//! alone predicts and resumes, `compare` takes them, and bad input fails in one line.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{assert_success, binary, resume, synthetic_folder};

/// A GloVe text file with a `dim`-wide vector for every word of `data`'s training split but
/// the first, and for a word the data never uses.
fn glove_file(dir: &Path, data: &Path, dim: usize) -> (PathBuf, usize) {
    let train = std::fs::read_to_string(data.join("train.tsv")).unwrap();
    let mut words: Vec<String> = train
        .lines()
        .flat_map(|l| dataset::tokenize(l.split_once('\t').unwrap().1))
        .collect();
    words.sort();
    words.dedup();
    let lines: String = words
        .iter()
        .skip(1)
        .map(String::as_str)
        .chain(["unused"])
        .enumerate()
        .map(|(i, w)| {
            let numbers: Vec<String> = (0..dim)
                .map(|j| format!("{:.3}", ((i * 7 + j * 3) % 11) as f32 / 10.0 - 0.5))
                .collect();
            format!("{w} {}\n", numbers.join(" "))
        })
        .collect();
    let path = dir.join(format!("glove.{dim}d.txt"));
    std::fs::write(&path, lines).unwrap();
    (path, words.len())
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    common::small_train(data, out)
        .args(["--epochs", "2"])
        .args(extra)
        .output()
        .unwrap()
}

fn model_json(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap()
}

#[test]
fn glove_vectors_start_the_table_and_the_run_folder_predicts_and_resumes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 192);
    let (glove, words) = glove_file(dir.path(), &data, 6);
    let out = dir.path().join("run");
    let output = train(&data, &out, &["--embeddings", glove.to_str().unwrap()]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Every word of the vocabulary but one has a vector; 6 wide, projected to d_model 16.
    assert!(
        stdout.contains(&format!("word vectors: {} of {words} words", words - 1)),
        "{stdout}"
    );
    assert!(stdout.contains("(6 wide, projected)"), "{stdout}");
    assert_eq!(model_json(&out)["embedding_dim"], 6);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("embeddings = "), "{config}");

    // The run folder alone: the vectors are not read again.
    std::fs::remove_file(&glove).unwrap();
    let output = binary()
        .args(["predict", "--run"])
        .arg(&out)
        .arg("a good film")
        .output()
        .unwrap();
    assert_success(&output);
    // As if killed after epoch 1.
    std::fs::remove_file(out.join("summary.json")).unwrap();
    for kind in ["model", "optim", "scheduler"] {
        let _ = std::fs::remove_file(out.join(format!("checkpoint/{kind}-2.bpk")));
    }
    let stdout = resume(&out);
    assert!(stdout.contains("resuming"), "{stdout}");
    assert!(out.join("summary.json").exists());
}

/// The embedding rows of the run in `out` for the words `glove` has vectors for, each with its
/// vector from the file.
fn rows_and_vectors(out: &Path, glove: &Path) -> Vec<(Vec<f32>, Vec<f32>)> {
    use burn::prelude::*;
    let run = experiment::trained::TrainedRun::open(out, Device::flex()).unwrap();
    let experiment::model::Classifier::Scratch(model) = &run.model else {
        panic!("a model from scratch");
    };
    let table = model.embedding().weight.val();
    let width = table.dims()[1];
    let table = table.into_data().try_to_vec::<f32>().unwrap();
    let vocab = dataset::Vocabulary::load(&out.join("vocab.json")).unwrap();
    let vectors = dataset::WordVectors::read(glove, |_| true).unwrap();
    (2..vocab.len())
        .filter_map(|id| {
            let vector = vectors.get(vocab.token(id)?)?;
            Some((
                table[id * width..(id + 1) * width].to_vec(),
                vector.to_vec(),
            ))
        })
        .collect()
}

#[test]
fn frozen_vectors_stay_the_scaled_file_vectors_and_trained_ones_move() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 128);
    let (glove, words) = glove_file(dir.path(), &data, 6);
    for frozen in [true, false] {
        let out = dir.path().join(format!("frozen-{frozen}"));
        let mut args = vec!["--embeddings", glove.to_str().unwrap()];
        if frozen {
            args.push("--freeze-embeddings");
        }
        let output = train(&data, &out, &args);
        assert_success(&output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let scale: f32 = stdout
            .split("scaled by ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no scale in {stdout}"));
        let pairs = rows_and_vectors(&out, &glove);
        assert_eq!(pairs.len(), words - 1);
        // Each row is its vector times the one scale (printed to 3 decimals).
        let kept = pairs.iter().all(|(row, vector)| {
            row.iter()
                .zip(vector)
                .all(|(r, v)| (r - v * scale).abs() <= 1e-3 * (1.0 + v.abs()))
        });
        assert_eq!(kept, frozen, "frozen = {frozen}");
    }
    let config = std::fs::read_to_string(dir.path().join("frozen-true/config.toml")).unwrap();
    assert!(config.contains("freeze_embeddings = true"), "{config}");
}

#[test]
fn vectors_as_wide_as_d_model_need_no_projection_and_compare_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 128);
    let (glove, _) = glove_file(dir.path(), &data, 16);
    let out = dir.path().join("run");
    let output = train(&data, &out, &["--embeddings", glove.to_str().unwrap()]);
    assert_success(&output);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("projected"));
    assert_eq!(model_json(&out)["embedding_dim"], 16);
    // The same model without vectors has the same parameter count (no projection).
    let plain = dir.path().join("plain");
    assert_success(&train(&data, &plain, &[]));
    let params = |out: &Path| {
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        summary["params"].clone()
    };
    assert_eq!(params(&out), params(&plain));

    let results = dir.path().join("grid");
    let output = binary()
        .args([
            "compare",
            "--heads",
            "1,2",
            "--positions",
            "none",
            "--seeds",
            "1",
        ])
        .args(["--epochs", "1", "--d-model", "16", "--batch-size", "32"])
        .arg("--embeddings")
        .arg(&glove)
        .arg("--dataset")
        .arg(&data)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert_success(&output);
    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    assert!(report.contains("embeddings = "), "{report}");
    let runs: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in runs {
        assert_eq!(model_json(&run)["embedding_dim"], 16, "{}", run.display());
    }
}

#[test]
fn bad_vectors_fail_in_one_line_before_the_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 64);
    let out = dir.path().join("never-created");
    let unrelated = dir.path().join("french.txt");
    std::fs::write(&unrelated, "bonjour 0.1 0.2\nfilm_x 0.3 0.4\n").unwrap();
    let broken = dir.path().join("broken.txt");
    std::fs::write(&broken, "the 0.1 0.2\nfilm 0.3\n").unwrap();
    let empty = dir.path().join("empty-data-dir");
    let cases: [(&[&str], &str); 7] = [
        (
            &["--embeddings", "/no/such/glove.txt"],
            "/no/such/glove.txt: No such file",
        ),
        (
            &["--embeddings", "minilm-l6"],
            "minilm-l6: all-MiniLM-L6-v2",
        ),
        (
            &[
                "--embeddings",
                "glove-6b-50d",
                "--data-dir",
                empty.to_str().unwrap(),
            ],
            "glove-6b-50d is not fetched; run `experiment fetch glove-6b-50d`",
        ),
        (
            &["--embeddings", unrelated.to_str().unwrap()],
            "none of the vocabulary's",
        ),
        (
            &["--embeddings", broken.to_str().unwrap()],
            "broken.txt:2: expected a word and 2 numbers",
        ),
        (
            &["--freeze-embeddings"],
            "invalid freeze_embeddings: needs pretrained embeddings (set encoder or embeddings)",
        ),
        (
            &["--embeddings", "glove-6b-50d", "--encoder", "minilm-l6"],
            "invalid embeddings: glove-6b-50d is for models from scratch",
        ),
    ];
    for (args, expected) in cases {
        let output = train(&data, &out, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}:\n{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} created the run folder");
    }
}
