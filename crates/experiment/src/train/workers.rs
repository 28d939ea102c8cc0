//! Data-parallel workers on a CPU backend, each with its own rayon threads.
//!
//! burn-train's multi-device strategy runs every device's share of a step on its own thread. On
//! flex and ndarray those threads hand each operation to rayon's one global pool, where both
//! workers' small operations queue behind each other and neither worker runs on a core of its
//! own: two workers at two threads trained no faster than one. Here the first training step on
//! a worker thread makes that thread the first of a private pool of `threads_per_worker`
//! threads, so its operations run on it (and its pool) and the workers run side by side.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rayon threads for each data-parallel worker; 0 (the default) leaves every thread on the
/// global pool, as with one device or a GPU backend.
static THREADS_PER_WORKER: AtomicUsize = AtomicUsize::new(0);

/// Gives each data-parallel worker its own pool of `threads` rayon threads (the calling thread
/// included); 0 turns this off.
pub fn set_threads_per_worker(threads: usize) {
    THREADS_PER_WORKER.store(threads, Ordering::Relaxed);
}

/// The rayon threads of a CPU backend shared out over `workers` data-parallel workers (at least
/// one each), or 0 when there is one worker and nothing to share out.
pub fn threads_per_worker(workers: usize) -> usize {
    if workers <= 1 {
        0
    } else {
        (rayon::current_num_threads() / workers).max(1)
    }
}

/// Makes the calling thread the first thread of its own rayon pool, once per thread, if
/// [`set_threads_per_worker`] asked for it. A thread that is already a rayon thread is left
/// alone.
pub fn enter() {
    thread_local! {
        // Kept for the thread's life: the pool must outlive every operation the thread runs.
        static POOL: OnceCell<Option<rayon::ThreadPool>> = const { OnceCell::new() };
    }
    let threads = THREADS_PER_WORKER.load(Ordering::Relaxed);
    if threads == 0 {
        return;
    }
    POOL.with(|pool| {
        pool.get_or_init(|| {
            if rayon::current_thread_index().is_some() {
                return None;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .use_current_thread()
                .thread_name(|i| format!("worker-rayon-{i}"))
                .build()
                .ok()
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_thread_gets_its_own_pool_once() {
        set_threads_per_worker(2);
        let (index, threads, again) = std::thread::spawn(|| {
            enter();
            let first = (rayon::current_thread_index(), rayon::current_num_threads());
            enter();
            (first.0, first.1, rayon::current_num_threads())
        })
        .join()
        .unwrap();
        set_threads_per_worker(0);
        // The calling thread is thread 0 of a pool of two, and a second call keeps that pool.
        assert_eq!((index, threads, again), (Some(0), 2, 2));
    }

    #[test]
    fn threads_are_shared_out_and_one_worker_keeps_the_global_pool() {
        assert_eq!(threads_per_worker(1), 0);
        let global = rayon::current_num_threads();
        assert_eq!(threads_per_worker(2), (global / 2).max(1));
        assert_eq!(threads_per_worker(global * 4), 1);
    }
}
