//! The learner: burn-train's `SupervisedTraining` with this lab's loaders, metrics,
//! checkpointing, early stopping, devices and renderer, launched from a given epoch.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Result, bail};
use burn::{
    optim::lr_scheduler::{
        LrSchedulerConfig, cosine::CosineAnnealingLrSchedulerConfig,
        linear::LinearLrSchedulerConfig, module_lr_scheduler::ModuleLrScheduler,
        sequential::SequentialLrSchedulerConfig,
    },
    prelude::*,
    train::{
        ExecutionStrategy, Interrupter, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim,
        StoppingCondition, SupervisedTraining,
        checkpoint::{ComposedCheckpointingStrategy, KeepLastNCheckpoints},
        metric::{
            AccuracyMetric, IterationSpeedMetric, LearningRateMetric, LossMetric,
            store::{Aggregate, Direction, Split},
        },
    },
};
use dataset::{Batching, TextBatcher, TextItem, TextLoader, batch_count};

use super::{
    dashboard,
    render::{LabRenderer, Throughput, macro_f1},
    step_metrics::{StepAccuracy, StepLoss},
    workers,
};
use crate::{
    checkpoint::KeepBest,
    config::{Backend, ExperimentConfig, Schedule},
    model::Classifier,
};

/// What the learner needs beyond the model.
pub(super) struct Setup<'a> {
    pub config: &'a ExperimentConfig,
    /// The run folder: burn-train's checkpoints, logs and metric files go here.
    pub out: &'a Path,
    /// The first one holds the model; all of them train data-parallel.
    pub devices: &'a [Device],
    /// The epoch whose checkpoint training continues from (0: from scratch).
    pub start: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// Draw burn's dashboard (else the compact log).
    pub dashboard: bool,
    pub train_items: Arc<[TextItem]>,
    pub valid_items: Arc<[TextItem]>,
    pub batcher: TextBatcher,
}

/// What a launch leaves besides the checkpoints and logs in the run folder.
pub(super) struct Launched {
    /// Stopped from the dashboard or by the NaN guard (else it ran its course).
    pub interrupted: bool,
    /// What happened, when a training loss was not finite.
    pub diverged: Option<String>,
    pub throughput: Throughput,
    /// The share of the training batches' token slots that padding fills (one epoch's draw).
    pub padding: f64,
    /// When training began, after the learner's set-up: the run's `seconds` count from here.
    pub started: Instant,
}

/// The learning rate over `iterations` steps: `warmup`'s share rising linearly to `lr` (from
/// `lr / steps`, as burn's schedulers start above 0), then the schedule over the rest.
fn schedule(config: &ExperimentConfig, iterations: usize) -> Result<ModuleLrScheduler, String> {
    let lr = config.train.lr;
    let warmup = (config.train.warmup * iterations as f64).round() as usize;
    let rest = iterations.saturating_sub(warmup).max(1);
    let main = match config.train.schedule {
        Schedule::Constant => LrSchedulerConfig::Constant(lr),
        Schedule::Cosine => {
            LrSchedulerConfig::Cosine(CosineAnnealingLrSchedulerConfig::new(lr, rest))
        }
        Schedule::Linear => LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(lr, 0.0, rest)),
    };
    let (schedulers, milestones) = if warmup == 0 {
        (vec![main], vec![])
    } else {
        let rise = LinearLrSchedulerConfig::new(lr / warmup as f64, lr, warmup);
        (vec![LrSchedulerConfig::Linear(rise), main], vec![warmup])
    };
    SequentialLrSchedulerConfig::new(schedulers, milestones).init()
}

/// Trains `model` from `setup.start` to the configured epochs (or early stopping).
pub(super) fn launch(setup: &Setup, model: Classifier) -> Result<Launched> {
    let Setup {
        config,
        out,
        devices,
        start,
        ..
    } = *setup;
    let device = devices[0].clone();
    // With several devices each takes its share of every step's batch (burn-train gives each
    // device its own loader over a slice of the split and sums their gradients).
    let device_batch = config.train.batch_size.div_ceil(devices.len());
    let train_loader = TextLoader::new(
        setup.train_items.clone(),
        setup.batcher.clone(),
        device_batch,
        config.train.batching,
        device.clone().autodiff(),
    )
    .shuffle(setup.seed);
    let padding = train_loader.padding_share();
    // Validation in length order: its loss and accuracy do not depend on the grouping.
    let valid_loader = TextLoader::new(
        setup.valid_items.clone(),
        setup.batcher.clone(),
        config.train.batch_size,
        Batching::Bucket,
        device.clone(),
    );

    // burn's AdamW, in one pass per parameter on flex (BENCHMARKS.md).
    let optimizer = attention::fused::FusedAdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .init();
    let iterations = config.train.epochs
        * batch_count(
            setup.train_items.len().div_ceil(devices.len()),
            device_batch,
            config.train.batching,
        );
    let scheduler = schedule(config, iterations)
        .map_err(|e| anyhow::anyhow!("invalid learning-rate schedule: {e}"))?;

    let interrupter = Interrupter::new();
    let throughput = Arc::new(Mutex::new(Throughput::default()));
    let renderer = LabRenderer::new(
        dashboard(setup.dashboard, &interrupter),
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
        .metric_valid_numeric(macro_f1())
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
    // The training thread (each worker's) runs its operations as the first of its own rayon
    // threads instead of handing them to the global pool (workers.rs).
    if matches!(config.backend, Backend::Flex | Backend::Ndarray) {
        workers::set_threads_per_worker(workers::threads_per_worker(devices.len()));
    }
    if devices.len() > 1 {
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
    let throughput = throughput.lock().unwrap().clone();
    Ok(Launched {
        interrupted,
        diverged,
        throughput,
        padding,
        started,
    })
}
