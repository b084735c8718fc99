//! OASIS's STIX 2.1 validator (`stix2-validator`) and the `stix2` library's parser (custom
//! content disallowed) over the STIX bundles the tests make, all bundles of a call in one
//! Python process. The interpreter is `RELAY_TEST_PYTHON` (`.ci/run` sets it; the tools must
//! then be there, or the test fails), else `target/python-env/bin/python` when `.ci/python-env`
//! made it; without either the check says so loudly and skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The validator's warnings the relay's bundles may draw, with the reason (the README lists
/// them): `{103}` every id is deterministic (UUIDv5, as the spec asks of SCOs and as the
/// relay wants of the rest so a re-import updates), not UUIDv4; `{302}` a portal link is a web
/// page, which has no hash to give.
pub const ALLOWED_WARNINGS: [&str; 2] = ["103", "302"];

/// Reads JSON lines of bundles on stdin; per bundle, one JSON line: the validator's errors and
/// warnings (with their codes), and the parser's error and warnings.
const VALIDATE: &str = r#"
import json, re, sys, warnings
try:
    import stix2
    from stix2validator import ValidationOptions, validate_instance
except ImportError as missing:
    sys.exit(f"the STIX tools are missing ({missing}): run .ci/python-env")
options = ValidationOptions(strict=False)
for line in sys.stdin:
    bundle = json.loads(line)
    result = validate_instance(bundle, options)
    report = {
        "errors": [str(e) for e in result.errors],
        "warnings": [[(re.search(r"\{(\d+)\}", str(w)) or [None, ""])[1], str(w)] for w in result.warnings],
        "parse": [],
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stix2.parse(line, allow_custom=False)
        except Exception as error:
            report["parse"].append(f"{type(error).__name__}: {error}")
    report["parse"].extend(f"warning: {w.message}" for w in caught)
    print(json.dumps(report), flush=True)
"#;

/// Reads JSON lines of SCOs on stdin; per SCO, the id `stix2` gives it (its own id left out).
const SCO_IDS: &str = r#"
import json, sys
import stix2
for line in sys.stdin:
    sco = json.loads(line)
    sco.pop("id")
    print(stix2.parse(sco, allow_custom=False).id, flush=True)
"#;

/// The interpreter with the STIX tools, or `None` after a loud message.
pub fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("RELAY_TEST_PYTHON") {
        return Some(python.into());
    }
    let env = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/python-env/bin/python"
    ));
    if env.exists() {
        return Some(env);
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED: no Python with stix2-validator; the STIX bundles were not validated.\n\
         !!! Run .ci/python-env once (or .ci/run), or set RELAY_TEST_PYTHON.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

/// Runs `script` over `lines` in one process; its output lines. Panics when the tools are
/// missing or the script fails.
fn run(python: &Path, script: &str, lines: &[Value]) -> Vec<String> {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", python.display()));
    let mut input = String::new();
    for line in lines {
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("the Python tools run");
    writer.join().expect("writer").expect("input written");
    assert!(
        output.status.success(),
        "{} failed: {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What is wrong with each of `bundles` by the validator and the parser: errors, parser
/// warnings, and validator warnings not in [`ALLOWED_WARNINGS`]. `None` when the tools are
/// not there (skipped loudly).
pub fn problems(bundles: &[Value]) -> Option<Vec<Vec<String>>> {
    Some(problems_with(&python()?, bundles))
}

/// [`problems`] with the interpreter `python`; panics when it lacks the tools.
pub fn problems_with(python: &Path, bundles: &[Value]) -> Vec<Vec<String>> {
    let reports = run(python, VALIDATE, bundles);
    assert_eq!(reports.len(), bundles.len(), "one report per bundle");
    reports
        .iter()
        .map(|line| {
            let report: Value = serde_json::from_str(line).expect("a report");
            let strings = |key: &str| {
                report[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            let mut problems = strings("errors");
            problems.extend(strings("parse"));
            let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
            problems.extend(warnings.iter().filter_map(|warning| {
                let code = warning[0].as_str().unwrap_or_default();
                (!ALLOWED_WARNINGS.contains(&code)).then(|| warning[1].to_string())
            }));
            problems
        })
        .collect()
}

/// Asserts every bundle passes the validator and the parser (see [`problems`]).
pub fn assert_valid(bundles: &[Value]) {
    let Some(problems) = problems(bundles) else {
        return;
    };
    for (bundle, problems) in bundles.iter().zip(problems) {
        assert!(
            problems.is_empty(),
            "bundle {} is not valid STIX 2.1: {problems:#?}",
            bundle["id"]
        );
    }
}

/// The ids the `stix2` library gives `scos` (their own ids left out); `None` when skipped.
pub fn stix2_ids(scos: &[Value]) -> Option<Vec<String>> {
    let python = python()?;
    Some(run(&python, SCO_IDS, scos))
}
