//! `SubwordTokenizer`'s ids against Hugging Face's, from `fixtures/subword/hf_ids.py`: its
//! committed fixture always, and every text of a parity file when `SUBWORD_PARITY` names one.

use std::path::{Path, PathBuf};

use dataset::SubwordTokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/subword")
}

/// The rows of a `hf_ids.py` file: text, max_len, and the ids of HF's slow and fast tokenizers.
fn rows(text: &str) -> Vec<(String, usize, Vec<usize>, Vec<usize>)> {
    let ids = |v: &Value| -> Vec<usize> {
        v.as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_u64().expect("an id") as usize)
            .collect()
    };
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|row| row.get("text").is_some())
        .map(|row| {
            (
                row["text"].as_str().unwrap().to_string(),
                row["max_len"].as_u64().unwrap() as usize,
                ids(&row["slow"]),
                ids(&row["fast"]),
            )
        })
        .collect()
}

/// Every row's ids from ours, equal to both of HF's; the number of rows checked.
fn check(tokenizer_json: &Path, rows: &[(String, usize, Vec<usize>, Vec<usize>)]) -> usize {
    let mut tokenizers = std::collections::HashMap::new();
    for (text, max_len, slow, fast) in rows {
        let tokenizer = tokenizers
            .entry(*max_len)
            .or_insert_with(|| SubwordTokenizer::from_file(tokenizer_json, *max_len).unwrap());
        let ours = tokenizer.encode(text).unwrap().ids;
        assert_eq!(
            &ours, fast,
            "{text:?} at max_len {max_len}: ours vs HF fast"
        );
        assert_eq!(
            &ours, slow,
            "{text:?} at max_len {max_len}: ours vs HF BertTokenizer"
        );
    }
    rows.len()
}

#[test]
fn ids_equal_hf_bert_tokenizers_on_the_fixture_texts() {
    let dir = fixtures();
    let rows = rows(&std::fs::read_to_string(dir.join("expected.jsonl")).unwrap());
    assert_eq!(check(&dir.join("tokenizer.json"), &rows), 40);
    // The fixture covers truncation: some texts are cut at 12, with [SEP] kept last.
    assert!(
        rows.iter()
            .any(|r| r.1 == 12 && r.2.len() == 12 && r.2[11] == 3)
    );
}

#[test]
fn ids_equal_hf_on_every_text_of_the_parity_file_when_given() {
    let Some(path) = std::env::var_os("SUBWORD_PARITY") else {
        eprintln!("SUBWORD_PARITY not set: skipped (see fixtures/subword/hf_ids.py parity)");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let tokenizer = PathBuf::from(header["tokenizer"].as_str().unwrap());
    let n = check(&tokenizer, &rows(&text));
    assert!(n > 0, "no texts in {}", Path::new(&path).display());
    eprintln!("{n} texts: ours equal HF's");
}
