//! Any text as a `vocab.json`: a vocabulary that encodes, or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(vocab) = dataset::Vocabulary::from_json(Path::new("vocab.json"), text) {
        assert!(vocab.len() >= 2);
        for id in vocab.encode(text) {
            assert!(id < vocab.len());
        }
    }
});
