//! The training thread of a CPU backend as the first of its own rayon threads.
//!
//! On flex and ndarray a thread outside rayon hands each parallel operation to rayon's global
//! pool and sleeps until a pool thread has run it, while the pool's threads sleep through every
//! serial operation the training thread runs: at two threads, two pool threads and the training
//! thread take turns on two cores, and each of the hundreds of operations of a step wakes a
//! thread. With several data-parallel workers (burn-train's multi-device strategy runs each
//! device's share of a step on its own thread) both workers' small operations also queued
//! behind each other in the one pool: two workers at two threads trained no faster than one.
//! Here the first training step on a thread makes that thread the first of a private pool of
//! `threads_per_worker` threads, as OpenMP makes the calling thread the first of its team: its
//! operations run on it and its pool, and workers run side by side. One worker at two threads
//! fine-tunes MiniLM-L6 1.16× faster so, one thread 1.12× (BENCHMARKS.md).

use std::cell::OnceCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rayon threads for each training thread; 0 (the default) leaves every thread on the global
/// pool, as on a GPU backend.
static THREADS_PER_WORKER: AtomicUsize = AtomicUsize::new(0);

/// Gives each training thread its own pool of `threads` rayon threads (the calling thread
/// included); 0 turns this off.
pub fn set_threads_per_worker(threads: usize) {
    THREADS_PER_WORKER.store(threads, Ordering::Relaxed);
}

/// The rayon threads of a CPU backend shared out over `workers` data-parallel workers (at least
/// one each; one worker gets them all).
pub fn threads_per_worker(workers: usize) -> usize {
    (rayon::current_num_threads() / workers.max(1)).max(1)
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
    fn threads_are_shared_out_and_one_worker_gets_them_all() {
        let global = rayon::current_num_threads();
        assert_eq!(threads_per_worker(1), global);
        assert_eq!(threads_per_worker(2), (global / 2).max(1));
        assert_eq!(threads_per_worker(global * 4), 1);
    }
}
