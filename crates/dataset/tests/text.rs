//! Vocabulary, batching, statistics and the synthetic generator.

use burn::{data::dataloader::DataLoaderBuilder, data::dataset::InMemDataset, prelude::*};
use dataset::{
    TextBatcher, TextDataset, TextExample, Vocabulary, VocabularyConfig, statistics,
    synthetic::{self, SyntheticConfig},
};

fn small() -> TextDataset {
    TextDataset {
        name: "small".into(),
        labels: vec!["neg".into(), "pos".into()],
        train: vec![
            TextExample::new(0, "a b c"),
            TextExample::new(1, "a b"),
            TextExample::new(1, "a"),
        ],
        validation: vec![TextExample::new(0, "a z z z")],
        test: None,
    }
}

#[test]
fn vocabulary_is_deterministic_and_round_trips() {
    let data = synthetic::generate(&SyntheticConfig {
        train: 500,
        validation: 10,
        test: 10,
        seed: 3,
        ..SyntheticConfig::default()
    });
    let build = || {
        Vocabulary::build(
            data.train.iter().map(|e| e.text.as_str()),
            &VocabularyConfig::default(),
        )
    };
    let vocab = build();
    assert_eq!(vocab, build());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.json");
    vocab.save(&path).unwrap();
    assert_eq!(Vocabulary::load(&path).unwrap(), vocab);
    // A byte-order mark, as an editor saving the file may add, is not part of the JSON.
    let saved = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("\u{feff}{saved}")).unwrap();
    assert_eq!(Vocabulary::load(&path).unwrap(), vocab);

    std::fs::write(&path, "{\"tokens\": 3}").unwrap();
    let err = Vocabulary::load(&path).unwrap_err().to_string();
    assert!(err.contains("vocab.json: not a vocabulary file"), "{err}");
}

#[test]
fn statistics_count_lengths_labels_and_unknown_words() {
    let data = small();
    let vocab = Vocabulary::build(
        data.train.iter().map(|e| e.text.as_str()),
        &VocabularyConfig::default(),
    );
    let stats = statistics(&data, &vocab);
    let train = &stats.splits[0];
    assert_eq!(
        (
            train.examples,
            train.label_counts.clone(),
            train.len_max,
            train.len_p95
        ),
        (3, vec![1, 2], 3, 3)
    );
    assert!((train.len_mean - 2.0).abs() < 1e-12);
    assert_eq!(train.oov_rate, 0.0);
    assert_eq!(stats.splits[1].oov_rate, 0.75);
    let shown = stats.to_string();
    assert!(
        shown.contains("validation") && shown.contains("75.00%"),
        "{shown}"
    );
}

#[test]
fn loader_batches_have_masks_and_seeded_order() {
    let data = small();
    let vocab = Vocabulary::build(
        data.train.iter().map(|e| e.text.as_str()),
        &VocabularyConfig::default(),
    );
    let device = Device::flex();
    let order = |seed| {
        let loader = DataLoaderBuilder::new(TextBatcher::new(8))
            .batch_size(3)
            .shuffle(seed)
            .set_device(device.clone())
            .build(InMemDataset::new(vocab.encode_examples(&data.train)));
        let batch = loader.iter().next().unwrap().unwrap();
        assert_eq!(batch.tokens.dims(), [3, 3]);
        let padding: Vec<bool> = batch
            .mask_padding
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        let tokens: Vec<i64> = batch.tokens.into_data().try_into_vec_as::<i64>().unwrap();
        for (t, p) in tokens.iter().zip(&padding) {
            assert_eq!(*p, *t == 0, "mask must be true exactly on padding");
        }
        tokens
    };
    // The seed decides the order: the same seed repeats it, and some other seed changes it
    // (3 items have 6 orders, so 20 seeds that all agree would mean the seed is ignored).
    assert_eq!(order(5), order(5));
    assert!((0..20).any(|seed| order(seed) != order(5)));
}

#[test]
fn synthetic_is_deterministic_sized_and_follows_its_rule() {
    let config = SyntheticConfig::default();
    let data = synthetic::generate(&config);
    assert_eq!(data.train, synthetic::generate(&config).train);
    assert_ne!(
        data.train[..50],
        synthetic::generate(&SyntheticConfig {
            seed: 1,
            ..config.clone()
        })
        .train[..50]
    );
    assert_eq!(
        (
            data.train.len(),
            data.validation.len(),
            data.test.as_ref().unwrap().len()
        ),
        (20_000, 2_000, 2_000)
    );

    let vocab = Vocabulary::build(
        data.train.iter().map(|e| e.text.as_str()),
        &VocabularyConfig::default(),
    );
    assert!(vocab.len() < 500, "vocabulary {}", vocab.len());
    let mut positives = 0;
    for (_, split) in data.splits() {
        for example in split {
            let words: Vec<&str> = example.text.split_whitespace().collect();
            assert!(words.len() <= 32, "{}", example.text);
            assert_eq!(dataset::tokenize(&example.text).len(), words.len());
            assert_eq!(
                synthetic::label_of(&example.text),
                Some(example.label),
                "{}",
                example.text
            );
            assert!(
                !example.decisive.is_empty() && example.decisive.iter().all(|&p| p < words.len())
            );
            positives += example.label;
        }
    }
    let share = positives as f64 / 24_000.0;
    assert!((0.45..0.55).contains(&share), "positive share {share}");
}

#[test]
fn synthetic_labels_need_order_and_negation() {
    // The share of examples a bag of words cannot decide: two clauses of opposite polarity.
    let data = synthetic::generate(&SyntheticConfig::default());
    let mut negated = 0;
    let mut contrast = 0;
    for e in &data.train {
        let words: Vec<&str> = e.text.split_whitespace().collect();
        if e.decisive
            .iter()
            .any(|&p| ["not", "never", "hardly", "barely"].contains(&words[p]))
        {
            negated += 1;
        }
        if e.decisive
            .iter()
            .any(|&p| ["but", "yet", "though", "however"].contains(&words[p]))
        {
            contrast += 1;
        }
    }
    assert!(
        negated > 5_000 && contrast > 6_000,
        "negated {negated}, contrast {contrast}"
    );
}
