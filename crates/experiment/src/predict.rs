//! `experiment predict`: the label, its probabilities, and where each head looks.

use std::fmt::Write as _;

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
