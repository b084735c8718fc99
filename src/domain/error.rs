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

impl From<AuthError> for Error {
    fn from(reason: AuthError) -> Self {
        Self::Authorization {
            reason: reason.to_string(),
        }
    }
}

impl From<SourceError> for Error {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Unauthorized(reason) | SourceError::Forbidden(reason) => {
                Self::Authorization { reason }
            }
            SourceError::RateLimited => Self::RateLimited,
            SourceError::QuotaUsedUp => Self::QuotaUsedUp,
            SourceError::IpNotAllowed => Self::IpNotAllowed,
            SourceError::InvalidApiKey => Self::InvalidApiKey,
            SourceError::NotFound => Self::NotFound,
            other => Self::Upstream(other),
        }
    }
}

/// The SecureX message of every authorization failure, the caller's or SpyCloud's.
fn authorization_failed(reason: &str) -> String {
    format!("Authorization failed: {reason}")
}

impl Error {
    /// The SecureX code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Authorization { .. } | Self::IpNotAllowed | Self::InvalidApiKey => {
                "authorization error"
            }
            Self::RateLimited | Self::QuotaUsedUp => "too many requests",
            Self::NotFound => "not found",
            Self::Upstream(SourceError::Internal) => "internal error",
            Self::Upstream(source) => match source.typed() {
                Some(typed) => typed.code(),
                None => "unknown",
            },
            Self::Deadline { .. } => "unknown",
            Self::InvalidInput { code, .. } => code,
        }
    }

    /// The SecureX message.
    pub fn message(&self) -> String {
        match self {
            Self::Authorization { reason } => authorization_failed(reason),
            Self::RateLimited => {
                "Too many requests have been made to Spycloud. Please, try again later.".to_owned()
            }
            Self::QuotaUsedUp => {
                "The SpyCloud API key's monthly quota is used up. Please, contact SpyCloud."
                    .to_owned()
            }
            Self::IpNotAllowed => authorization_failed(
                "SpyCloud does not accept calls from this relay's IP address for this API key. \
                 Ask SpyCloud to allow it.",
            ),
            Self::InvalidApiKey => authorization_failed("The SpyCloud API key is not valid."),
            Self::NotFound => "The Spycloud not found.".to_owned(),
            Self::Upstream(source) => match source.typed() {
                Some(typed) => typed.message(),
                None => match source {
                    SourceError::Internal => "The Spycloud internal error.".to_owned(),
                    SourceError::Tls(reason) => {
                        format!("Unable to verify SSL certificate: {reason}")
                    }
                    SourceError::InvalidResponse(reason) => {
                        format!("SpyCloud sent a response the relay cannot read: {reason}")
                    }
                    SourceError::Unexpected(text)
                    | SourceError::Timeout(text)
                    | SourceError::Connection(text) => text.clone(),
                    typed => Self::from(typed.clone()).message(),
                },
            },
            Self::Deadline { secs } => {
                format!("SpyCloud did not answer everything within the relay's {secs} s deadline.")
            }
            Self::InvalidInput { message, .. } => message.clone(),
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

    /// A request body that is not what the route takes: the detail after the fixed prefix.
    pub(crate) fn invalid_payload(detail: impl std::fmt::Display) -> Self {
        Self::InvalidInput {
            code: "invalid argument",
            message: format!("Invalid JSON payload received. {detail}"),
        }
    }

    /// `/watchdog` without a `Health-Check` header.
    pub(crate) fn health_check() -> Self {
        Self::InvalidInput {
            code: "health check failed",
            message: "Invalid Health Check".to_owned(),
        }
    }

    /// A tile id the dashboard does not have: the id as asked.
    pub(crate) fn unknown_tile(id: &str) -> Self {
        Self::InvalidInput {
            code: "invalid argument",
            message: format!("Unknown tile_id: {}", truncate(id, 100)),
        }
    }

    /// A period the dashboard does not offer: the period as asked.
    pub(crate) fn unknown_period(period: &str) -> Self {
        Self::InvalidInput {
            code: "invalid argument",
            message: format!("Unknown period: {}", truncate(period, 100)),
        }
    }
}

impl SourceError {
    /// The typed error this failure means, when it means more than "SpyCloud failed"
    /// (`Error::Upstream` built by hand around such a failure reads as the typed error).
    fn typed(&self) -> Option<Error> {
        match Error::from(self.clone()) {
            Error::Upstream(_) => None,
            typed => Some(typed),
        }
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
        let upstream = [
            SourceError::Forbidden("Forbidden".into()),
            SourceError::RateLimited,
            SourceError::NotFound,
            SourceError::Internal,
            SourceError::Timeout("no answer in 10 s".into()),
        ];
        // However an upstream failure is held, typed or wrapped, it reads the same.
        for error in upstream {
            let typed = Error::from(error.clone());
            assert_eq!(typed.to_doc(), Error::Upstream(error).to_doc(), "{typed:?}");
        }
        assert_eq!(
            Error::from(AuthError::Expired),
            Error::Authorization {
                reason: "Token has expired".into()
            }
        );
        assert_eq!(
            Error::from(SourceError::Unauthorized("x".into())),
            Error::Authorization { reason: "x".into() }
        );
        assert!(matches!(
            Error::from(SourceError::Internal),
            Error::Upstream(SourceError::Internal)
        ));
    }

    fn doc(error: Error) -> (String, String) {
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
            assert_eq!(doc(Error::Upstream(error.clone())), expected);
            assert_eq!(doc(Error::from(error)), expected);
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
            assert_eq!(doc(Error::Upstream(source.clone())), expected);
            assert_eq!(Error::from(source), typed);
            assert_eq!(doc(typed), expected);
        }
    }

    #[test]
    fn relay_errors_have_the_contract_codes_and_messages() {
        assert_eq!(
            doc(Error::Deadline { secs: 25 }),
            pair(
                "unknown",
                "SpyCloud did not answer everything within the relay's 25 s deadline."
            )
        );
        assert_eq!(
            doc(AuthError::WrongType.into()),
            pair(
                "authorization error",
                "Authorization failed: Wrong authorization type"
            )
        );
        assert_eq!(
            doc(Error::health_check()),
            pair("health check failed", "Invalid Health Check")
        );
        assert_eq!(
            doc(Error::unknown_tile("nope")),
            pair("invalid argument", "Unknown tile_id: nope")
        );
        let long = "p".repeat(150);
        assert_eq!(
            doc(Error::unknown_period(&long)),
            pair(
                "invalid argument",
                &format!("Unknown period: {}", "p".repeat(100))
            )
        );
        let (code, message) = doc(Error::invalid_payload("x"));
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
