//! Bearer tokens verified as RS256 JWTs against the JWKS of an allow-listed host.
//!
//! [`JwtDecoder`] walks the contract's authorization table in order, one [`AuthError`] per row.
//! jsonwebtoken only checks the signature (RS256, pinned here, never read from the token) over
//! the token's bytes, without reading its claims; the claim rules are checked here, by hand, so
//! the order of the reasons is exactly the contract's whatever the claims hold.

mod allow_list;
mod jwks;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub(crate) use allow_list::{DEFAULT_JWKS_HOSTS, HostAllowList};

use crate::BuildError;
use crate::domain::{ApiKey, AuthError, Credentials, EntitiesLimit, ModuleSettings};
use crate::ports::CredentialDecoder;
use jwks::JwksCache;

/// How a [`JwtDecoder`] finds and caches verification keys.
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::BuildError;
/// use spycloud_relay::adapters::{JwtDecoder, JwtSettings};
///
/// let defaults = JwtSettings::default();
/// assert_eq!(defaults.jwks_hosts, "visibility.amp.cisco.com,visibility.*.amp.cisco.com");
/// assert_eq!((defaults.scheme.as_str(), defaults.jwks_ttl), ("https", Duration::from_secs(3600)));
///
/// let ftp = JwtSettings { scheme: "ftp".to_owned(), ..JwtSettings::default() };
/// let why = r#"unsupported JWKS scheme "ftp": expected "https" or "http""#;
/// assert!(matches!(JwtDecoder::new(ftp), Err(BuildError::Jwt(message)) if message == why));
/// ```
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The hosts a token's `jwks_host` may name (`RELAY_JWKS_HOSTS`): comma-separated
    /// `host[:port]` patterns, `*` matching one DNS label, a port matching exactly.
    pub jwks_hosts: String,
    /// `https`, or `http` for local testing (`RELAY_JWKS_SCHEME`).
    pub scheme: String,
    /// Limit on one JWKS fetch, connection to last byte.
    pub fetch_timeout: Duration,
    /// How long a fetched JWKS is reused.
    pub jwks_ttl: Duration,
    /// The shortest time between two fetches of a host's JWKS caused by an unknown `kid`.
    pub refetch_interval: Duration,
}

impl Default for JwtSettings {
    /// The contract's defaults: the SecureX hosts over https, a 10 s fetch, a JWKS kept for an
    /// hour, refetched for an unknown `kid` at most every 5 s.
    fn default() -> Self {
        Self {
            jwks_hosts: DEFAULT_JWKS_HOSTS.to_owned(),
            scheme: "https".to_owned(),
            fetch_timeout: Duration::from_secs(10),
            jwks_ttl: Duration::from_secs(60 * 60),
            refetch_interval: Duration::from_secs(5),
        }
    }
}

/// Why a [`JwtDecoder`] could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtSetupError {
    /// `RELAY_JWKS_HOSTS` is not an allow-list.
    #[error("RELAY_JWKS_HOSTS: {0}")]
    AllowList(#[from] allow_list::InvalidAllowList),
    /// A JWKS scheme other than `https` or `http`.
    #[error("unsupported JWKS scheme {0:?}: expected \"https\" or \"http\"")]
    Scheme(String),
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Verifies SecureX tokens: RS256 JWTs whose key is published at their `jwks_host`
/// ([`JwtDecoder::new`] shows the first checks).
pub struct JwtDecoder {
    allow_list: HostAllowList,
    jwks: JwksCache,
    /// Digests of (token, key) pairs whose signature checked out: SecureX sends the same
    /// token with every request, and an RSA check costs more than the rest of a cached
    /// lookup. Claims are still checked on every request; a new key means a new check.
    verified: moka::sync::Cache<[u8; 32], ()>,
}

impl std::fmt::Debug for JwtDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtDecoder")
            .field("allow_list", &self.allow_list.to_string())
            .finish_non_exhaustive()
    }
}

/// How long a checked signature is remembered.
const VERIFIED_TTL: Duration = Duration::from_secs(5 * 60);

impl JwtDecoder {
    /// A decoder with its own HTTP client and an empty JWKS cache.
    ///
    /// # Errors
    /// [`BuildError::Jwt`] for a host pattern that is not `host[:port]` or an empty list, a
    /// scheme other than `https` or `http`, or an HTTP client that cannot be built.
    ///
    /// Tokens are refused in the contract's order; these two before any network call:
    ///
    /// ```
    /// use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    /// use spycloud_relay::adapters::{JwtDecoder, JwtSettings};
    /// use spycloud_relay::domain::AuthError;
    /// use spycloud_relay::ports::CredentialDecoder;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let decoder = JwtDecoder::new(JwtSettings::default())?;
    /// let audience = "https://relay.example";
    /// assert_eq!(decoder.decode("not-a-jwt", audience).await, Err(AuthError::WrongStructure));
    ///
    /// // A well-formed token whose keys are at a host not on the allow-list.
    /// let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
    /// let header = part(r#"{"alg": "RS256", "kid": "k1"}"#);
    /// let claims = part(r#"{"jwks_host": "keys.attacker.example", "aud": "https://relay.example"}"#);
    /// let token = format!("{header}.{claims}.c2lnbmF0dXJl");
    /// assert_eq!(decoder.decode(&token, audience).await, Err(AuthError::WrongJwksHost));
    /// # Ok(()) }
    /// ```
    pub fn new(settings: JwtSettings) -> Result<Self, BuildError> {
        Self::checked(settings).map_err(|error| BuildError::Jwt(error.to_string()))
    }

    fn checked(settings: JwtSettings) -> Result<Self, JwtSetupError> {
        let allow_list: HostAllowList = settings.jwks_hosts.parse()?;
        let scheme = settings.scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(JwtSetupError::Scheme(settings.scheme));
        }
        let client = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            // The allow-list vouches for the host named, not for wherever it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;

        Ok(Self {
            allow_list,
            jwks: JwksCache::new(client, scheme, settings.jwks_ttl, settings.refetch_interval),
            verified: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })
    }

    /// Checks `token`'s signature with `jwk`, for RS256 only.
    fn verify_signature(&self, token: &str, alg: &str, jwk: &Jwk) -> Result<(), AuthError> {
        let usable = alg == "RS256"
            && jwk
                .common
                .key_algorithm
                .is_none_or(|a| a == KeyAlgorithm::RS256)
            && jwk
                .common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == PublicKeyUse::Signature);
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            return Err(AuthError::WrongKey);
        };
        if !usable {
            return Err(AuthError::WrongKey);
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(token)
            .chain_update([0])
            .chain_update(&rsa.n)
            .chain_update([0])
            .chain_update(&rsa.e)
            .finalize()
            .into();
        if self.verified.contains_key(&digest) {
            return Ok(());
        }
        let key =
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).map_err(|_| AuthError::WrongKey)?;
        // The signature over `header.payload` alone: jsonwebtoken's `decode` would also read
        // `exp` and `nbf`, and fail on one of an unexpected type (an array, an object) before
        // the contract's rows for them are reached.
        let (message, signature) = token.rsplit_once('.').ok_or(AuthError::WrongStructure)?;
        let verified =
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::RS256)
                .map_err(|_| AuthError::WrongKey)?;
        if !verified {
            return Err(AuthError::WrongKey);
        }
        self.verified.insert(digest, ());
        Ok(())
    }
}

#[async_trait]
impl CredentialDecoder for JwtDecoder {
    async fn decode(&self, token: &str, audience: &str) -> Result<Credentials, AuthError> {
        let unverified = Unverified::read(token)?;
        let host = jwks_host(&unverified.claims)?;
        if !self.allow_list.allows(host) {
            // Debug-formatted: the value is the caller's, and may hold line breaks.
            tracing::warn!(jwks_host = ?crate::telemetry::cut(host), "jwks_host is not in the allow-list");
            return Err(AuthError::WrongJwksHost);
        }
        let jwk = self
            .jwks
            .find(&host.to_ascii_lowercase(), unverified.kid.as_deref())
            .await
            .map_err(|_| AuthError::WrongJwksHost)?
            .ok_or(AuthError::KidNotFound)?;
        self.verify_signature(token, &unverified.alg, &jwk)?;
        check_claims(&unverified.claims, audience, unix_now())
    }
}

/// A token's header fields and payload, read before anything is verified.
#[derive(Debug)]
struct Unverified {
    alg: String,
    kid: Option<String>,
    claims: Map<String, Value>,
}

impl Unverified {
    /// Reads `header.payload.signature` without verifying it.
    ///
    /// The header is read as plain JSON rather than as jsonwebtoken's `Header`, which refuses
    /// algorithms it does not know (`none`): the contract calls those a wrong key, not a wrong
    /// structure. A `kid` that is not a string counts as no `kid`.
    fn read(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::WrongStructure);
        };
        let mut header = decode_segment(header)?;
        let claims = decode_segment(payload)?;
        let Some(Value::String(alg)) = header.remove("alg") else {
            return Err(AuthError::WrongStructure);
        };
        let kid = match header.remove("kid") {
            Some(Value::String(kid)) => Some(kid),
            _ => None,
        };
        Ok(Self { alg, kid, claims })
    }
}

/// Decodes one base64url segment holding a JSON object.
fn decode_segment(segment: &str) -> Result<Map<String, Value>, AuthError> {
    // jsonwebtoken decodes the middle part of `x.<payload>.y`; placing the segment there reuses
    // its base64url and JSON reading for the header too.
    jsonwebtoken::dangerous::insecure_decode_claims(format!(".{segment}."))
        .map_err(|_| AuthError::WrongStructure)
}

/// The `jwks_host` claim, if it is a non-empty string.
fn jwks_host(claims: &Map<String, Value>) -> Result<&str, AuthError> {
    match claims.get("jwks_host") {
        Some(Value::String(host)) if !host.is_empty() => Ok(host),
        _ => Err(AuthError::JwksHostMissing),
    }
}

/// The claim rows of the table, after the signature: audience, key, expiry; then the limit and
/// the module settings (which never refuse a token: an invalid one is a warning).
fn check_claims(
    claims: &Map<String, Value>,
    audience: &str,
    now: f64,
) -> Result<Credentials, AuthError> {
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(AuthError::WrongAudience);
    }
    let key = claims
        .get("key")
        .and_then(Value::as_str)
        .ok_or(AuthError::WrongPayload)?;
    let api_key = ApiKey::parse(key)?;
    // RFC 7519: the token is valid only *before* `exp`, and not before `nbf`. A value that is
    // not a number cannot be shown to be on the right side of now, so it refuses the token.
    if let Some(exp) = claims.get("exp")
        && !exp.as_f64().is_some_and(|exp| exp > now)
    {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = claims.get("nbf")
        && !nbf.as_f64().is_some_and(|nbf| nbf <= now)
    {
        return Err(AuthError::NotYetValid);
    }
    Ok(Credentials {
        api_key,
        entities_limit: EntitiesLimit::from_claim(claims.get("CTR_ENTITIES_LIMIT")),
        settings: ModuleSettings::from_claims(claims),
    })
}

/// Seconds since the Unix epoch, with their fraction.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("claims are an object"),
        }
    }

    fn good(extra: Value) -> Map<String, Value> {
        let mut base = claims(json!({"aud": "http://relay", "key": "k"}));
        base.extend(claims(extra));
        base
    }

    #[test]
    fn a_token_is_three_segments_of_json_objects() {
        for bad in [
            "",
            "garbage",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            // {"alg":"RS256"} . "not json" . sig
            "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
            // {"alg":"RS256"} . [1] . sig
            "eyJhbGciOiJSUzI1NiJ9.WzFd.c2ln",
            // {"kid":"relay-test-1","typ":"JWT"} (no alg) . {} . sig
            "eyJraWQiOiJyZWxheS10ZXN0LTEiLCJ0eXAiOiJKV1QifQ.e30.c2ln",
        ] {
            assert_eq!(
                Unverified::read(bad).unwrap_err(),
                AuthError::WrongStructure,
                "{bad}"
            );
        }
    }

    #[test]
    fn any_algorithm_and_kid_are_read_from_the_header() {
        // {"alg":"none","kid":"relay-test-1","typ":"JWT"} . {} . (empty)
        let token = "eyJhbGciOiJub25lIiwia2lkIjoicmVsYXktdGVzdC0xIiwidHlwIjoiSldUIn0.e30.";
        let read = Unverified::read(token).unwrap();
        assert_eq!(read.alg, "none");
        assert_eq!(read.kid.as_deref(), Some("relay-test-1"));
        assert!(read.claims.is_empty());
    }

    #[test]
    fn jwks_host_must_be_a_non_empty_string() {
        assert_eq!(jwks_host(&claims(json!({"jwks_host": "h"}))), Ok("h"));
        for bad in [
            json!({}),
            json!({"jwks_host": null}),
            json!({"jwks_host": 1}),
            json!({"jwks_host": ""}),
        ] {
            assert_eq!(
                jwks_host(&claims(bad.clone())),
                Err(AuthError::JwksHostMissing),
                "{bad}"
            );
        }
    }

    #[test]
    fn audience_is_a_string_or_an_array_holding_it() {
        assert!(check_claims(&good(json!({})), "http://relay", NOW).is_ok());
        assert!(
            check_claims(
                &good(json!({"aud": ["x", "http://relay"]})),
                "http://relay",
                NOW
            )
            .is_ok()
        );
        for aud in [
            json!(null),
            json!("http://relay/"),
            json!(["x"]),
            json!(1),
            json!({"aud": "http://relay"}),
        ] {
            assert_eq!(
                check_claims(&good(json!({"aud": aud})), "http://relay", NOW),
                Err(AuthError::WrongAudience),
                "{aud}"
            );
        }
        let mut no_aud = good(json!({}));
        no_aud.remove("aud");
        assert_eq!(
            check_claims(&no_aud, "http://relay", NOW),
            Err(AuthError::WrongAudience)
        );
    }

    // RULES R14
    #[test]
    fn exp_must_be_a_number_after_now() {
        let check =
            |exp: Value| check_claims(&good(json!({"exp": exp})), "http://relay", NOW).map(drop);
        assert_eq!(check(json!(NOW + 1.0)), Ok(()));
        assert_eq!(check(json!(1_700_000_001)), Ok(()));
        for expired in [
            json!(NOW),
            json!(NOW - 0.5),
            json!(0),
            json!(-1),
            json!("9999999999"),
            json!(null),
            json!([NOW + 10.0]),
            json!({"at": NOW + 10.0}),
        ] {
            assert_eq!(check(expired.clone()), Err(AuthError::Expired), "{expired}");
        }
    }

    #[test]
    fn nbf_must_be_a_number_not_after_now() {
        let check =
            |nbf: Value| check_claims(&good(json!({"nbf": nbf})), "http://relay", NOW).map(drop);
        assert_eq!(check(json!(NOW)), Ok(()));
        assert_eq!(check(json!(NOW - 0.5)), Ok(()));
        assert_eq!(check(json!(0)), Ok(()));
        for early in [
            json!(NOW + 1.0),
            json!("0"),
            json!(null),
            json!([0]),
            json!({"at": 0}),
            json!(false),
        ] {
            assert_eq!(check(early.clone()), Err(AuthError::NotYetValid), "{early}");
        }
        // Past its `exp` comes first.
        assert_eq!(
            check_claims(
                &good(json!({"exp": 0, "nbf": NOW + 1.0})),
                "http://relay",
                NOW
            )
            .map(drop),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn claim_failures_come_in_the_contract_order() {
        let check = |c: Value| check_claims(&claims(c), "a", NOW).map(drop);
        assert_eq!(
            check(json!({"aud": "b", "exp": 0})),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            check(json!({"aud": "a", "key": 1, "exp": 0})),
            Err(AuthError::WrongPayload)
        );
        assert_eq!(
            check(json!({"aud": "a", "key": " k", "exp": 0})),
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            check(json!({"aud": "a", "key": "k", "exp": 0})),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn module_settings_are_read_from_the_claims_and_never_refuse_a_token() {
        let credentials = check_claims(
            &good(json!({"SEVERITY": "20,25", "SINCE_DAYS": "30", "PASSWORDS": "masked"})),
            "http://relay",
            NOW,
        )
        .unwrap();
        let settings = &credentials.settings;
        assert_eq!(
            settings
                .severity
                .as_ref()
                .map(|s| s.query_value())
                .as_deref(),
            Some("20,25")
        );
        assert_eq!(settings.since_days.map(|d| d.days()), Some(30));
        assert_eq!(
            settings.passwords,
            Some(crate::domain::PasswordPolicy::Masked)
        );
        assert_eq!(settings.invalid, []);

        let invalid = check_claims(
            &good(json!({"SEVERITY": "high", "SINCE_DAYS": 0, "PASSWORDS": "none"})),
            "http://relay",
            NOW,
        )
        .unwrap();
        let names: Vec<_> = invalid.settings.invalid.iter().map(|i| i.name).collect();
        assert_eq!(names, ["SEVERITY", "SINCE_DAYS", "PASSWORDS"]);
        assert_eq!(
            check_claims(&good(json!({})), "http://relay", NOW)
                .unwrap()
                .settings,
            ModuleSettings::default()
        );
    }

    // RULES R21
    #[test]
    fn defaults_keep_a_jwks_an_hour_refetch_it_at_most_every_5_s_and_signatures_5_minutes() {
        let settings = JwtSettings::default();
        assert_eq!(
            settings.jwks_hosts,
            "visibility.amp.cisco.com,visibility.*.amp.cisco.com"
        );
        assert_eq!(settings.scheme, "https");
        assert_eq!(settings.fetch_timeout, Duration::from_secs(10));
        assert_eq!(settings.jwks_ttl, Duration::from_secs(60 * 60));
        assert_eq!(settings.refetch_interval, Duration::from_secs(5));
        let decoder = JwtDecoder::new(settings).unwrap();
        assert_eq!(
            decoder.verified.policy().time_to_live(),
            Some(Duration::from_secs(5 * 60))
        );
    }

    #[test]
    fn only_https_and_http_are_schemes() {
        let with = |scheme: &str| {
            JwtDecoder::new(JwtSettings {
                scheme: scheme.to_owned(),
                ..JwtSettings::default()
            })
        };
        assert!(with("https").is_ok());
        assert!(with("http").is_ok());
        assert!(matches!(with("ftp"), Err(BuildError::Jwt(s)) if s.contains("\"ftp\"")));
    }
}
