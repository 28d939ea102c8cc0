//! One training run, from configuration to the artifacts it leaves in its output folder:
//! `train` and `resume`, and the learner set-up they share.

mod fault;
pub mod render;
mod step;
pub mod step_metrics;
pub mod workers;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use burn::{
    optim::{AdamWConfig, lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig},
    prelude::*,
    store::ModuleRecord,
    train::{
        ExecutionStrategy, Interrupter, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim,
        StoppingCondition, SupervisedTraining,
        checkpoint::{ComposedCheckpointingStrategy, KeepLastNCheckpoints},
        metric::{
            AccuracyMetric, ClassReduction, FBetaScoreMetric, IterationSpeedMetric,
            LearningRateMetric, LossMetric,
            store::{Aggregate, Direction, Split},
        },
        renderer::MetricsRenderer,
    },
};
use dataset::{Batching, TextDataset, TextItem, TextLoader, Vocabulary, batch_count};

use self::{
    render::{LabRenderer, Throughput},
    step_metrics::{StepAccuracy, StepLoss},
};
use crate::{
    backend,
    checkpoint::{self, KeepBest, forget_epochs_after, resume_point},
    config::{Backend, ExperimentConfig, Schedule},
    data::{self, load_dataset},
    evaluate::{evaluate, macro_f1},
    model::Positions,
    run_dir::{self, RunLock, Summary, epoch_metrics, files, read_labels, write},
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

/// Trains one model and writes its artifacts; returns the summary.
pub fn train(config: &ExperimentConfig, options: &RunOptions) -> Result<Summary> {
    config.validate()?;
    let data = load_dataset(config)?;
    // Everything that can fail on user input fails before the output folder is touched.
    let devices = backend::devices(config.backend, config.train.devices)?;
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
    // Run folders recorded in the flat layout of 0.1 resume without a note.
    let mut config = ExperimentConfig::read(&config_path)?.0;
    if let Some(backend) = backend {
        config.backend = backend;
    }
    config.validate()?;
    // A run stopped from the dashboard or by the NaN guard wrote a summary marked
    // `interrupted`; it is resumed like a killed one. Only a run that ran its course is not.
    if dir.join(files::SUMMARY).exists() {
        let stopped = run_dir::read_summary(dir).is_ok_and(|summary| summary.interrupted);
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
            config.data.dataset,
            data.labels,
            labels
        );
    }
    let devices = backend::devices(config.backend, config.train.devices)?;
    let _lock = RunLock::acquire(dir)?;
    let epoch = resume_point(dir, &config, vocab.len(), data.n_classes())?;
    forget_epochs_after(dir, epoch)?;
    println!(
        "resuming {} after epoch {epoch} of {}",
        dir.display(),
        config.train.epochs
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
    let seed = config.train.seed + start as u64;
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
        "{}: {} train / {} validation{} examples, {} classes, vocabulary {}; model {} parameters ({} layer{}, {} head{}, d_model {}, positions {}) on {}",
        data.name,
        data.train.len(),
        data.validation.len(),
        data.test
            .as_ref()
            .map_or_else(String::new, |t| format!(" / {} test", t.len())),
        data.n_classes(),
        vocab.len(),
        params,
        config.model.layers,
        if config.model.layers == 1 { "" } else { "s" },
        config.model.heads,
        if config.model.heads == 1 { "" } else { "s" },
        config.model.d_model,
        config.model.positions,
        config.backend,
    );

    // Shared by the loaders and the final evaluation, not copied for each.
    let train_items: Arc<[TextItem]> = vocab.encode_examples(&data.train).into();
    let valid_items: Arc<[TextItem]> = vocab.encode_examples(&data.validation).into();
    let batcher = config.batcher();
    // With several devices each takes its share of every step's batch (burn-train gives each
    // device its own loader over a slice of the split and sums their gradients).
    let device_batch = config.train.batch_size.div_ceil(devices.len());
    let train_loader = TextLoader::new(
        train_items.clone(),
        batcher.clone(),
        device_batch,
        config.train.batching,
        device.clone().autodiff(),
    )
    .shuffle(seed);
    // Validation in length order: its loss and accuracy do not depend on the grouping.
    let valid_loader = TextLoader::new(
        valid_items.clone(),
        batcher.clone(),
        config.train.batch_size,
        Batching::Bucket,
        device.clone(),
    );

    let optimizer = AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .init();
    let iterations = config.train.epochs
        * batch_count(
            data.train.len().div_ceil(devices.len()),
            device_batch,
            config.train.batching,
        );
    let scheduler = match config.train.schedule {
        Schedule::Constant => config.train.lr.into(),
        Schedule::Cosine => CosineAnnealingLrSchedulerConfig::new(config.train.lr, iterations)
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
        // Macro-F1 over the epoch's validation split: with more classes than two, or
        // imbalanced ones, accuracy alone hides the small classes.
        .metric_valid_numeric(FBetaScoreMetric::multiclass(1.0, 1, ClassReduction::Macro))
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(IterationSpeedMetric::new())
        .with_default_checkpointers()
        .with_checkpointing_strategy(
            ComposedCheckpointingStrategy::builder()
                .add(KeepLastNCheckpoints::new(2))
                .add(KeepBest::new(config.train.average))
                .build(),
        )
        .num_epochs(config.train.epochs)
        .with_interrupter(interrupter)
        .renderer(Box::new(renderer));
    if config.train.patience > 0 {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: config.train.patience,
            },
        ));
    }

    if start > 0 {
        training = training.checkpoint(start);
    }
    if devices.len() > 1 {
        if matches!(config.backend, Backend::Flex | Backend::Ndarray) {
            workers::set_threads_per_worker(workers::threads_per_worker(devices.len()));
        }
        let devices = devices.iter().map(|d| d.clone().autodiff()).collect();
        training = training.with_training_strategy(
            ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice).into(),
        );
    }

    let started = Instant::now();
    let mut interrupted = false;
    // A run killed after its last epoch's checkpoint has nothing left to train.
    if start < config.train.epochs {
        let result = training.launch(Learner::new(model, optimizer, scheduler));
        if let Some(error) = result.error {
            bail!("training failed: {error}");
        }
        interrupted = result.interrupted.is_some();
    }
    let diverged = divergence.lock().unwrap().clone();

    let epochs = epoch_metrics(out)?;
    // The kept model: the lowest validation loss among the epochs whose checkpoint is on disk
    // (the `average` best ones and the last two), or the mean of the `average` lowest.
    let checkpoint = |epoch: usize| checkpoint::path(out, "model", epoch);
    let on_disk: Vec<(usize, f64)> = epochs
        .iter()
        .filter(|e| checkpoint(e.epoch).exists() && e.valid_loss.is_finite())
        .map(|e| (e.epoch, e.valid_loss))
        .collect();
    let averaged = checkpoint::lowest(&on_disk, config.train.average);
    let best = averaged
        .first()
        .and_then(|&epoch| epochs.iter().find(|e| e.epoch == epoch))
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

    let models = averaged
        .iter()
        .map(|&epoch| {
            let path = checkpoint(epoch);
            let record = ModuleRecord::load(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            model_config
                .load(record, &device)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let kept = checkpoint::average(models).expect("at least the best epoch");
    kept.clone()
        .into_record()
        .save(out.join(files::MODEL))
        .map_err(|e| anyhow::anyhow!("saving the model: {e}"))?;

    let batch_size = config.train.batch_size.max(64);
    let train = evaluate(&kept, train_items, &batcher, batch_size, &device);
    let valid = evaluate(&kept, valid_items, &batcher, batch_size, &device);
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
        heads: config.model.heads,
        d_model: config.model.d_model,
        layers: config.model.layers,
        pe: config.model.positions != Positions::None,
        positions: Some(config.model.positions),
        seed: config.train.seed,
        params,
        epochs_run: epochs.len(),
        best_epoch: best.epoch,
        averaged_epochs: if averaged.len() > 1 {
            averaged.clone()
        } else {
            Vec::new()
        },
        train_loss: train.loss,
        train_acc: train.accuracy,
        valid_loss: valid.loss,
        valid_acc: valid.accuracy,
        test_loss: test.as_ref().map(|t| t.loss),
        test_acc: test.as_ref().map(|t| t.accuracy),
        valid_macro_f1: Some(macro_f1(&valid.confusion)),
        test_macro_f1: test.as_ref().map(|t| macro_f1(&t.confusion)),
        valid_confusion: Some(valid.confusion),
        test_confusion: test.map(|t| t.confusion),
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
