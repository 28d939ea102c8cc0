//! The UTF-8 byte-order mark (U+FEFF) that some editors, Windows Notepad and Excel among them,
//! write at the start of a text file. It is not part of the first line: every text file the
//! project reads (splits, `labels.txt`, vocabularies, configurations) goes through here.

use std::path::Path;

use crate::DataError;

/// U+FEFF in UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading UTF-8 byte-order mark.
///
/// ```
/// assert_eq!(dataset::strip_bom(b"\xEF\xBB\xBF0\tdull"), b"0\tdull");
/// assert_eq!(dataset::strip_bom(b"0\tdull"), b"0\tdull");
/// ```
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// `text` without a leading byte-order mark.
pub fn strip_bom_str(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Reads a UTF-8 text file, without its byte-order mark; errors name the file.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let mut text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_mark_is_removed() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBF\xEF\xBB\xBFa"), b"\xEF\xBB\xBFa");
        assert_eq!(strip_bom(b"a\xEF\xBB\xBF"), b"a\xEF\xBB\xBF");
        assert_eq!(strip_bom(b"\xEF\xBB"), b"\xEF\xBB");
        assert_eq!(strip_bom_str("\u{feff}x\u{feff}"), "x\u{feff}");
    }

    #[test]
    fn read_text_drops_the_mark_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        std::fs::write(&path, "\u{feff}{}").unwrap();
        assert_eq!(read_text(&path).unwrap(), "{}");
        let missing = dir.path().join("missing.json");
        assert!(
            read_text(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.json")
        );
    }
}
