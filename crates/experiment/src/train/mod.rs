//! One training run, from configuration to the artifacts it leaves in its output folder:
//! `train` and `resume`, and `fit`, which they share: the learner (`learner`), the model kept
//! (`keep`), its evaluation and the run summary.

mod fault;
mod keep;
mod learner;
pub mod render;
mod step;
pub mod step_metrics;
pub mod workers;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use burn::{
    prelude::*,
    train::{Interrupter, renderer::MetricsRenderer},
};
use dataset::{TextDataset, TextItem, Vocabulary};

use crate::{
    backend,
    checkpoint::{forget_epochs_after, resume_point},
    config::{Backend, ExperimentConfig},
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
    println!("{}", describe(config, data, vocab, params));

    // Shared by the loaders and the final evaluation, not copied for each.
    let train_items: Arc<[TextItem]> = vocab.encode_examples(&data.train).into();
    let valid_items: Arc<[TextItem]> = vocab.encode_examples(&data.validation).into();
    let batcher = config.batcher();
    let launched = learner::launch(
        &learner::Setup {
            config,
            out,
            devices: &devices,
            start,
            seed,
            dashboard: options.dashboard,
            train_items: train_items.clone(),
            valid_items: valid_items.clone(),
            batcher: batcher.clone(),
        },
        model,
    )?;

    let epochs = epoch_metrics(out)?;
    let averaged = keep::choose(
        out,
        &epochs,
        config.train.average,
        launched.diverged.as_deref(),
    )?;
    write(
        out,
        files::METRICS,
        &epochs
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect::<String>(),
    )?;
    let kept = keep::load_mean(out, &averaged, &model_config, &device)?;
    let best = averaged[0];

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
    let throughput = &launched.throughput;
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
        best_epoch: best,
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
        seconds: launched.started.elapsed().as_secs_f64(),
        interrupted: launched.interrupted,
    };
    write(
        out,
        files::SUMMARY,
        &serde_json::to_string_pretty(&summary)?,
    )?;
    if let Some(what) = launched.diverged {
        bail!(
            "{what}; training stopped and kept epoch {best}'s model ({}; try a lower --lr)",
            out.join(files::MODEL).display()
        );
    }
    Ok(summary)
}

/// The run's opening line: the data, the model and the backend.
fn describe(
    config: &ExperimentConfig,
    data: &TextDataset,
    vocab: &Vocabulary,
    params: usize,
) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
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
        plural(config.model.layers),
        config.model.heads,
        plural(config.model.heads),
        config.model.d_model,
        config.model.positions,
        config.backend,
    )
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
