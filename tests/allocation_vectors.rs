//! Reproduces the allocation reference vectors exactly (the compatibility promise).
//!
//! `tests/data/allocation-vectors.json` was computed with Python's `xxhash` package, an
//! implementation independent of the crate's. Set `ABKIT_ALLOCATION_VECTORS` to the path of
//! another file of the same layout to run that one instead.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use abkit::allocation::{Allocator, LayerHasher, Traffic, Weight, Weights, seed};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorFile {
    vectors: Vec<Vector>,
    layers: Vec<LayerVector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    salt: String,
    unit: String,
    traffic_basis_points: u32,
    weights: Vec<u32>,
    seed: String,
    traffic_bucket: u16,
    variant_bucket: u16,
    variant: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerVector {
    layer_salt: String,
    unit: String,
    layer_bucket: u16,
}

fn vector_file() -> (PathBuf, VectorFile) {
    let path = std::env::var_os("ABKIT_ALLOCATION_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/allocation-vectors.json")
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file: VectorFile = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    (path, file)
}

#[test]
fn experiment_vectors_reproduce_exactly() {
    let (path, file) = vector_file();
    assert!(
        !file.vectors.is_empty(),
        "{} has no vectors",
        path.display()
    );
    let mut failures = Vec::new();
    let mut ran = 0_usize;
    for (i, v) in file.vectors.iter().enumerate() {
        let expected_seed: u64 = v.seed.parse().unwrap();
        let weights = Weights::new(
            v.weights
                .iter()
                .map(|&bp| Weight::from_basis_points(bp).unwrap())
                .collect(),
        )
        .unwrap();
        let traffic = Traffic::from_basis_points(v.traffic_basis_points).unwrap();
        let allocator = Allocator::new(&v.salt, traffic, &weights);
        let unit = v.unit.as_bytes();
        let got = (
            seed(&v.salt),
            allocator.seed(),
            allocator.traffic_bucket(unit),
            allocator.variant_bucket(unit),
            allocator.allocate(unit),
        );
        let want = (
            expected_seed,
            expected_seed,
            v.traffic_bucket,
            v.variant_bucket,
            v.variant,
        );
        if got != want {
            failures.push(format!(
                "vector {i} (salt {:?}, unit {:?}): got {got:?}, want {want:?}",
                v.salt, v.unit
            ));
        }
        // When the unit is in the traffic, its variant is the traffic-independent index.
        if let Some(variant) = v.variant
            && allocator.variant_index(unit) != variant
        {
            failures.push(format!("vector {i}: variant_index differs from {variant}"));
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        file.vectors.len(),
        failures.join("\n")
    );
    assert_eq!(ran, file.vectors.len());
}

#[test]
fn layer_vectors_reproduce_exactly() {
    let (path, file) = vector_file();
    assert!(
        !file.layers.is_empty(),
        "{} has no layer vectors",
        path.display()
    );
    let mut failures = Vec::new();
    let mut ran = 0_usize;
    for (i, l) in file.layers.iter().enumerate() {
        let got = LayerHasher::new(&l.layer_salt).bucket(l.unit.as_bytes());
        if got != l.layer_bucket {
            failures.push(format!(
                "layer vector {i} (salt {:?}, unit {:?}): got {got}, want {}",
                l.layer_salt, l.unit, l.layer_bucket
            ));
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} layer vectors differ:\n{}",
        failures.len(),
        file.layers.len(),
        failures.join("\n")
    );
    assert_eq!(ran, file.layers.len());
}

#[test]
fn bundled_vectors_cover_the_documented_cases() {
    // The bundled file (not an override) holds 300 vectors and 100 layer vectors, including
    // units outside the traffic (variant null) and each variant count used by the suite.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/allocation-vectors.json");
    let file: VectorFile = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(file.vectors.len(), 300);
    assert_eq!(file.layers.len(), 100);
    assert!(file.vectors.iter().any(|v| v.variant.is_none()));
    assert!(file.vectors.iter().any(|v| v.variant.is_some()));
    for n in [2, 3, 4, 10] {
        assert!(file.vectors.iter().any(|v| v.weights.len() == n), "{n}");
    }
}
