//! The binary end to end: training on every backend, its artifacts, repeatability, bad
//! arguments, and the terminal dashboard.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;

use common::{assert_success, binary, small_train, synthetic_folder};

/// A small synthetic dataset written as a TSV folder.
fn small_dataset(dir: &Path) -> PathBuf {
    synthetic_folder(dir, "small-synthetic", 320)
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    small_train(data, out).args(extra).output().unwrap()
}

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Whether a test that needs `what` may skip on this machine: yes with a note, except under CI,
/// which installs everything and must run it.
fn may_skip(what: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test, but {what} is missing"
    );
    eprintln!("{what} is missing: skipping");
    true
}

fn check_run(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    let output = train(&data, &out, &["--backend", backend, "--epochs", "1"]);
    if String::from_utf8_lossy(&output.stderr).contains("no usable graphics adapter")
        && may_skip("a graphics adapter")
    {
        return;
    }
    assert!(
        output.status.success(),
        "{backend}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["dataset"], "small-synthetic");
    assert_eq!(s["backend"], backend);
    assert_eq!(
        (
            s["heads"].as_u64(),
            s["d_model"].as_u64(),
            s["pe"].as_bool()
        ),
        (Some(2), Some(16), Some(true))
    );
    assert_eq!(
        (s["best_epoch"].as_u64(), s["epochs_run"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(s["params"].as_u64().unwrap() > 1000);
    for key in ["train_acc", "valid_acc", "test_acc"] {
        let acc = s[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
        assert!((0.0..=1.0).contains(&acc), "{key} = {acc}");
    }
    for key in [
        "train_loss",
        "valid_loss",
        "test_loss",
        "train_samples_per_s",
        "seconds",
    ] {
        assert!(s[key].as_f64().unwrap() > 0.0, "{key}");
    }
    for file in [
        "config.toml",
        "model.json",
        "vocab.json",
        "labels.json",
        "model.bpk",
        "metrics.jsonl",
        "experiment.log",
        "checkpoint/model-1.bpk",
    ] {
        assert!(out.join(file).exists(), "{backend}: no {file}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1);
    // The summary's validation figures are the kept epoch's, measured again without dropout:
    // they must agree with what the learner logged for that epoch (batched differently).
    let logged: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let close = |key: &str, tolerance: f64| {
        let (a, b) = (s[key].as_f64().unwrap(), logged[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= tolerance,
            "{backend}: {key} {a} in summary, {b} logged"
        );
    };
    close("valid_acc", 1e-6);
    close("valid_loss", 1e-4);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("epoch 1/1") && stdout.contains("kept epoch 1 of 1"),
        "{stdout}"
    );
    assert!(
        stdout.lines().count() < 20,
        "the log should be compact:\n{stdout}"
    );
    // burn-train's macro-F1 of the epoch, as the log prints it, is the summary's.
    let f1: f64 = stdout
        .lines()
        .find(|l| l.starts_with("epoch 1/1"))
        .and_then(|l| l.split("macro-F1 ").nth(1))
        .and_then(|rest| rest.split('%').next())
        .unwrap_or_else(|| panic!("{backend}: no macro-F1 in the log:\n{stdout}"))
        .parse()
        .unwrap();
    let summary_f1 = 100.0 * s["valid_macro_f1"].as_f64().unwrap();
    assert!(
        (f1 - summary_f1).abs() <= 0.006,
        "{backend}: macro-F1 {f1} logged, {summary_f1} in the summary"
    );
}

#[test]
fn trains_on_flex() {
    check_run("flex");
}

#[test]
fn trains_on_ndarray() {
    check_run("ndarray");
}

#[test]
fn trains_on_wgpu() {
    if std::env::var_os("ATTENTION_LAB_SKIP_WGPU").is_some() {
        eprintln!("ATTENTION_LAB_SKIP_WGPU is set: skipping the wgpu backend");
        return;
    }
    check_run("wgpu");
}

#[test]
fn checkpoint_averaging_keeps_the_mean_of_the_best_epochs() {
    use burn::{prelude::*, store::ModuleRecord};
    use experiment::{checkpoint, model::Classifier, trained::TrainedRun};

    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    let output = train(
        &data,
        &out,
        &["--epochs", "6", "--patience", "0", "--average", "3"],
    );
    assert_success(&output);
    let s = summary(&out);
    let averaged: Vec<usize> = serde_json::from_value(s["averaged_epochs"].clone()).unwrap();
    // The three lowest validation losses, lowest first.
    let mut losses: Vec<(usize, f64)> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|m| {
            (
                m["epoch"].as_u64().unwrap() as usize,
                m["valid_loss"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(losses.len(), 6);
    losses.sort_by(|a, b| a.1.total_cmp(&b.1));
    let lowest: Vec<usize> = losses[..3].iter().map(|(e, _)| *e).collect();
    assert_eq!(averaged, lowest);
    assert_eq!(s["best_epoch"].as_u64().unwrap() as usize, averaged[0]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("kept the mean of epochs"), "{stdout}");

    // Their checkpoints and the last two stay on disk; the others are gone.
    let mut kept: Vec<usize> = averaged.iter().copied().chain([5, 6]).collect();
    kept.sort_unstable();
    kept.dedup();
    assert_eq!(checkpoint::epochs(&out), kept);

    // The saved model is the mean of those checkpoints.
    let device = Device::flex();
    let run = TrainedRun::open(&out, device.clone()).unwrap();
    let models = averaged
        .iter()
        .map(|&e| {
            let record = ModuleRecord::load(checkpoint::path(&out, "model", e)).unwrap();
            run.model_config.load(record, &device).unwrap()
        })
        .collect();
    let mean = checkpoint::average(models).unwrap();
    let best = ModuleRecord::load(checkpoint::path(&out, "model", averaged[0])).unwrap();
    let best = run.model_config.load(best, &device).unwrap();
    let max_diff = |a: &Classifier, b: &Classifier| {
        checkpoint::parameters(a)
            .into_iter()
            .zip(checkpoint::parameters(b))
            .map(|(x, y)| (x - y).abs().max().into_scalar::<f32>())
            .fold(0.0f32, f32::max)
    };
    assert!(max_diff(&run.model, &mean) < 1e-6);
    assert!(
        max_diff(&run.model, &best) > 1e-4,
        "the best epoch was kept alone"
    );
}

#[test]
fn every_flag_reaches_the_saved_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    let flags = [
        ("--dropout", "dropout = 0.25"),
        ("--attention-dropout", "attention_dropout = 0.05"),
        ("--token-dropout", "token_dropout = 0.15"),
        ("--embedding-std", "embedding_std = 0.5"),
        ("--lr", "lr = 0.002"),
        ("--weight-decay", "weight_decay = 0.01"),
        ("--patience", "patience = 2"),
        ("--min-freq", "min_freq = 2"),
        ("--seed", "seed = 9"),
        ("--batching", "batching = \"shuffle\""),
        ("--devices", "devices = 2"),
        ("--average", "average = 2"),
    ];
    let mut args = vec!["--epochs", "1", "--schedule", "cosine", "--pe", "false"];
    for (flag, line) in &flags {
        args.push(flag);
        args.push(line.rsplit(" = ").next().unwrap().trim_matches('"'));
    }
    let output = train(&data, &out, &args);
    assert_success(&output);
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let expected = flags.iter().map(|(_, line)| *line).chain([
        "schedule = \"cosine\"",
        "positions = \"none\"",
        "heads = 2",
        "d_model = 16",
        "batch_size = 32",
        "max_len = 32",
        "epochs = 1",
    ]);
    for line in expected {
        assert!(
            saved.lines().any(|l| l == line),
            "config.toml lacks `{line}`:\n{saved}"
        );
    }
}

#[test]
fn trains_data_parallel_on_two_cpu_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let run = |name: &str, devices: &str| {
        let out = dir.path().join(name);
        let output = train(&data, &out, &["--epochs", "3", "--devices", devices]);
        assert_success(&output);
        summary(&out)
    };
    let (one, two) = (run("one", "1"), run("two", "2"));
    // Every training example is seen once an epoch either way, and both learn.
    for s in [&one, &two] {
        assert_eq!(s["epochs_run"], 3);
        assert!(s["train_samples_per_s"].as_f64().unwrap() > 0.0);
        assert!(s["valid_loss"].as_f64().unwrap().is_finite());
    }
    let (l1, l2) = (
        one["valid_loss"].as_f64().unwrap(),
        two["valid_loss"].as_f64().unwrap(),
    );
    assert!((l1 - l2).abs() < 0.15, "1 device {l1}, 2 devices {l2}");
}

#[test]
fn same_seed_same_metrics_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let output = train(&data, &out, &["--epochs", "2", "--seed", seed]);
        assert_success(&output);
        let s = summary(&out);
        let keys = ["train_loss", "valid_loss", "test_loss", "valid_acc"];
        keys.map(|k| s[k].as_f64().unwrap())
    };
    let first = run("a", "7");
    assert_eq!(first, run("b", "7"), "same seed, different metrics");
    assert_ne!(first, run("c", "8"), "the seed should matter");
}

/// Runs the binary with `args`, expecting failure with exactly one line on stderr.
fn fails_with(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let output = binary()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?} should fail in one line:\n{stderr}"
    );
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_arguments_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never-created");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--backend", "tpu"],
            "invalid value 'tpu' for '--backend <BACKEND>'",
        ),
        (
            &["--heads", "3"],
            "error: invalid heads: 3 heads do not divide d_model = 64",
        ),
        (
            &["--epochs", "0"],
            "error: invalid epochs: must be at least 1",
        ),
        (
            &["--dataset", "/no/such/folder"],
            "error: /no/such/folder: no such folder",
        ),
        (&["--lr", "-0.1"], "invalid lr"),
        (
            &["--batching", "sorted"],
            "unknown batching `sorted`; expected bucket, shuffle or pack",
        ),
        (
            &["--devices", "0"],
            "error: invalid devices: must be at least 1",
        ),
        (
            &["--devices", "65"],
            "error: invalid devices: 65 devices cannot split batches of 64",
        ),
    ];
    for (args, expected) in cases {
        fails_with(&[args, &["--out", out]].concat(), &[], expected);
    }
    let encoder_config = dir.path().join("encoder.toml");
    std::fs::write(&encoder_config, "[model]\nencoder = \"minilm-l6\"\n").unwrap();
    fails_with(
        &[
            "compare",
            "--config",
            encoder_config.to_str().unwrap(),
            "--out",
            out,
        ],
        &[],
        "compare varies heads, positions and layers of models from scratch",
    );
    // The encoder may come from --config, so the check is the configuration's.
    fails_with(
        &["--freeze-encoder", "--out", out],
        &[],
        "error: invalid freeze_encoder: needs a pretrained encoder (set encoder)",
    );
    let hidden = [
        ("VK_ICD_FILENAMES", "/nonexistent"),
        ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent"),
    ];
    fails_with(
        &["--backend", "wgpu", "--out", out],
        &hidden,
        "install a Vulkan driver",
    );
    assert!(
        !Path::new(out).exists(),
        "a failed start must not create the output folder"
    );
}

#[test]
fn an_existing_run_is_not_overwritten_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let output = train(&data, &out, &["--epochs", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--overwrite to replace it"));
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn datasets_command_prints_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let output = binary()
        .arg("datasets")
        .arg("--dataset")
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "dataset small-synthetic: 2 classes",
        "train",
        "validation",
        "test",
        "negative",
        "OOV",
    ] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
}

/// tmux on its own socket, cleaned up when dropped.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "lab"]);
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "`{needle}` never appeared; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn dashboard_draws_in_a_terminal_and_quits_cleanly() {
    if Command::new("tmux").arg("-V").output().is_err() && may_skip("tmux (apt-get install tmux)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    let command = format!(
        "{} --dataset {} --out {} --epochs 5000 --patience 0 --d-model 16 --heads 2; echo EXIT:$?; sleep 30",
        env!("CARGO_BIN_EXE_experiment"),
        data.display(),
        out.display()
    );
    let tmux = Tmux(format!("attention-lab-{}", std::process::id()));
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "lab",
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    let screen = tmux.wait_for("Iteration Speed", Duration::from_secs(60));
    assert!(
        screen.contains("Accuracy") && screen.contains("Loss"),
        "{screen}"
    );
    // Macro-F1 appears once the first validation split has run.
    tmux.wait_for("FBetaScore", Duration::from_secs(60));
    // Let an epoch finish so there is a checkpoint to keep.
    let start = Instant::now();
    while !out.join("valid/epoch-2").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no checkpoint after a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // `q` opens the quit menu; `k` is the path that panics in burn 0.22.1 (#4657).
    tmux.run(&["send-keys", "-t", "lab", "q"]);
    tmux.wait_for("Stop the training", Duration::from_secs(10));
    tmux.run(&["send-keys", "-t", "lab", "k"]);
    let screen = tmux.wait_for("EXIT:", Duration::from_secs(60));
    assert!(screen.contains("EXIT:0"), "{screen}");
    assert!(
        screen.contains("training stopped from the dashboard"),
        "{screen}"
    );
    let s = summary(&out);
    assert_eq!(s["interrupted"], true);
    assert!(s["best_epoch"].as_u64().unwrap() >= 1);
}

#[test]
fn compare_writes_report_and_charts_and_reuses_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("results");
    let compare_into = |out: &Path, jobs: &str| {
        binary()
            // One thread either way, so the concurrent runs compute exactly what sequential
            // ones do (a reduction's order depends on the thread count).
            .env("RAYON_NUM_THREADS", "1")
            .args(["compare", "--jobs", jobs])
            .args([
                "--epochs",
                "1",
                "--seeds",
                "2",
                "--d-model",
                "16",
                "--batch-size",
                "32",
            ])
            .arg("--dataset")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let compare = || compare_into(&out, "1");
    let output = compare();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("[1/6] single-head seed 1")
            && stdout.contains("[6/6] multi-head-pe seed 2"),
        "{stdout}"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["dataset"], "small-synthetic");
    assert!(
        report["command"]
            .as_str()
            .unwrap()
            .starts_with("experiment compare")
    );
    let conditions = report["conditions"].as_array().unwrap();
    let names: Vec<&str> = conditions
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["single-head", "multi-head", "multi-head-pe"]);
    for c in conditions {
        assert_eq!(
            c["params"], conditions[0]["params"],
            "conditions must have the same size"
        );
        assert_eq!(c["seeds"], serde_json::json!([1, 2]));
        for key in [
            "train_loss",
            "train_acc",
            "valid_loss",
            "valid_acc",
            "test_acc",
        ] {
            let stat = &c[key];
            assert_eq!(stat["runs"].as_array().unwrap().len(), 2, "{key}");
            let mean = stat["mean"].as_f64().unwrap();
            let runs: Vec<f64> = stat["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!(
                (mean - (runs[0] + runs[1]) / 2.0).abs() < 1e-12,
                "{key}: mean of the runs"
            );
            assert!(stat["std"].as_f64().unwrap() >= 0.0);
        }
        let acc = c["valid_acc"]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for needle in [
        "| condition | heads | positions | layers | params |",
        "## What the numbers say",
        "4 heads vs 1 head",
        "experiment compare",
        "## Which heads matter",
        "Baseline without attention or word order",
        "vs the bag-of-words baseline: valid acc",
        "| multi-head-pe | ",
    ] {
        assert!(md.contains(needle), "REPORT.md lacks {needle}");
    }
    // Each multi-head run's analysis is kept beside it; single-head runs have none.
    let heads: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs/multi-head-s1/heads.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(heads["masked_accuracy"].as_array().unwrap().len(), 4);
    assert_eq!(heads["pruning_accuracy"].as_array().unwrap().len(), 4);
    assert!(!out.join("runs/single-head-s1/heads.json").exists());
    let stats = &conditions[1]["head_analysis"];
    assert_eq!(
        stats["pruning_curves"].as_array().unwrap().len(),
        2,
        "{stats}"
    );
    assert!(conditions[0]["head_analysis"].is_null());
    for png in ["curves.png", "final.png", "pruning.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{png}"
        );
    }

    // Finished runs are reused, not retrained.
    let again = compare();
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(stdout.matches("(reused)").count(), 6, "{stdout}");
    assert!(!stdout.contains("training"), "{stdout}");

    // Two runs at a time, each in its own process: the same numbers as one after another.
    let parallel = dir.path().join("parallel");
    let output = compare_into(&parallel, "2");
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("in a process of its own").count(),
        6,
        "{stdout}"
    );
    let conditions_of = |out: &Path| -> Value {
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                serde_json::json!([c["name"], c["train_loss"], c["valid_loss"], c["valid_acc"]])
            })
            .collect()
    };
    assert_eq!(conditions_of(&parallel), conditions_of(&out));
    assert!(parallel.join("runs/multi-head-pe-s2.log").exists());
}

#[test]
fn compare_varies_the_axes_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("results");
    let output = binary()
        .args([
            "compare",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--d-model",
            "16",
        ])
        .args([
            "--heads",
            "2",
            "--positions",
            "none,rope",
            "--layers",
            "1,2",
        ])
        .arg("--dataset")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let conditions = report["conditions"].as_array().unwrap();
    let names: Vec<&str> = conditions
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["2-heads", "2-heads-rope", "2-heads-l2", "2-heads-rope-l2"]
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs/2-heads-rope-l2-s1/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (summary["layers"].as_u64(), summary["positions"].as_str()),
        (Some(2), Some("rope"))
    );
    // A second layer is one more attention and LayerNorm: 4·16·16 + 2·16 parameters.
    let params = |i: usize| conditions[i]["params"].as_u64().unwrap();
    assert_eq!(params(2) - params(0), 4 * 16 * 16 + 2 * 16);
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for needle in [
        "rope positions vs none (2 heads)",
        "2 layers vs 1 (2 heads, no positions)",
    ] {
        assert!(md.contains(needle), "REPORT.md lacks {needle}:\n{md}");
    }
}

#[test]
fn predict_shows_label_probabilities_and_attention() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    assert!(train(&data, &out, &["--epochs", "1"]).status.success());
    let png = dir.path().join("attention.png");
    let output = binary()
        .args(["predict", "--run"])
        .arg(&out)
        .arg("--png")
        .arg(&png)
        .args([
            "--head",
            "1",
            "the plot was not good but the cast was warm",
            "dull film",
        ])
        .output()
        .unwrap();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches('→').count(), 2, "{stdout}");
    assert!(
        stdout.contains("head 0") && stdout.contains("head 1") && stdout.contains("negative"),
        "{stdout}"
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    let run = out.to_str().unwrap();
    fails_with(
        &[
            "predict",
            "--run",
            run,
            "--head",
            "2",
            "--png",
            "/tmp/never.png",
            "x",
        ],
        &[],
        "--head 2: the model has 2 head(s)",
    );
    fails_with(
        &["predict", "--run", "/no/such/run", "x"],
        &[],
        "not a finished run folder",
    );
    // Files of the run saved again by an editor that writes a byte-order mark still load.
    for name in ["config.toml", "model.json", "labels.json", "vocab.json"] {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
    }
    assert_success(
        &binary()
            .args(["predict", "--run", run, "dull film"])
            .output()
            .unwrap(),
    );
    // A vocabulary from another run must not be used silently.
    let vocab = std::fs::read_to_string(out.join("vocab.json"))
        .unwrap()
        .replacen("\"<unk>\",", "\"<unk>\", \"extra\",", 1);
    std::fs::write(out.join("vocab.json"), vocab).unwrap();
    fails_with(
        &["predict", "--run", run, "x"],
        &[],
        "the folder mixes two runs",
    );
}
