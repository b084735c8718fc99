//! Findings to STIX 2.1 (OASIS), the language OpenCTI, MISP and most SOAR platforms speak:
//! every rule that decides a STIX property lives here, as pure functions (docs/RULES.md, the
//! *STIX 2.1* section, R35 onwards). What the core spec lacks (severity, exposure type,
//! catalog, device) travels in a property extension whose definition is in the bundle.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::breach::BreachRecord;
use super::catalog::Catalog;
use super::device::Device;
use super::email::Email;
use super::findings::{Findings, ObservableFindings};
use super::lookup::{Domain, Lookup, ObservableType};
use super::mapping::{MappingOptions, PasswordPolicy, SECRET_FIELDS, mask};
use super::time::Timestamp;

/// STIX 2.1's namespace for deterministic ids (section 2.9); OpenCTI names its objects in it too.
const STIX_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// When this version of the relay's identity and extension definition was written: their
/// `created` and `modified` (no clock is read).
const DEFINED: &str = "2026-12-07T00:00:00.000Z";

/// The name of the extension that carries what the core spec lacks.
const EXTENSION_NAME: &str = "SpyCloud breach record";
/// Its version: a change of its properties is a new version (and a new id).
const EXTENSION_VERSION: &str = "1.0.0";

/// The extension's normative definition, as text (STIX allows a URL or plain text).
const EXTENSION_SCHEMA: &str = "Properties of an incident made from one SpyCloud breach record \
(all optional): exposure_type (breach, combo-list or infostealer); severity (low, medium, high, \
critical) from severity_code (SpyCloud's score: up to 2 low, up to 5 medium, up to 20 high, \
above 20 critical); document_id and sighting_count (SpyCloud's record id and sightings); catalog \
(the breach catalog: spycloud_id, uuid, title, description, site, published); device (the \
infected computer: machine_id, hostname, operating_system, ip_addresses, mac_address, \
infected_at, infected_path); masked_credential (the password, masked).";

/// A TLP marking, as STIX 2.1 predefines them (section 7.2.1.4): every object the relay makes
/// from SpyCloud's data carries one; TLP:AMBER unless set otherwise.
///
/// ```
/// use spycloud_relay::domain::Tlp;
///
/// assert_eq!(Tlp::default(), Tlp::Amber);
/// assert_eq!(Tlp::of("green"), Some(Tlp::Green));
/// assert_eq!(Tlp::of("TLP:RED"), Some(Tlp::Red));
/// assert_eq!(Tlp::of("clear"), None); // TLP 2.0's name: STIX 2.1 predefines TLP 1.0's
/// assert_eq!(Tlp::White.name(), "white");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tlp {
    /// TLP:WHITE, disclosure is not limited.
    White,
    /// TLP:GREEN, the community.
    Green,
    /// TLP:AMBER, the recipient's organization (the default).
    #[default]
    Amber,
    /// TLP:RED, the named recipients only.
    Red,
}

impl Tlp {
    /// Every level, least restricted first.
    pub const ALL: [Self; 4] = [Self::White, Self::Green, Self::Amber, Self::Red];

    /// The level by name (`white`, `green`, `amber`, `red`, any case, `TLP:` allowed).
    pub fn of(name: &str) -> Option<Self> {
        let name = name.trim();
        let prefixed = name
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("tlp:"));
        let bare = if prefixed { &name[4..] } else { name };
        Self::ALL
            .into_iter()
            .find(|tlp| tlp.name().eq_ignore_ascii_case(bare))
    }

    /// The level's name, lower-case.
    pub fn name(self) -> &'static str {
        match self {
            Self::White => "white",
            Self::Green => "green",
            Self::Amber => "amber",
            Self::Red => "red",
        }
    }

    /// The id the spec gives the level's marking definition.
    fn marking_id(self) -> &'static str {
        match self {
            Self::White => "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
            Self::Green => "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
            Self::Amber => "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
            Self::Red => "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        }
    }

    /// The marking definition object, exactly as the spec predefines it.
    fn marking(self) -> Value {
        json!({
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": self.marking_id(),
            "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp",
            "name": format!("TLP:{}", self.name().to_ascii_uppercase()),
            "definition": {"tlp": self.name()},
        })
    }
}

/// `<kind>--` and the UUIDv5, in the STIX namespace, of `properties` as canonical JSON
/// (RFC 8785: keys sorted, no white space; values are strings here): how the spec derives an
/// SCO's id from its id-contributing properties, and how the relay derives its other ids.
pub fn deterministic_id(kind: &str, properties: &[(&str, &str)]) -> String {
    let mut sorted = properties.to_vec();
    // Keys are ASCII: byte order is RFC 8785's UTF-16 order.
    sorted.sort_unstable_by_key(|&(key, _)| key);
    let canonical: Map<String, Value> = sorted
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Value::from(value)))
        .collect();
    let name = Value::Object(canonical).to_string();
    format!("{kind}--{}", Uuid::new_v5(&STIX_NAMESPACE, name.as_bytes()))
}

/// A STIX timestamp (`created`, `modified`): UTC, to the millisecond (the spec's precision for
/// them), the microseconds cut.
pub fn stix_time(at: Timestamp) -> String {
    let text = at.to_string();
    match text.find('.') {
        Some(dot) => format!("{}Z", &text[..dot + 4]),
        None => text,
    }
}

/// The incident's severity from SpyCloud's score, SpyCloud's codes 2, 5, 20, 25 being
/// `low`, `medium`, `high`, `critical`, and any other score the level of the next code up:
/// up to 2 `low`, 3–5 `medium`, 6–20 `high`, above 20 `critical`.
pub fn stix_severity(code: u64) -> &'static str {
    match code {
        0..=2 => "low",
        3..=5 => "medium",
        6..=20 => "high",
        _ => "critical",
    }
}

/// The kind of exposure: `infostealer` when the record names an infected device, else
/// `combo-list` when its catalog is a combo list, else `breach`.
pub fn exposure_type(breach: &BreachRecord, catalog: Option<&Catalog>) -> &'static str {
    if breach.device.is_some() {
        "infostealer"
    } else if catalog.is_some_and(Catalog::is_combo_list) {
        "combo-list"
    } else {
        "breach"
    }
}

/// The SpyCloud identity, the author of every SDO and SRO; its id is the one OpenCTI gives an
/// organization named `SpyCloud`, so both name the same author.
fn identity() -> Value {
    json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id(),
        "created": DEFINED,
        "modified": DEFINED,
        "name": "SpyCloud",
        "identity_class": "organization",
        "sectors": ["technology"],
        "contact_information": "https://spycloud.com",
    })
}

fn identity_id() -> String {
    deterministic_id(
        "identity",
        &[("name", "spycloud"), ("identity_class", "organization")],
    )
}

fn extension_id() -> String {
    deterministic_id(
        "extension-definition",
        &[("name", EXTENSION_NAME), ("version", EXTENSION_VERSION)],
    )
}

/// The definition of the property extension the incidents carry.
fn extension_definition() -> Value {
    json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": extension_id(),
        "created_by_ref": identity_id(),
        "created": DEFINED,
        "modified": DEFINED,
        "name": EXTENSION_NAME,
        "description": "What SpyCloud says of a breach record that STIX 2.1's incident has no property for.",
        "schema": EXTENSION_SCHEMA,
        "version": EXTENSION_VERSION,
        "extension_types": ["property-extension"],
    })
}

/// The id of a record's incident: from SpyCloud's `document_id`, else from the whole record
/// (its catalog, date and fields but its secrets, whose hash would be a way to guess them),
/// so the same record gives the same incident on every import.
pub fn incident_id(breach: &BreachRecord) -> String {
    if let Some(document) = &breach.document_id {
        return deterministic_id("incident", &[("spycloud_document_id", document)]);
    }
    let fields = breach.data.iter();
    let fields: Map<String, Value> = fields
        .filter(|(name, _)| !SECRET_FIELDS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let record = json!({"source_id": breach.source_id, "fields": fields,
        "spycloud_publish_date": breach.published.to_string()});
    deterministic_id("incident", &[("spycloud_record", &record.to_string())])
}

/// A text field of the record, when it is a non-blank string.
fn text<'b>(breach: &'b BreachRecord, name: &str) -> Option<&'b str> {
    match breach.data.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
        _ => None,
    }
}

/// The clear-text password of the record: `password_plaintext`, else `password` when its
/// `password_type` is `plaintext` (a hash is no credential).
fn cleartext_password(breach: &BreachRecord) -> Option<&str> {
    text(breach, "password_plaintext").or_else(|| {
        (text(breach, "password_type") == Some("plaintext"))
            .then(|| text(breach, "password"))
            .flatten()
    })
}

/// What the incident is about, for its name: the record's email, else its username, else the
/// infected device's first IP address, else SpyCloud's id of the record.
fn subject(breach: &BreachRecord) -> String {
    let ip = breach
        .device
        .as_ref()
        .and_then(|d| d.ip_addresses().first())
        .map(ToString::to_string);
    text(breach, "email")
        .or_else(|| text(breach, "username"))
        .map(str::to_owned)
        .or(ip)
        .or_else(|| breach.document_id.clone())
        .unwrap_or_else(|| "a SpyCloud record".to_owned())
}

/// `properties` without the absent (`null`) ones: STIX has no null values.
fn present(properties: Value) -> Value {
    match properties {
        Value::Object(map) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}

/// The catalog as the extension carries it.
fn catalog_properties(catalog: &Catalog) -> Value {
    present(json!({
        "spycloud_id": catalog.id.0,
        "uuid": catalog.uuid,
        "title": catalog.title,
        "description": catalog.description,
        "site": catalog.usable_site(),
        "published": catalog.spycloud_publish_date.map(stix_time),
    }))
}

/// The infected device as the extension carries it.
fn device_properties(device: &Device) -> Value {
    let ips = device.ip_addresses().iter().map(ToString::to_string);
    present(json!({
        "machine_id": device.machine_id(),
        "hostname": device.hostname(),
        "operating_system": device.os(),
        "mac_address": device.mac_address(),
        "infected_path": device.infected_path(),
        "ip_addresses": (!device.ip_addresses().is_empty()).then(|| ips.collect::<Vec<_>>()),
        "infected_at": device.infected_at().map(stix_time),
    }))
}

/// The property extension of a record's incident.
fn extension(breach: &BreachRecord, catalog: Option<&Catalog>, policy: PasswordPolicy) -> Value {
    let masked = cleartext_password(breach)
        .filter(|_| policy == PasswordPolicy::Masked)
        .map(|password| mask(password.into()));
    present(json!({
        "extension_type": "property-extension",
        "exposure_type": exposure_type(breach, catalog),
        "severity": breach.severity.map(stix_severity),
        "severity_code": breach.severity,
        "document_id": breach.document_id,
        "sighting_count": breach.sighting_count,
        "catalog": catalog.map(catalog_properties),
        "device": breach.device.as_ref().map(device_properties),
        "masked_credential": masked,
    }))
}

/// The incident of one record.
fn incident(
    breach: &BreachRecord,
    catalog: Option<&Catalog>,
    options: &MappingOptions,
    marking: &str,
) -> Value {
    let created = stix_time(breach.published);
    let severity = breach
        .severity
        .map(|code| format!("{} ", stix_severity(code)));
    let name = format!(
        "SpyCloud {}alert on {}",
        severity.unwrap_or_default(),
        subject(breach)
    );
    let title = catalog.and_then(|c| c.title.as_deref());
    let mut description = format!("Present in {}.", title.unwrap_or("a SpyCloud breach"));
    if let Some(about) = catalog.and_then(|c| c.description.as_deref()) {
        description.push_str("\n\n");
        description.push_str(about);
    }
    let portal = catalog.and_then(|c| {
        let uuid = c.uuid.as_deref()?;
        let url = super::ctim::web_url(options.catalog_url(uuid))?;
        Some(
            json!({"source_name": "SpyCloud", "url": url, "external_id": uuid,
            "description": title.unwrap_or("SpyCloud breach catalog")}),
        )
    });
    let record = breach.document_id.as_deref().map(|id| {
        json!({"source_name": "SpyCloud", "external_id": id, "description": "SpyCloud breach record"})
    });
    let references: Vec<Value> = portal.into_iter().chain(record).collect();
    let mut incident = json!({
        "type": "incident",
        "spec_version": "2.1",
        "id": incident_id(breach),
        "created_by_ref": identity_id(),
        "created": created,
        "modified": created,
        "name": name,
        "description": description,
        "labels": [exposure_type(breach, catalog)],
        "object_marking_refs": [marking],
    });
    if !references.is_empty() {
        incident["external_references"] = references.into();
    }
    incident["extensions"] = json!({
        extension_id(): extension(breach, catalog, options.passwords),
    });
    incident
}

/// An SCO: its type, its id-contributing properties (from which its id comes), then its other
/// properties, those present.
fn observable(
    kind: &str,
    contributing: &[(&str, &str)],
    others: &[(&str, Option<&str>)],
    marking: &str,
) -> Value {
    let id = deterministic_id(kind, contributing);
    let mut object = json!({"type": kind, "spec_version": "2.1", "id": id});
    let properties = contributing
        .iter()
        .map(|&(name, value)| (name, Some(value)));
    for (name, value) in properties.chain(others.iter().copied()) {
        if let Some(value) = value {
            object[name] = value.into();
        }
    }
    object["object_marking_refs"] = json!([marking]);
    object
}

/// An SCO whose one property is its `value`: `email-addr`, `domain-name`, `url`, `mac-addr`.
fn valued(kind: &str, value: &str, marking: &str) -> Value {
    observable(kind, &[("value", value)], &[], marking)
}

fn ip_addr(ip: IpAddr, marking: &str) -> Value {
    let kind = if ip.is_ipv4() {
        "ipv4-addr"
    } else {
        "ipv6-addr"
    };
    valued(kind, &ip.to_string(), marking)
}

fn user_account(login: &str, credential: Option<&str>, marking: &str) -> Value {
    let others = [("credential", credential)];
    observable(
        "user-account",
        &[("account_login", login)],
        &others,
        marking,
    )
}

/// The SCO of the looked-up observable, when its value is valid for its type.
fn looked_up(found: &ObservableFindings, marking: &str) -> Option<Value> {
    let kind = ObservableType::of(&found.observable.kind)?;
    Some(match Lookup::parse(kind, &found.observable.value).ok()? {
        Lookup::Email(email) => valued("email-addr", email.as_str(), marking),
        Lookup::Domain(domain) => valued("domain-name", domain.as_str(), marking),
        Lookup::Ip(ip) => ip_addr(ip.into(), marking),
        Lookup::Ipv6(ip) => ip_addr(ip.into(), marking),
        Lookup::Username(name) => user_account(name.as_str(), None, marking),
    })
}

/// A MAC address the spec's way: lower-case, colon-separated.
fn stix_mac(mac: &str) -> String {
    mac.to_ascii_lowercase().replace('-', ":")
}

/// The infected path as a `directory` (everything before the last `\` or `/`) and a `file`
/// (the name after it) in it; a path without a separator is a file alone.
fn infected_path(path: &str, marking: &str) -> Vec<Value> {
    match path.rfind(['\\', '/']) {
        Some(at) if at + 1 < path.len() => {
            let parent = if at == 0 { &path[..1] } else { &path[..at] };
            let directory = observable("directory", &[("path", parent)], &[], marking);
            let parent_id = directory["id"].as_str().unwrap_or_default().to_owned();
            let file = observable(
                "file",
                &[
                    ("name", &path[at + 1..]),
                    ("parent_directory_ref", &parent_id),
                ],
                &[],
                marking,
            );
            vec![directory, file]
        }
        Some(_) => vec![observable("directory", &[("path", path)], &[], marking)],
        None => vec![observable("file", &[("name", path)], &[], marking)],
    }
}

/// The SCOs a record names besides the looked-up observable, in this order: its email, its
/// username (a `user-account`, with the clear-text password as `credential` only under
/// [`PasswordPolicy::Plaintext`]), `target_url`, `target_domain`, `target_subdomain`, the
/// device's IP addresses and MAC address, and the infected path. Invalid values are left out.
pub fn record_observables(
    breach: &BreachRecord,
    policy: PasswordPolicy,
    marking: &str,
) -> Vec<Value> {
    let mut objects = Vec::new();
    let email = text(breach, "email").and_then(|e| Email::parse(e).ok());
    if let Some(email) = &email {
        objects.push(valued("email-addr", email.as_str(), marking));
    }
    let credential = cleartext_password(breach).filter(|_| policy == PasswordPolicy::Plaintext);
    // The account the password opens: the username, else the email it was given with.
    let login =
        text(breach, "username").or_else(|| credential.and(email.as_ref().map(Email::as_str)));
    if let Some(login) = login {
        objects.push(user_account(login, credential, marking));
    }
    if let Some(url) = text(breach, "target_url").and_then(|u| super::ctim::web_url(u.to_owned())) {
        objects.push(valued("url", &url, marking));
    }
    for field in ["target_domain", "target_subdomain"] {
        if let Some(domain) = text(breach, field).and_then(|d| Domain::parse(d).ok()) {
            objects.push(valued("domain-name", domain.as_str(), marking));
        }
    }
    if let Some(device) = &breach.device {
        objects.extend(device.ip_addresses().iter().map(|&ip| ip_addr(ip, marking)));
        if let Some(mac) = device.mac_address() {
            objects.push(valued("mac-addr", &stix_mac(mac), marking));
        }
        if let Some(path) = device.infected_path() {
            objects.extend(infected_path(path, marking));
        }
    }
    objects
}

/// `source` is `related-to` the incident `target`: authored and marked like it, dated like it,
/// its id from its type and ends (so it is the same on every import).
fn related_to(source: &str, incident: &Value, marking: &str) -> Value {
    let target = incident["id"].as_str().unwrap_or_default();
    json!({
        "type": "relationship",
        "spec_version": "2.1",
        "id": deterministic_id("relationship", &[
            ("relationship_type", "related-to"), ("source_ref", source), ("target_ref", target),
        ]),
        "created_by_ref": identity_id(),
        "created": incident["created"],
        "modified": incident["modified"],
        "relationship_type": "related-to",
        "source_ref": source,
        "target_ref": target,
        "object_marking_refs": [marking],
    })
}

impl Findings {
    /// The findings as a STIX 2.1 `bundle` (docs/RULES.md, R35 onwards): the SpyCloud
    /// `identity`, the TLP marking definition and the extension definition, then per breach
    /// record (in the findings' order) its `incident`, the observables it names and a
    /// `related-to` relationship from each to the incident; each id once. Without any record,
    /// the identity alone. Warnings and the fatal error are not in the bundle (STIX
    /// has no error object): read them from the findings.
    ///
    /// ```
    /// use spycloud_relay::domain::{
    ///     BreachRecord, Catalog, Findings, MappingOptions, Observable, ObservableFindings,
    ///     RawRecord, Tlp,
    /// };
    ///
    /// let record: RawRecord = serde_json::from_str(r#"{"document_id": "d-1", "source_id": 7,
    ///     "email": "pat@example.com", "severity": 20,
    ///     "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#)?;
    /// let forum: Catalog = serde_json::from_str(r#"{"id": 7, "title": "Example Forum"}"#)?;
    /// let findings = Findings {
    ///     observables: vec![ObservableFindings {
    ///         observable: Observable::new("email", "pat@example.com"),
    ///         records: vec![BreachRecord::try_from(record)?],
    ///         catalogs: vec![forum],
    ///         warnings: Vec::new(),
    ///     }],
    ///     ..Findings::default()
    /// };
    /// let options = MappingOptions { tlp: Tlp::Green, ..MappingOptions::default() };
    /// let bundle = findings.to_stix(&options);
    /// let types: Vec<&str> = bundle["objects"].as_array().unwrap().iter()
    ///     .map(|object| object["type"].as_str().unwrap()).collect();
    /// assert_eq!(types, ["identity", "marking-definition", "extension-definition",
    ///     "incident", "email-addr", "relationship"]);
    /// let incident = &bundle["objects"][3];
    /// assert_eq!(incident["name"], "SpyCloud high alert on pat@example.com");
    /// assert_eq!(incident["created"], "2024-03-01T00:00:00.000Z");
    /// assert_eq!(bundle["objects"][1]["name"], "TLP:GREEN");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_stix(&self, options: &MappingOptions) -> Value {
        let marking = options.tlp.marking_id();
        // Each object once: the first with its id is kept.
        let (mut ids, mut objects) = (HashSet::new(), Vec::new());
        for found in &self.observables {
            let asked = looked_up(found, marking);
            for breach in &found.records {
                let catalog = breach.source_id.and_then(|id| found.catalog(id));
                let incident = incident(breach, catalog, options, marking);
                let observables: Vec<Value> = asked
                    .iter()
                    .cloned()
                    .chain(record_observables(breach, options.passwords, marking))
                    .collect();
                let relationships: Vec<Value> = observables
                    .iter()
                    .filter_map(|o| o["id"].as_str())
                    .map(|id| related_to(id, &incident, marking))
                    .collect();
                let all = [incident]
                    .into_iter()
                    .chain(observables)
                    .chain(relationships);
                for object in all {
                    if ids.insert(object["id"].to_string()) {
                        objects.push(object);
                    }
                }
            }
        }
        // The bundle's id from its content: the same findings give the same bundle.
        let id = deterministic_id("bundle", &[("objects", &json!(objects).to_string())]);
        // Without records, the author alone: STIX allows a bundle without `objects`, but the
        // stix2 library cannot read one.
        let head = if objects.is_empty() {
            vec![identity()]
        } else {
            vec![identity(), options.tlp.marking(), extension_definition()]
        };
        let objects: Vec<Value> = head.into_iter().chain(objects).collect();
        json!({"type": "bundle", "id": id, "objects": objects})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RULES R37
    #[test]
    fn tlp_levels_by_name() {
        for tlp in Tlp::ALL {
            assert_eq!(Tlp::of(tlp.name()), Some(tlp));
            let upper = format!(" TLP:{} ", tlp.name().to_uppercase());
            assert_eq!(Tlp::of(&upper), Some(tlp));
        }
        for other in ["", "tlp:", "clear", "amber+strict", "TLP-RED", "rouge"] {
            assert_eq!(Tlp::of(other), None, "{other}");
        }
    }

    // RULES R38
    #[test]
    fn stix_times_are_utc_to_the_millisecond() {
        let at = |text| stix_time(Timestamp::parse(text).unwrap());
        assert_eq!(
            at("2024-03-01T08:30:00.123999Z"),
            "2024-03-01T08:30:00.123Z"
        );
        assert_eq!(at("2021-05-30 22:10:05"), "2021-05-30T22:10:05.000Z");
        assert_eq!(at("2024-03-01"), "2024-03-01T00:00:00.000Z");
    }

    // RULES R42
    #[test]
    fn an_infected_path_is_a_file_in_a_directory() {
        let parts = |path| {
            infected_path(path, "m")
                .iter()
                .map(|o| {
                    let name = o.get("path").or(o.get("name"));
                    format!("{}={}", o["type"].as_str().unwrap(), name.unwrap())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parts(r"C:\Users\pat\x.exe"),
            [r#"directory="C:\\Users\\pat""#, r#"file="x.exe""#]
        );
        assert_eq!(parts("/x"), [r#"directory="/""#, r#"file="x""#]);
        assert_eq!(parts("/tmp/"), [r#"directory="/tmp/""#]);
        assert_eq!(parts("x.exe"), [r#"file="x.exe""#]);
        let file = &infected_path("/tmp/x", "m")[1];
        assert_eq!(
            file["parent_directory_ref"],
            infected_path("/tmp/x", "m")[0]["id"]
        );
        assert_eq!(stix_mac("00-1A-2B-3C-4D-5E"), "00:1a:2b:3c:4d:5e");
    }

    // RULES R42
    #[test]
    fn deterministic_ids_hash_the_sorted_properties() {
        // Given in any order, the same canonical JSON: {"account_login":"a","user_id":"b"}.
        assert_eq!(
            deterministic_id("user-account", &[("user_id", "b"), ("account_login", "a")]),
            deterministic_id("user-account", &[("account_login", "a"), ("user_id", "b")]),
        );
        let name = r#"{"value":"pat@example.com"}"#;
        let expected = Uuid::new_v5(&STIX_NAMESPACE, name.as_bytes());
        assert_eq!(
            deterministic_id("email-addr", &[("value", "pat@example.com")]),
            format!("email-addr--{expected}")
        );
    }
}
