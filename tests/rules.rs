//! Every rule of `docs/RULES.md` (`- **R12.** ...`) is pinned by a test that cites it, and no
//! test cites a rule that is not defined there.
//!
//! A test cites a rule in a comment in or above it: the word `RULES` and the rule's number
//! (`RULES R12`, or several: `RULES R4, R5`). Tests are the files under `tests/` and
//! `python/tests/` (the Python package's pytest suite) and, under `src/`, a module's `tests.rs`
//! or what follows its `#[cfg(test)]` line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a citation starts with (split, so that this file does not cite anything itself).
const MARKER: &str = concat!("RUL", "ES ");

#[test]
fn every_rule_is_cited_by_a_test_and_every_citation_names_a_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("docs/RULES.md")).unwrap();
    let defined = defined_rules(&rules);
    assert!(
        defined.len() >= 34,
        "docs/RULES.md defines only {defined:?}: has the `- **R<n>.**` form changed?"
    );

    let mut cited = BTreeSet::new();
    let mut undefined = Vec::new();
    for file in rust_files(&root.join("tests"))
        .into_iter()
        .chain(rust_files(&root.join("src")))
        .chain(files_ending(&root.join("python/tests"), "py"))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let in_tests = !file.starts_with(root.join("src"));
        for rule in citations(test_part(&file, in_tests, &text)) {
            if !defined.contains(&rule) {
                undefined.push(format!("{}: R{rule}", file.display()));
            }
            cited.insert(rule);
        }
    }
    let uncited: Vec<String> = defined
        .difference(&cited)
        .map(|rule| format!("R{rule}"))
        .collect();
    assert!(
        uncited.is_empty(),
        "rules no test cites (add `// {MARKER}R<n>` to the test that pins each): {uncited:?}"
    );
    assert!(
        undefined.is_empty(),
        "tests cite rules docs/RULES.md does not define: {undefined:?}"
    );
}

#[test]
fn citations_are_read_alone_or_in_lists() {
    let text = format!(
        "// {MARKER}R4, R5\n// {MARKER}R12 and R3\n/// see {MARKER}R40.\n// R7 alone is no citation"
    );
    assert_eq!(citations(&text), [4, 5, 12, 3, 40]);
    assert_eq!(
        defined_rules("- **R1.** One.\n  - **R2.** Two.\n- R3. not bold\n- **R10.** Ten."),
        BTreeSet::from([1, 2, 10])
    );
}

/// The numbers of the rules a `- **R<n>.**` line defines.
fn defined_rules(markdown: &str) -> BTreeSet<u32> {
    markdown
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- **R"))
        .filter_map(|rest| rest.split_once(".**"))
        .filter_map(|(number, _)| number.parse().ok())
        .collect()
}

/// The part of a source file that is tests: all of a file under `tests/` or a `tests.rs`,
/// else what follows its `#[cfg(test)]` line (nothing without one).
fn test_part<'a>(file: &Path, in_tests: bool, text: &'a str) -> &'a str {
    if in_tests || file.file_name().is_some_and(|name| name == "tests.rs") {
        return text;
    }
    text.find("\n#[cfg(test)]")
        .map_or("", |start| &text[start..])
}

/// The rule numbers `text` cites, in order: after each marker, `R<n>` then any `, R<n>` or
/// ` and R<n>`.
fn citations(text: &str) -> Vec<u32> {
    let mut numbers = Vec::new();
    for (start, _) in text.match_indices(MARKER) {
        let mut rest = &text[start + MARKER.len()..];
        while let Some(after) = rest.strip_prefix('R') {
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            let Ok(number) = after[..digits].parse() else {
                break;
            };
            numbers.push(number);
            rest = &after[digits..];
            rest = match rest
                .strip_prefix(", ")
                .or_else(|| rest.strip_prefix(" and "))
            {
                Some(next) => next,
                None => break,
            };
        }
    }
    numbers
}

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, "rs")
}

/// Every file under `dir` whose extension is `extension`, recursively, in a stable order.
fn files_ending(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
