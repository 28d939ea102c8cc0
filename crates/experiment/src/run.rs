//! One training run, from configuration to the artifacts it leaves in its output folder.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use burn::{
    data::dataloader::DataLoader,
    optim::{AdamWConfig, lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig},
    prelude::*,
    store::ModuleRecord,
    train::{
        ExecutionStrategy, Interrupter, Learner, LearnerSummary, MetricEarlyStoppingStrategy,
        MultiDeviceOptim, StoppingCondition, SupervisedTraining,
        metric::{
            AccuracyMetric, IterationSpeedMetric, LearningRateMetric, LossMetric,
            store::{Aggregate, Direction, Split},
        },
        renderer::MetricsRenderer,
    },
};
use dataset::{Batching, TextBatcher, TextDataset, TextItem, TextLoader, Vocabulary, batch_count};
use serde::{Deserialize, Serialize};

use crate::{
    backend,
    config::{Backend, ExperimentConfig, Schedule},
    data,
    model::Classifier,
    render::{LabRenderer, Throughput},
    run_dir::{self, RunLock, forget_epochs_after, write},
    step_metrics::{StepAccuracy, StepLoss},
};
pub use crate::{
    data::load_dataset,
    run_dir::{files, read_labels},
};

/// How to run, beyond the experiment's configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Draw burn's terminal dashboard (else the compact log).
    pub dashboard: bool,
    /// Replace an existing output folder.
    pub overwrite: bool,
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
    pub pe: bool,
    pub seed: u64,
    pub params: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub valid_loss: f64,
    pub valid_acc: f64,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    pub train_samples_per_s: f64,
    /// Training samples/s of each epoch this process trained (the first one includes a GPU's
    /// kernel compilation and autotuning).
    #[serde(default)]
    pub epoch_samples_per_s: Vec<f64>,
    pub seconds: f64,
    pub interrupted: bool,
}

/// Trains one model and writes its artifacts; returns the summary.
pub fn train(config: &ExperimentConfig, options: &RunOptions) -> Result<Summary> {
    config.validate()?;
    let data = load_dataset(config)?;
    // Everything that can fail on user input fails before the output folder is touched.
    let devices = backend::devices(config.backend, config.devices)?;
    let _lock = run_dir::claim(&options.out, options.overwrite)?;
    let out = options.out.as_path();

    let vocab = data::vocabulary(config, &data);
    vocab.save(&out.join(files::VOCAB))?;
    write(out, files::CONFIG, &config.to_toml())?;
    write(
        out,
        files::LABELS,
        &serde_json::to_string_pretty(&data.labels)?,
    )?;
    fit(config, &data, &vocab, devices, options, 0)
}

/// Continues an interrupted run in `dir` from its last complete checkpoint, with the run's own
/// `config.toml` and vocabulary (`backend` may differ). The epoch that was interrupted is
/// trained again; burn's data-loader and dropout RNG states are not saved, so they are
/// re-seeded from the seed and the epoch instead.
pub fn resume(dir: &Path, backend: Option<Backend>, dashboard: bool) -> Result<Summary> {
    let config_path = dir.join(files::CONFIG);
    if !config_path.exists() {
        bail!(
            "{}: not a run folder (no {}); nothing to resume",
            dir.display(),
            files::CONFIG
        );
    }
    let mut config = ExperimentConfig::load(&config_path)?;
    if let Some(backend) = backend {
        config.backend = backend;
    }
    config.validate()?;
    // A run stopped from the dashboard or by the NaN guard wrote a summary marked
    // `interrupted`; it is resumed like a killed one. Only a run that ran its course is not.
    let summary_path = dir.join(files::SUMMARY);
    if summary_path.exists() {
        let stopped = std::fs::read_to_string(&summary_path)
            .ok()
            .and_then(|text| serde_json::from_str::<Summary>(&text).ok())
            .is_some_and(|summary| summary.interrupted);
        if !stopped {
            bail!(
                "{}: the run already finished ({} is there); nothing to resume",
                dir.display(),
                files::SUMMARY
            );
        }
    }
    let data = load_dataset(&config)?;
    let vocab = Vocabulary::load(&dir.join(files::VOCAB))?;
    let labels = read_labels(dir)?;
    if labels != data.labels {
        bail!(
            "{}: the dataset's labels {:?} differ from the run's {:?}",
            config.dataset,
            data.labels,
            labels
        );
    }
    let devices = backend::devices(config.backend, config.devices)?;
    let _lock = RunLock::acquire(dir)?;
    let epoch = resume_point(dir, &config, vocab.len(), data.n_classes())?;
    forget_epochs_after(dir, epoch)?;
    println!(
        "resuming {} after epoch {epoch} of {}",
        dir.display(),
        config.epochs
    );
    let options = RunOptions {
        out: dir.to_path_buf(),
        dashboard,
        overwrite: false,
    };
    fit(&config, &data, &vocab, devices, &options, epoch)
}

/// Trains from epoch `start` (0: from scratch; else the checkpoint of that epoch) on `devices`
/// (the first one holds the model and evaluates) and writes the artifacts.
fn fit(
    config: &ExperimentConfig,
    data: &TextDataset,
    vocab: &Vocabulary,
    devices: Vec<Device>,
    options: &RunOptions,
    start: usize,
) -> Result<Summary> {
    let out = options.out.as_path();
    let device = devices[0].clone();
    // A resumed run continues with fresh RNG streams rather than replaying epoch 1's.
    let seed = config.seed + start as u64;
    device.seed(seed);
    let model_config = config.model_config(vocab.len(), data.n_classes());
    model_config
        .save(out.join(files::MODEL_CONFIG))
        .context("saving the model config")?;
    // Built on the autodiff device: burn 0.22 compares devices without their autodiff flag, so
    // the learner's fork onto `device.autodiff()` would leave a plain model untracked.
    let model = model_config.init(&device.clone().autodiff());
    let params = model.num_params();
    println!(
        "{}: {} train / {} validation{} examples, {} classes, vocabulary {}; model {} parameters ({} head{}, d_model {}, positional encoding {}) on {}",
        data.name,
        data.train.len(),
        data.validation.len(),
        data.test
            .as_ref()
            .map_or_else(String::new, |t| format!(" / {} test", t.len())),
        data.n_classes(),
        vocab.len(),
        params,
        config.heads,
        if config.heads == 1 { "" } else { "s" },
        config.d_model,
        if config.pe { "on" } else { "off" },
        config.backend,
    );

    // Shared by the loaders and the final evaluation, not copied for each.
    let train_items: Arc<[TextItem]> = vocab.encode_examples(&data.train).into();
    let valid_items: Arc<[TextItem]> = vocab.encode_examples(&data.validation).into();
    let batcher = config.batcher();
    // With several devices each takes its share of every step's batch (burn-train gives each
    // device its own loader over a slice of the split and sums their gradients).
    let device_batch = config.batch_size.div_ceil(devices.len());
    let train_loader = TextLoader::new(
        train_items.clone(),
        batcher.clone(),
        device_batch,
        config.batching,
        device.clone().autodiff(),
    )
    .shuffle(seed);
    // Validation in length order: its loss and accuracy do not depend on the grouping.
    let valid_loader = TextLoader::new(
        valid_items.clone(),
        batcher.clone(),
        config.batch_size,
        Batching::Bucket,
        device.clone(),
    );

    let optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let iterations = config.epochs
        * batch_count(
            data.train.len().div_ceil(devices.len()),
            device_batch,
            config.batching,
        );
    let scheduler = match config.schedule {
        Schedule::Constant => config.lr.into(),
        Schedule::Cosine => CosineAnnealingLrSchedulerConfig::new(config.lr, iterations)
            .init()
            .map_err(|e| anyhow::anyhow!("invalid learning-rate schedule: {e}"))?,
    };

    let interrupter = Interrupter::new();
    let throughput = Arc::new(Mutex::new(Throughput::default()));
    let renderer = LabRenderer::new(
        dashboard(options.dashboard, &interrupter),
        interrupter.clone(),
        throughput.clone(),
    );
    let divergence = renderer.divergence();
    let mut training = SupervisedTraining::new(out, Arc::new(train_loader), Arc::new(valid_loader))
        .metric_train_numeric(StepAccuracy::default())
        .metric_train_numeric(StepLoss::default())
        .metric_valid_numeric(AccuracyMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(IterationSpeedMetric::new())
        .with_default_checkpointers()
        .num_epochs(config.epochs)
        .with_interrupter(interrupter)
        .renderer(Box::new(renderer));
    if config.patience > 0 {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: config.patience,
            },
        ));
    }

    if start > 0 {
        training = training.checkpoint(start);
    }
    if devices.len() > 1 {
        if matches!(config.backend, Backend::Flex | Backend::Ndarray) {
            crate::workers::set_threads_per_worker(crate::workers::threads_per_worker(
                devices.len(),
            ));
        }
        let devices = devices.iter().map(|d| d.clone().autodiff()).collect();
        training = training.with_training_strategy(
            ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice).into(),
        );
    }

    let started = Instant::now();
    let mut interrupted = false;
    // A run killed after its last epoch's checkpoint has nothing left to train.
    if start < config.epochs {
        let result = training.launch(Learner::new(model, optimizer, scheduler));
        if let Some(error) = result.error {
            bail!("training failed: {error}");
        }
        interrupted = result.interrupted.is_some();
    }
    let diverged = divergence.lock().unwrap().clone();

    let epochs = epoch_metrics(out)?;
    // The kept model: the lowest validation loss among the epochs whose checkpoint is on disk
    // (burn keeps the best one and the last two).
    let checkpoint = |epoch: usize| out.join("checkpoint").join(format!("model-{epoch}.bpk"));
    let best = epochs
        .iter()
        .filter(|e| checkpoint(e.epoch).exists() && e.valid_loss.is_finite())
        .min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))
        .cloned();
    let Some(best) = best else {
        match &diverged {
            Some(what) => {
                bail!("{what}, before any epoch finished; nothing to keep (try a lower --lr)")
            }
            None => bail!("no epoch finished, so there is no model to keep"),
        }
    };
    write(
        out,
        files::METRICS,
        &epochs
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect::<String>(),
    )?;

    let path = checkpoint(best.epoch);
    let record =
        ModuleRecord::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let kept = model_config
        .load(record, &device)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    kept.clone()
        .into_record()
        .save(out.join(files::MODEL))
        .map_err(|e| anyhow::anyhow!("saving the model: {e}"))?;

    let batch_size = config.batch_size.max(64);
    let (train_loss, train_acc) = evaluate(&kept, train_items, &batcher, batch_size, &device);
    let (valid_loss, valid_acc) = evaluate(&kept, valid_items, &batcher, batch_size, &device);
    let test = data.test.as_ref().map(|t| {
        evaluate(
            &kept,
            vocab.encode_examples(t),
            &batcher,
            batch_size,
            &device,
        )
    });
    let throughput = throughput.lock().unwrap().clone();
    let summary = Summary {
        dataset: data.name.clone(),
        backend: config.backend.to_string(),
        heads: config.heads,
        d_model: config.d_model,
        pe: config.pe,
        seed: config.seed,
        params,
        epochs_run: epochs.len(),
        best_epoch: best.epoch,
        train_loss,
        train_acc,
        valid_loss,
        valid_acc,
        test_loss: test.map(|t| t.0),
        test_acc: test.map(|t| t.1),
        train_samples_per_s: throughput.items as f64 / throughput.seconds.max(1e-9),
        epoch_samples_per_s: throughput.per_epoch.iter().map(|v| v.round()).collect(),
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
    };
    write(
        out,
        files::SUMMARY,
        &serde_json::to_string_pretty(&summary)?,
    )?;
    if let Some(what) = diverged {
        bail!(
            "{what}; training stopped and kept epoch {}'s model ({}; try a lower --lr)",
            best.epoch,
            out.join(files::MODEL).display()
        );
    }
    Ok(summary)
}

/// The last epoch whose model, optimiser and scheduler checkpoints are all on disk and load; 0
/// when there is none. A damaged newest checkpoint is an error rather than a silent step back,
/// so the user decides whether to delete it and lose that epoch.
fn resume_point(
    dir: &Path,
    config: &ExperimentConfig,
    vocab_size: usize,
    n_classes: usize,
) -> Result<usize> {
    let folder = dir.join("checkpoint");
    let mut epochs: Vec<usize> = match std::fs::read_dir(&folder) {
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
    let Some(&epoch) = epochs.last() else {
        return Ok(0);
    };
    let path = |kind: &str| folder.join(format!("{kind}-{epoch}.bpk"));
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

/// burn's dashboard, when asked for and compiled in.
#[cfg(feature = "tui")]
fn dashboard(wanted: bool, interrupter: &Interrupter) -> Option<Box<dyn MetricsRenderer>> {
    wanted.then(|| {
        Box::new(burn::train::renderer::tui::TuiMetricsRendererWrapper::new(
            interrupter.clone(),
            None,
        )) as Box<dyn MetricsRenderer>
    })
}

#[cfg(not(feature = "tui"))]
fn dashboard(_wanted: bool, _interrupter: &Interrupter) -> Option<Box<dyn MetricsRenderer>> {
    None
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
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not an epoch record", path.display(), i + 1))
        })
        .collect()
}

/// Mean loss and accuracy of `model` over `items` (no dropout: a plain device has no tape),
/// in batches of similar length (the result does not depend on the grouping; the time does).
pub fn evaluate(
    model: &Classifier,
    items: impl Into<Arc<[TextItem]>>,
    batcher: &TextBatcher,
    batch_size: usize,
    device: &Device,
) -> (f64, f64) {
    let loader = TextLoader::new(
        items,
        batcher.clone(),
        batch_size,
        Batching::Bucket,
        device.clone(),
    );
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for batch in loader.iter() {
        let batch = batch.expect("in-memory batches cannot fail");
        let n = batch.labels.dims()[0];
        let out = model.classify(batch);
        loss_sum += out.loss.into_scalar::<f32>() as f64 * n as f64;
        let predicted = out.output.argmax(1).reshape([n]);
        correct += predicted
            .equal(out.targets)
            .int()
            .sum()
            .into_scalar::<i64>() as usize;
    }
    let n = loader.num_items().max(1) as f64;
    (loss_sum / n, correct as f64 / n)
}
