//! Reading the flat layout of attention-lab 0.1, where every key sat at the top of the file
//! (as in every run folder recorded then), into the sections the keys belong to now.

/// The flat keys a file of 0.1 had, each with the section it was read into.
pub type Moved = Vec<(String, &'static str)>;

/// The sections of attention-lab 0.1's flat keys, which files written then still use (every
/// recorded run's `config.toml`). Frozen: keys added since exist only in their section.
const FLAT_KEYS: [(&str, &[&str]); 3] = [
    (
        "data",
        &[
            "dataset",
            "data_dir",
            "download",
            "max_len",
            "min_freq",
            "max_vocab",
        ],
    ),
    (
        "model",
        &[
            "d_model",
            "heads",
            "pe",
            "dropout",
            "attention_dropout",
            "token_dropout",
            "embedding_std",
        ],
    ),
    (
        "train",
        &[
            "devices",
            "epochs",
            "batch_size",
            "batching",
            "lr",
            "weight_decay",
            "schedule",
            "patience",
            "seed",
        ],
    ),
];

/// Moves each flat key of `table` into its section, returning what was moved. A key given both
/// flat and in its section is an error: which one the user meant is not clear.
pub(crate) fn into_sections(table: &mut toml::Table) -> Result<Moved, String> {
    let mut moved = Vec::new();
    for (section, keys) in FLAT_KEYS {
        for key in keys {
            let Some(value) = table.remove(*key) else {
                continue;
            };
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(inner) = entry else {
                return Err(format!("`{section}` must be a [{section}] section"));
            };
            if inner.contains_key(*key) {
                return Err(format!(
                    "`{key}` is given twice, at the top and under [{section}]; keep the one under [{section}]"
                ));
            }
            inner.insert((*key).to_string(), value);
            moved.push(((*key).to_string(), section));
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::super::ExperimentConfig;

    #[test]
    fn flat_files_of_earlier_versions_read_into_their_sections() {
        let flat =
            "backend = \"flex\"\ndataset = \"sst2\"\nheads = 1\npe = false\nlr = 0.002\nseed = 7\n";
        let (config, moved) = ExperimentConfig::parse(flat).unwrap();
        let mut expected = ExperimentConfig::default();
        expected.data.dataset = "sst2".into();
        expected.model.heads = 1;
        expected.model.pe = false;
        expected.train.lr = 0.002;
        expected.train.seed = 7;
        assert_eq!(config, expected);
        assert_eq!(moved.len(), 5);
        assert_eq!(moved[0], ("dataset".to_string(), "data"));
        // The sectioned text of the same configuration reads the same, and moves nothing.
        let (again, moved) = ExperimentConfig::parse(&config.to_toml()).unwrap();
        assert_eq!((again, moved.len()), (expected, 0));
        // A flat key next to its section still reads; the same key in both places is an error.
        let (mixed, _) = ExperimentConfig::parse("heads = 2\n[model]\npe = false\n").unwrap();
        assert_eq!((mixed.model.heads, mixed.model.pe), (2, false));
        let err = ExperimentConfig::parse("heads = 2\n[model]\nheads = 8\n").unwrap_err();
        assert!(err.contains("`heads` is given twice"), "{err}");
        // A flat misspelt key is still unknown.
        let err = ExperimentConfig::parse("heads = 2\nhedas = 4\n").unwrap_err();
        assert!(err.contains("unknown field `hedas`"), "{err}");
    }
}
