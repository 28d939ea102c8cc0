//! A folder of split files: `train`, `validation` and optional `test`, each `.tsv`, `.csv` or
//! `.jsonl`, plain or gzip-compressed (`train.tsv.gz`), with an optional `labels.txt`
//! (`id<TAB>name`).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use crate::{DataError, TextDataset, TextExample, strip_bom};

/// How to read a folder's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderOptions {
    /// CSV column (or JSON key) holding the text. Default: `text`.
    pub text_column: String,
    /// CSV column (or JSON key) holding the label. Default: `label`.
    pub label_column: String,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            text_column: "text".into(),
            label_column: "label".into(),
        }
    }
}

/// A label as written in a file, before it is resolved to a class id.
struct RawExample {
    label: String,
    text: String,
    line: usize,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Tsv,
    Csv,
    JsonLines,
}

const FORMATS: [(&str, Format); 3] = [
    ("tsv", Format::Tsv),
    ("csv", Format::Csv),
    ("jsonl", Format::JsonLines),
];

/// Loads `dir/train.*`, `dir/validation.*` and, when present, `dir/test.*`.
///
/// Labels are class ids (`0`, `1`, …) or, with a `labels.txt`, also class names. Without a
/// `labels.txt` the training split decides, for every split, how labels are read: non-negative
/// integers are class ids (`max id + 1` classes named by their ids); integers with a negative
/// among them (`-1`/`1`) are classes by value, in numeric order; anything else are class names,
/// in sorted order. A split that mixes numbers and names is an error naming the file and line.
pub fn load_folder(dir: &Path, options: &FolderOptions) -> Result<TextDataset, DataError> {
    if !dir.is_dir() {
        let reason = if dir.exists() {
            "is not a folder"
        } else {
            "no such folder"
        };
        return Err(DataError::file(
            dir,
            format!("{reason}; expected a folder holding train.tsv and validation.tsv"),
        ));
    }
    let train_path = find_split(dir, "train")?.ok_or_else(|| {
        DataError::file(dir, "no train.tsv, train.csv or train.jsonl in this folder")
    })?;
    let validation_path = find_split(dir, "validation")?.ok_or_else(|| {
        DataError::file(
            dir,
            "no validation.tsv, validation.csv or validation.jsonl in this folder",
        )
    })?;
    let test_path = find_split(dir, "test")?;

    let train = read_split(&train_path, options)?;
    let validation = read_split(&validation_path, options)?;
    let test = test_path
        .as_ref()
        .map(|p| read_split(p, options))
        .transpose()?;

    let labels_path = dir.join("labels.txt");
    let (labels, reading) = if labels_path.exists() {
        (read_labels(&labels_path)?, Reading::IdsOrNames)
    } else {
        infer_labels(&train_path, &train)?
    };
    let resolve = |path: &Path, raw: Vec<RawExample>| -> Result<Vec<TextExample>, DataError> {
        raw.into_iter()
            .map(|r| {
                Ok(TextExample::new(
                    resolve_label(&labels, reading, &r.label, path, r.line)?,
                    r.text,
                ))
            })
            .collect()
    };
    let name = dir.file_name().map_or_else(
        || "dataset".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(TextDataset {
        name,
        train: resolve(&train_path, train)?,
        validation: resolve(&validation_path, validation)?,
        test: match (test_path, test) {
            (Some(path), Some(raw)) => Some(resolve(&path, raw)?),
            _ => None,
        },
        labels,
    })
}

fn find_split(dir: &Path, split: &str) -> Result<Option<PathBuf>, DataError> {
    let found: Vec<PathBuf> = FORMATS
        .iter()
        .flat_map(|(ext, _)| ["", ".gz"].map(|gz| dir.join(format!("{split}.{ext}{gz}"))))
        .filter(|p| p.exists())
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        _ => Err(DataError::file(
            dir,
            format!("more than one {split} file ({}); keep one", names(&found)),
        )),
    }
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn format_of(path: &Path) -> Format {
    let inner = if is_gzip(path) {
        Path::new(path.file_stem().unwrap_or_default())
    } else {
        path
    };
    let ext = inner
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    FORMATS
        .iter()
        .find(|(e, _)| *e == ext)
        .map_or(Format::Tsv, |(_, f)| *f)
}

fn read_split(path: &Path, options: &FolderOptions) -> Result<Vec<RawExample>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if is_gzip(path) {
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut text,
        )
        .map_err(|e| DataError::file(path, format!("not a readable gzip file ({e})")))?;
        return parse_raw(path, &text, options);
    }
    parse_raw(path, &bytes, options)
}

fn parse_raw(
    path: &Path,
    bytes: &[u8],
    options: &FolderOptions,
) -> Result<Vec<RawExample>, DataError> {
    let bytes = strip_bom(bytes);
    let examples = match format_of(path) {
        Format::Tsv => read_tsv(path, bytes)?,
        Format::Csv => read_csv(path, bytes, options)?,
        Format::JsonLines => read_json_lines(path, bytes, options)?,
    };
    if examples.is_empty() {
        return Err(DataError::file(path, "this split has no examples"));
    }
    Ok(examples)
}

/// Parses the bytes of one split file as [`load_folder`] does, the format chosen by `path`'s
/// extension (`.csv`, `.jsonl`, else TSV; `path` also names the file in errors). Returns the
/// `(label, text)` pairs as written, before labels are resolved to class ids.
///
/// ```
/// use std::path::Path;
/// let pairs = dataset::parse_split(Path::new("train.tsv"), b"1\tgood fun\n0\tdull\n", &Default::default())?;
/// assert_eq!(pairs[1], ("0".to_string(), "dull".to_string()));
/// let err = dataset::parse_split(Path::new("train.tsv"), b"1 no tab\n", &Default::default()).unwrap_err();
/// assert_eq!(err.to_string(), "train.tsv:1: no TAB: expected `label<TAB>text`");
/// # Ok::<(), dataset::DataError>(())
/// ```
pub fn parse_split(
    path: &Path,
    bytes: &[u8],
    options: &FolderOptions,
) -> Result<Vec<(String, String)>, DataError> {
    Ok(parse_raw(path, bytes, options)?
        .into_iter()
        .map(|r| (r.label, r.text))
        .collect())
}

/// Longest line (or CSV record) accepted, in bytes. Longer ones are refused rather than
/// tokenised: a 1 MiB "sentence" is a wrong file, not a text to classify.
pub const MAX_LINE_BYTES: usize = 1 << 20;

fn too_long(path: &Path, line: usize, len: usize) -> DataError {
    DataError::line(
        path,
        line,
        format!(
            "line is {len} bytes long; the most accepted is {MAX_LINE_BYTES} (is this a text-classification file?)"
        ),
    )
}

/// Non-empty lines with their 1-based numbers, each checked to be UTF-8.
fn lines(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, String)>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            return Err(too_long(path, i + 1, raw.len()));
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(raw).map_err(|e| {
            DataError::line(
                path,
                i + 1,
                format!(
                    "not valid UTF-8 (byte {} of the line); re-encode the file as UTF-8",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        out.push((i + 1, line.to_string()));
    }
    Ok(out)
}

fn checked_text(path: &Path, line: usize, text: &str) -> Result<String, DataError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DataError::line(path, line, "empty text"));
    }
    Ok(text.to_string())
}

fn read_tsv(path: &Path, bytes: &[u8]) -> Result<Vec<RawExample>, DataError> {
    lines(path, bytes)?
        .into_iter()
        .map(|(line, content)| {
            let (label, text) = content
                .split_once('\t')
                .ok_or_else(|| DataError::line(path, line, "no TAB: expected `label<TAB>text`"))?;
            Ok(RawExample {
                label: label.trim().to_string(),
                text: checked_text(path, line, text)?,
                line,
            })
        })
        .collect()
}

fn read_csv(
    path: &Path,
    bytes: &[u8],
    options: &FolderOptions,
) -> Result<Vec<RawExample>, DataError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| DataError::line(path, 1, format!("unreadable CSV header: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| {
                let found: Vec<String> = headers
                    .iter()
                    .map(|h| String::from_utf8_lossy(h).into_owned())
                    .collect();
                DataError::line(
                    path,
                    1,
                    format!(
                        "no column `{name}` in the header (columns: {})",
                        found.join(", ")
                    ),
                )
            })
    };
    let (text_col, label_col) = (
        column(&options.text_column)?,
        column(&options.label_column)?,
    );
    let mut out = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            DataError::line(path, line, format!("malformed CSV: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.as_slice().len() > MAX_LINE_BYTES {
            return Err(too_long(path, line, record.as_slice().len()));
        }
        let field = |col: usize| -> Result<&str, DataError> {
            let bytes = record.get(col).unwrap_or_default();
            std::str::from_utf8(bytes).map_err(|_| {
                DataError::line(path, line, "not valid UTF-8; re-encode the file as UTF-8")
            })
        };
        out.push(RawExample {
            label: field(label_col)?.trim().to_string(),
            text: checked_text(path, line, field(text_col)?)?,
            line,
        });
    }
    Ok(out)
}

fn read_json_lines(
    path: &Path,
    bytes: &[u8],
    options: &FolderOptions,
) -> Result<Vec<RawExample>, DataError> {
    lines(path, bytes)?
        .into_iter()
        .map(|(line, content)| {
            let value: serde_json::Value = serde_json::from_str(&content)
                .map_err(|e| DataError::line(path, line, format!("invalid JSON: {e}")))?;
            let text = value
                .get(&options.text_column)
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    DataError::line(path, line, format!("no string `{}`", options.text_column))
                })?;
            let label = match value.get(&options.label_column) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(DataError::line(
                        path,
                        line,
                        format!(
                            "no `{}` (an integer id or a class name)",
                            options.label_column
                        ),
                    ));
                }
            };
            Ok(RawExample {
                label,
                text: checked_text(path, line, text)?,
                line,
            })
        })
        .collect()
}

/// `labels.txt`: one `id<TAB>name` a line, ids exactly `0..n`.
fn read_labels(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_labels(path, &bytes)
}

/// Parses a `labels.txt` (`id<TAB>name` lines, ids 0, 1, 2, … in any order) into class names
/// by id; `path` names the file in errors.
///
/// ```
/// use std::path::Path;
/// let names = dataset::parse_labels(Path::new("labels.txt"), b"1\tpositive\n0\tnegative\n")?;
/// assert_eq!(names, ["negative", "positive"]);
/// # Ok::<(), dataset::DataError>(())
/// ```
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<String>, DataError> {
    let mut labels: Vec<(usize, String, usize)> = Vec::new();
    for (line, content) in lines(path, strip_bom(bytes))? {
        let (id, name) = content
            .split_once('\t')
            .ok_or_else(|| DataError::line(path, line, "no TAB: expected `id<TAB>name`"))?;
        let id = id.trim().parse::<usize>().map_err(|_| {
            DataError::line(
                path,
                line,
                format!("class id `{}` is not a non-negative integer", id.trim()),
            )
        })?;
        labels.push((id, name.trim().to_string(), line));
    }
    labels.sort_by_key(|(id, _, _)| *id);
    for (expected, (id, _, line)) in labels.iter().enumerate() {
        if *id != expected {
            return Err(DataError::line(
                path,
                *line,
                format!(
                    "class ids must run 0, 1, 2, … without gaps or repeats; expected {expected}, found {id}"
                ),
            ));
        }
    }
    if labels.is_empty() {
        return Err(DataError::file(path, "no classes listed"));
    }
    // A name that reads as an integer must be its own id: labels are read as ids first.
    let mut in_file_order: Vec<&(usize, String, usize)> = labels.iter().collect();
    in_file_order.sort_by_key(|(_, _, line)| *line);
    let mut seen = std::collections::HashSet::new();
    for (id, name, line) in in_file_order {
        let reason = if name.parse::<usize>().is_ok_and(|n| n != *id) {
            format!("class name `{name}` reads as the id of another class; rename it")
        } else if !seen.insert(name) {
            format!("class name `{name}` is listed twice")
        } else {
            continue;
        };
        return Err(DataError::line(path, *line, reason));
    }
    Ok(labels.into_iter().map(|(_, name, _)| name).collect())
}

/// Most classes inferred from integer labels; a larger id is more likely a wrong column than
/// a class, and would allocate a class list of that size.
pub const MAX_INFERRED_CLASSES: usize = 100_000;

/// How the split files' labels name classes; one way for the whole dataset, so that no label
/// can mean one class in one line and another class in the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// `labels.txt` is given: a non-negative integer is a class id, anything else a class name.
    IdsOrNames,
    /// Inferred from non-negative integers: class ids.
    Ids,
    /// Inferred from integers with a negative among them: classes by numeric value.
    Values,
    /// Inferred from anything else: class names.
    Names,
}

fn infer_labels(path: &Path, train: &[RawExample]) -> Result<(Vec<String>, Reading), DataError> {
    let Some(first) = train.first() else {
        return Ok((Vec::new(), Reading::Names));
    };
    let is_number = |label: &str| label.parse::<i64>().is_ok();
    let numbers = is_number(&first.label);
    if let Some(other) = train.iter().find(|r| is_number(&r.label) != numbers) {
        let (this, before) = if numbers {
            ("a name", "class ids")
        } else {
            ("a number", "class names")
        };
        return Err(DataError::line(
            path,
            other.line,
            format!(
                "label `{}` is {this} but the labels before it are {before} (line {}: `{}`); use one kind throughout, or list the classes in labels.txt",
                other.label, first.line, first.label
            ),
        ));
    }
    if !numbers {
        let names = train
            .iter()
            .map(|r| r.label.clone())
            .collect::<BTreeSet<_>>();
        return Ok((names.into_iter().collect(), Reading::Names));
    }
    let values: BTreeSet<i64> = train.iter().filter_map(|r| r.label.parse().ok()).collect();
    if values.first().is_some_and(|v| *v < 0) {
        return Ok((values.iter().map(i64::to_string).collect(), Reading::Values));
    }
    let (max, line) = train
        .iter()
        .filter_map(|r| Some((r.label.parse::<usize>().ok()?, r.line)))
        .max()
        .unwrap_or((0, 0));
    if max >= MAX_INFERRED_CLASSES {
        return Err(DataError::line(
            path,
            line,
            format!(
                "label {max} would mean {} classes; list the classes in labels.txt",
                max as u128 + 1
            ),
        ));
    }
    Ok(((0..=max).map(|i| i.to_string()).collect(), Reading::Ids))
}

fn resolve_label(
    labels: &[String],
    reading: Reading,
    label: &str,
    path: &Path,
    line: usize,
) -> Result<usize, DataError> {
    let found = match reading {
        Reading::IdsOrNames | Reading::Ids => {
            if let Ok(id) = label.parse::<usize>() {
                if id < labels.len() {
                    return Ok(id);
                }
                return Err(DataError::line(
                    path,
                    line,
                    format!(
                        "label {id} is not a class id (0..{}); list the classes in labels.txt",
                        labels.len()
                    ),
                ));
            }
            if reading == Reading::IdsOrNames {
                labels.iter().position(|name| name == label)
            } else {
                None
            }
        }
        Reading::Values => label
            .parse::<i64>()
            .ok()
            .and_then(|v| labels.iter().position(|name| name.parse() == Ok(v))),
        Reading::Names => labels.iter().position(|name| name == label),
    };
    // Built only for the error: joining every class name for each line would cost
    // O(classes) per example on data with many classes.
    found.ok_or_else(|| {
        let shown = if label.is_empty() { "(empty)" } else { label };
        let classes = labels.join(", ");
        let reason = match reading {
            Reading::IdsOrNames => {
                format!("label `{shown}` is neither a class id nor one of the classes [{classes}]")
            }
            Reading::Ids => format!(
                "label `{shown}` is not a class id (0..{}); list the classes in labels.txt",
                labels.len()
            ),
            Reading::Values | Reading::Names => {
                format!("label `{shown}` is not one of the classes [{classes}]")
            }
        };
        DataError::line(path, line, reason)
    })
}
