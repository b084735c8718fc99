//! What can be looked up in SpyCloud: one variant per lookup, each only constructible valid
//! (parse, don't validate). Observables are parsed into a [`Lookup`] once, at the edge; past
//! that point nothing asks whether a value is valid or which kind it is, except the one place
//! that must (the SpyCloud adapter, choosing the endpoint).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::email::{Email, truncate};

/// The observable types the relay looks up (the contract's *Observable types* table).
///
/// ```
/// use spycloud_relay::domain::ObservableType;
///
/// assert_eq!(ObservableType::of("IPv6"), Some(ObservableType::Ipv6));
/// assert_eq!(ObservableType::of("sha256"), None);
/// assert_eq!(ObservableType::User.name(), "user");
/// // A bare value's type by its form (the `lookup` command's values carry none).
/// assert_eq!(ObservableType::by_form("203.0.113.77"), Some(ObservableType::Ip));
/// assert_eq!(ObservableType::by_form("acme.test"), Some(ObservableType::Domain));
/// assert_eq!(ObservableType::by_form("arivera"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObservableType {
    /// `email`: an email address.
    Email,
    /// `domain`: a DNS name.
    Domain,
    /// `ip`: an IPv4 address.
    Ip,
    /// `ipv6`: an IPv6 address.
    Ipv6,
    /// `user`: a username.
    User,
}

impl ObservableType {
    /// Every type, in the contract's order.
    pub const ALL: [Self; 5] = [Self::Email, Self::Domain, Self::Ip, Self::Ipv6, Self::User];

    /// The type an observable's `type` names (compared case-insensitively), if it is supported.
    pub fn of(kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(kind))
    }

    /// The type's name as SecureX writes it: `email`, `domain`, `ip`, `ipv6`, `user`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Domain => "domain",
            Self::Ip => "ip",
            Self::Ipv6 => "ipv6",
            Self::User => "user",
        }
    }

    /// The SpyCloud breach-data endpoint of the type's lookups (`/breach/data/<endpoint>/..`),
    /// also the `endpoint` label of the relay's metrics: `emails`, `domains`, `ips` (both IP
    /// types), `usernames`.
    ///
    /// ```
    /// use spycloud_relay::domain::ObservableType;
    ///
    /// let endpoints = ObservableType::ALL.map(ObservableType::endpoint);
    /// assert_eq!(endpoints, ["emails", "domains", "ips", "ips", "usernames"]);
    /// ```
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::Email => "emails",
            Self::Domain => "domains",
            Self::Ip | Self::Ipv6 => "ips",
            Self::User => "usernames",
        }
    }

    /// What a valid value is, as the invalid-value warning says it.
    pub fn what(self) -> &'static str {
        match self {
            Self::Email => "email address",
            Self::Domain => "domain",
            Self::Ip => "IPv4 address",
            Self::Ipv6 => "IPv6 address",
            Self::User => "username",
        }
    }

    /// The type a bare value has by its form, for callers that give values without types (the
    /// `lookup` command): an address with `@` is an email, an IP literal an `ip` or `ipv6`, a
    /// dotted name a domain. `None` when the form says nothing (a bare word could be a username).
    pub fn by_form(value: &str) -> Option<Self> {
        if value.contains('@') {
            Some(Self::Email)
        } else if value.parse::<Ipv4Addr>().is_ok() {
            Some(Self::Ip)
        } else if value.parse::<Ipv6Addr>().is_ok() {
            Some(Self::Ipv6)
        } else if Domain::parse(value).is_ok_and(|d| d.0.rsplit('.').next().is_some_and(has_letter))
        {
            // A top label of digits only ("1.2.3") reads as a mistyped address, not a name.
            Some(Self::Domain)
        } else {
            None
        }
    }
}

fn has_letter(label: &str) -> bool {
    label.bytes().any(|b| b.is_ascii_alphabetic())
}

impl fmt::Display for ObservableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value that is not valid for its type; `Display` is the contract's warning message,
/// `<value, cut to 100 characters> is not a valid <what>`.
///
/// ```
/// use spycloud_relay::domain::{Lookup, ObservableType};
///
/// let invalid = Lookup::parse(ObservableType::Ip, "203.0.113.300").unwrap_err();
/// assert_eq!(invalid.kind, ObservableType::Ip);
/// assert_eq!(invalid.to_string(), "203.0.113.300 is not a valid IPv4 address");
///
/// let long = Lookup::parse(ObservableType::Email, &"x".repeat(300)).unwrap_err();
/// assert_eq!(long.to_string(), format!("{} is not a valid email address", "x".repeat(100)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a valid {}", truncate(.value, 100), .kind.what())]
pub struct InvalidLookup {
    /// The type the value was given as.
    pub kind: ObservableType,
    /// The value as given.
    pub value: String,
}

impl InvalidLookup {
    fn new(kind: ObservableType, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}

/// Something SpyCloud can be asked about, known to be valid for its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// `breach/data/emails/{address}`.
    Email(Email),
    /// `breach/data/domains/{name}`.
    Domain(Domain),
    /// `breach/data/ips/{address}`.
    Ip(Ipv4Addr),
    /// `breach/data/ips/{address}`, in canonical compressed form.
    Ipv6(Ipv6Addr),
    /// `breach/data/usernames/{name}`.
    Username(Username),
}

impl Lookup {
    /// Parses `value` as a `kind`.
    ///
    /// # Errors
    /// [`InvalidLookup`] when the value is not valid for its type.
    ///
    /// ```
    /// use spycloud_relay::domain::{Lookup, ObservableType};
    ///
    /// let ip = Lookup::parse(ObservableType::Ipv6, "2001:DB8:0:0:0:0:0:1")?;
    /// assert_eq!(ip.kind(), ObservableType::Ipv6);
    /// assert_eq!(ip.to_string(), "2001:db8::1");
    ///
    /// // Dotted decimal only: no octal or short forms.
    /// assert!(Lookup::parse(ObservableType::Ip, "10.1").is_err());
    /// # Ok::<(), spycloud_relay::domain::InvalidLookup>(())
    /// ```
    pub fn parse(kind: ObservableType, value: &str) -> Result<Self, InvalidLookup> {
        let lookup = match kind {
            ObservableType::Email => Email::parse(value).ok().map(Self::Email),
            ObservableType::Domain => Domain::parse(value).ok().map(Self::Domain),
            // The standard parsers take dotted decimal only (no octal, hex or short forms) and
            // IPv6 without a zone: exactly what SpyCloud can look up.
            ObservableType::Ip => value.parse().ok().map(Self::Ip),
            ObservableType::Ipv6 => value.parse().ok().map(Self::Ipv6),
            ObservableType::User => Username::parse(value).ok().map(Self::Username),
        };
        lookup.ok_or_else(|| InvalidLookup::new(kind, value))
    }

    /// The lookup's observable type.
    pub fn kind(&self) -> ObservableType {
        match self {
            Self::Email(_) => ObservableType::Email,
            Self::Domain(_) => ObservableType::Domain,
            Self::Ip(_) => ObservableType::Ip,
            Self::Ipv6(_) => ObservableType::Ipv6,
            Self::Username(_) => ObservableType::User,
        }
    }
}

/// The value as SpyCloud is asked for it: an email or username as given, a domain
/// lower-cased without a trailing dot, an IP address in its canonical form.
impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Email(email) => email.fmt(f),
            Self::Domain(domain) => domain.fmt(f),
            Self::Ip(ip) => ip.fmt(f),
            // Rust writes IPv6 addresses the RFC 5952 way: lower-case, zeros compressed.
            Self::Ipv6(ip) => ip.fmt(f),
            Self::Username(name) => name.fmt(f),
        }
    }
}

/// A DNS name: two or more labels of ASCII letters, digits and inner hyphens (at most 63
/// characters each), at most 253 characters; held lower-cased, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    /// The longest name DNS can carry, without the trailing dot.
    pub const MAX_LEN: usize = 253;
    /// The longest label DNS can carry.
    pub const MAX_LABEL_LEN: usize = 63;

    /// Parses a DNS name; one trailing dot (the root) is dropped, letters are lower-cased.
    /// Internationalised names are taken in their ASCII (`xn--`) form.
    ///
    /// # Errors
    /// [`InvalidLookup`] for anything else.
    ///
    /// ```
    /// use spycloud_relay::domain::Domain;
    ///
    /// assert_eq!(Domain::parse("Mail.ACME.test.")?.as_str(), "mail.acme.test");
    /// assert_eq!(Domain::parse("xn--bcher-kva.example")?.as_str(), "xn--bcher-kva.example");
    /// assert!(Domain::parse("localhost").is_err()); // one label
    /// assert!(Domain::parse("bücher.example").is_err()); // not in its xn-- form
    /// assert!(Domain::parse("-acme.test").is_err());
    /// # Ok::<(), spycloud_relay::domain::InvalidLookup>(())
    /// ```
    pub fn parse(value: &str) -> Result<Self, InvalidLookup> {
        let name = value.strip_suffix('.').unwrap_or(value);
        let label_ok = |label: &str| {
            (1..=Self::MAX_LABEL_LEN).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.len() <= Self::MAX_LEN
            && name.split('.').count() >= 2
            && name.split('.').all(label_ok)
        {
            Ok(Self(name.to_ascii_lowercase()))
        } else {
            Err(InvalidLookup::new(ObservableType::Domain, value))
        }
    }

    /// The name, lower-cased, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A username: not blank, at most 256 characters, no control characters; held as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// The longest username, in characters.
    pub const MAX_CHARS: usize = 256;

    /// Parses a username.
    ///
    /// # Errors
    /// [`InvalidLookup`] for a blank value, one over 256 characters, or one holding a
    /// control character.
    ///
    /// ```
    /// use spycloud_relay::domain::Username;
    ///
    /// assert_eq!(Username::parse(" A.Rivera ")?.as_str(), " A.Rivera ");
    /// assert!(Username::parse("   ").is_err());
    /// assert!(Username::parse("a\nrivera").is_err());
    /// assert!(Username::parse(&"é".repeat(Username::MAX_CHARS)).is_ok());
    /// # Ok::<(), spycloud_relay::domain::InvalidLookup>(())
    /// ```
    pub fn parse(value: &str) -> Result<Self, InvalidLookup> {
        let ok = !value.trim().is_empty()
            && value.chars().count() <= Self::MAX_CHARS
            && !value.chars().any(char::is_control);
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidLookup::new(ObservableType::User, value))
        }
    }

    /// The username as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(kind: ObservableType, value: &str) -> Result<String, String> {
        Lookup::parse(kind, value)
            .map(|lookup| lookup.to_string())
            .map_err(|invalid| invalid.to_string())
    }

    #[test]
    fn types_are_named_case_insensitively_and_only_the_five_are_supported() {
        assert_eq!(ObservableType::of("EMAIL"), Some(ObservableType::Email));
        assert_eq!(ObservableType::of("Domain"), Some(ObservableType::Domain));
        assert_eq!(ObservableType::of("ip"), Some(ObservableType::Ip));
        assert_eq!(ObservableType::of("IPv6"), Some(ObservableType::Ipv6));
        assert_eq!(ObservableType::of("user"), Some(ObservableType::User));
        for unsupported in ["sha256", "url", "username", "ipv4", "", "e-mail"] {
            assert_eq!(ObservableType::of(unsupported), None, "{unsupported}");
        }
        for kind in ObservableType::ALL {
            assert_eq!(ObservableType::of(kind.name()), Some(kind));
        }
    }

    #[test]
    fn domains_are_sent_lower_cased_without_a_trailing_dot() {
        use ObservableType::Domain as D;
        assert_eq!(sent(D, "Example.COM.").unwrap(), "example.com");
        assert_eq!(sent(D, "a-b.c0.example.org").unwrap(), "a-b.c0.example.org");
        assert_eq!(
            sent(D, "xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        let longest_label = format!("{}.com", "a".repeat(63));
        assert!(sent(D, &longest_label).is_ok());
        // 4 labels of 63 and a dot each: 255; cut to exactly 253.
        let long = [
            &"a".repeat(63)[..],
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(61),
        ]
        .join(".");
        assert_eq!(long.len(), 253);
        assert!(sent(D, &long).is_ok());
        assert!(sent(D, &format!("{long}.")).is_ok());
    }

    #[test]
    fn invalid_domains_are_refused_with_the_contract_message() {
        use ObservableType::Domain as D;
        let too_long = [
            &"a".repeat(63)[..],
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(62),
        ]
        .join(".");
        for bad in [
            "localhost",
            "example..com",
            ".example.com",
            "example.com..",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a b.com",
            "bücher.example",
            "1.2.3.4/24",
            &format!("{}.com", "a".repeat(64)),
            &too_long,
        ] {
            assert_eq!(
                sent(D, bad).unwrap_err(),
                format!("{} is not a valid domain", truncate(bad, 100)),
                "{bad}"
            );
        }
    }

    #[test]
    fn ipv4_is_dotted_decimal_only() {
        use ObservableType::Ip;
        assert_eq!(sent(Ip, "192.0.2.1").unwrap(), "192.0.2.1");
        for bad in [
            "192.0.2",
            "192.0.2.256",
            "0x7f.0.0.1",
            "010.0.0.1",
            "::1",
            " 192.0.2.1",
            "1.2.3.4.5",
        ] {
            assert_eq!(
                sent(Ip, bad).unwrap_err(),
                format!("{bad} is not a valid IPv4 address"),
                "{bad}"
            );
        }
    }

    #[test]
    fn ipv6_is_sent_in_canonical_compressed_form() {
        use ObservableType::Ipv6;
        for (given, canonical) in [
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("::1", "::1"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ] {
            assert_eq!(sent(Ipv6, given).unwrap(), canonical, "{given}");
        }
        for bad in [
            "192.0.2.1",
            "2001:db8::1::2",
            "fe80::1%eth0",
            "2001:db8:::1",
            "gggg::1",
        ] {
            assert_eq!(
                sent(Ipv6, bad).unwrap_err(),
                format!("{bad} is not a valid IPv6 address"),
                "{bad}"
            );
        }
    }

    #[test]
    fn usernames_are_kept_as_given_within_256_characters_without_controls() {
        use ObservableType::User;
        assert_eq!(sent(User, "Alice.Smith").unwrap(), "Alice.Smith");
        assert_eq!(sent(User, "jörg the admin").unwrap(), "jörg the admin");
        assert!(sent(User, &"é".repeat(256)).is_ok());
        let long = "é".repeat(257);
        assert_eq!(
            sent(User, &long).unwrap_err(),
            format!("{} is not a valid username", "é".repeat(100))
        );
        for bad in ["", "   ", "tab\there", "new\nline", "nul\0"] {
            assert_eq!(
                sent(User, bad).unwrap_err(),
                format!("{bad} is not a valid username"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn emails_keep_their_rule_and_message() {
        use ObservableType::Email;
        assert_eq!(sent(Email, "Bob@Example.com").unwrap(), "Bob@Example.com");
        assert_eq!(
            sent(Email, "bob").unwrap_err(),
            "bob is not a valid email address"
        );
    }

    #[test]
    fn a_lookup_knows_its_type() {
        for (kind, value) in [
            (ObservableType::Email, "a@b.co"),
            (ObservableType::Domain, "b.co"),
            (ObservableType::Ip, "192.0.2.1"),
            (ObservableType::Ipv6, "::1"),
            (ObservableType::User, "bob"),
        ] {
            assert_eq!(Lookup::parse(kind, value).unwrap().kind(), kind);
        }
    }

    // RULES R8
    #[test]
    fn bare_values_are_typed_by_their_form() {
        for (value, kind) in [
            ("a@example.com", Some(ObservableType::Email)),
            ("not@valid@", Some(ObservableType::Email)),
            ("192.0.2.1", Some(ObservableType::Ip)),
            ("2001:db8::1", Some(ObservableType::Ipv6)),
            ("Example.com", Some(ObservableType::Domain)),
            ("example.com.", Some(ObservableType::Domain)),
            ("alice", None),
            ("1.2.3", None),
            ("192.0.2.256", None),
            ("a..b", None),
        ] {
            assert_eq!(ObservableType::by_form(value), kind, "{value}");
        }
    }
}
