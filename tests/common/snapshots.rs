//! insta settings for the contract's snapshots: stored in `snapshots/` at the crate root, with
//! only the random ids (sightings, relationships) redacted.

/// Runs `body` with the project's snapshot settings.
pub fn with_settings<R>(body: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.add_redaction(".data.sightings.docs[].id", "[sighting id]");
    settings.add_redaction(".data.relationships.docs[].id", "[relationship id]");
    settings.add_redaction(".data.relationships.docs[].source_ref", "[sighting id]");
    settings.bind(body)
}

/// Snapshots `value` under `name` with [`with_settings`], after holding every SecureX answer
/// in it to CTIM's rules ([`super::ctim::assert_valid`]).
#[macro_export]
macro_rules! contract_snapshot {
    ($name:expr, $value:expr) => {{
        let value = $value;
        $crate::common::ctim::assert_valid(&serde_json::to_value(&value).expect("JSON"));
        $crate::common::snapshots::with_settings(|| insta::assert_json_snapshot!($name, value))
    }};
}
