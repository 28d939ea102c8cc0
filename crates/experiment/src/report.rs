//! The comparison's report: `REPORT.md`, `report.json` and charts.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    charts,
    compare::{Condition, RunResult},
    config::ExperimentConfig,
};

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
    pub pe: bool,
    pub params: usize,
    pub seeds: Vec<u64>,
    pub best_epoch: Stat,
    pub train_loss: Stat,
    pub train_acc: Stat,
    pub valid_loss: Stat,
    pub valid_acc: Stat,
    pub test_loss: Option<Stat>,
    pub test_acc: Option<Stat>,
    pub seconds: Stat,
    pub train_samples_per_s: Stat,
    /// How often each head's most-attended token decides the label (synthetic only).
    pub head_focus: Option<HeadFocusStats>,
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
    pub fn of(focus: &[&crate::analysis::HeadFocus]) -> Option<Self> {
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

/// The whole comparison. Accuracies are fractions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub dataset: String,
    pub command: String,
    pub recipe: ExperimentConfig,
    pub conditions: Vec<ConditionReport>,
}

/// Aggregates the runs by condition.
pub fn build(
    dataset: &str,
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
            let focus: Option<Vec<&crate::analysis::HeadFocus>> =
                runs.iter().map(|r| r.focus.as_ref()).collect();
            ConditionReport {
                name: c.name.clone(),
                heads: c.heads,
                pe: c.pe,
                params: runs.first().map_or(0, |r| r.summary.params),
                seeds: runs.iter().map(|r| r.summary.seed).collect(),
                best_epoch: stat(&|r| r.summary.best_epoch as f64),
                train_loss: stat(&|r| r.summary.train_loss),
                train_acc: stat(&|r| r.summary.train_acc),
                valid_loss: stat(&|r| r.summary.valid_loss),
                valid_acc: stat(&|r| r.summary.valid_acc),
                test_loss: optional(&|r| r.summary.test_loss),
                test_acc: optional(&|r| r.summary.test_acc),
                seconds: stat(&|r| r.summary.seconds),
                train_samples_per_s: stat(&|r| r.summary.train_samples_per_s),
                head_focus: focus.as_deref().and_then(HeadFocusStats::of),
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
        command: command.to_string(),
        recipe: recipe.clone(),
        conditions,
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
    std::fs::write(out.join("REPORT.md"), markdown(report))
        .with_context(|| format!("{}: cannot write REPORT.md", out.display()))?;
    Ok(())
}

fn pct(s: &Stat) -> String {
    format!("{:.2} ± {:.2}", 100.0 * s.mean, 100.0 * s.std)
}

fn num(s: &Stat) -> String {
    format!("{:.4} ± {:.4}", s.mean, s.std)
}

/// `a` minus `b` on one metric, and whether the gap exceeds the seed-to-seed spread
/// (the two standard deviations added).
fn contrast(metric: &str, a: &Stat, b: &Stat, scale: f64, unit: &str) -> String {
    let diff = a.mean - b.mean;
    let spread = a.std + b.std;
    let verdict = if diff.abs() > spread {
        "larger than the spread"
    } else {
        "within the spread"
    };
    let digits = if unit.is_empty() { 4 } else { 2 };
    format!(
        "{metric} {:+.digits$}{unit} (spread {:.digits$}{unit}: {verdict})",
        diff * scale,
        spread * scale
    )
}

fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let seeds = r.conditions.first().map_or(0, |c| c.seeds.len());
    let _ = writeln!(md, "# Seed experiment on `{}`\n", r.dataset);
    let _ = writeln!(
        md,
        "Command (re-runs it; finished runs in `runs/` are reused):\n\n```sh\n{}\n```\n",
        r.command
    );
    let c = &r.recipe;
    let _ = writeln!(
        md,
        "Recipe, the same for every condition: d_model {}, dropout {}, attention dropout {}, token dropout {}, embedding init std {}, AdamW lr {} ({} schedule), weight decay {}, batch {}, at most {} epochs with early stopping after {} epochs without a lower validation loss, max_len {}, backend {}. {seeds} seeds per condition. Each run keeps the epoch with the lowest validation loss; its numbers below are measured on that model without dropout. Accuracies in %, mean ± sample standard deviation over seeds.\n",
        c.d_model,
        c.dropout,
        c.attention_dropout,
        c.token_dropout,
        c.embedding_std,
        c.lr,
        format!("{:?}", c.schedule).to_lowercase(),
        c.weight_decay,
        c.batch_size,
        c.epochs,
        c.patience,
        c.max_len,
        c.backend
    );
    let _ = writeln!(
        md,
        "| condition | heads | PE | params | train loss | train acc | valid loss | valid acc | test acc | best epoch | seconds |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for k in &r.conditions {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} |",
            k.name,
            k.heads,
            if k.pe { "yes" } else { "no" },
            k.params,
            num(&k.train_loss),
            pct(&k.train_acc),
            num(&k.valid_loss),
            pct(&k.valid_acc),
            k.test_acc.as_ref().map_or_else(|| "–".into(), pct),
            k.best_epoch.mean,
            k.seconds.mean
        );
    }
    let _ = writeln!(md, "\nPer seed (valid acc / valid loss / test acc):\n");
    for k in &r.conditions {
        let runs: Vec<String> = (0..k.seeds.len())
            .map(|i| {
                let test = k
                    .test_acc
                    .as_ref()
                    .map_or_else(String::new, |t| format!(" / {:.2}", 100.0 * t.runs[i]));
                format!(
                    "seed {}: {:.2} / {:.4}{test}",
                    k.seeds[i],
                    100.0 * k.valid_acc.runs[i],
                    k.valid_loss.runs[i]
                )
            })
            .collect();
        let _ = writeln!(md, "- {}: {}", k.name, runs.join("; "));
    }
    let _ = writeln!(
        md,
        "\n![validation curves](curves.png)\n\n![final numbers](final.png)\n"
    );

    let focus: Vec<&ConditionReport> = r
        .conditions
        .iter()
        .filter(|k| k.head_focus.is_some())
        .collect();
    if !focus.is_empty() {
        let _ = writeln!(md, "## Do heads specialise?\n");
        let _ = writeln!(
            md,
            "On the validation split, for each head: how often the token it attends to most (attention received, averaged over the queries) is one of the tokens that decide the label (the deciding clause's sentiment word, its negator, the connective). A head attending to a random token would score the chance rate.\n"
        );
        let _ = writeln!(
            md,
            "Heads of models trained from different seeds do not correspond, so each model's heads are ranked from most to least focused; the best and worst columns are each model's most and least focused head, over the seeds.\n"
        );
        let _ = writeln!(
            md,
            "| condition | chance | best head | worst head | each model's heads, most to least focused |\n|---|---|---|---|---|"
        );
        for k in focus {
            let f = k.head_focus.as_ref().unwrap();
            let models: Vec<String> = f
                .per_model
                .iter()
                .map(|rates| {
                    let rates: Vec<String> =
                        rates.iter().map(|r| format!("{:.1}", 100.0 * r)).collect();
                    rates.join(" ")
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {} | {} |",
                k.name,
                100.0 * f.chance,
                pct(&f.best),
                pct(&f.worst),
                models.join(" / ")
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## What the numbers say\n");
    let find = |name: &str| r.conditions.iter().find(|k| k.name == name);
    let pairs = [
        (
            "multi-head",
            "single-head",
            "4 heads vs 1 head (no positions)",
        ),
        (
            "multi-head-pe",
            "single-head-pe",
            "4 heads vs 1 head (with positions)",
        ),
        (
            "8-heads-pe",
            "single-head-pe",
            "8 heads vs 1 head (with positions)",
        ),
        (
            "multi-head-pe",
            "multi-head",
            "positional encoding vs none (4 heads)",
        ),
        (
            "single-head-pe",
            "single-head",
            "positional encoding vs none (1 head)",
        ),
        (
            "multi-head-pe",
            "single-head",
            "4 heads with positions vs the single-head baseline",
        ),
    ];
    for (a, b, what) in pairs {
        if let (Some(a), Some(b)) = (find(a), find(b)) {
            let _ = writeln!(
                md,
                "- {what}: {}; {}{}.",
                contrast("valid acc", &a.valid_acc, &b.valid_acc, 100.0, " pt"),
                contrast("valid loss", &a.valid_loss, &b.valid_loss, 1.0, ""),
                match (&a.test_acc, &b.test_acc) {
                    (Some(x), Some(y)) => format!("; {}", contrast("test acc", x, y, 100.0, " pt")),
                    _ => String::new(),
                }
            );
        }
    }
    if let Some(best) = r
        .conditions
        .iter()
        .filter(|k| k.heads > 1)
        .min_by(|a, b| a.valid_loss.mean.total_cmp(&b.valid_loss.mean))
    {
        let _ = writeln!(
            md,
            "- Best multi-head condition by validation loss: `{}`, valid acc {} %, valid loss {}{}.",
            best.name,
            pct(&best.valid_acc),
            num(&best.valid_loss),
            best.test_acc
                .as_ref()
                .map_or_else(String::new, |t| format!(", test acc {} %", pct(t)))
        );
    }
    let _ = writeln!(
        md,
        "\nA difference counts as real here only when it exceeds the two conditions' standard deviations added; with {seeds} seeds that is a rough screen, not a significance test."
    );
    md
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
    fn contrast_says_whether_a_gap_exceeds_the_spread() {
        let a = Stat::of(vec![0.80, 0.82, 0.84]);
        let b = Stat::of(vec![0.70, 0.71, 0.72]);
        assert_eq!(
            contrast("valid acc", &a, &b, 100.0, " pt"),
            "valid acc +11.00 pt (spread 3.00 pt: larger than the spread)"
        );
        let c = Stat::of(vec![0.81, 0.83, 0.85]);
        assert_eq!(
            contrast("valid loss", &c, &a, 1.0, ""),
            "valid loss +0.0100 (spread 0.0400: within the spread)"
        );
    }

    #[test]
    fn heads_are_ranked_within_each_model_before_comparing_seeds() {
        use crate::analysis::HeadFocus;
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
