//! The errors a request can end with or carry, and their SecureX codes and messages: every
//! error string of the contract lives here.

use super::breach::InvalidRecord;
use super::catalog::CatalogId;
use super::credentials::AuthError;
use super::ctim::{ErrorDoc, ErrorType};
use super::email::truncate;
use super::lookup::InvalidLookup;
use super::settings::InvalidSetting;

/// Why a source could not answer. The relay turns each into the contract's SecureX error.
///
/// ```
/// use spycloud_relay::Error;
/// use spycloud_relay::domain::SourceError;
///
/// let tls = Error::Upstream(SourceError::Tls("certificate has expired".to_owned()));
/// assert_eq!(tls.code(), "unknown");
/// assert_eq!(tls.message(), "Unable to verify SSL certificate: certificate has expired");
///
/// let slow = Error::Upstream(SourceError::Timeout("SpyCloud did not answer within 10 s".into()));
/// assert_eq!(slow.message(), "SpyCloud did not answer within 10 s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// HTTP 401: the message SpyCloud gave, else `Unauthorized`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// HTTP 403: the message SpyCloud gave, else `Forbidden`.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// HTTP 404.
    #[error("not found")]
    NotFound,
    /// HTTP 500.
    #[error("internal error")]
    Internal,
    /// HTTP 429 after retries.
    #[error("rate limited")]
    RateLimited,
    /// HTTP 429 with `x-amzn-ErrorType: LimitExceededException`: the API key's monthly quota
    /// is used up (not retried).
    #[error("monthly quota used up")]
    QuotaUsedUp,
    /// HTTP 403 with `SpyCloud-Error: Invalid IP`: the key does not take calls from this IP.
    #[error("forbidden: invalid IP")]
    IpNotAllowed,
    /// HTTP 403 with `SpyCloud-Error: Invalid API key`.
    #[error("forbidden: invalid API key")]
    InvalidApiKey,
    /// Any other status: the body as text.
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// The TLS handshake failed: why.
    #[error("TLS failure: {0}")]
    Tls(String),
    /// No answer in time: which call.
    #[error("timeout: {0}")]
    Timeout(String),
    /// No connection (refused, DNS, reset): what happened.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A 2xx answer that is not the JSON SpyCloud documents.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

/// A fatal error: it ends the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RelayError {
    /// The caller is not authorized.
    #[error("authorization failed: {0}")]
    Auth(#[from] AuthError),
    /// SpyCloud could not answer.
    #[error("SpyCloud failed: {0}")]
    Source(#[from] SourceError),
    /// The request body is not what the route takes: the detail after the fixed prefix.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// `/watchdog` without a `Health-Check` header.
    #[error("invalid health check")]
    HealthCheck,
    /// A tile id the dashboard does not have: the id as asked.
    #[error("unknown tile id")]
    UnknownTile(String),
    /// A period the dashboard does not offer: the period as asked.
    #[error("unknown period")]
    UnknownPeriod(String),
    /// The overall deadline passed before SpyCloud answered everything.
    #[error("deadline of {0} s passed")]
    Deadline(u64),
}

impl RelayError {
    /// The SecureX code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth(_) => "authorization error",
            Self::Source(
                SourceError::Unauthorized(_)
                | SourceError::Forbidden(_)
                | SourceError::IpNotAllowed
                | SourceError::InvalidApiKey,
            ) => "authorization error",
            Self::Source(SourceError::NotFound) => "not found",
            Self::Source(SourceError::Internal) => "internal error",
            Self::Source(SourceError::RateLimited | SourceError::QuotaUsedUp) => {
                "too many requests"
            }
            Self::Source(_) | Self::Deadline(_) => "unknown",
            Self::InvalidPayload(_) | Self::UnknownTile(_) | Self::UnknownPeriod(_) => {
                "invalid argument"
            }
            Self::HealthCheck => "health check failed",
        }
    }

    /// The SecureX message.
    pub fn message(&self) -> String {
        match self {
            Self::Auth(reason) => format!("Authorization failed: {reason}"),
            Self::Source(error) => match error {
                SourceError::Unauthorized(m) | SourceError::Forbidden(m) => {
                    format!("Authorization failed: {m}")
                }
                SourceError::NotFound => "The Spycloud not found.".to_owned(),
                SourceError::Internal => "The Spycloud internal error.".to_owned(),
                SourceError::RateLimited => {
                    "Too many requests have been made to Spycloud. Please, try again later."
                        .to_owned()
                }
                SourceError::QuotaUsedUp => {
                    "The SpyCloud API key's monthly quota is used up. Please, contact SpyCloud."
                        .to_owned()
                }
                SourceError::IpNotAllowed => "Authorization failed: SpyCloud does not accept \
                    calls from this relay's IP address for this API key. Ask SpyCloud to allow it."
                    .to_owned(),
                SourceError::InvalidApiKey => {
                    "Authorization failed: The SpyCloud API key is not valid.".to_owned()
                }
                SourceError::Tls(reason) => format!("Unable to verify SSL certificate: {reason}"),
                SourceError::Unexpected(text)
                | SourceError::Timeout(text)
                | SourceError::Connection(text) => text.clone(),
                SourceError::InvalidResponse(reason) => {
                    format!("SpyCloud sent a response the relay cannot read: {reason}")
                }
            },
            Self::InvalidPayload(detail) => format!("Invalid JSON payload received. {detail}"),
            Self::HealthCheck => "Invalid Health Check".to_owned(),
            Self::UnknownTile(id) => format!("Unknown tile_id: {}", truncate(id, 100)),
            Self::UnknownPeriod(period) => format!("Unknown period: {}", truncate(period, 100)),
            Self::Deadline(secs) => {
                format!("SpyCloud did not answer everything within the relay's {secs} s deadline.")
            }
        }
    }

    /// The error as SecureX reads it.
    pub fn to_doc(&self) -> ErrorDoc {
        ErrorDoc {
            kind: ErrorType::Fatal,
            code: self.code().to_owned(),
            message: self.message(),
        }
    }
}

/// Why a lookup failed, for embedders to match on: a fatal error of the contract, by what it
/// means. It still renders the contract's SecureX code and message ([`Error::code`],
/// [`Error::message`], [`Error::to_doc`]).
///
/// ```
/// use spycloud_relay::Error;
/// use spycloud_relay::domain::ErrorType;
///
/// let busy = Error::RateLimited;
/// assert_eq!(busy.code(), "too many requests");
/// assert_eq!(
///     busy.message(),
///     "Too many requests have been made to Spycloud. Please, try again later."
/// );
///
/// let late = Error::Deadline { secs: 25 };
/// let doc = late.to_doc();
/// assert_eq!((doc.kind, doc.code.as_str()), (ErrorType::Fatal, "unknown"));
/// assert_eq!(
///     doc.message,
///     "SpyCloud did not answer everything within the relay's 25 s deadline."
/// );
///
/// // Embedders match on what an error means.
/// let worth_retrying = |error: &Error| matches!(error, Error::RateLimited | Error::Deadline { .. });
/// assert!(worth_retrying(&late));
/// assert!(!worth_retrying(&Error::NotFound));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's token, or the API key at SpyCloud (401, 403), was refused: why.
    #[error("authorization failed: {reason}")]
    Authorization {
        /// The reason, as the contract words it.
        reason: String,
    },
    /// SpyCloud's rate limit, after retries.
    #[error("rate limited by SpyCloud")]
    RateLimited,
    /// The SpyCloud API key's monthly quota is used up (SpyCloud's 429 with
    /// `x-amzn-ErrorType: LimitExceededException`): retrying will not help before the quota
    /// renews. SecureX code `too many requests`.
    #[error("the SpyCloud API key's monthly quota is used up")]
    QuotaUsedUp,
    /// SpyCloud does not take calls from this relay's IP address for the key (its 403 with
    /// `SpyCloud-Error: Invalid IP`): the key's IP allow-list needs this address. SecureX code
    /// `authorization error`.
    #[error("SpyCloud refuses calls from this IP address for the key")]
    IpNotAllowed,
    /// SpyCloud says the API key is not valid (its 403 with `SpyCloud-Error: Invalid API key`).
    /// SecureX code `authorization error`.
    #[error("SpyCloud says the API key is not valid")]
    InvalidApiKey,
    /// SpyCloud answered 404.
    #[error("SpyCloud answered not found")]
    NotFound,
    /// SpyCloud failed otherwise: an internal error, another status, TLS, no answer in time, no
    /// connection, an answer the relay cannot read.
    #[error("SpyCloud failed: {0}")]
    Upstream(SourceError),
    /// The request's deadline passed before SpyCloud answered everything.
    #[error("the {secs} s deadline passed")]
    Deadline {
        /// The deadline, in seconds.
        secs: u64,
    },
    /// What was asked is not what the relay takes.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// The SecureX code (`invalid argument`, or `health check failed` for `/watchdog`).
        code: &'static str,
        /// The contract's message.
        message: String,
    },
}

impl From<RelayError> for Error {
    fn from(error: RelayError) -> Self {
        match error {
            RelayError::Auth(reason) => Self::Authorization {
                reason: reason.to_string(),
            },
            RelayError::Source(
                SourceError::Unauthorized(reason) | SourceError::Forbidden(reason),
            ) => Self::Authorization { reason },
            RelayError::Source(SourceError::RateLimited) => Self::RateLimited,
            RelayError::Source(SourceError::QuotaUsedUp) => Self::QuotaUsedUp,
            RelayError::Source(SourceError::IpNotAllowed) => Self::IpNotAllowed,
            RelayError::Source(SourceError::InvalidApiKey) => Self::InvalidApiKey,
            RelayError::Source(SourceError::NotFound) => Self::NotFound,
            RelayError::Source(other) => Self::Upstream(other),
            RelayError::Deadline(secs) => Self::Deadline { secs },
            invalid => Self::InvalidInput {
                code: invalid.code(),
                message: invalid.message(),
            },
        }
    }
}

impl Error {
    /// The SecureX code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Authorization { .. } => "authorization error",
            Self::InvalidInput { code, .. } => code,
            other => other.as_relay_error().map_or("unknown", |e| e.code()),
        }
    }

    /// The SecureX message.
    pub fn message(&self) -> String {
        match self {
            Self::Authorization { reason } => format!("Authorization failed: {reason}"),
            Self::InvalidInput { message, .. } => message.clone(),
            other => other
                .as_relay_error()
                .map(|e| e.message())
                .unwrap_or_default(),
        }
    }

    /// The error as SecureX reads it.
    pub fn to_doc(&self) -> ErrorDoc {
        ErrorDoc {
            kind: ErrorType::Fatal,
            code: self.code().to_owned(),
            message: self.message(),
        }
    }

    /// The relay error the contract's words come from, for the variants that keep one.
    fn as_relay_error(&self) -> Option<RelayError> {
        Some(match self {
            Self::RateLimited => RelayError::Source(SourceError::RateLimited),
            Self::QuotaUsedUp => RelayError::Source(SourceError::QuotaUsedUp),
            Self::IpNotAllowed => RelayError::Source(SourceError::IpNotAllowed),
            Self::InvalidApiKey => RelayError::Source(SourceError::InvalidApiKey),
            Self::NotFound => RelayError::Source(SourceError::NotFound),
            Self::Upstream(error) => RelayError::Source(error.clone()),
            Self::Deadline { secs } => RelayError::Deadline(*secs),
            Self::Authorization { .. } | Self::InvalidInput { .. } => return None,
        })
    }
}

/// Something left out of an answer that otherwise stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Warning {
    /// An observable whose value is not valid for its type.
    InvalidValue(InvalidLookup),
    /// A `source_id` whose catalog SpyCloud did not return.
    MissingCatalog(CatalogId),
    /// Records of one lookup that cannot become sightings, for one reason.
    SkippedRecords {
        /// The value looked up.
        value: String,
        /// Why they cannot.
        why: InvalidRecord,
        /// How many.
        count: u64,
    },
    /// SpyCloud holds more records for a lookup than the relay reads.
    TooManyResults {
        /// The value looked up.
        value: String,
        /// The records SpyCloud holds (`hits`).
        hits: u64,
        /// The records read.
        read: u64,
    },
    /// A module setting not of its form, ignored.
    InvalidSetting(InvalidSetting),
    /// More observables in one request than the relay looks up.
    TooManyObservables {
        /// The most looked up per request.
        max: usize,
        /// The supported observables left out.
        left_out: usize,
    },
}

impl Warning {
    /// The warning as SecureX reads it.
    pub fn to_doc(&self) -> ErrorDoc {
        let (code, message) = match self {
            Self::InvalidValue(invalid) => ("invalid argument", invalid.to_string()),
            Self::MissingCatalog(id) => (
                "not found",
                format!("SpyCloud did not return results for {id}"),
            ),
            Self::SkippedRecords {
                value,
                why,
                count: 1,
            } => (
                "unknown",
                format!("Skipped a SpyCloud record of {value}: {why}"),
            ),
            Self::SkippedRecords { value, why, count } => (
                "unknown",
                format!("Skipped {count} SpyCloud records of {value}: {why}"),
            ),
            Self::TooManyResults { value, hits, read } => (
                "too many results",
                format!(
                    "SpyCloud holds {hits} records for {value}; the relay read {read}. \
                     Narrow them with the SEVERITY or SINCE_DAYS module settings."
                ),
            ),
            Self::InvalidSetting(setting) => (
                "invalid argument",
                format!(
                    "The module setting {} is not valid and was ignored: {}",
                    setting.name,
                    truncate(&setting.value, 100)
                ),
            ),
            Self::TooManyObservables { max, left_out } => (
                "invalid argument",
                format!(
                    "The relay looks up at most {max} observables per request; \
                     the other {left_out} were not looked up."
                ),
            ),
        };
        ErrorDoc {
            kind: ErrorType::Warning,
            code: code.to_owned(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_error_keeps_the_contracts_code_and_message() {
        let fatal = [
            RelayError::Auth(AuthError::Expired),
            RelayError::Source(SourceError::Forbidden("Forbidden".into())),
            RelayError::Source(SourceError::RateLimited),
            RelayError::Source(SourceError::NotFound),
            RelayError::Source(SourceError::Internal),
            RelayError::Source(SourceError::Timeout("no answer in 10 s".into())),
            RelayError::Deadline(25),
            RelayError::InvalidPayload("{}".into()),
            RelayError::HealthCheck,
        ];
        for error in fatal {
            let typed = Error::from(error.clone());
            assert_eq!(typed.to_doc(), error.to_doc(), "{typed:?}");
        }
        assert_eq!(
            Error::from(RelayError::Auth(AuthError::Expired)),
            Error::Authorization {
                reason: "Token has expired".into()
            }
        );
        assert_eq!(
            Error::from(RelayError::Source(SourceError::Unauthorized("x".into()))),
            Error::Authorization { reason: "x".into() }
        );
        assert_eq!(
            Error::from(RelayError::Deadline(3)),
            Error::Deadline { secs: 3 }
        );
        assert!(matches!(
            Error::from(RelayError::Source(SourceError::Internal)),
            Error::Upstream(SourceError::Internal)
        ));
    }

    fn doc(error: RelayError) -> (String, String) {
        let doc = error.to_doc();
        assert_eq!(doc.kind, ErrorType::Fatal);
        (doc.code, doc.message)
    }

    fn pair(code: &str, message: &str) -> (String, String) {
        (code.to_owned(), message.to_owned())
    }

    #[test]
    fn upstream_failures_have_the_contract_codes_and_messages() {
        use SourceError::*;
        let cases = [
            (
                Unauthorized("Bad key".into()),
                pair("authorization error", "Authorization failed: Bad key"),
            ),
            (
                Forbidden("Forbidden".into()),
                pair("authorization error", "Authorization failed: Forbidden"),
            ),
            (NotFound, pair("not found", "The Spycloud not found.")),
            (
                Internal,
                pair("internal error", "The Spycloud internal error."),
            ),
            (
                RateLimited,
                pair(
                    "too many requests",
                    "Too many requests have been made to Spycloud. Please, try again later.",
                ),
            ),
            (
                Unexpected("{\"x\": 1}".into()),
                pair("unknown", "{\"x\": 1}"),
            ),
            (
                Tls("bad cert".into()),
                pair("unknown", "Unable to verify SSL certificate: bad cert"),
            ),
            (
                Timeout("no answer in 10 s".into()),
                pair("unknown", "no answer in 10 s"),
            ),
            (Connection("refused".into()), pair("unknown", "refused")),
            (
                InvalidResponse("expected value at line 1 column 1".into()),
                pair(
                    "unknown",
                    "SpyCloud sent a response the relay cannot read: expected value at line 1 column 1",
                ),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(doc(RelayError::Source(error)), expected);
        }
    }

    #[test]
    fn spyclouds_signals_have_their_own_messages_and_typed_errors() {
        let cases = [
            (
                SourceError::QuotaUsedUp,
                Error::QuotaUsedUp,
                pair(
                    "too many requests",
                    "The SpyCloud API key's monthly quota is used up. Please, contact SpyCloud.",
                ),
            ),
            (
                SourceError::IpNotAllowed,
                Error::IpNotAllowed,
                pair(
                    "authorization error",
                    "Authorization failed: SpyCloud does not accept calls from this relay's IP address for this API key. Ask SpyCloud to allow it.",
                ),
            ),
            (
                SourceError::InvalidApiKey,
                Error::InvalidApiKey,
                pair(
                    "authorization error",
                    "Authorization failed: The SpyCloud API key is not valid.",
                ),
            ),
        ];
        for (source, typed, expected) in cases {
            let relay = RelayError::Source(source);
            assert_eq!(doc(relay.clone()), expected);
            assert_eq!(Error::from(relay.clone()), typed);
            assert_eq!(typed.to_doc(), relay.to_doc());
        }
    }

    #[test]
    fn relay_errors_have_the_contract_codes_and_messages() {
        assert_eq!(
            doc(AuthError::WrongType.into()),
            pair(
                "authorization error",
                "Authorization failed: Wrong authorization type"
            )
        );
        assert_eq!(
            doc(RelayError::HealthCheck),
            pair("health check failed", "Invalid Health Check")
        );
        assert_eq!(
            doc(RelayError::UnknownTile("nope".into())),
            pair("invalid argument", "Unknown tile_id: nope")
        );
        let long = "p".repeat(150);
        assert_eq!(
            doc(RelayError::UnknownPeriod(long)),
            pair(
                "invalid argument",
                &format!("Unknown period: {}", "p".repeat(100))
            )
        );
        let (code, message) = doc(RelayError::InvalidPayload("x".into()));
        assert_eq!(code, "invalid argument");
        assert!(message.starts_with("Invalid JSON payload received. "));
    }

    #[test]
    fn warnings_have_the_contract_codes_and_messages() {
        let missing = Warning::MissingCatalog(CatalogId(42)).to_doc();
        assert_eq!(
            (
                missing.kind,
                missing.code.as_str(),
                missing.message.as_str()
            ),
            (
                ErrorType::Warning,
                "not found",
                "SpyCloud did not return results for 42"
            )
        );
        let invalid = Warning::InvalidValue(InvalidLookup {
            kind: super::super::ObservableType::Ip,
            value: "nope".into(),
        })
        .to_doc();
        assert_eq!(
            (invalid.code.as_str(), invalid.message.as_str()),
            ("invalid argument", "nope is not a valid IPv4 address")
        );
    }

    fn warning(warning: Warning) -> (String, String) {
        let doc = warning.to_doc();
        assert_eq!(doc.kind, ErrorType::Warning);
        (doc.code, doc.message)
    }

    #[test]
    fn skipped_records_are_one_warning_that_says_how_many() {
        let skipped = |count| Warning::SkippedRecords {
            value: "example.com".into(),
            why: InvalidRecord::PublishDate,
            count,
        };
        assert_eq!(
            warning(skipped(1)),
            pair(
                "unknown",
                "Skipped a SpyCloud record of example.com: spycloud_publish_date is missing or not a date"
            )
        );
        assert_eq!(
            warning(skipped(500)),
            pair(
                "unknown",
                "Skipped 500 SpyCloud records of example.com: spycloud_publish_date is missing or not a date"
            )
        );
    }

    #[test]
    fn too_many_results_names_the_settings_that_narrow_them() {
        assert_eq!(
            warning(Warning::TooManyResults {
                value: "example.com".into(),
                hits: 250_000,
                read: 10_000
            }),
            pair(
                "too many results",
                "SpyCloud holds 250000 records for example.com; the relay read 10000. Narrow them with the SEVERITY or SINCE_DAYS module settings."
            )
        );
    }

    #[test]
    fn too_many_observables_says_how_many_were_left_out() {
        assert_eq!(
            warning(Warning::TooManyObservables {
                max: 100,
                left_out: 7
            }),
            pair(
                "invalid argument",
                "The relay looks up at most 100 observables per request; the other 7 were not looked up."
            )
        );
    }
}
