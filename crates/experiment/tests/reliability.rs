//! A training tool must not lose a user's hours or show a stack trace for a typo: resuming after
//! SIGKILL, concurrent runs, a diverging loss, and every bad input failing in one line.
//!
//! `RELIABILITY_TABLE=$PWD/table.md cargo test --workspace --locked --test reliability every_bad_input`
//! also writes the bad-input cases with the messages observed to that file (the table in
//! RELIABILITY.md; the path must be absolute, as tests run in the crate's folder).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;

use common::{assert_success, binary, resume};

/// A synthetic dataset of `train` examples written as a TSV folder.
fn dataset(dir: &Path, train: usize) -> PathBuf {
    common::synthetic_folder(dir, &format!("synthetic-{train}"), train)
}

/// A small, fast training command without early stopping.
fn train(data: &Path, out: &Path) -> Command {
    let mut command = common::small_train(data, out);
    command.args(["--patience", "0"]);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn a_run_killed_mid_epoch_resumes_and_finishes_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    // ~0.5 s per epoch here: long enough to be killed inside one.
    let data = dataset(dir.path(), 6000);
    let out = dir.path().join("run");
    let epochs = 4;
    // 6,000 examples in batches of 32: 188 steps an epoch. The process aborts (no clean-up, like
    // SIGKILL) at the start of step 282, the middle of epoch 2; epoch 1's checkpoint was written
    // 94 steps before.
    let killed = train(&data, &out)
        .args(["--epochs", &epochs.to_string()])
        .env("ATTENTION_LAB_FAULT_ABORT_AFTER", "281")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the fault hook did not stop the run"
    );
    assert!(!out.join("summary.json").exists(), "killed after the end");
    assert!(out.join("checkpoint/model-1.bpk").exists());
    assert!(
        !out.join("checkpoint/model-2.bpk").exists(),
        "killed after epoch 2"
    );
    assert!(
        out.join("run.lock").exists(),
        "a killed run leaves its lock"
    );

    let output = binary()
        .args(["train", "--no-tui", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let log = String::from_utf8_lossy(&output.stdout);
    let resumed_after: usize = log
        .split("after epoch ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in:\n{log}"));
    assert_eq!(resumed_after, 1, "{log}");
    // Only the epochs after the checkpoint are trained again.
    assert_eq!(
        log.matches("train loss").count(),
        epochs - resumed_after,
        "{log}"
    );

    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["epochs_run"], epochs);
    let metrics: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<u64> = metrics
        .iter()
        .map(|m| m["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=epochs as u64).collect::<Vec<_>>());
    assert!(
        metrics
            .iter()
            .all(|m| m["train_loss"].as_f64().unwrap().is_finite())
    );
    // No partial lines of the killed epoch are left in burn's logs.
    let per_epoch = lines(&out.join("train/epoch-1/Loss.log"));
    for epoch in 2..=epochs {
        assert_eq!(
            lines(&out.join(format!("train/epoch-{epoch}/Loss.log"))),
            per_epoch,
            "epoch {epoch}"
        );
    }
    assert!(!out.join("run.lock").exists());

    // A finished run is not resumed again.
    let again = binary()
        .args(["train", "--no-tui", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("nothing to resume"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn concurrent_runs_keep_to_their_own_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 3000);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let spawn = |out: &Path, seed: &str| {
        train(&data, out)
            .args(["--epochs", "3", "--seed", seed])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&a, "1"), spawn(&b, "2"));
    // While `a` trains, a third run into its folder is refused, even with --overwrite.
    let started = Instant::now();
    while !a.join("run.lock").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no lock file");
        std::thread::sleep(Duration::from_millis(10));
    }
    let intruder = train(&data, &a).args(["--overwrite"]).output().unwrap();
    assert!(!intruder.status.success());
    assert!(
        stderr(&intruder).contains("is training into this folder"),
        "{}",
        stderr(&intruder)
    );
    for (child, out, seed) in [(first, &a, 1), (second, &b, 2)] {
        let output = child.wait_with_output().unwrap();
        assert_success(&output);
        let summary = json(&out.join("summary.json"));
        assert_eq!(summary["seed"], seed);
        assert_eq!(summary["epochs_run"], 3);
    }
    assert_ne!(
        std::fs::read(a.join("metrics.jsonl")).unwrap(),
        std::fs::read(b.join("metrics.jsonl")).unwrap()
    );
}

#[test]
fn a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 320); // 10 batches per epoch
    let out = dir.path().join("run");
    let output = train(&data, &out)
        .args(["--epochs", "4"])
        .env("ATTENTION_LAB_FAULT_NAN_AFTER", "15") // the 6th batch of epoch 2
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.contains("the training loss became NaN in epoch 2"),
        "{message}"
    );
    assert!(message.contains("kept epoch 1's model"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(out.join("checkpoint/model-1.bpk").exists());
    assert!(!out.join("checkpoint/model-2.bpk").exists());
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["best_epoch"], 1);
    assert!(summary["valid_loss"].as_f64().unwrap().is_finite());
    // The kept model works.
    let predict = binary()
        .args(["predict", "--run"])
        .arg(&out)
        .arg("a good film")
        .output()
        .unwrap();
    assert_success(&predict);

    // A stopped run resumes from its last checkpoint, like a killed one, and then finishes.
    let stdout = resume(&out);
    assert!(stdout.contains("after epoch 1 of 4"), "{stdout}");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["epochs_run"], 4);
    assert_eq!(summary["interrupted"], false);
}

/// One bad input: how to set it up, the arguments, and a phrase the message must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    expected: &'static str,
}

/// Writes `files` into a fresh dataset folder named `name`.
fn folder(root: &Path, name: &str, files: &[(&str, &[u8])]) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, content) in files {
        std::fs::write(dir.join(file), content).unwrap();
    }
    dir.display().to_string()
}

fn config(root: &Path, name: &str, toml: &str) -> String {
    let path = root.join(name);
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

fn case(name: &'static str, args: Vec<String>, expected: &'static str) -> Case {
    Case {
        name,
        args,
        env: vec![],
        expected,
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_bad_input_fails_in_one_line_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    const VALID: &[u8] = b"0\tdull\n1\tgood\n";
    const LABELS: &[u8] = b"0\tnegative\n1\tpositive\n";
    let data = |name: &str, train: &[u8]| {
        folder(
            root,
            name,
            &[
                ("train.tsv", train),
                ("validation.tsv", VALID),
                ("labels.txt", LABELS),
            ],
        )
    };
    let dataset = |path: String| vec!["--dataset".to_string(), path];
    let with_config =
        |name: &str, toml: &str| vec!["--config".to_string(), config(root, name, toml)];
    let long_line = [b"1\t".as_slice(), &vec![b'a'; 10 << 20], b"\n"].concat();

    // A finished run, for the run-time cases.
    let small = dataset_folder(root);
    let finished = root.join("finished");
    assert_success(
        &train(&small, &finished)
            .args(["--epochs", "2"])
            .output()
            .unwrap(),
    );
    let copy = |name: &str| {
        let to = root.join(name);
        copy_dir(&finished, &to);
        to
    };
    // Resuming from a truncated checkpoint.
    let truncated = copy("truncated");
    std::fs::remove_file(truncated.join("summary.json")).unwrap();
    let newest = truncated.join("checkpoint/model-2.bpk");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    // Predicting with a corrupt model file.
    let corrupt = copy("corrupt");
    std::fs::write(corrupt.join("model.bpk"), b"not a model").unwrap();
    // Predicting with a vocabulary from elsewhere.
    let swapped = copy("swapped");
    std::fs::write(
        swapped.join("vocab.json"),
        std::fs::read_to_string(swapped.join("vocab.json"))
            .unwrap()
            .replacen("\"<unk>\"", "\"<unk>\", \"extra\"", 1),
    )
    .unwrap();
    // A head count edited in config.toml after training (same weight shapes, other model).
    let reheaded = copy("reheaded");
    let edit = |file: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains(from), "{}: no `{from}`", file.display());
        std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    };
    edit(&reheaded.join("config.toml"), "heads = 2", "heads = 4");
    // Weights of another size under a config that agrees with itself.
    let resized = copy("resized");
    edit(&resized.join("config.toml"), "d_model = 16", "d_model = 32");
    edit(
        &resized.join("model.json"),
        "\"d_model\": 16",
        "\"d_model\": 32",
    );
    // A run folder as 0.1 wrote it: flat config.toml and model.json. It still predicts; its
    // head count edited afterwards is still caught.
    let flat = |dir: &Path| {
        let config = dir.join("config.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        // 0.1 had `pe` where `positions` is now.
        let keys: Vec<String> = text
            .lines()
            // Keys 0.1 did not have.
            .filter(|l| {
                let added = [
                    "layers",
                    "average",
                    "warmup",
                    "pooling",
                    "freeze_encoder",
                    "freeze_embeddings",
                    "sinks",
                ];
                !l.starts_with('[') && !added.iter().any(|k| l.starts_with(&format!("{k} =")))
            })
            .map(|l| l.replace("positions = \"sinusoidal\"", "pe = true"))
            .collect();
        assert!(keys.iter().any(|l| l == "pe = true"), "{text}");
        std::fs::write(&config, keys.join("\n")).unwrap();
        let mut model = json(&dir.join("model.json"));
        let mut options = model.as_object_mut().unwrap().remove("options").unwrap();
        let options = options.as_object_mut().unwrap();
        for added in [
            "positions",
            "layers",
            "encoder",
            "pooling",
            "freeze_encoder",
            "freeze_embeddings",
            "sinks",
        ] {
            options.remove(added);
        }
        model.as_object_mut().unwrap().remove("bert");
        options.insert("pe".into(), true.into());
        model.as_object_mut().unwrap().extend(options.clone());
        std::fs::write(dir.join("model.json"), model.to_string()).unwrap();
    };
    let legacy = copy("legacy");
    flat(&legacy);
    let predicted = binary()
        .args(["predict", "--run"])
        .arg(&legacy)
        .arg("text")
        .output()
        .unwrap();
    assert_success(&predicted);
    let legacy_reheaded = copy("legacy-reheaded");
    flat(&legacy_reheaded);
    edit(
        &legacy_reheaded.join("config.toml"),
        "heads = 2",
        "heads = 4",
    );
    let path = |p: &Path| p.display().to_string();

    let no_driver = vec![
        ("VK_ICD_FILENAMES", "/nonexistent"),
        ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent"),
    ];
    let cases = vec![
        case(
            "dataset folder missing",
            dataset("/no/such/folder".into()),
            "no such folder",
        ),
        case(
            "split file missing",
            dataset(folder(root, "no-validation", &[("train.tsv", VALID)])),
            "no validation.tsv",
        ),
        case(
            "empty split",
            dataset(data("empty", b"")),
            "this split has no examples",
        ),
        case(
            "line without a TAB",
            dataset(data("no-tab", b"0\tfine\n1 no tab here\n")),
            "train.tsv:2: no TAB",
        ),
        case(
            "non-integer, unknown label",
            dataset(data("bad-label", b"0\tfine\nmaybe\thmm\n")),
            "train.tsv:2: label `maybe` is neither a class id",
        ),
        case(
            "labels mixing names and ids, no labels.txt",
            dataset(folder(
                root,
                "mixed-labels",
                &[
                    ("train.tsv", b"neg\tfine\n1\thmm\npos\tgood\n"),
                    ("validation.tsv", b"neg\tdull\n"),
                ],
            )),
            "train.tsv:2: label `1` is a number but the labels before it are class names",
        ),
        case(
            "sst2: an SST-2.zip that is not GLUE's",
            vec![
                "--dataset".into(),
                "sst2".into(),
                "--data-dir".into(),
                folder(root, "data-dir", &[("SST-2.zip", b"not GLUE's archive")]),
            ],
            "SST-2.zip: MD5 is ",
        ),
        case(
            "label id out of range",
            dataset(data("big-label", b"0\tfine\n7\thmm\n")),
            "train.tsv:2: label 7 is not a class id",
        ),
        case(
            "non-UTF-8 bytes",
            dataset(data("latin1", b"0\tfine\n1\tcaf\xe9\n")),
            "train.tsv:2: not valid UTF-8",
        ),
        case(
            "a 10 MB line",
            dataset(data("long-line", &long_line)),
            "train.tsv:1: line is 10485762 bytes long",
        ),
        case(
            "config: unknown key",
            with_config("unknown.toml", "[model]\nhedas = 4\n"),
            "unknown field `hedas`",
        ),
        case(
            "config: wrong type",
            with_config("type.toml", "[model]\nheads = \"four\"\n"),
            "invalid type: string \"four\", expected usize",
        ),
        case(
            "config: a key both flat (0.1 layout) and in its section",
            with_config("twice.toml", "heads = 2\n[model]\nheads = 8\n"),
            "`heads` is given twice, at the top and under [model]",
        ),
        case(
            "config: heads not dividing d_model",
            with_config("heads.toml", "[model]\nheads = 3\n"),
            "3 heads do not divide d_model = 64",
        ),
        case(
            "config: negative learning rate",
            with_config("lr.toml", "[train]\nlr = -0.001\n"),
            "invalid lr",
        ),
        case(
            "config: zero learning rate",
            with_config("lr0.toml", "[train]\nlr = 0.0\n"),
            "invalid lr",
        ),
        case(
            "flag: token dropout 1.5",
            args(&["--token-dropout", "1.5"]),
            "invalid token_dropout: must be in [0, 1), got 1.5",
        ),
        case(
            "flag: unknown position scheme",
            args(&["--positions", "spiral"]),
            "invalid value 'spiral' for '--positions <POSITIONS>'",
        ),
        case(
            "config: unknown position scheme",
            with_config("positions.toml", "[model]\npositions = \"spiral\"\n"),
            "unknown variant `spiral`",
        ),
        case(
            "flag: zero layers",
            args(&["--layers", "0"]),
            "invalid layers: must be at least 1",
        ),
        case(
            "config: average of zero checkpoints",
            with_config("average.toml", "[train]\naverage = 0\n"),
            "invalid average: must be at least 1 (1 keeps the best epoch alone)",
        ),
        case(
            "flag: embedding std 0",
            args(&["--embedding-std", "0"]),
            "invalid embedding_std: must be a positive finite number, got 0",
        ),
        case(
            "config: epochs 0",
            with_config("epochs.toml", "[train]\nepochs = 0\n"),
            "invalid epochs",
        ),
        case(
            "config: max_len 0",
            with_config("maxlen.toml", "[data]\nmax_len = 0\n"),
            "invalid max_len",
        ),
        case(
            "config file missing",
            args(&["--config", "/no/such.toml"]),
            "/no/such.toml",
        ),
        case(
            "output folder not writable",
            args(&["--out", "/proc/attention-lab/run"]),
            "/proc/attention-lab/run: cannot create the output folder",
        ),
        case(
            "resume: truncated checkpoint",
            vec!["--resume".into(), path(&truncated)],
            "model-2.bpk: damaged checkpoint",
        ),
        case(
            "resume: not a run folder",
            vec!["--resume".into(), path(root)],
            "not a run folder",
        ),
        case(
            "resume: a config flag as well",
            vec![
                "--resume".into(),
                path(&truncated),
                "--lr".into(),
                "0.1".into(),
            ],
            "cannot be used with",
        ),
        case(
            "predict: corrupt model file",
            vec![
                "predict".into(),
                "--run".into(),
                path(&corrupt),
                "text".into(),
            ],
            "cannot load the model",
        ),
        case(
            "predict: vocabulary of another run",
            vec![
                "predict".into(),
                "--run".into(),
                path(&swapped),
                "text".into(),
            ],
            "vocab.json",
        ),
        case(
            "predict: head count edited after training",
            vec![
                "predict".into(),
                "--run".into(),
                path(&reheaded),
                "text".into(),
            ],
            "config.toml: heads = 4 but the model was trained with heads = 2",
        ),
        case(
            "predict: head count edited in a run folder of 0.1 (flat files)",
            vec![
                "predict".into(),
                "--run".into(),
                path(&legacy_reheaded),
                "text".into(),
            ],
            "config.toml: heads = 4 but the model was trained with heads = 2",
        ),
        case(
            "predict: weights of another model",
            vec![
                "predict".into(),
                "--run".into(),
                path(&resized),
                "text".into(),
            ],
            "model.bpk: the weights do not fit the model config.toml describes",
        ),
        Case {
            env: no_driver,
            ..case(
                "wgpu with no graphics driver",
                args(&["--backend", "wgpu"]),
                "found no usable graphics adapter",
            )
        },
        case(
            "backend not compiled in",
            args(&["--backend", "cuda"]),
            "backend `cuda` is not compiled into this binary",
        ),
    ];

    let mut table = String::from("| bad input | observed message (exit code) |\n| --- | --- |\n");
    for case in cases {
        let out = root.join("never-created");
        let mut command = binary();
        let is_train = case.args.first().is_none_or(|a| a != "predict");
        if is_train {
            command.args(["train", "--no-tui"]);
        }
        command.args(&case.args);
        let resumes = case.args.iter().any(|a| a == "--resume");
        if is_train && !resumes && !case.args.iter().any(|a| a == "--out") {
            command.arg("--out").arg(&out);
        }
        let before = snapshot(root);
        let output = command.envs(case.env.iter().copied()).output().unwrap();
        let message = stderr(&output);
        let name = case.name;
        assert!(!output.status.success(), "{name}: succeeded");
        assert_eq!(
            message.trim_end().lines().count(),
            1,
            "{name}: not one line:\n{message}"
        );
        assert!(message.contains(case.expected), "{name}: {message}");
        assert!(!message.contains("panicked"), "{name}: {message}");
        assert!(!out.exists(), "{name}: created the output folder");
        assert_eq!(snapshot(root), before, "{name}: changed the user's files");
        let shown = message
            .trim_end()
            .replace(&root.display().to_string(), "$TMP");
        let shown = if shown.len() > 220 {
            format!("{}…", &shown[..220])
        } else {
            shown
        };
        table += &format!(
            "| {name} | `{}` ({}) |\n",
            shown.replace('|', "\\|").replace('`', "'"),
            output.status.code().unwrap_or(-1)
        );
    }
    if let Some(path) = std::env::var_os("RELIABILITY_TABLE") {
        std::fs::write(path, table).unwrap();
    }
}

fn dataset_folder(root: &Path) -> PathBuf {
    dataset(root, 320)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `root` with its size and modification time.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}
