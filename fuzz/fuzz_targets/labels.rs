//! Any bytes as a `labels.txt`: class names by id, or a located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(names) = dataset::parse_labels(Path::new("labels.txt"), bytes) {
        assert!(!names.is_empty());
    }
});
