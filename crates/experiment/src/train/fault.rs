//! Fault injection for the reliability tests, counted in training steps of the process:
//! - `ATTENTION_LAB_FAULT_NAN_AFTER=N` turns the training loss into NaN from the (N+1)-th step
//!   on, the way a diverging run does, so that the guard that stops training is tested end to
//!   end;
//! - `ATTENTION_LAB_FAULT_ABORT_AFTER=N` aborts the process at the start of the (N+1)-th step
//!   (no destructors, no flushing: like a SIGKILL or a power cut), so that a resume test kills
//!   the run at a step it chooses rather than after a guessed delay.

use std::sync::{
    OnceLock,
    atomic::{AtomicUsize, Ordering},
};

/// Counts this step and tells whether its loss must become NaN; aborts first if asked.
pub fn nan_loss_now() -> bool {
    static STEPS: AtomicUsize = AtomicUsize::new(0);
    static NAN_AFTER: OnceLock<Option<usize>> = OnceLock::new();
    static ABORT_AFTER: OnceLock<Option<usize>> = OnceLock::new();
    let step = STEPS.fetch_add(1, Ordering::Relaxed);
    if setting(&ABORT_AFTER, "ATTENTION_LAB_FAULT_ABORT_AFTER").is_some_and(|n| step >= n) {
        std::process::abort();
    }
    setting(&NAN_AFTER, "ATTENTION_LAB_FAULT_NAN_AFTER").is_some_and(|n| step >= n)
}

fn setting(cell: &'static OnceLock<Option<usize>>, name: &str) -> Option<usize> {
    *cell.get_or_init(|| std::env::var(name).ok().and_then(|v| v.parse().ok()))
}
