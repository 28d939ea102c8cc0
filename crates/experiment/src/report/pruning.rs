//! `experiment heads`: one trained run's head analysis as `HEADS.md`, `pruning.png` and
//! `heads.json` in its folder.

use std::sync::Arc;

use anyhow::Context;
use dataset::TextItem;

use crate::{
    data::load_dataset,
    heads::{HeadAnalysis, analyse_heads},
    run_dir::files,
    trained::TrainedRun,
};

/// `experiment heads`: analyses the run's heads on its dataset's validation split (with
/// `random_orders` random pruning orders) and writes `heads.json`, `HEADS.md` and `pruning.png`
/// into the run folder. Returns the Markdown.
pub fn write(run: &TrainedRun, random_orders: usize) -> anyhow::Result<String> {
    let data = load_dataset(&run.config)?;
    let items: Arc<[TextItem]> = run.tokenizer.encode_examples(&data.validation)?.into();
    let Some(analysis) = analyse_heads(
        &run.model,
        &items,
        &run.config.batcher(),
        &run.device,
        random_orders,
    ) else {
        anyhow::bail!(
            "{}: the model has one head; there is nothing to compare it with",
            run.dir.display()
        );
    };
    let dir = &run.dir;
    std::fs::write(
        dir.join(files::HEADS),
        serde_json::to_string_pretty(&analysis)?,
    )
    .with_context(|| format!("{}: cannot write", dir.join(files::HEADS).display()))?;
    let heads = analysis.importance.len();
    let shares: Vec<f64> = analysis
        .pruning_counts
        .iter()
        .map(|&k| k as f64 / heads as f64)
        .collect();
    let title = format!("{}: pruning {heads} heads", data.name);
    super::charts::pruning_shares(
        &dir.join("pruning.png"),
        &title,
        &shares,
        &analysis.pruning_accuracy,
        &analysis.random_pruning_accuracy,
    )?;
    let markdown = heads_markdown(&analysis, run.model.heads_per_layer(), &data.name);
    std::fs::write(dir.join("HEADS.md"), &markdown)
        .with_context(|| format!("{}: cannot write", dir.join("HEADS.md").display()))?;
    Ok(markdown)
}

/// The analysis in words and tables: heads named `layer.head` (1-based) when there are layers.
fn heads_markdown(a: &HeadAnalysis, per_layer: usize, dataset: &str) -> String {
    use std::fmt::Write;
    let heads = a.importance.len();
    let name = |h: usize| {
        if heads > per_layer {
            format!("{}.{}", h / per_layer + 1, h % per_layer + 1)
        } else {
            format!("{}", h + 1)
        }
    };
    let pct = |x: f64| format!("{:.2}", 100.0 * x);
    let mut md = format!(
        "# Which heads matter ({dataset}, validation split)\n\nAccuracy with every head: {} %. {heads} heads{}; importance is `|∂loss/∂gate|` summed over the split and normalised to 1 (Michel et al., 2019).\n\n",
        pct(a.accuracy),
        if heads > per_layer {
            format!(
                " ({} layers × {per_layer}), named layer.head",
                heads / per_layer
            )
        } else {
            String::new()
        }
    );
    md.push_str("## Pruning curve\n\n| heads masked | share | by importance (least first) % | random orders % (mean, min–max) |\n|---|---|---|---|\n");
    for (i, &k) in a.pruning_counts.iter().enumerate() {
        let random: Vec<f64> = a.random_pruning_accuracy.iter().map(|c| c[i]).collect();
        let random = if random.is_empty() {
            "–".to_string()
        } else {
            let mean = random.iter().sum::<f64>() / random.len() as f64;
            let (lo, hi) = random
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            format!("{} ({}–{})", pct(mean), pct(lo), pct(hi))
        };
        let _ = writeln!(
            md,
            "| {k} | {:.0} % | {} | {random} |",
            100.0 * k as f64 / heads as f64,
            pct(a.pruning_accuracy[i])
        );
    }
    let mut ranked: Vec<usize> = (0..heads).collect();
    ranked.sort_by(|&x, &y| a.importance[y].total_cmp(&a.importance[x]));
    md.push_str("\n## Heads, most important first\n\n| head | importance | accuracy with it masked % | change (points) | attention entropy ÷ uniform |\n|---|---|---|---|---|\n");
    for &h in &ranked {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {} | {:+.2} | {:.2} |",
            name(h),
            a.importance[h],
            pct(a.masked_accuracy[h]),
            100.0 * (a.masked_accuracy[h] - a.accuracy),
            a.entropy_ratio.get(h).copied().unwrap_or(f64::NAN)
        );
    }
    md
}
