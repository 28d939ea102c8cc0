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
    pe_to_positions(table, &mut moved)?;
    Ok(moved)
}

/// `pe = true|false` under [model] (0.1's only position switch) becomes `positions =
/// "sinusoidal"|"none"`.
fn pe_to_positions(table: &mut toml::Table, moved: &mut Moved) -> Result<(), String> {
    let Some(toml::Value::Table(model)) = table.get_mut("model") else {
        return Ok(());
    };
    let Some(pe) = model.remove("pe") else {
        return Ok(());
    };
    let toml::Value::Boolean(pe) = pe else {
        return Err(format!("`pe` must be true or false, got {pe}"));
    };
    if model.contains_key("positions") {
        return Err("`pe` and `positions` are both given; keep `positions` (pe = true is positions = \"sinusoidal\")".into());
    }
    let positions = crate::model::Positions::from_pe(pe).to_string();
    model.insert("positions".into(), toml::Value::String(positions));
    moved.push(("pe".into(), "model"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ExperimentConfig;
    use crate::model::Positions;

    #[test]
    fn flat_files_of_earlier_versions_read_into_their_sections() {
        let flat =
            "backend = \"flex\"\ndataset = \"sst2\"\nheads = 1\npe = false\nlr = 0.002\nseed = 7\n";
        let (config, moved) = ExperimentConfig::parse(flat).unwrap();
        let mut expected = ExperimentConfig::default();
        expected.data.dataset = "sst2".into();
        expected.model.heads = 1;
        expected.model.positions = Positions::None;
        expected.train.lr = 0.002;
        expected.train.seed = 7;
        assert_eq!(config, expected);
        assert_eq!(moved.len(), 6); // and `pe`, read as `positions`
        assert_eq!(moved[0], ("dataset".to_string(), "data"));
        // The sectioned text of the same configuration reads the same, and moves nothing.
        let (again, moved) = ExperimentConfig::parse(&config.to_toml()).unwrap();
        assert_eq!((again, moved.len()), (expected, 0));
        // A flat key next to its section still reads; the same key in both places is an error.
        let (mixed, _) = ExperimentConfig::parse("heads = 2\n[model]\npe = false\n").unwrap();
        assert_eq!(
            (mixed.model.heads, mixed.model.positions),
            (2, Positions::None)
        );
        // `pe` in [model] reads as `positions`; with `positions` too it is an error.
        let (pe, _) = ExperimentConfig::parse("[model]\npe = true\n").unwrap();
        assert_eq!(pe.model.positions, Positions::Sinusoidal);
        let err =
            ExperimentConfig::parse("[model]\npe = true\npositions = \"rope\"\n").unwrap_err();
        assert!(err.contains("`pe` and `positions` are both given"), "{err}");
        let err = ExperimentConfig::parse("heads = 2\n[model]\nheads = 8\n").unwrap_err();
        assert!(err.contains("`heads` is given twice"), "{err}");
        // A flat misspelt key is still unknown.
        let err = ExperimentConfig::parse("heads = 2\nhedas = 4\n").unwrap_err();
        assert!(err.contains("unknown field `hedas`"), "{err}");
    }
}
