//! The one observable this relay supports: an email address that is known to be valid.

use std::fmt;

use super::lookup::{InvalidLookup, ObservableType};

/// An email address, as the caller wrote it, that passed validation.
///
/// Only [`Email::parse`] builds one, so holding an `Email` means it is safe to send to SpyCloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses `value` as an email address (RFC 5322 addr-spec, as the `email_address` crate
    /// checks it), keeping it exactly as given.
    ///
    /// # Errors
    /// [`InvalidLookup`] carrying the value when it is not an address.
    ///
    /// ```
    /// use spycloud_relay::domain::Email;
    ///
    /// let email = Email::parse("Alex.Rivera@Example.com")?;
    /// assert_eq!(email.as_str(), "Alex.Rivera@Example.com");
    ///
    /// // A display name is not an address SpyCloud can look up.
    /// let refused = Email::parse("Alex <alex@example.com>").unwrap_err();
    /// assert_eq!(refused.value, "Alex <alex@example.com>");
    /// # Ok::<(), spycloud_relay::domain::InvalidLookup>(())
    /// ```
    pub fn parse(value: &str) -> Result<Self, InvalidLookup> {
        // `email_address` accepts display names ("A <a@b.c>") in its FromStr; is_valid only
        // accepts the bare address, which is what SpyCloud looks up.
        if email_address::EmailAddress::is_valid(value) && !value.contains(['<', '>', ' ']) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidLookup {
                kind: ObservableType::Email,
                value: value.to_owned(),
            })
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first `max` characters of `value` (characters, not bytes).
pub(crate) fn truncate(value: &str, max: usize) -> &str {
    match value.char_indices().nth(max) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RULES R2
    #[test]
    fn accepts_addresses() {
        for value in [
            "user@example.com",
            "First.Last+tag@sub.example.org",
            "a@b.co",
        ] {
            assert_eq!(Email::parse(value).unwrap().as_str(), value);
        }
    }

    // RULES R2
    #[test]
    fn refuses_non_addresses() {
        for value in [
            "",
            "x",
            "user@",
            "@example.com",
            "a b@example.com",
            "Name <a@b.com>",
        ] {
            assert_eq!(
                Email::parse(value),
                Err(InvalidLookup {
                    kind: ObservableType::Email,
                    value: value.to_owned(),
                })
            );
        }
    }

    #[test]
    fn error_message_cuts_the_value_to_100_characters() {
        let long = "é".repeat(150);
        let message = Email::parse(&long).unwrap_err().to_string();
        assert_eq!(
            message,
            format!("{} is not a valid email address", "é".repeat(100))
        );
    }
}
