//! The comparison's report: `REPORT.md`, `report.json` and charts.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub mod charts;
pub mod heatmaps;
mod markdown;
pub mod pruning;

use crate::{
    analysis::HeadFocus,
    baseline::BaselineResult,
    config::ExperimentConfig,
    heads::HeadAnalysis,
    model::Positions,
    run_dir::{EpochMetrics, Summary},
};

/// One arm of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Short name, used for folders and the report.
    pub name: String,
    /// Attention heads.
    pub heads: usize,
    /// Where positions come from.
    pub positions: Positions,
    /// Attention layers.
    pub layers: usize,
}

impl Condition {
    /// A condition named by what it is, in the seed experiment's words where they exist:
    /// `single-head`, `multi-head` (4 heads) or `8-heads`; `-pe` for the sinusoidal table,
    /// `-rope` and so on for the others; `-l2` for two layers.
    pub fn new(heads: usize, positions: Positions, layers: usize) -> Self {
        let mut name = match heads {
            1 => "single-head".to_string(),
            4 => "multi-head".to_string(),
            h => format!("{h}-heads"),
        };
        match positions {
            Positions::None => {}
            Positions::Sinusoidal => name.push_str("-pe"),
            other => name.push_str(&format!("-{other}")),
        }
        if layers > 1 {
            name.push_str(&format!("-l{layers}"));
        }
        Self {
            name,
            heads,
            positions,
            layers,
        }
    }
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
    /// Which heads matter, on the validation split (multi-head models).
    pub heads: Option<HeadAnalysis>,
}

/// Mean, sample standard deviation and the values themselves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub runs: Vec<f64>,
}

impl Stat {
    pub fn of(values: Vec<f64>) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
            runs: values,
        }
    }
}

/// One condition over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConditionReport {
    pub name: String,
    pub heads: usize,
    pub positions: Positions,
    pub layers: usize,
    pub params: usize,
    pub seeds: Vec<u64>,
    pub best_epoch: Stat,
    pub train_loss: Stat,
    pub train_acc: Stat,
    pub valid_loss: Stat,
    pub valid_acc: Stat,
    pub test_loss: Option<Stat>,
    pub test_acc: Option<Stat>,
    /// Macro-F1 (absent for runs recorded before it was measured).
    #[serde(default)]
    pub valid_macro_f1: Option<Stat>,
    #[serde(default)]
    pub test_macro_f1: Option<Stat>,
    /// `confusion[true][predicted]`, summed over the seeds.
    #[serde(default)]
    pub valid_confusion: Option<Vec<Vec<usize>>>,
    #[serde(default)]
    pub test_confusion: Option<Vec<Vec<usize>>>,
    pub seconds: Stat,
    pub train_samples_per_s: Stat,
    /// How often each head's most-attended token decides the label (synthetic only).
    pub head_focus: Option<HeadFocusStats>,
    /// Which heads matter, over the seeds (multi-head conditions).
    #[serde(default)]
    pub head_analysis: Option<HeadStats>,
    /// Per seed, per epoch validation loss and accuracy.
    pub valid_loss_curves: Vec<Vec<f64>>,
    pub valid_acc_curves: Vec<Vec<f64>>,
}

/// Head focus over the seeds of a condition. Heads of independently trained models do not
/// correspond (head 0 of one seed is not head 0 of another), so each model's heads are ranked
/// first and the ranks are compared across seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadFocusStats {
    /// Per seed, its heads' hit rates from most to least focused.
    pub per_model: Vec<Vec<f64>>,
    /// Each model's most focused head, over the seeds.
    pub best: Stat,
    /// Each model's least focused head, over the seeds.
    pub worst: Stat,
    /// What a head attending to a random token would score.
    pub chance: f64,
}

impl HeadFocusStats {
    /// `None` without any model's focus.
    pub fn of(focus: &[&HeadFocus]) -> Option<Self> {
        let first = focus.first()?;
        let per_model: Vec<Vec<f64>> = focus
            .iter()
            .map(|f| {
                let mut rates = f.hit_rate.clone();
                rates.sort_by(|a, b| b.total_cmp(a));
                rates
            })
            .collect();
        let rank = |pick: fn(&[f64]) -> Option<&f64>| {
            Stat::of(per_model.iter().filter_map(|r| pick(r).copied()).collect())
        };
        Some(Self {
            best: rank(<[f64]>::first),
            worst: rank(<[f64]>::last),
            per_model,
            chance: first.chance,
        })
    }
}

/// Which heads matter, over the seeds of a condition. As with [`HeadFocusStats`], each model's
/// heads are ranked before seeds are compared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeadStats {
    /// Per seed, its heads' importance from most to least important (fractions summing to 1).
    pub importance: Vec<Vec<f64>>,
    /// Validation accuracy lost by masking each model's most important head (fraction).
    pub drop_most: Stat,
    /// Validation accuracy lost by masking each model's least important head.
    pub drop_least: Stat,
    /// Per seed: validation accuracy with the `k` least important heads masked, `k = 0..heads`.
    pub pruning_curves: Vec<Vec<f64>>,
    /// Per seed: mean entropy ratio of its heads (1 = uniform attention).
    pub entropy_ratio: Vec<f64>,
}

impl HeadStats {
    /// `None` without any model's analysis.
    pub fn of(analyses: &[&HeadAnalysis]) -> Option<Self> {
        if analyses.is_empty() {
            return None;
        }
        let drop = |a: &HeadAnalysis, pick: fn(&[usize]) -> Option<&usize>| {
            pick(&a.pruning_order).map_or(0.0, |&h| a.accuracy - a.masked_accuracy[h])
        };
        Some(Self {
            importance: analyses
                .iter()
                .map(|a| {
                    let mut ranked = a.importance.clone();
                    ranked.sort_by(|x, y| y.total_cmp(x));
                    ranked
                })
                .collect(),
            drop_most: Stat::of(analyses.iter().map(|a| drop(a, <[usize]>::last)).collect()),
            drop_least: Stat::of(analyses.iter().map(|a| drop(a, <[usize]>::first)).collect()),
            pruning_curves: analyses
                .iter()
                .map(|a| a.pruning_accuracy.clone())
                .collect(),
            entropy_ratio: analyses
                .iter()
                .map(|a| a.entropy_ratio.iter().sum::<f64>() / a.entropy_ratio.len().max(1) as f64)
                .collect(),
        })
    }

    /// Seeds whose model attends nearly uniformly (mean entropy ratio above
    /// [`NEARLY_UNIFORM`](crate::heads::NEARLY_UNIFORM)).
    pub fn nearly_uniform(&self) -> usize {
        self.entropy_ratio
            .iter()
            .filter(|&&r| r > crate::heads::NEARLY_UNIFORM)
            .count()
    }
}

/// The whole comparison. Accuracies are fractions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub dataset: String,
    /// Class names, in the order of the confusion matrices.
    #[serde(default)]
    pub labels: Vec<String>,
    pub command: String,
    pub recipe: ExperimentConfig,
    pub conditions: Vec<ConditionReport>,
    /// The bag-of-words baseline on the same splits.
    #[serde(default)]
    pub baseline: Option<BaselineResult>,
}

/// The element-wise sum of the matrices, `None` if any is missing or they differ in shape.
fn summed<'a>(
    matrices: impl Iterator<Item = Option<&'a Vec<Vec<usize>>>>,
) -> Option<Vec<Vec<usize>>> {
    let mut total: Option<Vec<Vec<usize>>> = None;
    for m in matrices {
        let m = m?;
        match &mut total {
            None => total = Some(m.clone()),
            Some(t) => {
                if t.len() != m.len() {
                    return None;
                }
                for (row, add) in t.iter_mut().zip(m) {
                    if row.len() != add.len() {
                        return None;
                    }
                    row.iter_mut().zip(add).for_each(|(a, b)| *a += b);
                }
            }
        }
    }
    total
}

/// Aggregates the runs by condition.
pub fn build(
    dataset: &str,
    labels: &[String],
    command: &str,
    recipe: &ExperimentConfig,
    conditions: &[Condition],
    results: &[RunResult],
) -> Report {
    let conditions = conditions
        .iter()
        .map(|c| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.condition == *c).collect();
            let stat =
                |f: &dyn Fn(&RunResult) -> f64| Stat::of(runs.iter().map(|r| f(r)).collect());
            let optional = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                let values: Option<Vec<f64>> = runs.iter().map(|r| f(r)).collect();
                values.map(Stat::of)
            };
            let focus: Option<Vec<&HeadFocus>> = runs.iter().map(|r| r.focus.as_ref()).collect();
            let heads: Option<Vec<&HeadAnalysis>> = runs.iter().map(|r| r.heads.as_ref()).collect();
            ConditionReport {
                name: c.name.clone(),
                heads: c.heads,
                positions: c.positions,
                layers: c.layers,
                params: runs.first().map_or(0, |r| r.summary.params),
                seeds: runs.iter().map(|r| r.summary.seed).collect(),
                best_epoch: stat(&|r| r.summary.best_epoch as f64),
                train_loss: stat(&|r| r.summary.train_loss),
                train_acc: stat(&|r| r.summary.train_acc),
                valid_loss: stat(&|r| r.summary.valid_loss),
                valid_acc: stat(&|r| r.summary.valid_acc),
                test_loss: optional(&|r| r.summary.test_loss),
                test_acc: optional(&|r| r.summary.test_acc),
                valid_macro_f1: optional(&|r| r.summary.valid_macro_f1),
                test_macro_f1: optional(&|r| r.summary.test_macro_f1),
                valid_confusion: summed(runs.iter().map(|r| r.summary.valid_confusion.as_ref())),
                test_confusion: summed(runs.iter().map(|r| r.summary.test_confusion.as_ref())),
                seconds: stat(&|r| r.summary.seconds),
                train_samples_per_s: stat(&|r| r.summary.train_samples_per_s),
                head_focus: focus.as_deref().and_then(HeadFocusStats::of),
                head_analysis: heads.as_deref().and_then(HeadStats::of),
                valid_loss_curves: runs
                    .iter()
                    .map(|r| r.epochs.iter().map(|e| e.valid_loss).collect())
                    .collect(),
                valid_acc_curves: runs
                    .iter()
                    .map(|r| r.epochs.iter().map(|e| e.valid_acc).collect())
                    .collect(),
            }
        })
        .collect();
    Report {
        dataset: dataset.to_string(),
        labels: labels.to_vec(),
        command: command.to_string(),
        recipe: recipe.clone(),
        conditions,
        baseline: None,
    }
}

/// Writes `REPORT.md`, `report.json`, `curves.png` and `final.png` into `out`.
pub fn write(report: &Report, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json)
        .with_context(|| format!("{}: cannot write report.json", out.display()))?;
    charts::curves(report, &out.join("curves.png"))?;
    charts::finals(report, &out.join("final.png"))?;
    if let Some(best) = markdown::best(report).filter(|_| report.labels.len() > 2)
        && let Some(confusion) = &best.valid_confusion
    {
        let title = format!("{}: {} (validation, all seeds)", report.dataset, best.name);
        heatmaps::confusion(
            confusion,
            &report.labels,
            &title,
            &out.join("confusion.png"),
        )?;
    }
    if report.conditions.iter().any(|c| c.head_analysis.is_some()) {
        charts::pruning(report, &out.join("pruning.png"))?;
    }
    std::fs::write(out.join("REPORT.md"), markdown::markdown(report))
        .with_context(|| format!("{}: cannot write REPORT.md", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_and_sample_std() {
        let s = Stat::of(vec![0.80, 0.82, 0.84]);
        assert!((s.mean - 0.82).abs() < 1e-12);
        assert!((s.std - 0.02).abs() < 1e-12, "sample std, n - 1");
        assert_eq!(Stat::of(vec![0.5]).std, 0.0);
    }

    #[test]
    fn heads_are_ranked_within_each_model_before_comparing_seeds() {
        // Seed 1's focused head is its head 1, seed 2's its head 0: by index both would look
        // alike (0.45 and 0.55); ranked, each model has one focused head and one that is not.
        let seeds = [
            HeadFocus {
                hit_rate: vec![0.1, 0.9],
                chance: 0.2,
            },
            HeadFocus {
                hit_rate: vec![0.8, 0.2],
                chance: 0.2,
            },
        ];
        let stats = HeadFocusStats::of(&seeds.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(stats.per_model, [[0.9, 0.1], [0.8, 0.2]]);
        assert!((stats.best.mean - 0.85).abs() < 1e-12);
        assert!((stats.worst.mean - 0.15).abs() < 1e-12);
        assert_eq!(stats.chance, 0.2);
        assert!(HeadFocusStats::of(&[]).is_none());
    }
}
