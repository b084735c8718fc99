//! The infected computer an infostealer record describes: what XDR can pivot to from the
//! leaked credential. Parsed once from the record's fields; invalid values are dropped, not
//! guessed, and texts are cut to CTIM's limits.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::ctim::{SHORT_STRING, within_limit};
use super::time::Timestamp;

/// The device an infostealer record names (SpyCloud's `infected_machine_id`, `user_hostname`,
/// `ip_addresses`, `mac_address`, `user_os`, `infected_time`, `infected_path`), each value
/// only when valid. A record that names none of them has no device.
///
/// ```
/// use spycloud_relay::domain::{BreachRecord, RawRecord};
///
/// let record: RawRecord = serde_json::from_str(r#"{
///     "infected_machine_id": "m-1", "user_hostname": "PAT-PC", "user_os": "Windows 11",
///     "ip_addresses": ["198.51.100.7", "not an address", "2001:DB8::1"],
///     "mac_address": "00-1A-2B-3C-4D-5E", "infected_time": "2024-02-29 23:01:02",
///     "spycloud_publish_date": "2024-03-01T00:00:00Z"
/// }"#)?;
/// let record = BreachRecord::try_from(record)?;
/// let device = record.device.as_ref().expect("the record names its device");
/// assert_eq!((device.machine_id(), device.hostname()), (Some("m-1"), Some("PAT-PC")));
/// let ips: Vec<String> = device.ip_addresses().iter().map(ToString::to_string).collect();
/// assert_eq!(ips, ["198.51.100.7", "2001:db8::1"]);
/// assert_eq!(device.mac_address(), Some("00-1A-2B-3C-4D-5E"));
/// assert_eq!(device.infected_at().map(|t| t.to_string()).as_deref(), Some("2024-02-29T23:01:02.000000Z"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    machine_id: Option<String>,
    hostname: Option<String>,
    ip_addresses: Vec<IpAddr>,
    mac_address: Option<String>,
    os: Option<String>,
    infected_at: Option<Timestamp>,
    infected_path: Option<String>,
}

impl Device {
    /// The device `fields` name, with the record's machine id; `None` when they name none.
    pub(crate) fn of(fields: &Map<String, Value>, machine_id: Option<&str>) -> Option<Self> {
        let text = |name: &str| match fields.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        };
        let device = Self {
            machine_id: machine_id.map(|id| within_limit(id.to_owned(), SHORT_STRING)),
            hostname: text("user_hostname")
                .filter(|h| is_hostname(h))
                .map(str::to_owned),
            ip_addresses: ip_addresses(fields.get("ip_addresses")),
            mac_address: text("mac_address").filter(|m| is_mac(m)).map(str::to_owned),
            os: text("user_os").map(|os| within_limit(os.to_owned(), SHORT_STRING)),
            infected_at: text("infected_time").and_then(|t| Timestamp::parse(t).ok()),
            infected_path: text("infected_path").map(|p| within_limit(p.to_owned(), SHORT_STRING)),
        };
        let named = device.machine_id.is_some()
            || device.hostname.is_some()
            || !device.ip_addresses.is_empty()
            || device.mac_address.is_some()
            || device.os.is_some()
            || device.infected_at.is_some()
            || device.infected_path.is_some();
        named.then_some(device)
    }

    /// SpyCloud's id of the infected machine.
    pub fn machine_id(&self) -> Option<&str> {
        self.machine_id.as_deref()
    }

    /// The machine's host name: not blank, no control characters, at most 1024 characters.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// Its IPv4 and IPv6 addresses, in the record's order (those that parse).
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// Its MAC address as SpyCloud wrote it: six hex pairs split by `:` or `-`.
    pub fn mac_address(&self) -> Option<&str> {
        self.mac_address.as_deref()
    }

    /// Its operating system, as SpyCloud names it.
    pub fn os(&self) -> Option<&str> {
        self.os.as_deref()
    }

    /// When it was infected (SpyCloud's `infected_time`, UTC).
    pub fn infected_at(&self) -> Option<Timestamp> {
        self.infected_at
    }

    /// The path of the malware on it.
    pub fn infected_path(&self) -> Option<&str> {
        self.infected_path.as_deref()
    }
}

/// A host name CTIM takes as a `hostname` observable: no control characters, within a
/// ShortString (counted as CTIM counts, in UTF-16 code units). A longer one is left out, not
/// cut: a cut host name names another machine.
fn is_hostname(name: &str) -> bool {
    !name.chars().any(char::is_control) && name.encode_utf16().count() <= SHORT_STRING
}

/// Six pairs of hex digits split by `:` or `-` (the same separator throughout).
fn is_mac(mac: &str) -> bool {
    let bytes = mac.as_bytes();
    let separator = bytes.get(2).copied();
    bytes.len() == 17
        && matches!(separator, Some(b':' | b'-'))
        && bytes.iter().enumerate().all(|(at, &b)| {
            if at % 3 == 2 {
                Some(b) == separator
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// The addresses of `ip_addresses` (a list, or a single string) that parse as IPv4 or IPv6.
fn ip_addresses(value: Option<&Value>) -> Vec<IpAddr> {
    let parse = |value: &Value| value.as_str().and_then(|s| s.trim().parse::<IpAddr>().ok());
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(parse).collect(),
        Some(single @ Value::String(_)) => parse(single).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device(fields: Value) -> Option<Device> {
        let Value::Object(fields) = fields else {
            panic!("an object")
        };
        Device::of(&fields, None)
    }

    #[test]
    fn a_record_without_device_fields_has_no_device() {
        assert_eq!(
            device(json!({"email": "a@example.com", "password": "x"})),
            None
        );
        assert_eq!(
            device(json!({"user_hostname": "", "ip_addresses": [], "mac_address": null})),
            None
        );
    }

    #[test]
    fn addresses_keep_the_valid_ones_in_order() {
        let d = device(json!({"ip_addresses": [
            " 198.51.100.7 ", "256.1.1.1", "fe80::1%eth0", "::ffff:192.0.2.1", 7, "2001:DB8::1"
        ]}))
        .unwrap();
        let ips: Vec<String> = d.ip_addresses().iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["198.51.100.7", "::ffff:192.0.2.1", "2001:db8::1"]);
        let one = device(json!({"ip_addresses": "203.0.113.1"})).unwrap();
        assert_eq!(one.ip_addresses().len(), 1);
    }

    #[test]
    fn host_names_and_macs_are_checked_and_texts_cut() {
        let ok = "😀".repeat(512); // 1024 UTF-16 code units
        assert_eq!(
            device(json!({"user_hostname": ok})).unwrap().hostname(),
            Some(ok.as_str())
        );
        for bad in [format!("{ok}a"), "A\tB".to_owned(), "A\u{0}B".to_owned()] {
            let d = device(json!({"user_hostname": bad, "user_os": "x"})).unwrap();
            assert_eq!(d.hostname(), None, "{bad:?}");
        }
        for (mac, valid) in [
            ("00:1a:2B:3c:4D:5e", true),
            ("00-1A-2B-3C-4D-5E", true),
            ("00:1A-2B:3C:4D:5E", false),
            ("001A2B3C4D5E", false),
            ("00:1A:2B:3C:4D:5G", false),
            ("00:1A:2B:3C:4D:5E:6F", false),
            ("0:1A:2B:3C:4D:5E", false),
        ] {
            let d = device(json!({"mac_address": mac, "user_os": "x"})).unwrap();
            assert_eq!(d.mac_address().is_some(), valid, "{mac}");
        }
        let long = device(json!({"user_os": "o".repeat(3000), "infected_path": "p".repeat(3000)}))
            .unwrap();
        assert_eq!(long.os().unwrap().encode_utf16().count(), SHORT_STRING);
        assert!(long.infected_path().unwrap().ends_with('…'));
    }

    #[test]
    fn the_infection_time_reads_spyclouds_forms() {
        for (time, text) in [
            ("2024-02-29 23:01:02", Some("2024-02-29T23:01:02.000000Z")),
            ("2024-02-29T23:01:02Z", Some("2024-02-29T23:01:02.000000Z")),
            ("yesterday", None),
        ] {
            let d = device(json!({"infected_time": time, "user_os": "x"})).unwrap();
            assert_eq!(d.infected_at().map(|t| t.to_string()).as_deref(), text);
        }
    }
}
