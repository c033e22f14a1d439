//! The configuration reference in `docs/operations.md` is the code's own
//! account of its settings: these fail when a setting is declared twice,
//! read but not documented, documented but not read, or when the docs were
//! not regenerated (`make docs`).

use lobby_dev::settings_reference::{entries, render, splice, Entry, BEFORE_CONFIG};
use std::{collections::BTreeSet, path::Path};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("services/dev sits two levels below the workspace")
}

fn read_entries() -> Vec<Entry> {
    entries().expect("every config builds in every profile")
}

#[test]
fn every_setting_is_declared_in_one_place() {
    let twice: Vec<String> = read_entries()
        .into_iter()
        .filter(|e| e.declared_at.len() != 1)
        .map(|e| format!("{} at {:?}", e.name, e.declared_at))
        .collect();
    assert!(twice.is_empty(), "declared more than once: {twice:#?}");
}

/// The `"LOBBY_…"` literals of the server's sources, outside their tests.
fn named_in_sources() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![
        workspace().join("services"),
        workspace().join("gateway/src"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                // A crate's `tests/` folder is its tests.
                if path.file_name().is_some_and(|n| n != "tests") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let mut rest = code;
                while let Some(i) = rest.find("\"LOBBY_") {
                    let tail = &rest[i + 1..];
                    let len = tail
                        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                        .unwrap_or(tail.len());
                    if len > "LOBBY_".len() && tail[len..].starts_with('"') {
                        names.insert(tail[..len].to_owned());
                    }
                    rest = &tail[len..];
                }
            }
        }
    }
    names
}

#[test]
fn every_setting_the_code_names_is_in_the_reference() {
    let read: BTreeSet<String> = read_entries().into_iter().map(|e| e.name).collect();
    let before: BTreeSet<String> = BEFORE_CONFIG.iter().map(|(n, _)| (*n).to_owned()).collect();
    let missing: Vec<String> = named_in_sources()
        .into_iter()
        .filter(|n| !read.contains(n) && !before.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "named in the code but read by no config in any profile of settings_reference: {missing:?}"
    );
}

#[test]
fn every_setting_has_help_and_every_help_names_a_setting() {
    let read: BTreeSet<String> = read_entries().into_iter().map(|e| e.name).collect();
    let helped: BTreeSet<String> = lobby_dev::settings_help::HELP
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let undocumented: Vec<_> = read.difference(&helped).collect();
    let unread: Vec<_> = helped.difference(&read).collect();
    assert!(undocumented.is_empty(), "no help text: {undocumented:?}");
    assert!(
        unread.is_empty(),
        "help for settings nothing reads: {unread:?}"
    );
    assert!(
        lobby_dev::settings_help::HELP
            .iter()
            .all(|(_, h)| !h.trim().is_empty()),
        "an empty help text"
    );
}

#[test]
fn the_operations_guide_holds_the_generated_reference() {
    let path = workspace().join("docs/operations.md");
    let doc = std::fs::read_to_string(&path).expect("a source file");
    let fresh = splice(&doc, &render(&read_entries())).unwrap();
    assert!(
        fresh == doc,
        "docs/operations.md's configuration reference is stale: run `make docs`"
    );
}
