//! A few values kept by key, the oldest dropped first: the tables and patterns the modules
//! build once per shape and reuse (ALiBi and T5 tables, a pattern's tensors, a module's
//! window).

use std::sync::{Mutex, MutexGuard};

/// At most `N` values by key; when full, a new entry replaces the oldest. Shared by reference
/// (a `static`, or an `Arc` that clones of a module share).
pub(crate) struct Recent<K, V, const N: usize> {
    entries: Mutex<Vec<(K, V)>>,
}

impl<K: PartialEq, V: Clone, const N: usize> Recent<K, V, N> {
    /// Nothing kept yet.
    pub(crate) const fn new() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The value kept for `key`, or `build`'s, then kept. `build` runs outside the lock, so a
    /// slow build holds no other thread up (two threads may build the same value once each).
    pub(crate) fn get_or_insert_with(&self, key: K, build: impl FnOnce() -> V) -> V {
        let kept = self
            .lock()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        if let Some(value) = kept {
            return value;
        }
        let value = build();
        let mut entries = self.lock();
        if entries.len() == N {
            entries.remove(0);
        }
        entries.push((key, value.clone()));
        value
    }

    /// A thread that panicked while holding the lock left whole entries or none.
    fn lock(&self) -> MutexGuard<'_, Vec<(K, V)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: PartialEq, V: Clone, const N: usize> Default for Recent<K, V, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, const N: usize> std::fmt::Debug for Recent<K, V, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.entries.lock().map_or(0, |e| e.len());
        write!(f, "Recent({kept} of {N})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_builds_once_per_key() {
        let recent: Recent<u32, u32, 2> = Recent::new();
        let builds = std::cell::Cell::new(0);
        let get = |key| {
            recent.get_or_insert_with(key, || {
                builds.set(builds.get() + 1);
                key * 10
            })
        };
        assert_eq!((get(1), get(2), get(1)), (10, 20, 10));
        assert_eq!(get(3), 30); // drops key 1, the oldest
        assert_eq!(get(2), 20);
        assert_eq!(get(1), 10); // built again
        assert_eq!(builds.get(), 4);
    }
}
