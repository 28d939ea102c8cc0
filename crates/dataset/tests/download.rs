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
