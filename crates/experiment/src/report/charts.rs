//! PNG charts (plotters, with an embedded DejaVu font so no system fonts are needed) of a
//! comparison: validation curves, final numbers, pruning curves. Heatmaps are in `heatmaps`.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::{ConditionReport, Report};

pub(crate) fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the `dejavu` crate; failure would be a build bug.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Distinct, colour-blind-friendly colours (Okabe–Ito).
const PALETTE: [(u8, u8, u8); 7] = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (0, 0, 0),
];

/// The `i`-th colour of the palette (wrapping).
pub(crate) fn colour(i: usize) -> RGBAColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b).to_rgba()
}

/// How the `i`-th condition of a report is drawn, in every chart alike (a condition missing
/// from one chart leaves its look unused there): the palette's colours with round markers and
/// solid lines, then again with triangles and dashes, then crosses and dashes, so a grid of up
/// to 21 conditions has no two lines alike.
#[derive(Clone, Copy)]
struct Look {
    colour: RGBAColor,
    round: usize,
}

/// One line of a chart: how it looks, its legend, its points.
type Series<'a> = (Look, &'a str, Vec<(f64, f64)>);

fn look(i: usize) -> Look {
    Look {
        colour: colour(i),
        round: i / PALETTE.len(),
    }
}

pub(crate) fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Mean over seeds at each step (seeds that stopped early drop out of later steps); the first
/// step is at `first`.
fn mean_curve(curves: &[Vec<f64>], scale: f64, first: f64) -> Vec<(f64, f64)> {
    let longest = curves.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|e| {
            let values: Vec<f64> = curves.iter().filter_map(|c| c.get(e)).copied().collect();
            (
                e as f64 + first,
                scale * values.iter().sum::<f64>() / values.len() as f64,
            )
        })
        .collect()
}

/// Validation loss and accuracy per epoch, one line per condition (mean over seeds).
pub fn curves(report: &Report, path: &Path) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let title = format!("{}: validation per epoch (mean over seeds)", report.dataset);
    let root = root.titled(&title, ("sans-serif", 24)).map_err(draw_err)?;
    let (left, right) = root.split_horizontally(600);
    // Legends where the curves are not: losses fall, accuracies rise.
    let (upper, lower) = (
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerRight,
    );
    let epochs = |pick: fn(&ConditionReport) -> &Vec<Vec<f64>>, scale| {
        report
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| (look(i), c.name.as_str(), mean_curve(pick(c), scale, 1.0)))
            .collect::<Vec<_>>()
    };
    let loss = epochs(|c| &c.valid_loss_curves, 1.0);
    panel(&left, ("epoch", "loss"), loss, upper)?;
    let accuracy = epochs(|c| &c.valid_acc_curves, 100.0);
    panel(&right, ("epoch", "accuracy (%)"), accuracy, lower)?;
    root.present().map_err(draw_err)
}

/// Validation accuracy as heads are masked from least to most important, one line per
/// multi-head condition (mean over seeds).
pub fn pruning(report: &Report, path: &Path) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (700, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let title = format!("{}: pruning heads, least important first", report.dataset);
    let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_err)?;
    let series = report
        .conditions
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let h = c.head_analysis.as_ref()?;
            let curve = mean_curve(&h.pruning_curves, 100.0, 0.0);
            Some((look(i), c.name.as_str(), curve))
        })
        .collect();
    let axes = ("heads masked", "validation accuracy (%)");
    panel(&root, axes, series, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(draw_err)
}

/// Lines with markers, `(x description, y description)`, x at whole steps.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    (x_desc, label): (&str, &str),
    series: Vec<Series<'_>>,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut lo, mut hi, mut first, mut epochs) = (f64::MAX, f64::MIN, f64::MAX, 1.0f64);
    for &(x, y) in points {
        lo = lo.min(y);
        hi = hi.max(y);
        first = first.min(x);
        epochs = epochs.max(x);
    }
    if first > epochs {
        first = 1.0;
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(first - 0.2..epochs + 0.2, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(label)
        .x_labels((epochs - first) as usize + 2)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    for (look, name, pts) in series {
        let color = look.colour;
        let line = color.stroke_width(2);
        let drawn = if look.round == 0 {
            chart.draw_series(LineSeries::new(pts.clone(), line))
        } else {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, line))
        };
        drawn.map_err(draw_err)?.label(name).legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(3))
                + marker((10, 0), look)
        });
        chart
            .draw_series(
                pts.into_iter()
                    .map(|p| EmptyElement::at(p) + marker((0, 0), look)),
            )
            .map_err(draw_err)?;
    }
    draw_legend(&mut chart, legend)
}

/// Every chart's legend: the series' labels in a white, bordered box at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

/// A condition's marker at `at` (pixels from its anchor).
fn marker<DB: DrawingBackend>(at: (i32, i32), look: Look) -> DynElement<'static, DB, (i32, i32)> {
    let fill = look.colour.filled();
    match look.round % 3 {
        0 => Circle::new(at, 3, fill).into_dyn(),
        1 => TriangleMarker::new(at, 5, fill).into_dyn(),
        _ => Cross::new(at, 4, look.colour.stroke_width(2)).into_dyn(),
    }
}

/// Validation and test accuracy per condition with ± one standard deviation over seeds.
pub fn finals(report: &Report, path: &Path) -> Result<()> {
    fonts();
    let n = report.conditions.len();
    let root = BitMapBackend::new(path, (240 * n as u32 + 200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let bars: Vec<(usize, f64, f64, RGBAColor, &str)> = report
        .conditions
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let mut v = vec![(
                i,
                c.valid_acc.mean,
                c.valid_acc.std,
                colour(0),
                "validation",
            )];
            if let Some(t) = &c.test_acc {
                v.push((i, t.mean, t.std, colour(1), "test"));
            }
            v
        })
        .collect();
    let lo = bars.iter().map(|b| b.1 - b.2).fold(f64::MAX, f64::min) * 100.0;
    let hi = bars.iter().map(|b| b.1 + b.2).fold(f64::MIN, f64::max) * 100.0;
    let (lo, hi) = ((lo - 5.0).max(0.0).floor(), (hi + 2.0).min(100.0).ceil());
    let names: Vec<String> = report.conditions.iter().map(|c| c.name.clone()).collect();
    let title = format!(
        "{}: accuracy of the kept model, mean ± std over seeds (axis cut)",
        report.dataset
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("accuracy (%)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    let per_group = if report.conditions.iter().any(|c| c.test_acc.is_some()) {
        2.0
    } else {
        1.0
    };
    let width = 0.7 / per_group;
    let mut legend_done = [false; 2];
    for &(i, mean, std, color, split) in &bars {
        let slot = if split == "test" { 1.0 } else { 0.0 };
        let x0 = i as f64 - 0.35 + slot * width;
        let (x1, y) = (x0 + width * 0.92, mean * 100.0);
        let rect = chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, lo), (x1, y)],
                color.filled(),
            )))
            .map_err(draw_err)?;
        let which = usize::from(split == "test");
        if !legend_done[which] {
            legend_done[which] = true;
            rect.label(split).legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
            });
        }
        let mid = (x0 + x1) / 2.0;
        let (top, bottom) = ((mean + std) * 100.0, (mean - std) * 100.0);
        let bar = vec![(mid, bottom), (mid, top)];
        let caps = [
            vec![(mid - 0.04, top), (mid + 0.04, top)],
            vec![(mid - 0.04, bottom), (mid + 0.04, bottom)],
        ];
        chart
            .draw_series(
                std::iter::once(bar)
                    .chain(caps)
                    .map(|p| PathElement::new(p, BLACK.stroke_width(2))),
            )
            .map_err(draw_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{y:.1}"),
                (x0, top + (hi - lo) * 0.02),
                ("sans-serif", 14),
            )))
            .map_err(draw_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(draw_err)
}

/// One model's pruning curves (`experiment heads`): validation accuracy against the share of
/// heads masked, by importance and in each random order (their mean drawn thicker).
pub fn pruning_shares(
    path: &Path,
    title: &str,
    shares: &[f64],
    by_importance: &[f64],
    random: &[Vec<f64>],
) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (700, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(draw_err)?;
    let points = |curve: &[f64]| -> Vec<(f64, f64)> {
        shares
            .iter()
            .zip(curve)
            .map(|(&x, &y)| (100.0 * x, 100.0 * y))
            .collect()
    };
    let all = by_importance.iter().chain(random.iter().flatten());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), &y| {
        (lo.min(100.0 * y), hi.max(100.0 * y))
    });
    let (lo, hi) = if lo > hi { (0.0, 100.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(0.5);
    let right = 100.0 * shares.last().copied().unwrap_or(1.0);
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-2.0..right + 2.0, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("heads masked (%)")
        .y_desc("validation accuracy (%)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    let grey = RGBColor(150, 150, 150).to_rgba();
    for (i, curve) in random.iter().enumerate() {
        let drawn = chart
            .draw_series(LineSeries::new(points(curve), grey.stroke_width(1)))
            .map_err(draw_err)?;
        if i == 0 {
            drawn.label("random orders").legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2))
            });
        }
    }
    let mut lines = vec![(colour(0), "least important first", points(by_importance))];
    if !random.is_empty() {
        let mean: Vec<f64> = (0..shares.len())
            .map(|k| random.iter().map(|c| c[k]).sum::<f64>() / random.len() as f64)
            .collect();
        lines.push((colour(1), "random orders, mean", points(&mean)));
    }
    for (colour, name, pts) in lines {
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(draw_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(draw_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_of_a_large_grid_look_different() {
        let looks: Vec<_> = (0..3 * PALETTE.len())
            .map(|i| {
                let l = look(i);
                (l.colour.rgb(), l.round)
            })
            .collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
