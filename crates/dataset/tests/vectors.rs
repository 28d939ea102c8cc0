//! The real GloVe 6B 50-d, when `experiment fetch glove-6b-50d` has put it in the data folder
//! (`$ATTENTION_LAB_DATA`, else the default): its Fortran-order matrix and Parquet word list
//! read as the published text file has them.

use dataset::{
    WordVectors,
    pretrained::{self, GLOVE_6B_50D},
};

#[test]
fn fetched_glove_reads_as_published() {
    let Ok(dir) = pretrained::locate(&dataset::sst2::default_data_dir(), &GLOVE_6B_50D) else {
        eprintln!("GloVe 6B 50-d not fetched: skipping (experiment fetch glove-6b-50d)");
        return;
    };
    let vectors =
        WordVectors::read(&dir, |w| ["the", "film", "n't", "zsombor"].contains(&w)).unwrap();
    assert_eq!((vectors.len(), vectors.dim()), (4, 50));
    // The first numbers of these lines of glove.6B.50d.txt (Stanford's text release).
    let the = vectors.get("the").unwrap();
    assert_eq!(the[..5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527]);
    assert_eq!(the[49], -0.78581);
    assert_eq!(
        vectors.get("film").unwrap()[..3],
        [0.06912, 0.22159, -0.66613]
    );
    let all = WordVectors::read(&dir, |_| true).unwrap();
    assert_eq!(all.len(), 400_000);
}
