//! The dashboard shield, against a dashboard that panics on every call, as burn 0.22.1's does
//! once the user quits with `k`.

use super::*;
use burn::train::LearnerSummary;

/// A dashboard that panics on every call and on drop, as burn 0.22.1's does once the user
/// quits with `k`.
struct Quit;

fn quit() -> ! {
    panic!("dashboard closed")
}

impl Drop for Quit {
    fn drop(&mut self) {
        quit()
    }
}

impl MetricsRendererTraining for Quit {
    fn update_train(&mut self, _: MetricState) {
        quit()
    }
    fn update_valid(&mut self, _: MetricState) {
        quit()
    }
    fn on_train_end(
        &mut self,
        _: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        quit()
    }
}

impl MetricsRendererEvaluation for Quit {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {
        quit()
    }
}

impl TrainingProgressLogger for Quit {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {
        quit()
    }
    fn update_epoch(&mut self, _: usize) {
        quit()
    }
    fn start_split(&mut self, _: &str, _: usize) {
        quit()
    }
    fn update_split(&mut self, _: usize) {
        quit()
    }
    fn end_split(&mut self) {
        quit()
    }
    fn end(&mut self) {
        quit()
    }
    fn log_event_training(&mut self, _: String) {
        quit()
    }
}

impl EvaluationProgressLogger for Quit {
    fn start_global_progress(&mut self, _: usize) {
        quit()
    }
    fn start_test(&mut self, _: &str, _: usize) {
        quit()
    }
    fn update_test_progress(&mut self, _: usize) {
        quit()
    }
    fn end_test(&mut self) {
        quit()
    }
    fn end_global_progress(&mut self) {
        quit()
    }
    fn log_event_evaluation(&mut self, _: String) {
        quit()
    }
}

impl MetricsRenderer for Quit {
    fn manual_close(&mut self) {
        quit()
    }
    fn register_metric(&mut self, _: MetricDefinition) {
        quit()
    }
}

#[test]
fn a_dashboard_that_panics_stops_training_without_a_panic_message() {
    // Stands in for burn's banner hook: counts the panics of this thread that reach it.
    let me = std::thread::current().id();
    let printed = Arc::new(Mutex::new(0));
    let count = printed.clone();
    std::panic::set_hook(Box::new(move |_| {
        if std::thread::current().id() == me {
            *count.lock().unwrap() += 1;
        }
    }));
    let renderer = |interrupter: &Interrupter| {
        LabRenderer::new(Some(Box::new(Quit)), interrupter.clone(), Arc::default())
    };

    // A call during training, then the end of training, then drop.
    let interrupter = Interrupter::new();
    let mut during = renderer(&interrupter);
    during.update_split(1);
    assert!(interrupter.should_stop());
    assert!(during.on_train_end(None).is_ok());
    drop(during);
    // The end of training and drop on a dashboard that was still there.
    let interrupter = Interrupter::new();
    let mut at_end = renderer(&interrupter);
    assert!(at_end.on_train_end(None).is_ok());
    drop(at_end);
    // Drop alone.
    drop(renderer(&Interrupter::new()));

    assert_eq!(
        *printed.lock().unwrap(),
        0,
        "a caught panic reached the hook"
    );
    // A panic outside the renderer still reaches it.
    let _ = std::panic::catch_unwind(|| panic!("elsewhere"));
    let _ = std::panic::take_hook();
    assert_eq!(*printed.lock().unwrap(), 1);
}
