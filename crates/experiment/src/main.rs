//! `experiment`: train and inspect attention text classifiers. `experiment --help` for usage.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use dataset::{Vocabulary, VocabularyConfig, statistics};
use experiment::{
    backend, compare,
    config::{Backend, Batching, ExperimentConfig, Schedule},
    predict,
    run::{self, RunOptions},
    trained::TrainedRun,
};

// burn allocates and frees every step's tensors; with glibc's allocator the large ones go back to
// the kernel and are faulted in again each step. mimalloc keeps them: +13% training samples/s on
// flex in BENCHMARKS.md's A/B.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train a self-attention text classifier with burn and compare single-head, multi-head and
/// positional-encoding variants. With no subcommand, `train` runs with the defaults: 4 heads,
/// d_model 64, positional encoding, on the embedded `synthetic` dataset, on the flex CPU backend.
#[derive(Parser, Debug)]
#[command(name = "experiment", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one model (the default command).
    Train(Box<TrainArgs>),
    /// Compare single-head, multi-head and positional encoding over several seeds.
    Compare(Box<CompareArgs>),
    /// Classify texts with a trained run and show each head's attention.
    Predict(PredictArgs),
    /// Print dataset statistics: counts, label balance, lengths, out-of-vocabulary rate.
    Datasets(DatasetArgs),
}

/// The training recipe. Flags override the `--config` file, which overrides the defaults shown.
#[derive(Args, Debug, Default)]
struct RecipeArgs {
    /// TOML file with any of the keys below (snake_case, e.g. `d_model = 64`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Compute backend [default: flex].
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Train data-parallel on N devices (CPU backends: N worker threads; GPU backends: the first
    /// N GPUs); each step's batch is split across them [default: 1].
    #[arg(long, value_name = "N")]
    devices: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
    /// Embedding and attention width [default: 64].
    #[arg(long)]
    d_model: Option<usize>,
    /// Dropout after the embedding and before the output layer [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// Dropout on the attention weights [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    attention_dropout: Option<f64>,
    /// Probability of dropping a whole token's embedding while training [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    token_dropout: Option<f64>,
    /// Standard deviation of the embedding initialisation [default: 1].
    #[arg(long)]
    embedding_std: Option<f64>,
    /// Most epochs to train (early stopping may end sooner) [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batches of texts of similar length (`bucket`) or random draws (`shuffle`) [default: bucket].
    #[arg(long, value_name = "bucket|shuffle")]
    batching: Option<Batching>,
    /// Peak learning rate of AdamW [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// AdamW weight decay [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    /// Epochs without a lower validation loss before stopping; 0 = never stop early [default: 3].
    #[arg(long)]
    patience: Option<usize>,
    /// Longest sequence in tokens; longer texts are truncated [default: 64].
    #[arg(long)]
    max_len: Option<usize>,
    /// Words seen fewer times in the training split become <unk> [default: 1].
    #[arg(long)]
    min_freq: Option<usize>,
}

/// One training run.
#[derive(Args, Debug, Default)]
struct TrainArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Attention heads; 1 is the single-head baseline with d_k = d_v = d_model [default: 4].
    #[arg(long)]
    heads: Option<usize>,
    /// Sinusoidal positional encoding on or off [default: true].
    #[arg(long, value_name = "BOOL")]
    pe: Option<bool>,
    /// Seed for initialisation, dropout and shuffling [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder [default: experiments/runs/<dataset>-h<heads>[-pe]-s<seed>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace the output folder if it already holds a run.
    #[arg(long)]
    overwrite: bool,
    /// Continue the interrupted run in DIR from its last checkpoint, with its own config
    /// (only --backend and --no-tui may be given with it).
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "config", "dataset", "data_dir", "download", "devices", "d_model", "dropout", "attention_dropout",
        "token_dropout", "embedding_std", "epochs", "batch_size", "batching", "lr", "weight_decay",
        "schedule", "patience", "max_len", "min_freq", "heads", "pe", "seed", "out", "overwrite",
    ])]
    resume: Option<PathBuf>,
    /// Print a compact log instead of the terminal dashboard (automatic when not a terminal).
    #[arg(long)]
    no_tui: bool,
}

/// Every condition (single head; 4 heads; 4 heads + positional encoding) × every seed with one
/// recipe, then REPORT.md, report.json and charts in the output folder.
#[derive(Args, Debug)]
struct CompareArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Seeds per condition (1, 2, …, N).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Also run 1, 2 and 8 heads with positional encoding (and 1 head with it).
    #[arg(long)]
    sweep_heads: bool,
    /// Results folder [default: experiments/results/<dataset>]; finished runs in it are reused.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Train up to N runs at once, each an `experiment train` process with its share of the
    /// cores (one run per core, or per GPU, is the usual choice).
    #[arg(long, value_name = "N", default_value_t = 1)]
    jobs: usize,
}

/// Predict texts with a trained run and show where each head looks.
#[derive(Args, Debug)]
struct PredictArgs {
    /// A run folder written by `experiment train` (holds model.bpk, vocab.json, …).
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Texts to classify.
    #[arg(required = true, value_name = "TEXT")]
    texts: Vec<String>,
    /// Write a heatmap of the first text's attention (heads × tokens, and token × token for
    /// `--head`) to this PNG file.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Head shown token × token in the heatmap.
    #[arg(long, default_value_t = 0)]
    head: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

#[derive(Args, Debug, Default)]
struct DataArgs {
    /// `synthetic` or `synthetic-long` (embedded), `sst2` (GLUE SST-2), or a folder with
    /// train/validation[/test] .tsv|.csv|.jsonl files, plain or .gz [default: synthetic].
    #[arg(long, value_name = "NAME|DIR")]
    dataset: Option<String>,
    /// Where named datasets are kept [default: $ATTENTION_LAB_DATA, else ~/.cache/attention-lab].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Download a named dataset (sst2) that is not in the data directory.
    #[arg(long)]
    download: bool,
}

#[derive(Args, Debug)]
struct DatasetArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Vocabulary: minimum word frequency in the training split.
    #[arg(long, default_value_t = 1)]
    min_freq: usize,
    /// Also write the dataset as a TSV folder here (train/validation[/test].tsv, labels.txt),
    /// e.g. to feed an embedded dataset to another program; the folder must be new or empty.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

impl DataArgs {
    fn apply(&self, config: &mut ExperimentConfig) {
        if let Some(dataset) = &self.dataset {
            config.dataset = dataset.clone();
        }
        if self.data_dir.is_some() {
            config.data_dir = self.data_dir.clone();
        }
        config.download |= self.download;
    }
}

impl RecipeArgs {
    fn resolve(&self) -> Result<ExperimentConfig> {
        let mut c = match &self.config {
            Some(path) => ExperimentConfig::load(path)?,
            None => ExperimentConfig::default(),
        };
        self.data.apply(&mut c);
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            backend,
            devices,
            d_model,
            dropout,
            attention_dropout,
            token_dropout,
            embedding_std,
            epochs,
            batch_size,
            batching,
            lr,
            weight_decay,
            schedule,
            patience,
            max_len,
            min_freq
        );
        Ok(c)
    }
}

impl TrainArgs {
    fn resolve(&self) -> Result<ExperimentConfig> {
        let mut c = self.recipe.resolve()?;
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(heads, pe, seed);
        c.validate()?;
        Ok(c)
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    let dashboard = !args.no_tui && std::io::stdout().is_terminal();
    let (summary, out) = match &args.resume {
        Some(dir) => (
            run::resume(dir, args.recipe.backend, dashboard)?,
            dir.clone(),
        ),
        None => {
            let config = args.resolve()?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("experiments/runs").join(config.run_name()));
            let options = RunOptions {
                out: out.clone(),
                dashboard,
                overwrite: args.overwrite,
            };
            (run::train(&config, &options)?, out)
        }
    };
    let test = summary
        .test_acc
        .map_or_else(String::new, |acc| format!(", test acc {:.2}%", 100.0 * acc));
    println!(
        "kept epoch {} of {}: valid loss {:.4}, valid acc {:.2}%{test}; {:.0} training samples/s; {}",
        summary.best_epoch,
        summary.epochs_run,
        summary.valid_loss,
        100.0 * summary.valid_acc,
        summary.train_samples_per_s,
        out.join(run::files::SUMMARY).display()
    );
    Ok(())
}

fn compare(args: &CompareArgs) -> Result<()> {
    let config = args.recipe.resolve()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| compare::default_out(&config));
    let seeds: Vec<u64> = (1..=args.seeds).collect();
    let command = std::iter::once("experiment".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let report = compare::compare(
        &config,
        &compare::conditions(args.sweep_heads),
        &seeds,
        &out,
        &command,
        args.jobs,
    )?;
    println!(
        "{} conditions × {} seeds: {}",
        report.conditions.len(),
        seeds.len(),
        out.join("REPORT.md").display()
    );
    Ok(())
}

fn predict(args: &PredictArgs) -> Result<()> {
    let run = TrainedRun::open(&args.run, backend::device(args.backend)?)?;
    let colour = std::io::stdout().is_terminal();
    for (i, text) in args.texts.iter().enumerate() {
        let prediction = run.predict(text);
        print!("{}", predict::describe(&run, text, &prediction, colour));
        if i == 0
            && let Some(png) = &args.png
        {
            predict::heatmap(&prediction, args.head, png)?;
            println!("  heatmap: {}", png.display());
        }
    }
    Ok(())
}

fn datasets(args: &DatasetArgs) -> Result<()> {
    let mut config = ExperimentConfig::default();
    args.data.apply(&mut config);
    let data = run::load_dataset(&config)?;
    let vocab = Vocabulary::build(
        data.train.iter().map(|e| e.text.as_str()),
        &VocabularyConfig {
            min_freq: args.min_freq,
            ..VocabularyConfig::default()
        },
    );
    print!("{}", statistics(&data, &vocab));
    if let Some(dir) = &args.export {
        data.write_tsv(dir)?;
        println!("written to {}", dir.display());
    }
    Ok(())
}

/// clap's usage errors span several lines; say them in one, as every other error here.
fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|err| {
        if !err.use_stderr() {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        let text = err.render().to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
            })
            .collect();
        eprintln!("{} (see --help)", lines.join(" "));
        ExitCode::from(2)
    })
}

/// The backend a command will run on, when it names one.
fn chosen_backend(cli: &Cli) -> Option<Backend> {
    let train = |args: &TrainArgs| match &args.resume {
        Some(dir) => args.recipe.backend.or_else(|| {
            ExperimentConfig::load(&dir.join(run::files::CONFIG))
                .ok()
                .map(|c| c.backend)
        }),
        None => args.resolve().ok().map(|c| c.backend),
    };
    match &cli.command {
        None => train(&cli.train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Compare(args)) => args.recipe.resolve().ok().map(|c| c.backend),
        Some(Command::Predict(args)) => Some(args.backend),
        Some(Command::Datasets(_)) => None,
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // burn-train restores checkpoints (optimiser state) onto `Device::default()`, which is the
    // GPU whenever wgpu is compiled in, and panics on a machine without a graphics driver even
    // for a CPU run. Pin the default to the chosen backend.
    if let Some(backend) = chosen_backend(&cli) {
        // SAFETY: no other thread exists yet; nothing has started burn, rayon or a loader.
        unsafe { std::env::set_var("BURN_DEVICE", backend.to_string()) };
    }
    let result = match &cli.command {
        None => train(&cli.train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Compare(args)) => compare(args),
        Some(Command::Predict(args)) => predict(args),
        Some(Command::Datasets(args)) => datasets(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the cause chain joined, no backtrace.
            let message: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            eprintln!("error: {}", message.join(": "));
            ExitCode::FAILURE
        }
    }
}
