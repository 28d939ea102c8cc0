//! GLUE's SST-2 as published: `SST-2.zip` holding `SST-2/train.tsv` and `SST-2/dev.tsv`
//! (header `sentence<TAB>label`). The test split there has no labels, so it is not used.
//!
//! [`load`] looks for the converted folder `DATA_DIR/sst2/`, then for `DATA_DIR/SST-2.zip`, and
//! downloads the archive only when asked. The archive's MD5 is checked before anything is
//! unpacked, and the converted files are written to a temporary folder that is renamed into
//! place only when complete, so an interrupted run leaves nothing half-written.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use md5::{Digest, Md5};

use crate::{DataError, FolderOptions, TextDataset, load_folder};

/// GLUE's public address for SST-2.
pub const SST2_URL: &str = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip";
/// MD5 of GLUE's `SST-2.zip` (the value torchtext checks).
pub const SST2_MD5: &str = "9f81648d4199384278b86e315dac217c";
/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "ATTENTION_LAB_DATA";

/// Where to fetch the archive from and what it must hash to.
#[derive(Debug, Clone)]
pub struct Sst2Source {
    /// Archive URL.
    pub url: String,
    /// Expected MD5 of the archive, lower-case hex.
    pub md5: String,
}

impl Default for Sst2Source {
    fn default() -> Self {
        Self {
            url: SST2_URL.into(),
            md5: SST2_MD5.into(),
        }
    }
}

/// `$ATTENTION_LAB_DATA`, else the per-user cache directory (`~/.cache/attention-lab` on Linux).
pub fn default_data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("attention-lab")))
        .unwrap_or_else(|| PathBuf::from(".attention-lab-data"))
}

/// Loads SST-2 from `data_dir`, converting `SST-2.zip` or downloading it as needed.
pub fn load(
    data_dir: &Path,
    download: bool,
    source: &Sst2Source,
) -> Result<TextDataset, DataError> {
    let folder = data_dir.join("sst2");
    if !(folder.join("train.tsv").exists() && folder.join("validation.tsv").exists()) {
        let archive = data_dir.join("SST-2.zip");
        if !archive.exists() {
            if !download {
                return Err(DataError::file(
                    &folder,
                    format!(
                        "SST-2 is not here; pass --download to fetch GLUE's SST-2.zip from {} into {}, \
                         or pass --dataset DIR with a folder of train.tsv/validation.tsv (label<TAB>text)",
                        source.url,
                        data_dir.display()
                    ),
                ));
            }
            fetch(&source.url, &archive, &source.md5)?;
        } else {
            check_md5(&archive, &source.md5)?;
        }
        convert(&archive, &folder)?;
    }
    let mut dataset = load_folder(&folder, &FolderOptions::default())?;
    dataset.name = "sst2".into();
    Ok(dataset)
}

/// Downloads `url` to `dest`, checking its MD5; nothing is left at `dest` on failure.
pub fn fetch(url: &str, dest: &Path, md5: &str) -> Result<(), DataError> {
    let download_err = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let partial = dest.with_extension("zip.part");
    let mut response = crate::http::agent()
        .get(url)
        .call()
        .map_err(|e| download_err(e.to_string()))?;
    let mut reader = response.body_mut().as_reader();
    let mut file = std::fs::File::create(&partial).map_err(|e| DataError::io(&partial, e))?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(download_err(e.to_string()));
            }
        };
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(|e| DataError::io(&partial, e))?;
    }
    drop(file);
    let digest = hex(&hasher.finalize());
    if digest != md5 {
        let _ = std::fs::remove_file(&partial);
        return Err(download_err(format!(
            "MD5 is {digest}, expected {md5}; the file was deleted, try again"
        )));
    }
    std::fs::rename(&partial, dest).map_err(|e| DataError::io(dest, e))
}

/// Checks an archive found in the data directory before unpacking it; the file is the user's,
/// so it is kept either way.
fn check_md5(archive: &Path, md5: &str) -> Result<(), DataError> {
    let mut file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(archive, e))?;
    let digest = hex(&hasher.finalize());
    if digest != md5 {
        return Err(DataError::file(
            archive,
            format!(
                "MD5 is {digest}, expected {md5}: not GLUE's SST-2 archive, or a damaged copy; delete it and pass --download, or pass --dataset DIR"
            ),
        ));
    }
    Ok(())
}

/// Converts GLUE's archive into the folder layout (`label<TAB>text`, `labels.txt`).
pub fn convert(archive: &Path, folder: &Path) -> Result<(), DataError> {
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| DataError::file(archive, format!("not a zip archive: {e}")))?;
    let staging = folder.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    for (member, split) in [
        ("SST-2/train.tsv", "train.tsv"),
        ("SST-2/dev.tsv", "validation.tsv"),
    ] {
        let mut text = String::new();
        zip.by_name(member)
            .map_err(|e| DataError::file(archive, format!("no {member} inside: {e}")))?
            .read_to_string(&mut text)
            .map_err(|e| {
                DataError::file(archive, format!("{member} is unreadable or not UTF-8: {e}"))
            })?;
        let converted = glue_to_tsv(&text)
            .map_err(|(line, reason)| DataError::line(&archive.join(member), line, reason))?;
        let out = staging.join(split);
        std::fs::write(&out, converted).map_err(|e| DataError::io(&out, e))?;
    }
    let labels = staging.join("labels.txt");
    std::fs::write(&labels, "0\tnegative\n1\tpositive\n").map_err(|e| DataError::io(&labels, e))?;
    let _ = std::fs::remove_dir_all(folder);
    std::fs::rename(&staging, folder).map_err(|e| DataError::io(folder, e))
}

/// `sentence<TAB>label` with a header → `label<TAB>sentence` without one.
fn glue_to_tsv(text: &str) -> Result<String, (usize, String)> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim_end() == "sentence\tlabel" => {}
        _ => return Err((1, "expected the header `sentence<TAB>label`".into())),
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (sentence, label) = line
            .rsplit_once('\t')
            .ok_or_else(|| (i + 1, "no TAB: expected `sentence<TAB>label`".to_string()))?;
        out.push_str(label.trim());
        out.push('\t');
        out.push_str(sentence.trim());
        out.push('\n');
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
