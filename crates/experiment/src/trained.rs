//! A finished run loaded back from its folder: configuration, vocabulary, labels and model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::{prelude::*, store::ModuleRecord, tensor::activation::softmax};

use crate::{
    config::ExperimentConfig,
    data::{TextEncoder, Tokenizer},
    model::{Classifier, ClassifierConfig},
    run_dir::files,
    train::run_model_config,
};

/// Everything needed to use a trained model.
pub struct TrainedRun {
    /// The run folder.
    pub dir: PathBuf,
    /// The configuration it was trained with.
    pub config: ExperimentConfig,
    /// The model's configuration.
    pub model_config: ClassifierConfig,
    /// How it turns text into ids: the training split's vocabulary, or its encoder's tokenizer.
    pub tokenizer: Tokenizer,
    /// Class names.
    pub labels: Vec<String>,
    /// The kept model, on `device`.
    pub model: Classifier,
    /// Where the model lives.
    pub device: Device,
}

/// JSON numbers compare by value (`0.5` from a file equals `0.5` computed), the rest as is.
/// A model.json's keys on one level: the hyperparameters nested under `options` since 0.2 sit
/// beside the sizes, as they did in the model.json files of earlier runs.
fn flat_keys(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(mut map) = value else {
        return serde_json::Map::new();
    };
    if let Some(serde_json::Value::Object(options)) = map.remove("options") {
        map.extend(options);
    }
    // 0.1's only position switch.
    if let Some(serde_json::Value::Bool(pe)) = map.remove("pe") {
        let positions = crate::model::Positions::from_pe(pe).to_string();
        map.insert("positions".into(), positions.into());
    }
    map
}

fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// One text's prediction and attention.
pub struct Prediction {
    /// The tokens the model saw (after truncation).
    pub tokens: Vec<String>,
    /// Class probabilities.
    pub probabilities: Vec<f32>,
    /// `[heads][query][key]` attention weights.
    pub weights: Vec<Vec<Vec<f32>>>,
}

impl Prediction {
    /// The most probable class.
    pub fn label(&self) -> usize {
        (0..self.probabilities.len())
            .max_by(|&a, &b| self.probabilities[a].total_cmp(&self.probabilities[b]))
            .unwrap_or(0)
    }

    /// Attention each token receives from head `h`, averaged over the queries: `[tokens]`.
    pub fn received(&self, h: usize) -> Vec<f32> {
        let rows = &self.weights[h];
        let n = rows.len().max(1) as f32;
        (0..rows.first().map_or(0, Vec::len))
            .map(|k| rows.iter().map(|r| r[k]).sum::<f32>() / n)
            .collect()
    }
}

impl TrainedRun {
    /// Loads the run in `dir` onto `device`.
    pub fn open(dir: &Path, device: Device) -> Result<Self> {
        if !dir.join(files::MODEL).exists() {
            bail!(
                "{}: not a finished run folder (no {}); train one with `experiment train --out DIR`",
                dir.display(),
                files::MODEL
            );
        }
        let read = |name: &str| -> Result<String> { crate::run_dir::read_text(&dir.join(name)) };
        let (config, _) = ExperimentConfig::read(&dir.join(files::CONFIG))
            .context("not a valid run configuration")?;
        let tokenizer = Tokenizer::open(dir, &config)?;
        let labels = crate::run_dir::read_labels(dir)?;
        // The model is rebuilt from config.toml (whose keys all have defaults, so older runs
        // still load); model.json only serves to check that vocabulary and labels belong to it.
        let model_path = dir.join(files::MODEL_CONFIG);
        let saved = flat_keys(
            serde_json::from_str(&read(files::MODEL_CONFIG)?).with_context(|| {
                format!("{}: not a valid model configuration", model_path.display())
            })?,
        );
        let size = |key: &str| {
            saved
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
        };
        let built_for = |key: &str| {
            size(key).map_or_else(|| "an unknown number".to_string(), |n| n.to_string())
        };
        // A pretrained encoder's table may have more rows than its tokenizer has entries.
        let vocab_fits = match &tokenizer {
            Tokenizer::Words(_) => size("vocab_size") == Some(tokenizer.len()),
            Tokenizer::Subwords(_) => size("vocab_size").is_some_and(|n| n >= tokenizer.len()),
        };
        if !vocab_fits {
            let file = match &tokenizer {
                Tokenizer::Words(_) => files::VOCAB,
                Tokenizer::Subwords(_) => files::TOKENIZER,
            };
            bail!(
                "{}: the vocabulary has {} entries but the model was built for {}; the folder mixes two runs",
                dir.join(file).display(),
                tokenizer.len(),
                built_for("vocab_size")
            );
        }
        if size("n_classes") != Some(labels.len()) {
            bail!(
                "{}: {} class names but the model was built for {} classes; the folder mixes two runs",
                dir.join(files::LABELS).display(),
                labels.len(),
                built_for("n_classes")
            );
        }
        let model_config = run_model_config(dir, &config, &tokenizer, labels.len())?;
        // A hyperparameter edited in config.toml after training (say, heads: the weights have
        // the same shapes for any head count) would load silently into the wrong model.
        for (key, value) in flat_keys(serde_json::to_value(&model_config)?) {
            if let Some(was) = saved.get(&key).filter(|was| !same_value(was, &value)) {
                bail!(
                    "{}: {key} = {value} but the model was trained with {key} = {was} ({}); the folder mixes two runs",
                    dir.join(files::CONFIG).display(),
                    files::MODEL_CONFIG
                );
            }
        }
        let path = dir.join(files::MODEL);
        let record = ModuleRecord::load(&path)
            .map_err(|e| anyhow::anyhow!("{}: cannot load the model: {e}", path.display()))?;
        let model = model_config.load(record, &device).map_err(|_| {
            anyhow::anyhow!(
                "{}: the weights do not fit the model {} describes; the folder mixes two runs",
                path.display(),
                files::CONFIG
            )
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            model_config,
            tokenizer,
            labels,
            model,
            device,
        })
    }

    /// Predicts one text, with the attention of the heads of `layer` (1 = the first).
    pub fn predict(&self, text: &str, layer: usize) -> Result<Prediction> {
        let encoder = TextEncoder::new(&self.tokenizer, self.config.data.max_len);
        let tokens = encoder.tokens(text);
        let batch = encoder.batch(vec![encoder.item(&tokens, 0)], &self.device);
        let out = self.model.forward(batch.tokens, batch.mask_padding);
        let layers = out.layer_weights.len();
        let Some(weights) = layer
            .checked_sub(1)
            .and_then(|i| out.layer_weights.get(i).cloned())
        else {
            bail!("--layer {layer}: the model has layers 1 to {layers}");
        };
        let probabilities = softmax(out.logits, 1)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default();
        let [_, heads, len, _] = weights.dims();
        let flat = weights
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default();
        let weights = (0..heads)
            .map(|h| {
                (0..len)
                    .map(|q| flat[(h * len + q) * len..(h * len + q + 1) * len].to_vec())
                    .collect()
            })
            .collect();
        Ok(Prediction {
            tokens,
            probabilities,
            weights,
        })
    }
}
