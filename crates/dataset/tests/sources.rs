//! Every source and every kind of bad input, on fixture files the tests write themselves.

use std::path::Path;

use dataset::{DataError, FolderOptions, TextExample, load_folder};

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// A valid folder; each test then breaks one thing.
fn folder(train: &str, validation: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.tsv", train.as_bytes());
    write(dir.path(), "validation.tsv", validation.as_bytes());
    dir
}

fn error(dir: &Path) -> String {
    load_folder(dir, &FolderOptions::default())
        .unwrap_err()
        .to_string()
}

/// Loading `dir` fails with a message that ends with `expected` (the part after the path).
fn assert_error(dir: &Path, expected: &str) {
    let error = error(dir);
    assert!(error.ends_with(expected), "{error}");
}

#[test]
fn tsv_folder_with_labels_and_optional_test() {
    let dir = folder("0\tbad film\n1\tgood film\r\n\n", "1\tnice\n");
    write(dir.path(), "labels.txt", b"0\tnegative\n1\tpositive\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.labels, ["negative", "positive"]);
    assert_eq!(
        data.train,
        [
            TextExample::new(0, "bad film"),
            TextExample::new(1, "good film")
        ]
    );
    assert!(data.test.is_none());

    write(dir.path(), "test.tsv", b"positive\tby name\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.test.unwrap(), [TextExample::new(1, "by name")]);
}

#[test]
fn labels_are_inferred_without_labels_txt() {
    let dir = folder("0\ta\n2\tb\n", "1\tc\n");
    assert_eq!(
        load_folder(dir.path(), &FolderOptions::default())
            .unwrap()
            .labels,
        ["0", "1", "2"]
    );
}

#[test]
fn csv_with_chosen_columns_and_named_labels() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.csv",
        b"id,title,class\n1,\"Stocks, bonds\",business\n2,Goal!,sports\n",
    );
    write(
        dir.path(),
        "validation.csv",
        b"id,title,class\n3,Match report,sports\n",
    );
    let options = FolderOptions {
        text_column: "title".into(),
        label_column: "class".into(),
    };
    let data = load_folder(dir.path(), &options).unwrap();
    assert_eq!(data.labels, ["business", "sports"]);
    assert_eq!(data.train[0], TextExample::new(0, "Stocks, bonds"));
    assert_eq!(data.validation[0].label, 1);

    let err = load_folder(dir.path(), &FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("train.csv:1: no column `text` in the header (columns: id, title, class)"),
        "{err}"
    );
}

#[test]
fn json_lines_with_ids_or_names() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        b"{\"text\": \"fine\", \"label\": 1}\n{\"text\": \"poor\", \"label\": \"negative\"}\n",
    );
    write(
        dir.path(),
        "validation.jsonl",
        b"{\"text\": \"ok\", \"label\": 1}\n",
    );
    write(dir.path(), "labels.txt", b"0\tnegative\n1\tpositive\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(
        data.train,
        [TextExample::new(1, "fine"), TextExample::new(0, "poor")]
    );

    write(dir.path(), "validation.jsonl", b"{\"text\": \"ok\"}\n");
    assert!(
        error(dir.path())
            .ends_with("validation.jsonl:1: no `label` (an integer id or a class name)")
    );
    write(dir.path(), "validation.jsonl", b"{\"text\": \"ok\", \n");
    assert!(error(dir.path()).contains("validation.jsonl:1: invalid JSON"));
}

fn gzip(content: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(content.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_compressed_splits_load_like_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.tsv.gz",
        &gzip("0\tbad film\n1\tgood film\n"),
    );
    write(
        dir.path(),
        "validation.jsonl.gz",
        &gzip("{\"label\": 1, \"text\": \"nice\"}\n"),
    );
    write(dir.path(), "test.csv", b"text,label\nfine,1\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train[1], TextExample::new(1, "good film"));
    assert_eq!(data.validation, [TextExample::new(1, "nice")]);
    assert_eq!(data.test.unwrap(), [TextExample::new(1, "fine")]);

    // Errors name the compressed file and the line inside it.
    write(dir.path(), "train.tsv.gz", &gzip("0\tok\nno tab here\n"));
    assert_error(
        dir.path(),
        "train.tsv.gz:2: no TAB: expected `label<TAB>text`",
    );
    write(dir.path(), "train.tsv.gz", b"plain text, not gzip");
    assert!(
        error(dir.path()).contains("train.tsv.gz: not a readable gzip file"),
        "{}",
        error(dir.path())
    );
    write(dir.path(), "train.tsv", b"0\tx\n");
    assert!(
        error(dir.path()).contains("more than one train file (train.tsv, train.tsv.gz)"),
        "{}",
        error(dir.path())
    );
}

/// A UTF-8 byte-order mark, as Windows editors write it.
const BOM: &str = "\u{feff}";

/// A byte-order mark at the start of a file is not part of its first line: in every format,
/// plain or gzipped, and in `labels.txt`. (It used to become part of a TSV split's first label,
/// `\u{feff}0`, a class name among numbers; the csv crate skips it itself, so that case guards.)
#[test]
fn a_byte_order_mark_is_not_part_of_the_first_line() {
    let splits = [
        ("tsv", "0\tbad film\n1\tgood film\n", "1\tnice\n"),
        (
            "csv",
            "text,label\nbad film,0\ngood film,1\n",
            "text,label\nnice,1\n",
        ),
        (
            "jsonl",
            "{\"text\": \"bad film\", \"label\": 0}\n{\"text\": \"good film\", \"label\": 1}\n",
            "{\"text\": \"nice\", \"label\": 1}\n",
        ),
    ];
    for (ext, train, validation) in splits {
        for gzipped in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let suffix = if gzipped { ".gz" } else { "" };
            for (split, content) in [("train", train), ("validation", validation)] {
                let content = format!("{BOM}{content}");
                let bytes = if gzipped {
                    gzip(&content)
                } else {
                    content.into_bytes()
                };
                write(dir.path(), &format!("{split}.{ext}{suffix}"), &bytes);
            }
            let case = format!("{ext}{suffix}");
            let data = load_folder(dir.path(), &FolderOptions::default())
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(data.labels, ["0", "1"], "{case}");
            assert_eq!(data.train[0], TextExample::new(0, "bad film"), "{case}");
            assert_eq!(data.validation, [TextExample::new(1, "nice")], "{case}");

            write(
                dir.path(),
                "labels.txt",
                format!("{BOM}0\tnegative\n1\tpositive\n").as_bytes(),
            );
            let data = load_folder(dir.path(), &FolderOptions::default())
                .unwrap_or_else(|e| panic!("{case} with labels.txt: {e}"));
            assert_eq!(data.labels, ["negative", "positive"], "{case}");
        }
    }
    // Only a leading mark is dropped: one inside a text is the text's.
    let dir = folder(&format!("{BOM}0\ta{BOM}b\n1\tc\n"), "1\td\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train[0].text, format!("a{BOM}b"));
}

#[test]
fn a_dataset_written_as_tsv_loads_back_the_same() {
    let data = dataset::synthetic::generate(&dataset::synthetic::SyntheticConfig {
        train: 50,
        validation: 5,
        test: 5,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    data.write_tsv(&out).unwrap();
    let back = load_folder(&out, &FolderOptions::default()).unwrap();
    assert_eq!(back.labels, data.labels);
    for (a, b) in back.splits().iter().zip(data.splits()) {
        let pairs = |e: &[TextExample]| -> Vec<(usize, String)> {
            e.iter().map(|e| (e.label, e.text.clone())).collect()
        };
        assert_eq!(pairs(a.1), pairs(b.1), "{}", a.0);
    }
    let err = data.write_tsv(&out).unwrap_err().to_string();
    assert!(err.contains("folder is not empty"), "{err}");
}

#[test]
fn missing_folder_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(
        error(&missing).ends_with(
            "nope: no such folder; expected a folder holding train.tsv and validation.tsv"
        )
    );
    assert_error(
        dir.path(),
        ": no train.tsv, train.csv or train.jsonl in this folder",
    );
    write(dir.path(), "train.tsv", b"0\tx\n");
    assert!(error(dir.path()).contains("no validation.tsv"));
    write(dir.path(), "train.csv", b"text,label\nx,0\n");
    assert!(
        error(dir.path()).contains("more than one train file (train.tsv, train.csv); keep one")
    );
}

#[test]
fn each_bad_line_names_file_and_line() {
    let cases: [(&[u8], &str); 6] = [
        (
            b"0\tok\n1 no tab here\n",
            "train.tsv:2: no TAB: expected `label<TAB>text`",
        ),
        (
            b"0\tok\nx\tnot an integer\n",
            "train.tsv:2: label `x` is neither a class id nor one of the classes [negative, positive]",
        ),
        (
            b"0\tok\n7\tunknown id\n",
            "train.tsv:2: label 7 is not a class id (0..2); list the classes in labels.txt",
        ),
        (
            b"0\tok\n-1\tnegative id\n",
            "train.tsv:2: label `-1` is neither a class id",
        ),
        (b"0\tok\n1\t   \n", "train.tsv:2: empty text"),
        (
            b"0\tok\n1\tcaf\xe9\n",
            "train.tsv:2: not valid UTF-8 (byte 6 of the line); re-encode the file as UTF-8",
        ),
    ];
    for (train, expected) in cases {
        let dir = folder("", "0\tfine\n");
        write(dir.path(), "labels.txt", b"0\tnegative\n1\tpositive\n");
        write(dir.path(), "train.tsv", train);
        let err = error(dir.path());
        assert!(
            err.contains(expected),
            "{err}\n does not contain\n{expected}"
        );
    }
}

#[test]
fn empty_split_and_bad_labels_txt() {
    let dir = folder("0\ta\n", "\n\n");
    assert!(error(dir.path()).ends_with("validation.tsv: this split has no examples"));
    let dir = folder("0\ta\n", "0\tb\n");
    write(dir.path(), "labels.txt", b"0\tneg\n2\tpos\n");
    assert!(error(dir.path()).contains(
        "labels.txt:2: class ids must run 0, 1, 2, … without gaps or repeats; expected 1, found 2"
    ));
}

#[test]
fn errors_are_values_with_a_kind() {
    let dir = folder("0\tok\nbroken\n", "0\tb\n");
    match load_folder(dir.path(), &FolderOptions::default()) {
        Err(DataError::Line { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn labels_mixing_ids_and_names_without_labels_txt_are_an_error() {
    // Before: names sorted ["1", "neg", "pos"] and `1` read as id 1, i.e. "neg".
    let dir = folder("neg\ta\n1\tb\npos\tc\n", "neg\td\n");
    assert_error(
        dir.path(),
        "train.tsv:2: label `1` is a number but the labels before it are class names (line 1: `neg`); use one kind throughout, or list the classes in labels.txt",
    );
    let dir = folder("0\ta\npos\tb\n", "0\tc\n");
    assert_error(
        dir.path(),
        "train.tsv:2: label `pos` is a name but the labels before it are class ids (line 1: `0`); use one kind throughout, or list the classes in labels.txt",
    );
}

#[test]
fn negative_integer_labels_are_classes_by_value() {
    // Before: names ["-1", "0", "1"] and `0` read as id 0, i.e. "-1": two classes merged.
    let dir = folder("-1\ta\n0\tb\n1\tc\n-1\td\n", "1\te\n0\tf\n");
    let data = load_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.labels, ["-1", "0", "1"]);
    let ids: Vec<usize> = data.train.iter().map(|e| e.label).collect();
    assert_eq!(ids, [0, 1, 2, 0]);
    let ids: Vec<usize> = data.validation.iter().map(|e| e.label).collect();
    assert_eq!(ids, [2, 1]);
    let dir = folder("-1\ta\n1\tb\n", "2\tc\n");
    assert_error(
        dir.path(),
        "validation.tsv:1: label `2` is not one of the classes [-1, 1]",
    );
}

#[test]
fn names_of_other_splits_are_read_as_names_only() {
    let dir = folder("neg\ta\npos\tb\n", "1\tc\n");
    assert_error(
        dir.path(),
        "validation.tsv:1: label `1` is not one of the classes [neg, pos]",
    );
}

#[test]
fn labels_txt_names_that_read_as_other_ids_or_repeat_are_an_error() {
    let dir = folder("0\ta\n", "0\tb\n");
    write(dir.path(), "labels.txt", b"0\t1\n1\t0\n");
    assert_error(
        dir.path(),
        "labels.txt:1: class name `1` reads as the id of another class; rename it",
    );
    write(dir.path(), "labels.txt", b"0\tpos\n1\tpos\n");
    assert_error(dir.path(), "labels.txt:2: class name `pos` is listed twice");
}
