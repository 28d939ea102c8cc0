//! `experiment compare`: every condition × every seed with one recipe, then the report.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{HeadFocus, head_focus},
    backend,
    config::ExperimentConfig,
    report::{self, Report},
    run::{self, EpochMetrics, RunOptions, Summary},
    trained::TrainedRun,
};

/// One arm of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Short name, used for folders and the report.
    pub name: String,
    /// Attention heads.
    pub heads: usize,
    /// Sinusoidal positional encoding.
    pub pe: bool,
}

impl Condition {
    fn new(name: &str, heads: usize, pe: bool) -> Self {
        Self {
            name: name.into(),
            heads,
            pe,
        }
    }
}

/// The seed experiment's conditions, plus 1/2/8 heads with positional encoding when `sweep`.
pub fn conditions(sweep: bool) -> Vec<Condition> {
    let mut list = vec![
        Condition::new("single-head", 1, false),
        Condition::new("multi-head", 4, false),
        Condition::new("multi-head-pe", 4, true),
    ];
    if sweep {
        list.insert(2, Condition::new("single-head-pe", 1, true));
        list.push(Condition::new("2-heads-pe", 2, true));
        list.push(Condition::new("8-heads-pe", 8, true));
    }
    list
}

/// One finished run of the comparison.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Which condition.
    pub condition: Condition,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its per-epoch metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Head specialisation on the validation split, where the dataset knows the deciding tokens.
    pub focus: Option<HeadFocus>,
}

/// Runs the comparison into `out` (runs under `out/runs/`) and writes the report there.
///
/// A run whose folder already holds a finished run with the same configuration is reused, so an
/// interrupted comparison continues where it stopped.
pub fn compare(
    base: &ExperimentConfig,
    conditions: &[Condition],
    seeds: &[u64],
    out: &Path,
    command: &str,
) -> Result<Report> {
    if seeds.is_empty() {
        bail!("--seeds must be at least 1");
    }
    let data = run::load_dataset(base)?;
    let total = conditions.len() * seeds.len();
    let mut results = Vec::with_capacity(total);
    let started = Instant::now();
    for (i, (condition, &seed)) in conditions
        .iter()
        .flat_map(|c| seeds.iter().map(move |s| (c, s)))
        .enumerate()
    {
        let config = ExperimentConfig {
            heads: condition.heads,
            pe: condition.pe,
            seed,
            ..base.clone()
        };
        config
            .validate()
            .with_context(|| format!("condition {}", condition.name))?;
        let dir = out.join("runs").join(format!("{}-s{seed}", condition.name));
        let label = format!("[{}/{total}] {} seed {seed}", i + 1, condition.name);
        let previous = finished_with(&dir, &config);
        let reused = previous.is_some();
        let summary = match previous {
            Some(summary) => summary,
            None => {
                println!(
                    "{label}: training ({:.0} s elapsed)",
                    started.elapsed().as_secs_f64()
                );
                run::train(
                    &config,
                    &RunOptions {
                        out: dir.clone(),
                        dashboard: false,
                        overwrite: true,
                    },
                )?
            }
        };
        let epochs = run::read_metrics(&dir)?;
        let trained = TrainedRun::open(&dir, backend::device(config.backend)?)?;
        let focus = head_focus(
            &trained.model,
            &data.validation,
            &trained.vocab,
            config.max_len,
            &trained.device,
        );
        println!(
            "{label}: valid acc {:.2}%, valid loss {:.4}, best epoch {}{}",
            100.0 * summary.valid_acc,
            summary.valid_loss,
            summary.best_epoch,
            if reused { " (reused)" } else { "" }
        );
        results.push(RunResult {
            condition: condition.clone(),
            summary,
            epochs,
            focus,
        });
    }
    let report = report::build(&data.name, command, base, conditions, &results);
    report::write(&report, out)?;
    Ok(report)
}

/// The summary of a finished run in `dir` trained with exactly `config`.
fn finished_with(dir: &Path, config: &ExperimentConfig) -> Option<Summary> {
    let same = std::fs::read_to_string(dir.join(run::files::CONFIG)).ok()? == config.to_toml();
    let summary = std::fs::read_to_string(dir.join(run::files::SUMMARY)).ok()?;
    let summary: Summary = serde_json::from_str(&summary).ok()?;
    (same && !summary.interrupted).then_some(summary)
}

/// Default results folder for a dataset: `experiments/results/<name>`.
pub fn default_out(config: &ExperimentConfig) -> PathBuf {
    PathBuf::from("experiments/results").join(config.dataset_name())
}
