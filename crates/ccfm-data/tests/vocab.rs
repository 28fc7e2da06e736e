//! The scDFM vocabularies in `../shared/data` are read, rebuilt from their genes and written
//! back byte for byte.

use ccfm_data::vocab::{CONTROL_ID, SPECIALS};
use ccfm_data::{GeneVocab, VocabError};
use ccfm_testkit::{available, shared_dir};

fn check(file: &str, n: usize, first: &str, last: &str) {
    let path = shared_dir().join("data").join(file);
    if !available(&path, file) {
        return;
    }
    let v = GeneVocab::read_json(&path).unwrap();
    assert_eq!(v.len(), n);
    for (i, s) in SPECIALS.iter().enumerate() {
        assert_eq!(v.token(i), Some(*s));
    }
    assert_eq!(v.id("control"), Some(CONTROL_ID));
    assert_eq!(v.token(4), Some(first));
    assert_eq!(v.token(n - 1), Some(last));
    // Rebuilding from the genes in any order gives the same ids.
    let mut genes = v.genes().to_vec();
    genes.reverse();
    assert_eq!(GeneVocab::from_genes(&genes), v);
    // Written back, the file is identical.
    let original = std::fs::read_to_string(&path).unwrap();
    assert_eq!(v.to_json(), original);
}

#[test]
fn norman_vocab() {
    check("norman_5000_highly_vocab.json", 5033, "A2M", "ZYX");
}

#[test]
fn combosciplex_vocab_puts_lower_case_last() {
    check(
        "combosciplex_5000_highly_vocab.json",
        5004,
        "A1CF",
        "uc_338-1",
    );
}

#[test]
fn round_trip_and_errors() {
    let dir = std::env::temp_dir().join(format!("ccfm-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let v = GeneVocab::from_genes(&["KLF1", "MAP2K6", "cebpe", "KLF1"]);
    assert_eq!(v.genes(), ["KLF1", "MAP2K6", "cebpe"]);
    let p = dir.join("vocab.json");
    v.write_json(&p).unwrap();
    assert_eq!(GeneVocab::read_json(&p).unwrap(), v);
    assert_eq!(v.encode(&["MAP2K6", "control"]).unwrap(), vec![5, 3]);
    assert!(matches!(v.encode(&["NOPE"]), Err(VocabError::Unknown(g)) if g == "NOPE"));

    std::fs::write(&p, r#"{"<pad>": 0, "A": 2}"#).unwrap();
    let err = GeneVocab::read_json(&p).unwrap_err();
    assert!(matches!(err, VocabError::Ids { .. }), "{err}");
    std::fs::write(&p, r#"{"<pad>": 0, "A": 0}"#).unwrap();
    assert!(GeneVocab::read_json(&p)
        .unwrap_err()
        .to_string()
        .contains("share id 0"));
    std::fs::write(&p, "[1, 2]").unwrap();
    assert!(matches!(
        GeneVocab::read_json(&p),
        Err(VocabError::Format { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
