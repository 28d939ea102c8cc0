//! Any bytes as a `.csv` split: the parser returns examples or a located error, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let options = dataset::FolderOptions::default();
    if let Ok(pairs) = dataset::parse_split(Path::new("train.csv"), bytes, &options) {
        assert!(!pairs.is_empty(), "an accepted split has examples");
        for (_, text) in &pairs {
            assert!(!text.trim().is_empty(), "an accepted text is not blank");
            let _ = dataset::tokenize(text);
        }
    }
});
