//! The crate's layering, checked: every `crate::` path in `src/` is read, and an edge from one
//! top-level module to another that the rules below do not allow fails the test. ARCHITECTURE.md
//! states the same rules as one "Architecture invariant" per folder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each one may import (besides itself).
const RULES: &[(&str, &[&str])] = &[
    // Leaves.
    ("allocation", &[]),
    ("targeting", &[]),
    ("stats", &[]),
    ("time", &[]),
    ("hashing", &[]),
    ("storage", &["time", "hashing"]),
    // The pure domain.
    ("model", &["allocation", "targeting", "time", "stats"]),
    // Decisions: a pure function of the model.
    ("decision", &["model", "allocation", "targeting", "hashing"]),
    ("error", &["model", "storage", "stats"]),
    // The planes above the decision.
    (
        "control",
        &[
            "model",
            "decision",
            "storage",
            "error",
            "allocation",
            "targeting",
            "time",
            "stats",
        ],
    ),
    ("events", &["model", "decision", "storage", "error", "time"]),
    (
        "reports",
        &[
            "control",
            "model",
            "storage",
            "stats",
            "error",
            "time",
            "allocation",
        ],
    ),
    (
        "wire",
        &[
            "control",
            "decision",
            "reports",
            "model",
            "events",
            "error",
            "storage",
            "time",
            "stats",
            "allocation",
        ],
    ),
    // GrowthBook's SDK semantics (conditions are targeting's); its bridge records into a Lab.
    (
        "growthbook",
        &[
            "targeting",
            "model",
            "decision",
            "allocation",
            "lab",
            "error",
            "storage",
            "control",
        ],
    ),
    // A fleet: keeps a lab current with a shared store's change feed.
    ("fleet", &["lab", "control", "error", "storage"]),
    // Serving: the facade and the wire shapes behind axum.
    (
        "http",
        &[
            "lab", "wire", "control", "decision", "events", "reports", "model", "storage", "error",
            "time", "stats",
        ],
    ),
    // The facade composes the planes.
    (
        "lab",
        &[
            "control", "decision", "events", "reports", "model", "storage", "time", "error",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every source file under `src/`: (path relative to `src/`, text).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let rel = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// (importing module, imported module) → the first place it happens.
fn edges() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (rel, text) in sources() {
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let after = &rest[at + "crate::".len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let preceded = rest[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if !preceded && !name.is_empty() && name != top {
                    out.entry((top.clone(), name))
                        .or_insert_with(|| format!("src/{rel}:{}", n + 1));
                }
                rest = after;
            }
        }
    }
    out
}

#[test]
fn every_import_follows_the_layering() {
    let rules: BTreeMap<&str, BTreeSet<&str>> = RULES
        .iter()
        .map(|(m, allowed)| (*m, allowed.iter().copied().collect()))
        .collect();
    let edges = edges();
    assert!(
        edges.len() > 20,
        "the scan found too few imports to be reading the sources: {edges:?}"
    );
    let mut bad = Vec::new();
    for ((from, to), at) in &edges {
        if from == "lib" {
            continue; // the crate root re-exports everything
        }
        match rules.get(from.as_str()) {
            None => bad.push(format!(
                "{at}: module `{from}` has no rule in tests/architecture.rs"
            )),
            Some(allowed) if !allowed.contains(to.as_str()) => {
                let hint = if to.chars().next().is_some_and(char::is_uppercase) {
                    " (name the defining module, not the crate root's re-export)"
                } else {
                    ""
                };
                bad.push(format!("{at}: `{from}` imports `{to}`{hint}"));
            }
            Some(_) => {}
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_rules_have_no_cycle() {
    // A depth-first search over the allowed edges: the rules themselves are one-way.
    let rules: BTreeMap<&str, &[&str]> = RULES.iter().copied().collect();
    fn visit<'a>(
        m: &'a str,
        rules: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        assert!(!path.contains(&m), "cycle: {path:?} → {m}");
        path.push(m);
        for next in rules.get(m).copied().unwrap_or_default() {
            visit(next, rules, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for (m, _) in RULES {
        visit(m, &rules, &mut Vec::new(), &mut done);
    }
    assert_eq!(done.len(), RULES.len());
}

#[test]
fn only_the_event_plane_applies_events_and_only_control_writes_records() {
    for (rel, text) in sources() {
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let calls = |needle: &str| code.iter().any(|l| l.contains(needle));
        if !rel.starts_with("events/") && !rel.starts_with("storage/") {
            assert!(
                !calls(".apply_event(") && !calls(".apply_events("),
                "{rel} applies events: only src/events/ may"
            );
        }
        // API keys are records too, but no part of the configuration snapshot: the `http`
        // feature's key store writes its own kind (`RecordKind::ApiKey`) and nothing else.
        let key_store = rel == "http/keys.rs" && !calls("RecordKind::Experiment");
        if !rel.starts_with("control/") && !rel.starts_with("storage/") && !key_store {
            assert!(
                !calls(".put_record(") && !calls(".delete_record("),
                "{rel} writes configuration records: only src/control/ may"
            );
        }
    }
}
