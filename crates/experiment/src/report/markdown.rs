//! `REPORT.md`: the table, per-seed numbers, head focus, and the verdict on each contrast.

use std::fmt::Write as _;

use super::{ConditionReport, HeadStats, Report, Stat};
use crate::{config::ExperimentConfig, model::Positions};

/// The contrasts the seed experiment asks about, found by what the conditions are (heads,
/// positions, layers), not by their names: more heads against one head, positions against
/// none, more layers against one, each with everything else the same; and multi-head with
/// positions against the single-head baseline (one layer, no positions).
fn contrasts(conditions: &[ConditionReport]) -> Vec<(&ConditionReport, &ConditionReport, String)> {
    let find = |heads: usize, positions: Positions, layers: usize| {
        conditions
            .iter()
            .find(|k| k.heads == heads && k.positions == positions && k.layers == layers)
    };
    let heads = |h: usize| {
        if h == 1 {
            "1 head".to_string()
        } else {
            format!("{h} heads")
        }
    };
    let positions = |p: Positions| match p {
        Positions::None => "no positions".to_string(),
        Positions::Sinusoidal => "with positions".to_string(),
        other => format!("{other} positions"),
    };
    let layers = |l: usize| {
        if l == 1 {
            String::new()
        } else {
            format!(", {l} layers")
        }
    };
    let mut list = Vec::new();
    let mut schemes: Vec<Positions> = Vec::new();
    for k in conditions {
        if !schemes.contains(&k.positions) {
            schemes.push(k.positions);
        }
    }
    for &p in &schemes {
        for a in conditions
            .iter()
            .filter(|k| k.heads > 1 && k.positions == p)
        {
            if let Some(b) = find(1, p, a.layers) {
                let what = format!(
                    "{} vs 1 head ({}{})",
                    heads(a.heads),
                    positions(p),
                    layers(a.layers)
                );
                list.push((a, b, what));
            }
        }
    }
    for a in conditions.iter().filter(|k| k.positions != Positions::None) {
        if let Some(b) = find(a.heads, Positions::None, a.layers) {
            let what = match a.positions {
                Positions::Sinusoidal => "positional encoding".to_string(),
                other => format!("{other} positions"),
            };
            let what = format!("{what} vs none ({}{})", heads(a.heads), layers(a.layers));
            list.push((a, b, what));
        }
    }
    for a in conditions.iter().filter(|k| k.layers > 1) {
        if let Some(b) = find(a.heads, a.positions, 1) {
            let what = format!(
                "{} layers vs 1 ({}, {})",
                a.layers,
                heads(a.heads),
                positions(a.positions)
            );
            list.push((a, b, what));
        }
    }
    if let Some(baseline) = find(1, Positions::None, 1) {
        for a in conditions
            .iter()
            .filter(|k| k.heads > 1 && k.positions != Positions::None && k.layers == 1)
        {
            let what = format!(
                "{} with {} vs the single-head baseline",
                heads(a.heads),
                match a.positions {
                    Positions::Sinusoidal => "positions".to_string(),
                    other => other.to_string(),
                }
            );
            list.push((a, baseline, what));
        }
    }
    list
}

/// "Which heads matter": importance, masking, pruning and entropy per multi-head condition.
fn heads_section(md: &mut String, r: &Report) {
    let analysed: Vec<(&ConditionReport, &HeadStats)> = r
        .conditions
        .iter()
        .filter_map(|k| k.head_analysis.as_ref().map(|h| (k, h)))
        .collect();
    if analysed.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Which heads matter\n");
    let _ = writeln!(
        md,
        "On the validation split, for the first layer's heads of each multi-head model: importance is `|∂loss/∂gate|` of each head's gate (Michel et al., 2019), normalised to sum to 1 and ranked within each model; *masking* sets one head's gate to 0; the pruning curve (`pruning.png`) masks heads from least to most important. Entropy is the heads' mean attention entropy over that of uniform attention (1 = uniform). Means over seeds; masking columns: the change in accuracy, in points (negative: the head was needed).\n"
    );
    let _ = writeln!(
        md,
        "| condition | importance, most to least | masking the most important head | masking the least important | accuracy with 0, 1, … heads pruned | entropy / uniform |\n|---|---|---|---|---|---|"
    );
    let mean_of = |rows: &[Vec<f64>], scale: f64| -> String {
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..len)
            .map(|i| {
                let v: Vec<f64> = rows.iter().filter_map(|r| r.get(i)).copied().collect();
                format!(
                    "{:.1}",
                    scale * v.iter().sum::<f64>() / v.len().max(1) as f64
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (k, h) in &analysed {
        let entropy = Stat::of(h.entropy_ratio.clone());
        let _ = writeln!(
            md,
            "| {} | {} % | {:+.2} ± {:.2} | {:+.2} ± {:.2} | {} | {:.2} ± {:.2} |",
            k.name,
            mean_of(&h.importance, 100.0),
            -100.0 * h.drop_most.mean,
            100.0 * h.drop_most.std,
            -100.0 * h.drop_least.mean,
            100.0 * h.drop_least.std,
            mean_of(&h.pruning_curves, 100.0),
            entropy.mean,
            entropy.std,
        );
    }
    let _ = writeln!(md);
    for (k, h) in &analysed {
        let uniform = h.nearly_uniform();
        if uniform > 0 {
            let _ = writeln!(
                md,
                "> **Warning:** `{}`: in {uniform} of {} seeds the heads attend nearly uniformly (entropy above {:.0} % of uniform): attention barely selects tokens there, and its head statistics say little.\n",
                k.name,
                h.entropy_ratio.len(),
                100.0 * crate::heads::NEARLY_UNIFORM
            );
        }
    }
}

/// The multi-head condition with the lowest mean validation loss.
pub(super) fn best(r: &Report) -> Option<&ConditionReport> {
    r.conditions
        .iter()
        .filter(|k| k.heads > 1)
        .min_by(|a, b| a.valid_loss.mean.total_cmp(&b.valid_loss.mean))
}

/// Per-class precision, recall and F1 of the best condition, where there are more than two
/// classes (with two, accuracy and macro-F1 in the table say it).
fn classes_section(md: &mut String, r: &Report) {
    let Some(best) = best(r).filter(|_| r.labels.len() > 2) else {
        return;
    };
    let Some(confusion) = &best.valid_confusion else {
        return;
    };
    let _ = writeln!(md, "## Per class: `{}`\n", best.name);
    let _ = writeln!(
        md,
        "The best multi-head condition by validation loss, on the validation split, its seeds' predictions pooled; the confusion matrix is `confusion.png`.\n\n| class | precision | recall | F1 | examples |\n|---|---|---|---|---|"
    );
    for (c, f) in crate::evaluate::per_class(confusion).iter().enumerate() {
        let name = r.labels.get(c).map_or("?", String::as_str);
        let _ = writeln!(
            md,
            "| {name} | {:.1} | {:.1} | {:.1} | {} |",
            100.0 * f.precision,
            100.0 * f.recall,
            100.0 * f.f1,
            f.support
        );
    }
    let _ = writeln!(md);
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

/// Every key of the configuration but those a condition or the command line sets (heads,
/// positions, seed, which dataset and where it is), as `key = value`: a key added to the
/// configuration shows up here without a change to this code.
fn recipe(config: &ExperimentConfig) -> String {
    const PER_CONDITION: [&str; 6] = [
        "heads",
        "positions",
        "seed",
        "dataset",
        "data_dir",
        "download",
    ];
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(config) else {
        return String::new();
    };
    // The sections' keys are unique across sections, so they are named without the section.
    let keys = table.iter().flat_map(|(key, value)| match value {
        toml::Value::Table(section) => section.iter().collect::<Vec<_>>(),
        _ => vec![(key, value)],
    });
    keys.filter(|(key, _)| !PER_CONDITION.contains(&key.as_str()))
        .map(|(key, value)| format!("`{key} = {value}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let seeds = r.conditions.first().map_or(0, |c| c.seeds.len());
    let kept = match r.recipe.train.average {
        1 => "the epoch with the lowest validation loss".to_string(),
        n => format!(
            "the mean of the weights of the {n} epochs with the lowest validation loss (checkpoint averaging; \"best epoch\" is the lowest of them)"
        ),
    };
    let _ = writeln!(md, "# Seed experiment on `{}`\n", r.dataset);
    let _ = writeln!(
        md,
        "Command (re-runs it; finished runs in `runs/` are reused):\n\n```sh\n{}\n```\n",
        r.command
    );
    let _ = writeln!(
        md,
        "Recipe, the same for every condition (AdamW; training stops early after `patience` epochs without a lower validation loss, 0 never): {}. {seeds} seeds per condition. Each run keeps {kept}; its numbers below are measured on that model without dropout. Accuracies in %, mean ± sample standard deviation over seeds.\n",
        recipe(&r.recipe)
    );
    let _ = writeln!(
        md,
        "| condition | heads | positions | layers | params | train loss | train acc | valid loss | valid acc | valid macro-F1 | test acc | best epoch | seconds |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for k in &r.conditions {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} |",
            k.name,
            k.heads,
            k.positions,
            k.layers,
            k.params,
            num(&k.train_loss),
            pct(&k.train_acc),
            num(&k.valid_loss),
            pct(&k.valid_acc),
            k.valid_macro_f1.as_ref().map_or_else(|| "–".into(), pct),
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

    if let Some(b) = &r.baseline {
        let _ = writeln!(
            md,
            "\nBaseline without attention or word order, on the same splits and vocabulary: {} (best epoch {}): valid loss {:.4}, valid acc {:.2} %, valid macro-F1 {:.2} %{}; train acc {:.2} %. One run (it is convex; the seed only orders the examples).\n",
            b.name,
            b.best_epoch,
            b.valid_loss,
            100.0 * b.valid_acc,
            100.0 * b.valid_macro_f1,
            b.test_acc
                .map_or_else(String::new, |t| format!(", test acc {:.2} %", 100.0 * t)),
            100.0 * b.train_acc,
        );
    }
    classes_section(&mut md, r);
    heads_section(&mut md, r);
    let _ = writeln!(md, "## What the numbers say\n");
    for (a, b, what) in contrasts(&r.conditions) {
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
    if let Some(best) = best(r) {
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
    if let (Some(best), Some(b)) = (best(r), &r.baseline) {
        let gap = 100.0 * (best.valid_acc.mean - b.valid_acc);
        let _ = writeln!(
            md,
            "- `{}` vs the bag-of-words baseline: valid acc {gap:+.2} pt ({}).",
            best.name,
            if gap.abs() > 100.0 * best.valid_acc.std {
                "larger than the condition's spread"
            } else {
                "within the condition's spread"
            }
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

    fn condition(name: &str, heads: usize, pe: bool) -> ConditionReport {
        let positions = Positions::from_pe(pe);
        with(name, heads, positions, 1)
    }

    fn with(name: &str, heads: usize, positions: Positions, layers: usize) -> ConditionReport {
        let stat = || Stat::of(vec![0.5]);
        ConditionReport {
            name: name.into(),
            heads,
            positions,
            layers,
            params: 0,
            seeds: vec![1],
            best_epoch: stat(),
            train_loss: stat(),
            train_acc: stat(),
            valid_loss: stat(),
            valid_acc: stat(),
            test_loss: None,
            test_acc: None,
            valid_macro_f1: None,
            test_macro_f1: None,
            valid_confusion: None,
            test_confusion: None,
            seconds: stat(),
            train_samples_per_s: stat(),
            head_focus: None,
            head_analysis: None,
            valid_loss_curves: vec![],
            valid_acc_curves: vec![],
        }
    }

    #[test]
    fn more_than_two_classes_get_per_class_figures_and_a_confusion_matrix() {
        let mut best = with("multi-head", 4, Positions::None, 1);
        best.valid_loss = Stat::of(vec![0.3]);
        best.valid_confusion = Some(vec![vec![5, 1, 0], vec![0, 4, 0], vec![2, 0, 0]]);
        let report = Report {
            dataset: "three".into(),
            labels: vec!["ABBR".into(), "DESC".into(), "NUM".into()],
            command: "experiment compare".into(),
            recipe: ExperimentConfig::default(),
            conditions: vec![with("single-head", 1, Positions::None, 1), best],
            baseline: None,
        };
        let dir = tempfile::tempdir().unwrap();
        super::super::write(&report, dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
        assert!(md.contains("## Per class: `multi-head`"), "{md}");
        // DESC: 4 of 4 found, 4 of 5 predicted right; NUM: never found.
        assert!(md.contains("| DESC | 80.0 | 100.0 | 88.9 | 4 |"), "{md}");
        assert!(md.contains("| NUM | 0.0 | 0.0 | 0.0 | 2 |"), "{md}");
        let png = std::fs::read(dir.path().join("confusion.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        // Two classes: no per-class section, no matrix.
        let two = Report {
            labels: vec!["neg".into(), "pos".into()],
            ..report
        };
        let dir = tempfile::tempdir().unwrap();
        super::super::write(&two, dir.path()).unwrap();
        assert!(!dir.path().join("confusion.png").exists());
    }

    #[test]
    fn contrasts_cover_every_axis() {
        let conditions = [
            with("a", 1, Positions::None, 1),
            with("b", 4, Positions::Rope, 1),
            with("c", 4, Positions::None, 1),
            with("d", 4, Positions::Rope, 2),
            with("e", 1, Positions::Rope, 2),
        ];
        let found: Vec<String> = contrasts(&conditions)
            .into_iter()
            .map(|(a, b, what)| format!("{} vs {}: {what}", a.name, b.name))
            .collect();
        assert_eq!(
            found,
            [
                "c vs a: 4 heads vs 1 head (no positions)",
                "d vs e: 4 heads vs 1 head (rope positions, 2 layers)",
                "b vs c: rope positions vs none (4 heads)",
                "d vs b: 2 layers vs 1 (4 heads, rope positions)",
                "b vs a: 4 heads with rope vs the single-head baseline",
            ]
        );
    }

    #[test]
    fn contrasts_are_found_by_heads_and_positions_not_names() {
        // Names other than the ones `compare` mints: the verdicts must not vanish.
        let conditions = [
            condition("baseline", 1, false),
            condition("four", 4, false),
            condition("four+sin", 4, true),
            condition("one+sin", 1, true),
        ];
        let found: Vec<(String, String, String)> = contrasts(&conditions)
            .into_iter()
            .map(|(a, b, what)| (a.name.clone(), b.name.clone(), what))
            .collect();
        let expected = [
            ("four", "baseline", "4 heads vs 1 head (no positions)"),
            ("four+sin", "one+sin", "4 heads vs 1 head (with positions)"),
            ("four+sin", "four", "positional encoding vs none (4 heads)"),
            (
                "one+sin",
                "baseline",
                "positional encoding vs none (1 head)",
            ),
            (
                "four+sin",
                "baseline",
                "4 heads with positions vs the single-head baseline",
            ),
        ];
        let expected: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, b, w)| (a.to_string(), b.to_string(), w.to_string()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_recipe_line_names_every_key_a_condition_does_not_set() {
        let line = recipe(&ExperimentConfig::default());
        for key in [
            "d_model = 64",
            "batching = \"bucket\"",
            "min_freq = 1",
            "max_vocab = 30000",
        ] {
            assert!(
                line.contains(&format!("`{key}`")),
                "{key} missing from {line}"
            );
        }
        for key in ["heads", "positions", "seed", "dataset"] {
            assert!(!line.contains(&format!("`{key} =")), "{key} in {line}");
        }
    }
}
