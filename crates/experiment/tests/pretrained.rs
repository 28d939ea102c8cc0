//! `experiment train --encoder DIR` end to end on a tiny BERT checkpoint (the attention crate's
//! random fixture, with a letter-level WordPiece tokenizer written here): fine-tuning, the
//! linear probe, the run folder, `predict`, `--resume`, and bad input.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

mod common;

use common::{assert_success, binary, resume, synthetic_folder};

/// A checkpoint folder: the tiny BERT (2 layers, 4 heads, hidden 24, 50 word pieces, 16
/// positions) and a tokenizer.json whose 50 pieces are the special tokens and letters.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../attention/tests/fixtures/bert");
    let checkpoint = dir.join("tiny-bert");
    std::fs::create_dir_all(&checkpoint).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(file), checkpoint.join(file)).unwrap();
    }
    let mut pieces: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .map(String::from)
        .to_vec();
    pieces.extend(('a'..='z').map(String::from));
    pieces.extend(('a'..='t').map(|c| format!("##{c}")));
    assert_eq!(pieces.len(), 50);
    let vocab: serde_json::Map<String, Value> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, json!(i)))
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(checkpoint.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    checkpoint
}

fn fine_tune(data: &Path, encoder: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let max_len: &[&str] = if extra.contains(&"--max-len") {
        &[]
    } else {
        &["--max-len", "16"]
    };
    binary()
        .args(["train", "--no-tui", "--batch-size", "32"])
        .args(max_len)
        .args(["--lr", "1e-3", "--schedule", "linear", "--warmup", "0.2"])
        .arg("--encoder")
        .arg(encoder)
        .arg("--dataset")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn fine_tunes_a_checkpoint_and_predicts_from_the_run_folder_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 256);
    let encoder = tiny_checkpoint(dir.path());
    let out = dir.path().join("run");
    let output = fine_tune(
        &data,
        &encoder,
        &out,
        &["--epochs", "2", "--pooling", "cls"],
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("pooling cls") && stdout.contains("2 layers, 4 heads, d_model 24"),
        "{stdout}"
    );
    let s = summary(&out);
    assert_eq!(
        (
            s["layers"].as_u64(),
            s["heads"].as_u64(),
            s["d_model"].as_u64()
        ),
        (Some(2), Some(4), Some(24))
    );
    assert_eq!(s["positions"], "learned");
    assert!(s["valid_acc"].as_f64().unwrap() > 0.0);
    assert!(out.join("tokenizer.json").exists() && !out.join("vocab.json").exists());

    // The run folder alone predicts: the checkpoint folder is gone.
    std::fs::remove_dir_all(&encoder).unwrap();
    let output = binary()
        .args(["predict", "--run"])
        .arg(&out)
        .arg("a good film")
        .output()
        .unwrap();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("[CLS]") && stdout.contains("[SEP]"),
        "{stdout}"
    );
    // The second layer's heads, in the text and the heatmap; a third layer is an error.
    let png = dir.path().join("layer2.png");
    let output = binary()
        .args(["predict", "--layer", "2", "--head", "3", "--png"])
        .arg(&png)
        .arg("--run")
        .arg(&out)
        .arg("a good film")
        .output()
        .unwrap();
    assert_success(&output);
    assert!(png.exists() && String::from_utf8_lossy(&output.stdout).contains("head 3"));
    let output = binary()
        .args(["predict", "--layer", "3", "--run"])
        .arg(&out)
        .arg("a good film")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--layer 3: the model has layers 1 to 2")
    );

    // Every layer's heads: 2 × 4, named layer.head, pruned by importance and in random orders.
    let output = binary()
        .args(["heads", "--orders", "2", "--run"])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let report = std::fs::read_to_string(out.join("HEADS.md")).unwrap();
    assert!(
        report.contains("2 layers × 4") && report.contains("| 2.4 |"),
        "{report}"
    );
    assert!(out.join("pruning.png").exists());
    let heads: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("heads.json")).unwrap()).unwrap();
    assert_eq!(heads["importance"].as_array().unwrap().len(), 8);
    assert_eq!(heads["entropy_ratio"].as_array().unwrap().len(), 8);
    let random = heads["random_pruning_accuracy"].as_array().unwrap();
    assert_eq!(random.len(), 2);
    assert_eq!(random[0].as_array().unwrap().len(), 8);
}

#[test]
fn the_encoder_and_its_flags_may_come_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 64);
    let encoder = tiny_checkpoint(dir.path());
    let config = dir.path().join("probe.toml");
    let toml = format!(
        "[data]\nmax_len = 16\n[model]\nencoder = {:?}\n[train]\nepochs = 1\n",
        encoder.display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let out = dir.path().join("probe");
    let output = binary()
        .args([
            "train",
            "--no-tui",
            "--freeze-encoder",
            "--pooling",
            "cls",
            "--config",
        ])
        .arg(&config)
        .arg("--dataset")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        saved.contains("freeze_encoder = true") && saved.contains("pooling = \"cls\""),
        "{saved}"
    );
}

#[test]
fn a_linear_probe_keeps_the_encoder_and_an_interrupted_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 128);
    let encoder = tiny_checkpoint(dir.path());
    let out = dir.path().join("probe");
    let output = fine_tune(
        &data,
        &encoder,
        &out,
        &["--epochs", "2", "--freeze-encoder"],
    );
    assert_success(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("(frozen)"));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("freeze_encoder = true"), "{config}");

    // As if killed after epoch 1: its summary and epoch 2's checkpoints gone.
    std::fs::remove_file(out.join("summary.json")).unwrap();
    for kind in ["model", "optim", "scheduler"] {
        let _ = std::fs::remove_file(out.join(format!("checkpoint/{kind}-2.bpk")));
    }
    let stdout = resume(&out);
    assert!(stdout.contains("resuming"), "{stdout}");
    assert_eq!(summary(&out)["epochs_run"], 2);
}

/// The word embeddings of the model kept in the run folder `out`, and of the checkpoint.
fn word_embeddings(out: &Path, checkpoint: &Path) -> (Vec<f32>, Vec<f32>) {
    use burn::prelude::*;
    let device = Device::flex();
    let run = experiment::trained::TrainedRun::open(out, device.clone()).unwrap();
    let experiment::model::Classifier::Pretrained(model) = &run.model else {
        panic!("a pretrained model");
    };
    let (_, original) = attention::BertModel::from_pretrained(checkpoint, &device).unwrap();
    let values = |m: &attention::BertModel| {
        m.embeddings
            .word
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    (values(model.encoder()), values(&original))
}

#[test]
fn frozen_word_embeddings_stay_as_the_checkpoint_has_them_through_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 128);
    let encoder = tiny_checkpoint(dir.path());
    for (flag, frozen) in [("--freeze-embeddings", true), ("--epochs", false)] {
        let out = dir.path().join(flag.trim_start_matches('-'));
        let extra: &[&str] = if frozen {
            &[flag, "--epochs", "1"]
        } else {
            &[flag, "1"]
        };
        assert_success(&fine_tune(&data, &encoder, &out, extra));
        let (trained, original) = word_embeddings(&out, &encoder);
        assert_eq!(trained == original, frozen, "{flag}");
    }
}

#[test]
fn bad_encoders_fail_in_one_line_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_folder(dir.path(), "data", 64);
    let encoder = tiny_checkpoint(dir.path());
    let fails = |encoder: &Path, extra: &[&str], expected: &str| {
        let out = dir.path().join("never");
        let output = fine_tune(&data, encoder, &out, extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{expected}: succeeded");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!out.exists(), "{expected}: the output folder was made");
    };
    fails(&dir.path().join("nowhere"), &[], "nowhere: no config.json");
    fails(&encoder, &["--max-len", "64"], "holds 16 positions");
    std::fs::write(encoder.join("tokenizer.json"), "{}").unwrap();
    fails(&encoder, &[], "tokenizer.json: not a tokenizer.json file");
}
