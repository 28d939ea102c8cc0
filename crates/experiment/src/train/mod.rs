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
use dataset::{TextDataset, TextItem, WordVectors};

use crate::{
    backend,
    checkpoint::{forget_epochs_after, resume_point},
    config::{Backend, ExperimentConfig},
    data::{Tokenizer, encoder_dir, load_dataset, word_vectors},
    evaluate::{evaluate, macro_f1},
    model::{ClassifierConfig, Positions},
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
    let encoder = config
        .model
        .encoder
        .as_ref()
        .map(|name| encoder_dir(config, name))
        .transpose()?;
    let tokenizer = Tokenizer::new(config, &data, encoder.as_deref())?;
    let mut model_config = model_config(config, &tokenizer, data.n_classes(), encoder.as_deref())?;
    let vectors = match (&config.model.embeddings, &tokenizer) {
        (Some(name), Tokenizer::Words(vocab)) => {
            let vectors = word_vectors(config, name, vocab)?;
            if vectors.is_empty() {
                bail!(
                    "{name}: none of the vocabulary's {} words has a vector (another language, or cased vectors for lower-cased words?)",
                    vocab.len() - 2
                );
            }
            model_config.embedding_dim = Some(vectors.dim());
            Some(vectors)
        }
        _ => None,
    };
    let devices = backend::devices(config.backend, config.train.devices)?;
    let _lock = run_dir::claim(&options.out, options.overwrite)?;
    let out = options.out.as_path();

    tokenizer.save(out, encoder.as_deref())?;
    write(out, files::CONFIG, &config.to_toml())?;
    write(
        out,
        files::LABELS,
        &serde_json::to_string_pretty(&data.labels)?,
    )?;
    let run = Run {
        config,
        data: &data,
        tokenizer: &tokenizer,
        model_config,
        encoder: encoder.as_deref(),
        vectors: vectors.as_ref(),
    };
    fit(&run, devices, options, 0)
}

/// The classifier `config` trains on `tokenizer`'s ids: from scratch, or the pretrained encoder
/// in the folder `encoder`, whose `config.json` gives its shape.
pub(crate) fn model_config(
    config: &ExperimentConfig,
    tokenizer: &Tokenizer,
    n_classes: usize,
    encoder: Option<&Path>,
) -> Result<ClassifierConfig> {
    let model_config = config.model_config(tokenizer.len(), n_classes);
    let Some(dir) = encoder else {
        return Ok(model_config);
    };
    let path = dir.join("config.json");
    let bert = attention::BertConfig::from_hf_json(&dataset::read_text(&path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if tokenizer.len() > bert.vocab_size {
        bail!(
            "{}: the tokenizer has {} entries but the model's vocabulary {}; they are not one model's",
            dir.join(files::TOKENIZER).display(),
            tokenizer.len(),
            bert.vocab_size
        );
    }
    if config.data.max_len > bert.max_position_embeddings {
        bail!(
            "invalid max_len: {} tokens, but {} holds {} positions",
            config.data.max_len,
            path.display(),
            bert.max_position_embeddings
        );
    }
    let model_config = ClassifierConfig {
        vocab_size: bert.vocab_size,
        bert: Some(bert),
        ..model_config
    };
    model_config.validate()?;
    Ok(model_config)
}

/// `model` with the embedding rows of `vocab`'s words that `vectors` holds replaced by their
/// vectors, scaled so their components' standard deviation is `std` (the scale of the rows
/// drawn at random); says how many words it found.
fn start_from_vectors(
    model: crate::model::Classifier,
    vectors: &WordVectors,
    vocab: &dataset::Vocabulary,
    std: f64,
) -> crate::model::Classifier {
    let scale = (std / vectors.moments().1.max(f64::MIN_POSITIVE)) as f32;
    let scaled: Vec<Option<Vec<f32>>> = (0..vocab.len())
        .map(|id| {
            let word = vocab.token(id)?;
            let vector = vectors.get(word)?;
            Some(vector.iter().map(|v| v * scale).collect())
        })
        .collect();
    let (model, found) = model.with_word_vectors(|id| scaled[id].as_deref());
    let words = vocab.len() - 2;
    println!(
        "word vectors: {found} of {words} words ({:.1} %), {} wide, scaled by {scale:.3}",
        100.0 * found as f64 / words.max(1) as f64,
        vectors.dim()
    );
    model
}

/// The classifier of the run in `dir`: for a pretrained encoder, or word vectors, the shape it
/// saved in `model.json` (the encoder's folder or the vectors need not be there), else what
/// `config` builds.
pub(crate) fn run_model_config(
    dir: &Path,
    config: &ExperimentConfig,
    tokenizer: &Tokenizer,
    n_classes: usize,
) -> Result<ClassifierConfig> {
    if config.model.encoder.is_none() && config.model.embeddings.is_none() {
        return Ok(config.model_config(tokenizer.len(), n_classes));
    }
    let path = dir.join(files::MODEL_CONFIG);
    let saved: ClassifierConfig = serde_json::from_str(&run_dir::read_text(&path)?)
        .with_context(|| format!("{}: not a valid model configuration", path.display()))?;
    let shaped = match &config.model.encoder {
        Some(_) => saved.bert.is_some(),
        None => saved.embedding_dim.is_some(),
    };
    if !shaped || saved.options != config.model || saved.n_classes != n_classes {
        bail!(
            "{}: not the model {} describes; the folder mixes two runs",
            path.display(),
            files::CONFIG
        );
    }
    Ok(saved)
}

/// What a run trains: the data, its ids, the model, and where a pretrained encoder's weights are.
struct Run<'a> {
    config: &'a ExperimentConfig,
    data: &'a TextDataset,
    tokenizer: &'a Tokenizer,
    model_config: ClassifierConfig,
    /// The encoder's folder, for a new run of a pretrained encoder.
    encoder: Option<&'a Path>,
    /// The word vectors the embedding table starts from, for a new run with `embeddings`.
    vectors: Option<&'a WordVectors>,
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
    let tokenizer = Tokenizer::open(dir, &config)?;
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
    let model_config = run_model_config(dir, &config, &tokenizer, data.n_classes())?;
    let epoch = resume_point(dir, &model_config)?;
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
    let run = Run {
        config: &config,
        data: &data,
        tokenizer: &tokenizer,
        model_config,
        encoder: None,
        vectors: None,
    };
    fit(&run, devices, &options, epoch)
}

/// Trains from epoch `start` (0: from scratch; else the checkpoint of that epoch) on `devices`
/// (the first one holds the model and evaluates) and writes the artifacts.
fn fit(run: &Run, devices: Vec<Device>, options: &RunOptions, start: usize) -> Result<Summary> {
    let Run {
        config,
        data,
        tokenizer,
        ref model_config,
        encoder,
        vectors,
    } = *run;
    let out = options.out.as_path();
    let device = devices[0].clone();
    // A resumed run continues with fresh RNG streams rather than replaying epoch 1's.
    let seed = config.train.seed + start as u64;
    device.seed(seed);
    model_config
        .save(out.join(files::MODEL_CONFIG))
        .context("saving the model config")?;
    // Built on the autodiff device: burn 0.22 compares devices without their autodiff flag, so
    // the learner's fork onto `device.autodiff()` would leave a plain model untracked.
    let mut model = model_config.init(&device.clone().autodiff());
    if let (Some(dir), 0) = (encoder, start) {
        model = model.load_pretrained(dir)?;
    }
    if let (Some(vectors), Tokenizer::Words(vocab), 0) = (vectors, tokenizer, start) {
        model = start_from_vectors(model, vectors, vocab, config.model.embedding_std);
    }
    if config.model.freeze_encoder {
        model = model.freeze_encoder();
    } else if config.model.freeze_embeddings {
        model = model.freeze_embeddings();
    }
    let params = model.num_params();
    println!(
        "{}",
        describe(config, data, tokenizer, model_config, params)
    );

    // Shared by the loaders and the final evaluation, not copied for each.
    let train_items: Arc<[TextItem]> = tokenizer.encode_examples(&data.train)?.into();
    let valid_items: Arc<[TextItem]> = tokenizer.encode_examples(&data.validation)?.into();
    let test_items = data
        .test
        .as_ref()
        .map(|t| tokenizer.encode_examples(t))
        .transpose()?;
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
    let kept = keep::load_mean(out, &averaged, model_config, &device)?;
    let best = averaged[0];

    let batch_size = config.train.batch_size.max(64);
    let train = evaluate(&kept, train_items, &batcher, batch_size, &device);
    let valid = evaluate(&kept, valid_items, &batcher, batch_size, &device);
    let test = test_items.map(|t| evaluate(&kept, t, &batcher, batch_size, &device));
    let throughput = &launched.throughput;
    let shape = model_config.shape();
    let summary = Summary {
        dataset: data.name.clone(),
        backend: config.backend.to_string(),
        heads: shape.heads,
        d_model: shape.d_model,
        layers: shape.layers,
        pe: shape.positions != Positions::None,
        positions: Some(shape.positions),
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
        train_padding: Some(launched.padding),
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
    tokenizer: &Tokenizer,
    model_config: &ClassifierConfig,
    params: usize,
) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let shape = model_config.shape();
    let encoder = match &config.model.encoder {
        Some(name) => format!(
            "{name}{}, pooling {}, ",
            if config.model.freeze_encoder {
                " (frozen)"
            } else {
                ""
            },
            config.model.pooling
        ),
        None => String::new(),
    };
    let frozen = if config.model.freeze_embeddings {
        ", frozen"
    } else {
        ""
    };
    let vectors = match (&config.model.embeddings, model_config.embedding_dim) {
        (Some(name), Some(dim)) if dim != shape.d_model => {
            format!("{name} vectors ({dim} wide, projected{frozen}), ")
        }
        (Some(name), _) if !frozen.is_empty() => format!("{name} vectors (frozen), "),
        (Some(name), _) => format!("{name} vectors, "),
        _ => String::new(),
    };
    format!(
        "{}: {} train / {} validation{} examples, {} classes, vocabulary {}; model {encoder}{vectors}{} parameters ({} layer{}, {} head{}, d_model {}, positions {}) on {}",
        data.name,
        data.train.len(),
        data.validation.len(),
        data.test
            .as_ref()
            .map_or_else(String::new, |t| format!(" / {} test", t.len())),
        data.n_classes(),
        tokenizer.len(),
        params,
        shape.layers,
        plural(shape.layers),
        shape.heads,
        plural(shape.heads),
        shape.d_model,
        shape.positions,
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
