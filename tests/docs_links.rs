//! Every design document the crate refers to ships with it: a reference to `docs/NAME.md` in
//! the sources, README or ARCHITECTURE must resolve, and no source names one of those documents
//! without its `docs/` path (a reference a clone of the crate alone could not follow).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::fs;
use std::path::{Path, PathBuf};

const DOCUMENTS: [&str; 3] = ["STATS.md", "ALLOCATION.md", "DESIGN.md"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_document_reference_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.push(root.join("README.md"));
    files.push(root.join("ARCHITECTURE.md"));
    let mut references = 0;
    for file in &files {
        let text = fs::read_to_string(file).expect("readable source");
        for doc in DOCUMENTS {
            for (at, _) in text.match_indices(doc) {
                let before = &text[..at];
                assert!(
                    before.ends_with("docs/"),
                    "{} names {doc} without its docs/ path, near byte {at}",
                    file.display()
                );
                references += 1;
                assert!(
                    root.join("docs").join(doc).is_file(),
                    "{} refers to docs/{doc}, which is missing",
                    file.display()
                );
            }
        }
    }
    assert!(
        references >= 7,
        "expected the crate's references to its documents, found {references}"
    );
}
