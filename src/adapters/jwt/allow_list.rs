//! Which `jwks_host` values the relay may fetch a JWKS from.
//!
//! A token names the host its own verification key comes from, so without this list anyone could
//! mint a token, serve a JWKS for it and be trusted. Hosts are accepted only in the plain
//! `host[:port]` shape: no scheme, path, user info, query or fragment can ride along into the
//! URL the relay builds.

use std::fmt;
use std::str::FromStr;

/// The `RELAY_JWKS_HOSTS` default: SecureX's global and regional visibility hosts.
pub const DEFAULT_JWKS_HOSTS: &str = "visibility.amp.cisco.com,visibility.*.amp.cisco.com";

/// Longest DNS name and label (RFC 1035).
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// The hosts a token's `jwks_host` may name.
///
/// Parsed from comma-separated patterns: DNS labels (or IPv4 octets) separated by dots, where a
/// label `*` matches exactly one label of the host, and an optional `:port` that the host must
/// repeat exactly. Comparison ignores ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowList(Vec<HostPattern>);

/// One `host[:port]` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    labels: Vec<Label>,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// `*`: any one label.
    Any,
    /// A literal label, lower-cased.
    Exact(String),
}

/// Why a `RELAY_JWKS_HOSTS` value is not an allow-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAllowList {
    /// No pattern at all: the relay could never verify a token.
    #[error("the jwks host allow-list is empty")]
    Empty,
    /// A pattern that is not `host[:port]`.
    #[error(
        "invalid jwks host pattern {0:?}: expected host[:port] made of letters, digits, '-', \
         dots and whole-label '*'"
    )]
    Pattern(String),
}

impl HostAllowList {
    /// Whether `host` (a token's `jwks_host`, `host[:port]`) may be asked for a JWKS.
    ///
    /// Anything that is not a plain `host[:port]` is refused, whatever the patterns.
    pub fn allows(&self, host: &str) -> bool {
        let Some((labels, port)) = split_host(host, false) else {
            return false;
        };
        self.0.iter().any(|pattern| pattern.matches(&labels, port))
    }
}

impl Default for HostAllowList {
    /// The contract's default, [`DEFAULT_JWKS_HOSTS`].
    fn default() -> Self {
        DEFAULT_JWKS_HOSTS
            .parse()
            .expect("the default allow-list is valid")
    }
}

impl FromStr for HostAllowList {
    type Err = InvalidAllowList;

    /// Reads comma-separated patterns; blanks around commas are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let patterns = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (labels, port) =
                    split_host(p, true).ok_or_else(|| InvalidAllowList::Pattern(p.to_owned()))?;
                let labels = labels
                    .into_iter()
                    .map(|l| match l {
                        "*" => Label::Any,
                        l => Label::Exact(l.to_ascii_lowercase()),
                    })
                    .collect();
                Ok(HostPattern { labels, port })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(InvalidAllowList::Empty);
        }
        Ok(Self(patterns))
    }
}

impl fmt::Display for HostAllowList {
    /// The patterns as they would be configured, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, label) in pattern.labels.iter().enumerate() {
                if j > 0 {
                    f.write_str(".")?;
                }
                match label {
                    Label::Any => f.write_str("*")?,
                    Label::Exact(l) => f.write_str(l)?,
                }
            }
            if let Some(port) = pattern.port {
                write!(f, ":{port}")?;
            }
        }
        Ok(())
    }
}

impl HostPattern {
    fn matches(&self, labels: &[&str], port: Option<u16>) -> bool {
        self.port == port
            && self.labels.len() == labels.len()
            && self.labels.iter().zip(labels).all(|(p, l)| match p {
                Label::Any => true,
                Label::Exact(p) => p.eq_ignore_ascii_case(l),
            })
    }
}

/// Splits `host[:port]` into its labels and port, or `None` when it is anything else.
///
/// Labels are non-empty runs of ASCII letters, digits and `-` (plus a whole `*` in a pattern);
/// the port is 1..=65535 written without leading zeros, so equal ports are equal strings.
fn split_host(s: &str, pattern: bool) -> Option<(Vec<&str>, Option<u16>)> {
    let (name, port) = match s.split_once(':') {
        Some((name, port)) => (name, Some(parse_port(port)?)),
        None => (s, None),
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let valid = |l: &&str| {
        (pattern && *l == "*")
            || (!l.is_empty()
                && l.len() <= MAX_LABEL_LEN
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    labels.iter().all(valid).then_some((labels, port))
}

fn parse_port(port: &str) -> Option<u16> {
    let canonical =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !port.starts_with('0');
    canonical.then(|| port.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> HostAllowList {
        s.parse().unwrap()
    }

    #[test]
    fn default_allows_the_global_and_regional_visibility_hosts() {
        let default = HostAllowList::default();
        for ok in [
            "visibility.amp.cisco.com",
            "visibility.eu.amp.cisco.com",
            "visibility.apjc.amp.cisco.com",
            "VISIBILITY.EU.Amp.Cisco.Com",
        ] {
            assert!(default.allows(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "visibility.amp.cisco.com.evil.com",
            "visibility.eu.amp.cisco.com.evil.com",
            "evil.visibility.amp.cisco.com",
            "amp.cisco.com",
            "xvisibility.amp.cisco.com",
        ] {
            assert!(!default.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_star_matches_exactly_one_non_empty_label() {
        let default = HostAllowList::default();
        for bad in [
            "visibility.a.b.amp.cisco.com",
            "visibility..amp.cisco.com",
            "visibility.eu.x.amp.cisco.com",
        ] {
            assert!(!default.allows(bad), "{bad}");
        }
        let star = list("*.example.com");
        assert!(star.allows("a-1.example.com"));
        assert!(!star.allows("example.com"));
        assert!(!star.allows("a.b.example.com"));
    }

    #[test]
    fn a_port_must_match_exactly() {
        let default = HostAllowList::default();
        assert!(!default.allows("visibility.amp.cisco.com:443"));
        assert!(!default.allows("visibility.eu.amp.cisco.com:8080"));

        let local = list("127.0.0.1:8080");
        assert!(local.allows("127.0.0.1:8080"));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:8081",
            "127.0.0.1:80",
            "127.0.0.1:08080",
            "127.0.0.1:",
            "127.0.0.1:8080:8080",
        ] {
            assert!(!local.allows(bad), "{bad}");
        }
    }

    #[test]
    fn hosts_that_are_not_plain_host_and_port_are_refused() {
        let any = list("*,*.*,*.*.*,*.*.*.*,*.*.*.*:8080");
        assert!(any.allows("evil.com"));
        for trick in [
            "",
            "evil.com/x",
            "evil.com/",
            "a@b",
            "user@evil.com",
            "evil.com?",
            "evil.com#frag",
            "evil.com ",
            " evil.com",
            "evil .com",
            "evil.com\t",
            "evil.com\n",
            "evil.com.",
            ".evil.com",
            "http://evil.com",
            "evil.com\\x",
            "[::1]:8080",
            "évil.com",
            "evil.com%2f",
            "evil_host.com",
            "*.com",
        ] {
            assert!(!any.allows(trick), "{trick:?}");
        }
    }

    #[test]
    fn patterns_are_validated() {
        assert_eq!("".parse::<HostAllowList>(), Err(InvalidAllowList::Empty));
        assert_eq!(
            " , ,".parse::<HostAllowList>(),
            Err(InvalidAllowList::Empty)
        );
        for bad in [
            "a/b",
            "vis*.amp.cisco.com",
            "a..b",
            "host:99999",
            "host:0",
            "host:",
            "https://visibility.amp.cisco.com",
            "a@b",
        ] {
            assert_eq!(
                bad.parse::<HostAllowList>(),
                Err(InvalidAllowList::Pattern(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_are_trimmed_lower_cased_and_displayed_as_configured() {
        let parsed = list(" Visibility.AMP.cisco.com , visibility.*.amp.cisco.com,127.0.0.1:9 ");
        assert_eq!(
            parsed.to_string(),
            "visibility.amp.cisco.com,visibility.*.amp.cisco.com,127.0.0.1:9"
        );
        assert!(parsed.allows("visibility.amp.cisco.com"));
        assert_eq!(HostAllowList::default().to_string(), DEFAULT_JWKS_HOSTS);
    }
}
