//! Heatmaps: a prediction's attention (heads × tokens, token × token) and a confusion matrix.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::charts::{draw_err, fonts};
use crate::trained::Prediction;

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
    fonts();
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

/// A confusion matrix: rows are the true classes, columns the predicted ones, each cell the
/// count, shaded by its share of the row (the recall of the diagonal).
pub fn confusion(matrix: &[Vec<usize>], labels: &[String], title: &str, path: &Path) -> Result<()> {
    fonts();
    let n = matrix.len();
    let cell = 70u32;
    let size = (n as u32 * cell + 220, n as u32 * cell + 200);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let name = |i: usize| labels.get(i).cloned().unwrap_or_else(|| i.to_string());
    let centre = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => Some(*i),
        _ => None,
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(120)
        .build_cartesian_2d(
            (0..n.saturating_sub(1)).into_segmented(),
            (0..n.saturating_sub(1)).into_segmented(),
        )
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_desc("predicted")
        .y_desc("true")
        .x_label_formatter(&|x| centre(x).map(name).unwrap_or_default())
        // Row 0 at the top.
        .y_label_formatter(&|y| centre(y).map(|i| name(n - 1 - i)).unwrap_or_default())
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_err)?;
    let corner = |x, y| (SegmentValue::Exact(x), SegmentValue::Exact(y));
    for (t, row) in matrix.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        let y = n - 1 - t;
        for (p, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let shade = RGBColor(
                255 - (share * 200.0) as u8,
                255 - (share * 120.0) as u8,
                255 - (share * 30.0) as u8,
            );
            chart
                .draw_series([Rectangle::new(
                    [corner(p, y), corner(p + 1, y + 1)],
                    shade.filled(),
                )])
                .map_err(draw_err)?;
            let colour = if share > 0.6 { WHITE } else { BLACK };
            chart
                .draw_series([Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    ("sans-serif", 16).into_font().color(&colour),
                )])
                .map_err(draw_err)?;
        }
    }
    root.present().map_err(draw_err)
}
