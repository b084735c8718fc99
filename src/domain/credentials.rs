//! What a caller proves with its token: the SpyCloud API key and the entities limit, and every
//! way that proof can fail (the contract's authorization table).

use std::fmt;
use std::num::NonZeroUsize;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::settings::ModuleSettings;

/// A SpyCloud API key that can be sent as an HTTP header value.
///
/// Its `Debug` and `Display` never show the key, so it cannot leak into a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Accepts a key made of visible ASCII with no spaces at either end.
    ///
    /// # Errors
    /// [`AuthError::Unauthorized`] for an empty key, non-ASCII, control characters or
    /// surrounding spaces: such a key could never authenticate a request.
    ///
    /// ```
    /// use spycloud_relay::domain::{ApiKey, AuthError};
    ///
    /// let key = ApiKey::parse("demo-api-key")?;
    /// assert_eq!(key.expose(), "demo-api-key");
    /// assert_eq!(format!("{key:?}"), "ApiKey(***)"); // never logged
    ///
    /// assert_eq!(ApiKey::parse(" demo-api-key"), Err(AuthError::Unauthorized));
    /// assert_eq!(ApiKey::parse("clé"), Err(AuthError::Unauthorized));
    /// # Ok::<(), AuthError>(())
    /// ```
    pub fn parse(key: &str) -> Result<Self, AuthError> {
        let usable = !key.is_empty()
            && key.trim() == key
            && key.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if usable {
            Ok(Self(key.to_owned()))
        } else {
            Err(AuthError::Unauthorized)
        }
    }

    /// The key itself, for the one place that must send it (the SpyCloud adapter).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A stable digest of the key, for scoping caches and rate limits without storing the key.
    pub(crate) fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// SHA-256 of an API key: identifies a tenant without holding its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint(pub [u8; 32]);

/// How many breach records (and so sightings) one email may produce in one response.
///
/// ```
/// use spycloud_relay::domain::EntitiesLimit;
/// use serde_json::json;
///
/// assert_eq!(EntitiesLimit::new(25).map(EntitiesLimit::get), Some(25));
/// assert_eq!(EntitiesLimit::new(0), None);
/// // The `CTR_ENTITIES_LIMIT` claim: a number or a string of one; anything else is the default.
/// assert_eq!(EntitiesLimit::from_claim(Some(&json!("25"))).get(), 25);
/// assert_eq!(EntitiesLimit::from_claim(Some(&json!(-1))), EntitiesLimit::DEFAULT);
/// assert_eq!(EntitiesLimit::from_claim(None).get(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntitiesLimit(NonZeroUsize);

impl EntitiesLimit {
    /// The limit when the token does not set a usable one.
    pub const DEFAULT: Self = Self(NonZeroUsize::new(100).unwrap());

    /// A limit of `n`, if `n` is above zero.
    pub fn new(n: usize) -> Option<Self> {
        NonZeroUsize::new(n).map(Self)
    }

    /// Reads the `CTR_ENTITIES_LIMIT` claim: an integer or a string of one, above 0;
    /// anything else (absent, zero, negative, fractional, not a number) gives the default.
    pub fn from_claim(claim: Option<&Value>) -> Self {
        let n = match claim {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .and_then(Self::new)
            .unwrap_or(Self::DEFAULT)
    }

    /// The limit as a count.
    pub fn get(self) -> usize {
        self.0.get()
    }
}

impl Default for EntitiesLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The SpyCloud API key from the token's `key` claim.
    pub api_key: ApiKey,
    /// The per-request entities limit from `CTR_ENTITIES_LIMIT`.
    pub entities_limit: EntitiesLimit,
    /// The module instance's settings (`SEVERITY`, `SINCE_DAYS`, `PASSWORDS`).
    pub settings: ModuleSettings,
}

impl Credentials {
    /// Credentials with the default entities limit and no module settings.
    ///
    /// ```
    /// use spycloud_relay::domain::{ApiKey, Credentials, EntitiesLimit, ModuleSettings};
    ///
    /// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
    /// assert_eq!(credentials.entities_limit, EntitiesLimit::DEFAULT);
    /// assert_eq!(credentials.settings, ModuleSettings::default());
    ///
    /// // Fields are public: an embedder sets the limit its callers get.
    /// let capped = Credentials {
    ///     entities_limit: EntitiesLimit::new(10).unwrap(),
    ///     ..credentials
    /// };
    /// assert_eq!(capped.entities_limit.get(), 10);
    /// # Ok::<(), spycloud_relay::domain::AuthError>(())
    /// ```
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            api_key,
            entities_limit: EntitiesLimit::DEFAULT,
            settings: ModuleSettings::default(),
        }
    }
}

/// Every reason a request is not authorized; `Display` is the contract's reason text.
///
/// ```
/// use spycloud_relay::Error;
/// use spycloud_relay::domain::AuthError;
///
/// assert_eq!(AuthError::Expired.to_string(), "Token has expired");
/// // As a request's fatal error:
/// let error = Error::Authorization { reason: AuthError::WrongAudience.to_string() };
/// assert_eq!(error.code(), "authorization error");
/// assert_eq!(error.message(), "Authorization failed: Wrong configuration-token-audience");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("Authorization header is missing")]
    MissingHeader,
    /// A header whose scheme is not `Bearer`.
    #[error("Wrong authorization type")]
    WrongType,
    /// Not a decodable JWT.
    #[error("Wrong JWT structure")]
    WrongStructure,
    /// No `jwks_host` claim.
    #[error(
        "jwks_host is missing in JWT payload. Make sure custom_jwks_host field is present in module_type"
    )]
    JwksHostMissing,
    /// `jwks_host` not allowed, unreachable, or serving no valid JWKS.
    #[error(
        "Wrong jwks_host in JWT payload. Make sure domain follows the visibility.<region>.cisco.com structure"
    )]
    WrongJwksHost,
    /// The header's `kid` is not in the JWKS.
    #[error("kid from JWT header not found in API response")]
    KidNotFound,
    /// Bad signature or an algorithm other than RS256.
    #[error(
        "Failed to decode JWT with provided key. Make sure domain in custom_jwks_host corresponds to your SecureX instance region."
    )]
    WrongKey,
    /// `aud` missing or not the expected audience.
    #[error("Wrong configuration-token-audience")]
    WrongAudience,
    /// No usable `key` claim.
    #[error("Wrong JWT payload structure")]
    WrongPayload,
    /// A `key` that cannot be sent as a header value.
    #[error("Unauthorized")]
    Unauthorized,
    /// `exp` in the past, or not a number.
    #[error("Token has expired")]
    Expired,
    /// `nbf` in the future, or not a number.
    #[error("Token is not yet valid")]
    NotYetValid,
}

/// Takes the token out of an `Authorization` header value (`Bearer <token>`, scheme in any case).
///
/// # Errors
/// [`AuthError::MissingHeader`] without a header, [`AuthError::WrongType`] for any other shape.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::MissingHeader)?;
    let mut parts = header.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => Ok(token),
        _ => Err(AuthError::WrongType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Error, ErrorType};
    use serde_json::json;

    #[test]
    fn bearer_token_reads_the_scheme_in_any_case() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::MissingHeader));
        for wrong in ["Basic abc", "Bearer", "Bearer a b", "", "abc"] {
            assert_eq!(
                bearer_token(Some(wrong)),
                Err(AuthError::WrongType),
                "{wrong}"
            );
        }
    }

    #[test]
    fn api_key_must_be_a_usable_header_value() {
        assert_eq!(
            ApiKey::parse("abc-DEF_123").unwrap().expose(),
            "abc-DEF_123"
        );
        assert!(ApiKey::parse("inner space ok").is_ok());
        for bad in ["", " lead", "trail ", "tab\tkey", "new\nline", "clé"] {
            assert_eq!(ApiKey::parse(bad), Err(AuthError::Unauthorized), "{bad:?}");
        }
    }

    #[test]
    fn api_key_never_shows_in_debug() {
        let key = ApiKey::parse("secret-key").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
        assert_ne!(
            key.fingerprint(),
            ApiKey::parse("other").unwrap().fingerprint()
        );
    }

    #[test]
    fn entities_limit_from_claim() {
        let limit = |v: Option<Value>| EntitiesLimit::from_claim(v.as_ref()).get();
        assert_eq!(limit(None), 100);
        assert_eq!(limit(Some(json!(5))), 5);
        assert_eq!(limit(Some(json!("7"))), 7);
        for bad in [
            json!(0),
            json!(-3),
            json!("0"),
            json!("x"),
            json!(2.5),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(limit(Some(bad.clone())), 100, "{bad}");
        }
    }

    #[test]
    fn reasons_are_the_contract_strings() {
        // The contract's authorization table, row by row.
        let table = [
            (AuthError::MissingHeader, "Authorization header is missing"),
            (AuthError::WrongType, "Wrong authorization type"),
            (AuthError::WrongStructure, "Wrong JWT structure"),
            (
                AuthError::JwksHostMissing,
                "jwks_host is missing in JWT payload. Make sure custom_jwks_host field is present in module_type",
            ),
            (
                AuthError::WrongJwksHost,
                "Wrong jwks_host in JWT payload. Make sure domain follows the visibility.<region>.cisco.com structure",
            ),
            (
                AuthError::KidNotFound,
                "kid from JWT header not found in API response",
            ),
            (
                AuthError::WrongKey,
                "Failed to decode JWT with provided key. Make sure domain in custom_jwks_host corresponds to your SecureX instance region.",
            ),
            (
                AuthError::WrongAudience,
                "Wrong configuration-token-audience",
            ),
            (AuthError::WrongPayload, "Wrong JWT payload structure"),
            (AuthError::Unauthorized, "Unauthorized"),
            (AuthError::Expired, "Token has expired"),
            (AuthError::NotYetValid, "Token is not yet valid"),
        ];
        for (reason, text) in table {
            assert_eq!(reason.to_string(), text);
            let doc = Error::from(reason).to_doc();
            assert_eq!(
                (doc.kind, doc.code.as_str(), doc.message),
                (
                    ErrorType::Fatal,
                    "authorization error",
                    format!("Authorization failed: {text}")
                )
            );
        }
    }
}
