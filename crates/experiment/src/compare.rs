//! `experiment compare`: every condition × every seed with one recipe, then the report.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{
    analysis::head_focus,
    backend,
    baseline::{BaselineConfig, BaselineResult, bag_of_words},
    config::ExperimentConfig,
    data::{load_dataset, vocabulary},
    heads::{HeadAnalysis, analyse_heads},
    model::Positions,
    report::{self, Report},
    report::{Condition, RunResult},
    run_dir::{self, Summary, files},
    train::{self, RunOptions},
    trained::TrainedRun,
};

/// The seed experiment's conditions, plus 1/2/8 heads with positional encoding when `sweep`.
pub fn conditions(sweep: bool) -> Vec<Condition> {
    let (none, sinusoidal) = (Positions::None, Positions::Sinusoidal);
    let mut list = vec![
        Condition::new(1, none, 1),
        Condition::new(4, none, 1),
        Condition::new(4, sinusoidal, 1),
    ];
    if sweep {
        list.insert(2, Condition::new(1, sinusoidal, 1));
        list.push(Condition::new(2, sinusoidal, 1));
        list.push(Condition::new(8, sinusoidal, 1));
    }
    list
}

/// Every combination of the axes: heads × positions × layers, in that order.
pub fn grid(heads: &[usize], positions: &[Positions], layers: &[usize]) -> Vec<Condition> {
    let mut list = Vec::new();
    for &l in layers {
        for &p in positions {
            for &h in heads {
                let condition = Condition::new(h, p, l);
                // `--heads 4,4` asks for one condition, not two runs into one folder.
                if !list.contains(&condition) {
                    list.push(condition);
                }
            }
        }
    }
    list
}

/// One run of the comparison: a condition, a seed, its configuration and folder.
struct Planned<'a> {
    label: String,
    condition: &'a Condition,
    config: ExperimentConfig,
    dir: PathBuf,
}

/// Runs the comparison into `out` (runs under `out/runs/`) and writes the report there.
///
/// A run whose folder already holds a finished run with the same configuration is reused, so an
/// interrupted comparison continues where it stopped. With `jobs` > 1 the runs train at the
/// same time, each in its own `experiment train` process (this executable; its output goes to
/// `out/runs/<run>.log`), with the cores shared out among them; the report is the same as a
/// sequential comparison's, since every run is seeded alike either way.
pub fn compare(
    base: &ExperimentConfig,
    conditions: &[Condition],
    seeds: &[u64],
    out: &Path,
    command: &str,
    jobs: usize,
) -> Result<Report> {
    if seeds.is_empty() {
        bail!("--seeds must be at least 1");
    }
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if let Some(encoder) = &base.model.encoder {
        // Its config fixes the heads, positions and depth that the conditions would vary.
        bail!(
            "compare varies heads, positions and layers of models from scratch, but encoder = {encoder:?} fixes them; train its seeds with `experiment train --seed N` (experiments/minilm-finetune.sh) and analyse them with `experiment heads`"
        );
    }
    let data = load_dataset(base)?;
    let total = conditions.len() * seeds.len();
    let mut plan = Vec::with_capacity(total);
    for (i, (condition, &seed)) in conditions
        .iter()
        .flat_map(|c| seeds.iter().map(move |s| (c, s)))
        .enumerate()
    {
        let mut config = base.clone();
        config.model.heads = condition.heads;
        config.model.positions = condition.positions;
        config.model.layers = condition.layers;
        config.train.seed = seed;
        config
            .validate()
            .with_context(|| format!("condition {}", condition.name))?;
        plan.push(Planned {
            label: format!("[{}/{total}] {} seed {seed}", i + 1, condition.name),
            condition,
            dir: out.join("runs").join(format!("{}-s{seed}", condition.name)),
            config,
        });
    }
    let previous: Vec<Option<Summary>> = plan
        .iter()
        .map(|p| finished_with(&p.dir, &p.config))
        .collect();
    let pending: Vec<&Planned> = plan
        .iter()
        .zip(&previous)
        .filter(|(_, previous)| previous.is_none())
        .map(|(p, _)| p)
        .collect();
    if jobs > 1 && pending.len() > 1 {
        train_concurrently(&pending, jobs)?;
    } else {
        let started = Instant::now();
        for p in &pending {
            println!(
                "{}: training ({:.0} s elapsed)",
                p.label,
                started.elapsed().as_secs_f64()
            );
            train::train(
                &p.config,
                &RunOptions {
                    out: p.dir.clone(),
                    dashboard: false,
                    overwrite: true,
                },
            )?;
        }
    }

    let mut results = Vec::with_capacity(total);
    for (p, previous) in plan.iter().zip(previous) {
        let (label, condition, config, dir) = (&p.label, p.condition, &p.config, &p.dir);
        let reused = previous.is_some();
        // Only the runs trained just now are read again.
        let summary = previous
            .or_else(|| finished_with(dir, config))
            .with_context(|| {
                format!(
                    "{}: the run did not finish",
                    dir.join(files::SUMMARY).display()
                )
            })?;
        let epochs = run_dir::read_metrics(dir)?;
        let trained = TrainedRun::open(dir, backend::device(config.backend)?)?;
        let focus = head_focus(
            &trained.model,
            &data.validation,
            &trained.tokenizer,
            config.data.max_len,
            &trained.device,
        );
        println!(
            "{label}: valid acc {:.2}%, valid loss {:.4}, best epoch {}{}",
            100.0 * summary.valid_acc,
            summary.valid_loss,
            summary.best_epoch,
            if reused { " (reused)" } else { "" }
        );
        let heads = heads_of(dir, &trained, &data.validation, config)?;
        results.push(RunResult {
            condition: condition.clone(),
            summary,
            epochs,
            focus,
            heads,
        });
    }
    let mut report = report::build(
        &data.name,
        &data.labels,
        command,
        base,
        conditions,
        &results,
    );
    report.baseline = Some(baseline(base, &data));
    report::write(&report, out)?;
    Ok(report)
}

/// Trains `runs` as `jobs` concurrent `experiment train` processes at most, each with its share
/// of the cores (`RAYON_NUM_THREADS`, unless the user set it), and waits for all of them.
fn train_concurrently(runs: &[&Planned], jobs: usize) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable to start runs")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / jobs.min(runs.len())).max(1).to_string());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(p) = runs.get(i) else { break };
                    println!(
                        "{}: training in a process of its own ({:.0} s elapsed)",
                        p.label,
                        started.elapsed().as_secs_f64()
                    );
                    if let Err(e) = train_process(&exe, p, &threads) {
                        failures.lock().unwrap().push(format!("{}: {e:#}", p.label));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    match failures.first() {
        None => Ok(()),
        Some(first) => bail!(
            "{} of {} runs failed; the first: {first}",
            failures.len(),
            runs.len()
        ),
    }
}

/// One run as a child `experiment train` process, its output in `<dir>.log`.
fn train_process(exe: &Path, p: &Planned, threads: &str) -> Result<()> {
    let parent = p.dir.parent().expect("runs live in out/runs");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("{}: cannot create", parent.display()))?;
    let name = p
        .dir
        .file_name()
        .expect("named run folder")
        .to_string_lossy();
    let config_path = parent.join(format!("{name}.toml"));
    std::fs::write(&config_path, p.config.to_toml())
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    let log_path = parent.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("{}: cannot write", log_path.display()))?;
    let status = std::process::Command::new(exe)
        .arg("train")
        .arg("--config")
        .arg(&config_path)
        .arg("--out")
        .arg(&p.dir)
        .args(["--overwrite", "--no-tui"])
        .env("RAYON_NUM_THREADS", threads)
        .env_remove("BURN_DEVICE")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    let _ = std::fs::remove_file(&config_path);
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("{last} (whole log: {})", log_path.display());
    }
    Ok(())
}

/// The bag-of-words baseline on the same splits and vocabulary.
fn baseline(config: &ExperimentConfig, data: &dataset::TextDataset) -> BaselineResult {
    let vocab = vocabulary(config, data);
    let test = data.test.as_ref().map(|t| vocab.encode_examples(t));
    bag_of_words(
        &vocab.encode_examples(&data.train),
        &vocab.encode_examples(&data.validation),
        test.as_deref(),
        vocab.len(),
        data.n_classes(),
        BaselineConfig::default(),
    )
}

/// Which heads matter in the run in `dir`: read from its `heads.json`, else measured on
/// `validation` and written there.
fn heads_of(
    dir: &Path,
    trained: &TrainedRun,
    validation: &[dataset::TextExample],
    config: &ExperimentConfig,
) -> Result<Option<HeadAnalysis>> {
    let path = dir.join(files::HEADS);
    if let Some(cached) = run_dir::read_text(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
    {
        return Ok(Some(cached));
    }
    let items: std::sync::Arc<[dataset::TextItem]> =
        trained.tokenizer.encode_examples(validation)?.into();
    let analysis = analyse_heads(
        &trained.model,
        &items,
        &config.batcher(),
        &trained.device,
        0,
    );
    if let Some(analysis) = &analysis {
        std::fs::write(&path, serde_json::to_string_pretty(analysis)?)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(analysis)
}

/// The summary of a finished run in `dir` trained with exactly `config`.
fn finished_with(dir: &Path, config: &ExperimentConfig) -> Option<Summary> {
    // Compared as configurations, not text: runs recorded in the flat layout of 0.1 count.
    let text = std::fs::read_to_string(dir.join(files::CONFIG)).ok()?;
    let same = ExperimentConfig::parse(&text).ok()?.0 == *config;
    let summary = run_dir::read_summary(dir).ok()?;
    (same && !summary.interrupted).then_some(summary)
}

/// Default results folder for a dataset: `experiments/results/<name>`.
pub fn default_out(config: &ExperimentConfig) -> PathBuf {
    PathBuf::from("experiments/results").join(config.dataset_name())
}
