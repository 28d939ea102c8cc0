//! Training throughput of the reference experiment: samples per second of forward, backward and
//! optimiser step, one loss read back per batch (as PyTorch's `loss.item()`), with peak memory.
//!
//! ```text
//! cargo bench -p experiment --bench throughput -- --backend flex --dataset "$PWD/../shared/datasets/sst2"
//! RAYON_NUM_THREADS=1 cargo bench -p experiment --bench throughput -- --backend flex --dataset ...
//! ```
//! (cargo runs benches from `crates/experiment`: give the dataset folder as an absolute path.)
//!
//! `benches/pytorch_reference.py` runs the same model on the same batches in PyTorch;
//! `benches/throughput.sh` runs both side by side. `--batching file` takes the training split in
//! file order; `shuffle` and `bucket` (the experiment's default) draw each epoch's batches as
//! `experiment train` does (`dataset::batch_indices`; the Python script implements the same
//! recipe). Batches are padded to their longest text (at most `--max-len` tokens), or to the
//! ladder of lengths with `--pad ladder` (what GPU backends use), so both programs do the same
//! work; each prints its mean padded length to show it.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::{
    data::dataloader::DataLoader,
    optim::{AdamWConfig, GradientsParams},
};
use clap::{Parser, ValueEnum};
use dataset::{Batching, PadTo, TextBatcher, TextLoader};
use experiment::{
    backend,
    config::{Backend, ExperimentConfig},
    data::load_dataset,
};

// The experiment binary uses mimalloc too; glibc's allocator returns and re-faults the
// short-lived tensor buffers of every step (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchBatching {
    /// The training split in file order.
    File,
    /// Random batches, a new draw each epoch.
    Shuffle,
    /// Length-bucketed batches (the experiment's default).
    Bucket,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchPad {
    Longest,
    Ladder,
}

#[derive(Parser, Debug)]
#[command(about = "Training throughput of the reference classifier")]
struct Args {
    /// Backend.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
    /// `sst2`, `synthetic` or a folder of `label<TAB>text` splits.
    #[arg(long, default_value = "sst2")]
    dataset: String,
    /// Timed training steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Untimed steps first (kernel compilation, allocator warm-up).
    #[arg(long, default_value_t = 30)]
    warmup: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// How batches are drawn.
    #[arg(long, value_enum, default_value_t = BenchBatching::Bucket)]
    batching: BenchBatching,
    /// How batches are padded.
    #[arg(long, value_enum, default_value_t = BenchPad::Longest)]
    pad: BenchPad,
    /// Also time forward, backward and optimiser step apart (CPU backends: they compute
    /// synchronously; on a GPU the split is meaningless without a sync per stage).
    #[arg(long)]
    stages: bool,
    /// Write the result as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let mut config = ExperimentConfig {
        backend: args.backend,
        ..ExperimentConfig::default()
    };
    config.data.dataset = args.dataset.clone();
    config.data.max_len = args.max_len;
    config.model.heads = args.heads;
    config.model.d_model = args.d_model;
    config.train.batch_size = args.batch_size;
    config.validate()?;
    let data = load_dataset(&config)?;
    let device = backend::device(config.backend)?;
    let vocab = experiment::data::vocabulary(&config, &data);
    let items = vocab.encode_examples(&data.train);
    anyhow::ensure!(!items.is_empty(), "the training split is empty");

    device.seed(config.train.seed);
    let autodiff = device.clone().autodiff();
    let mut model = config
        .model_config(vocab.len(), data.n_classes())
        .init(&autodiff);
    let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
    let pad_to = match args.pad {
        BenchPad::Longest => PadTo::Longest,
        BenchPad::Ladder => PadTo::Ladder,
    };
    let batcher = TextBatcher::new(args.max_len).with_pad_to(pad_to);
    let batching = match args.batching {
        BenchBatching::File | BenchBatching::Shuffle => Batching::Shuffle,
        BenchBatching::Bucket => Batching::Bucket,
    };
    let mut loader = TextLoader::new(items, batcher, args.batch_size, batching, autodiff.clone());
    if !matches!(args.batching, BenchBatching::File) {
        loader = loader.shuffle(config.train.seed);
    }
    // Epoch after epoch, each drawn afresh (as the learner's loader does).
    let mut batches = std::iter::repeat_with(|| loader.iter()).flatten();

    let (mut started, mut samples, mut padded) = (Instant::now(), 0usize, 0usize);
    let mut last_loss = f32::NAN;
    let mut stages = [0.0f64; 3]; // forward, backward, optimiser step
    for step in 0..args.warmup + args.steps {
        if step == args.warmup {
            started = Instant::now();
        }
        let batch = batches.next().expect("endless")?;
        if step >= args.warmup {
            let [n, len] = batch.tokens.dims();
            samples += n;
            padded += len;
        }
        let t0 = Instant::now();
        let loss = model.classify(batch).loss;
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        let grads = GradientsParams::from_grads(grads, &model);
        model = optimizer.step(config.train.lr, model, grads);
        let t3 = Instant::now();
        last_loss = loss.into_scalar::<f32>();
        if step >= args.warmup {
            for (total, (from, to)) in stages.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                *total += (to - from).as_secs_f64();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut result = serde_json::json!({
        "program": "burn",
        "backend": config.backend.to_string(),
        "batching": format!("{:?}", args.batching).to_lowercase(),
        "pad": format!("{:?}", args.pad).to_lowercase(),
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "steps": args.steps,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples as f64 / seconds,
        "mean_padded_len": padded as f64 / args.steps.max(1) as f64,
        "vocab": vocab.len(),
        "last_loss": last_loss,
        "peak_rss_mib": peak_rss_mib(),
    });
    if args.stages {
        result["stages_s"] = serde_json::json!({
            "forward": stages[0], "backward": stages[1], "step": stages[2],
        });
    }
    println!("{result}");
    if let Some(path) = &args.json {
        std::fs::write(path, result.to_string() + "\n")
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
