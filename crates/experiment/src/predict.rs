//! `experiment predict`: the label, its probabilities, and where each head looks.

use std::{fmt::Write as _, path::Path};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::trained::{Prediction, TrainedRun};

/// Text report of one prediction: label and probabilities, then per token and per head the
/// attention the token receives (mean over queries) as a bar; `colour` adds ANSI colours.
pub fn describe(run: &TrainedRun, text: &str, p: &Prediction, colour: bool) -> String {
    let mut out = String::new();
    let label = p.label();
    let probs: Vec<String> = run
        .labels
        .iter()
        .zip(&p.probabilities)
        .map(|(l, v)| format!("{l} {v:.3}"))
        .collect();
    let _ = writeln!(
        out,
        "{text:?}\n  → {} ({:.1}%)   [{}]",
        run.labels[label],
        100.0 * p.probabilities[label],
        probs.join(", ")
    );
    let heads = p.weights.len();
    let received: Vec<Vec<f32>> = (0..heads).map(|h| p.received(h)).collect();
    let width = p
        .tokens
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let header: Vec<String> = (0..heads)
        .map(|h| format!("{:<17}", format!("head {h}")))
        .collect();
    let _ = writeln!(out, "  {:<width$}  {}", "token", header.join(" "));
    for (i, token) in p.tokens.iter().enumerate() {
        let cells: Vec<String> = (0..heads)
            .map(|h| {
                let max = received[h]
                    .iter()
                    .copied()
                    .fold(f32::MIN, f32::max)
                    .max(1e-9);
                let share = received[h][i] / max;
                let bar = "█".repeat((share * 10.0).round() as usize);
                let cell = format!("{bar:<10} {:.3}", received[h][i]);
                if colour {
                    // 256-colour grey ramp by relative weight; the strongest in yellow.
                    let code = if share > 0.75 {
                        226
                    } else {
                        236 + (share * 19.0).round() as u8
                    };
                    format!("\x1b[38;5;{code}m{cell}\x1b[0m")
                } else {
                    cell
                }
            })
            .collect();
        let _ = writeln!(out, "  {token:<width$}  {}", cells.join(" "));
    }
    out
}

/// Heatmaps: heads × tokens (attention received), and token × token for `head`.
pub fn heatmap(p: &Prediction, head: usize, path: &Path) -> Result<()> {
    let draw_err =
        |e: &dyn std::fmt::Display| anyhow!("{}: drawing the heatmap: {e}", path.display());
    if head >= p.weights.len() {
        return Err(anyhow!(
            "--head {head}: the model has {} head(s), numbered from 0",
            p.weights.len()
        ));
    }
    crate::charts::fonts();
    let n = p.tokens.len();
    let heads = p.weights.len();
    let cell = 48u32;
    let (w, h) = (
        (n as u32 * cell + 160).max(500),
        (heads as u32 + n as u32) * cell + 260,
    );
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let (top, bottom) = root.split_vertically(heads as u32 * cell + 110);
    let tokens = p.tokens.clone();
    let grid = |area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
                title: &str,
                rows: Vec<(String, Vec<f32>)>|
     -> Result<()> {
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let max = rows
            .iter()
            .flat_map(|r| r.1.iter())
            .copied()
            .fold(1e-9f32, f32::max);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(50)
            .y_label_area_size(110)
            .build_cartesian_2d(
                (0..n.saturating_sub(1)).into_segmented(),
                (0..rows.len().saturating_sub(1)).into_segmented(),
            )
            .map_err(|e| draw_err(&e))?;
        // Segmented axes put each label at the centre of its cell.
        let centre = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => Some(*i),
            _ => None,
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(rows.len())
            .x_label_formatter(&|x| {
                centre(x)
                    .and_then(|i| tokens.get(i).cloned())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| {
                centre(y)
                    .and_then(|i| labels.get(rows.len() - 1 - i).cloned())
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_err(&e))?;
        let cells = rows.iter().enumerate().flat_map(|(r, (_, values))| {
            let y = rows.len() - 1 - r;
            values.iter().enumerate().map(move |(x, v)| {
                let t = f64::from(v / max);
                let colour = RGBColor(
                    255 - (t * 200.0) as u8,
                    255 - (t * 120.0) as u8,
                    255 - (t * 30.0) as u8,
                );
                let corner = |x, y| (SegmentValue::Exact(x), SegmentValue::Exact(y));
                Rectangle::new([corner(x, y), corner(x + 1, y + 1)], colour.filled())
            })
        });
        chart.draw_series(cells).map_err(|e| draw_err(&e))?;
        Ok(())
    };
    let received: Vec<(String, Vec<f32>)> = (0..heads)
        .map(|k| (format!("head {k}"), p.received(k)))
        .collect();
    grid(
        &top,
        "attention each token receives, per head (mean over queries)",
        received,
    )?;
    let rows: Vec<(String, Vec<f32>)> = p
        .tokens
        .iter()
        .cloned()
        .zip(p.weights[head].iter().cloned())
        .collect();
    grid(
        &bottom,
        &format!("head {head}: query (row) attends to key (column)"),
        rows,
    )?;
    root.present().map_err(|e| draw_err(&e))
}
