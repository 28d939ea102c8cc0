//! What the user sees while training: burn's terminal dashboard, or a compact log.
//!
//! [`LabRenderer`] sits between the learner and the display. It measures training throughput,
//! prints the compact log when there is no dashboard (one line per epoch, plus a progress line
//! every few seconds inside long epochs, instead of burn's line per batch), and shields the
//! run from burn 0.22.1's dashboard panicking when the user quits with `q` then `k`
//! (upstream issue #4657): the panic is caught, training stops cleanly, and the last
//! checkpoint stays.

use std::{
    cell::Cell,
    collections::HashMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use burn::train::{
    Interrupter,
    logger::{EvaluationProgressLogger, TrainingProgressLogger},
    metric::{ClassReduction, FBetaScoreMetric, Metric, MetricDefinition, MetricId, NumericEntry},
    renderer::{
        EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
        MetricsRendererTraining,
    },
};

/// Training-split timing, shared with the caller to compute samples per second.
#[derive(Debug, Default, Clone)]
pub struct Throughput {
    /// Training examples processed.
    pub items: usize,
    /// Time spent in training splits.
    pub seconds: f64,
    /// Training samples/s of each epoch, in order: the first one carries a GPU backend's kernel
    /// compilation and autotuning, the later ones are the steady state.
    pub per_epoch: Vec<f64>,
}

#[derive(Default)]
struct Split {
    name: String,
    total: usize,
    done: usize,
    started: Option<Instant>,
    last_print: Option<Instant>,
}

/// The validation macro-F1 the learner computes (burn-train's metric); the compact log finds
/// it by this metric's name.
pub fn macro_f1() -> FBetaScoreMetric {
    FBetaScoreMetric::multiclass(1.0, 1, ClassReduction::Macro)
}

/// See the module documentation.
pub struct LabRenderer {
    dashboard: Option<Box<dyn MetricsRenderer>>,
    interrupter: Interrupter,
    names: HashMap<MetricId, String>,
    /// Running (sum, count) of each metric over the current split, and its last epoch value.
    train: HashMap<String, (f64, usize)>,
    valid: HashMap<String, (f64, usize)>,
    epoch: usize,
    epochs: usize,
    split: Split,
    epoch_started: Option<Instant>,
    throughput: Arc<Mutex<Throughput>>,
    divergence: Arc<Mutex<Option<String>>>,
    progress_every: Duration,
}

impl LabRenderer {
    /// `dashboard`: burn's TUI when drawing one, else `None` for the compact log.
    pub fn new(
        dashboard: Option<Box<dyn MetricsRenderer>>,
        interrupter: Interrupter,
        throughput: Arc<Mutex<Throughput>>,
    ) -> Self {
        Self {
            dashboard,
            interrupter,
            names: HashMap::new(),
            train: HashMap::new(),
            valid: HashMap::new(),
            epoch: 0,
            epochs: 0,
            split: Split::default(),
            epoch_started: None,
            throughput,
            divergence: Arc::default(),
            progress_every: Duration::from_secs(5),
        }
    }

    /// Set, with what happened, when a training loss is NaN or infinite; the renderer then
    /// stops training, so the epoch is neither validated nor checkpointed.
    pub fn divergence(&self) -> Arc<Mutex<Option<String>>> {
        self.divergence.clone()
    }

    /// Calls the dashboard, turning its quit panic into a clean stop; `None` when there is no
    /// dashboard (or no longer one).
    fn dashboard<R>(&mut self, call: impl FnOnce(&mut dyn MetricsRenderer) -> R) -> Option<R> {
        let dashboard = self.dashboard.as_mut()?;
        let result = quietly(|| call(dashboard.as_mut()));
        if result.is_none() {
            // The dashboard is gone (it restored the terminal while unwinding). Its `Drop` sends
            // one more event, which panics the same way, so drop it under the same guard.
            let dead = self.dashboard.take();
            quietly(move || drop(dead));
            self.interrupter.stop(Some("stopped from the dashboard"));
            // The dashboard's render thread restores the terminal in its panic hook, racing this
            // thread: a message printed first went to the alternate screen and vanished.
            restore_terminal();
            eprintln!(
                "training stopped from the dashboard; the last completed epoch's checkpoint is kept"
            );
        }
        result
    }

    fn record(&mut self, state: &MetricState, valid: bool) {
        if let MetricState::Numeric(entry, Some(value)) = state
            && let Some(name) = self.names.get(&entry.metric_id).cloned()
        {
            let latest = match value {
                NumericEntry::Aggregated {
                    aggregated_value, ..
                } => *aggregated_value,
                NumericEntry::Final(v) | NumericEntry::Value(v) => *v,
            };
            if !valid && name == "Loss" && !latest.is_finite() {
                self.diverged(latest);
            }
            let map = if valid {
                &mut self.valid
            } else {
                &mut self.train
            };
            let running = map.entry(name).or_insert((0.0, 0));
            match value {
                NumericEntry::Aggregated {
                    aggregated_value,
                    count,
                } => {
                    running.0 += aggregated_value * *count as f64;
                    running.1 += count;
                }
                // The epoch's authoritative mean replaces the running one.
                NumericEntry::Final(v) | NumericEntry::Value(v) => *running = (*v, 1),
            }
        }
    }

    fn diverged(&self, loss: f64) {
        let mut divergence = self.divergence.lock().unwrap();
        if divergence.is_none() {
            *divergence = Some(format!(
                "the training loss became {loss} in epoch {} (after {} examples)",
                self.epoch, self.split.done
            ));
            self.interrupter
                .stop(Some("the training loss is not finite"));
        }
    }

    fn logging(&self) -> bool {
        self.dashboard.is_none()
    }

    fn metrics(values: &HashMap<String, (f64, usize)>) -> String {
        let mean = |name| {
            values
                .get(name)
                .filter(|(_, n)| *n > 0)
                .map(|(sum, n)| sum / *n as f64)
        };
        let loss = mean("Loss").map_or_else(String::new, |l| format!("loss {l:.4}"));
        let acc = mean("Accuracy").map_or_else(String::new, |a| format!(" acc {a:.2}%"));
        let f1_name = macro_f1().name();
        let f1 = mean(f1_name.as_str()).map_or_else(String::new, |f| format!(" macro-F1 {f:.2}%"));
        format!("{loss}{acc}{f1}")
    }
}

/// Leaves the dashboard's raw mode and alternate screen; harmless when already left.
#[cfg(feature = "tui")]
fn restore_terminal() {
    use crossterm::{
        event::DisableMouseCapture,
        execute,
        terminal::{LeaveAlternateScreen, disable_raw_mode},
    };
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), DisableMouseCapture, LeaveAlternateScreen);
}

#[cfg(not(feature = "tui"))]
fn restore_terminal() {}

impl Drop for LabRenderer {
    fn drop(&mut self) {
        let dashboard = self.dashboard.take();
        quietly(move || drop(dashboard));
    }
}

thread_local! {
    /// Set while this thread runs a [`quietly`] call.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, catching a panic without printing it. burn's application logger installs a panic
/// hook that prints an `=== PANIC ===` banner for every panic, caught ones included, so a clean
/// stop from the dashboard looked like a crash. The hook installed here, once, wraps it (burn
/// installs its own at the start of `launch`, before any renderer call): silent for a panic on
/// a thread inside this function, and handing every other panic on.
fn quietly<R>(f: impl FnOnce() -> R) -> Option<R> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                next(info);
            }
        }));
    });
    let outer = QUIET.with(|quiet| quiet.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(outer));
    result.ok()
}

impl MetricsRendererTraining for LabRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(&state, false);
        self.dashboard(|d| d.update_train(state));
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(&state, true);
        self.dashboard(|d| d.update_valid(state));
    }

    fn on_train_end(
        &mut self,
        summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.dashboard(|d| d.on_train_end(summary))
            .unwrap_or(Ok(()))
    }
}

impl MetricsRendererEvaluation for LabRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.dashboard(|d| d.update_test(name, state));
    }
}

impl TrainingProgressLogger for LabRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        label: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
        self.dashboard(|d| d.start(total_epochs, starting_epoch, total_items, label));
    }

    fn update_epoch(&mut self, epoch: usize) {
        // Called when epoch `epoch` (1-based) has ended.
        self.epoch = epoch + 1;
        self.dashboard(|d| d.update_epoch(epoch));
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        let now = Instant::now();
        if split == "train" {
            self.epoch_started = Some(now);
            self.train.clear();
        } else {
            self.valid.clear();
        }
        self.split = Split {
            name: split.to_string(),
            total: total_items,
            done: 0,
            started: Some(now),
            last_print: Some(now),
        };
        self.dashboard(|d| d.start_split(split, total_items));
    }

    fn update_split(&mut self, items_processed: usize) {
        self.split.done = items_processed;
        if self.logging()
            && let Some(last) = self.split.last_print
            && last.elapsed() >= self.progress_every
        {
            self.split.last_print = Some(Instant::now());
            let elapsed = self
                .split
                .started
                .map_or(0.0, |s| s.elapsed().as_secs_f64());
            let rate = items_processed as f64 / elapsed.max(1e-9);
            let values = if self.split.name == "train" {
                &self.train
            } else {
                &self.valid
            };
            println!(
                "  epoch {}/{} {:<5} {:>3}% ({}/{})  {}  {:.0} samples/s",
                self.epoch,
                self.epochs,
                self.split.name,
                100 * items_processed / self.split.total.max(1),
                items_processed,
                self.split.total,
                Self::metrics(values),
                rate
            );
        }
        self.dashboard(|d| d.update_split(items_processed));
    }

    fn end_split(&mut self) {
        if let Some(started) = self.split.started
            && self.split.name == "train"
        {
            let mut throughput = self.throughput.lock().unwrap();
            let seconds = started.elapsed().as_secs_f64();
            throughput.items += self.split.done;
            throughput.seconds += seconds;
            throughput
                .per_epoch
                .push(self.split.done as f64 / seconds.max(1e-9));
        }
        if self.logging() && self.split.name != "train" {
            let seconds = self
                .epoch_started
                .map_or(0.0, |s| s.elapsed().as_secs_f64());
            println!(
                "epoch {}/{}  train {}  valid {}  ({seconds:.1} s)",
                self.epoch,
                self.epochs,
                Self::metrics(&self.train),
                Self::metrics(&self.valid)
            );
        }
        self.dashboard(|d| d.end_split());
    }

    fn end(&mut self) {
        self.dashboard(|d| d.end());
    }

    fn log_event_training(&mut self, event: String) {
        // burn sends "Iteration" after every batch; the log has its own progress lines.
        if self.logging() && event != "Iteration" {
            println!("{event}");
        }
        self.dashboard(|d| d.log_event_training(event));
    }
}

impl EvaluationProgressLogger for LabRenderer {
    fn start_global_progress(&mut self, total_tests: usize) {
        self.dashboard(|d| d.start_global_progress(total_tests));
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.dashboard(|d| d.start_test(name, total_items));
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.dashboard(|d| d.update_test_progress(items_processed));
    }

    fn end_test(&mut self) {
        self.dashboard(|d| d.end_test());
    }

    fn end_global_progress(&mut self) {
        self.dashboard(|d| d.end_global_progress());
    }

    fn log_event_evaluation(&mut self, event: String) {
        self.dashboard(|d| d.log_event_evaluation(event));
    }
}

impl MetricsRenderer for LabRenderer {
    fn manual_close(&mut self) {
        self.dashboard(|d| d.manual_close());
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
        self.dashboard(|d| d.register_metric(definition));
    }
}

#[cfg(test)]
mod tests;
