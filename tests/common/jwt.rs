//! Tokens and JWKS for tests: two fixed RSA test keys (`tests/fixtures/`), a minter, and a
//! wiremock JWKS endpoint.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use spycloud_relay::adapters::{JwtDecoder, JwtSettings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The `kid` of the first fixture key (the one tokens are normally signed with).
pub const KID_1: &str = "relay-test-1";
/// The `kid` of the second fixture key.
pub const KID_2: &str = "relay-test-2";
/// The audience tokens carry by default.
pub const AUDIENCE: &str = "http://relay.test";
/// The SpyCloud API key tokens carry by default.
pub const API_KEY: &str = "test-api-key-0123";
/// The path SecureX serves its JWKS on.
pub const JWKS_PATH: &str = "/.well-known/jwks";

const KEY_1_PEM: &[u8] = include_bytes!("../fixtures/jwt_key_1.pem");
const KEY_2_PEM: &[u8] = include_bytes!("../fixtures/jwt_key_2.pem");
const JWKS_JSON: &str = include_str!("../fixtures/jwks.json");

/// The fixture JWKS holding the public halves of both test keys.
pub fn jwks() -> Value {
    serde_json::from_str(JWKS_JSON).expect("tests/fixtures/jwks.json is JSON")
}

/// The fixture JWKS cut down to the keys with the given `kid`s.
pub fn jwks_with(kids: &[&str]) -> Value {
    let mut set = jwks();
    set["keys"]
        .as_array_mut()
        .expect("a keys array")
        .retain(|key| kids.contains(&key["kid"].as_str().unwrap_or_default()));
    set
}

/// The private key of a fixture `kid` ([`KID_1`] or [`KID_2`]).
pub fn encoding_key(kid: &str) -> EncodingKey {
    let pem = match kid {
        KID_1 => KEY_1_PEM,
        KID_2 => KEY_2_PEM,
        other => panic!("no fixture key {other}"),
    };
    EncodingKey::from_rsa_pem(pem).expect("fixture PEM is an RSA private key")
}

/// `{"key", "jwks_host", "aud", "CTR_ENTITIES_LIMIT"}`: claims every check accepts.
pub fn default_claims(jwks_host: &str, aud: &str) -> Value {
    json!({
        "key": API_KEY,
        "jwks_host": jwks_host,
        "aud": aud,
        "CTR_ENTITIES_LIMIT": 20,
    })
}

/// Mints RS256 tokens with the fixture keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenMinter;

impl TokenMinter {
    /// An RS256 token over `claims`, signed by the key of `kid` and naming it in the header.
    pub fn mint(&self, kid: &str, claims: &Value) -> String {
        self.mint_as(kid, Some(kid), claims)
    }

    /// An RS256 token signed by the key of `signing_kid`, whose header names `header_kid`
    /// (or no `kid` at all).
    pub fn mint_as(&self, signing_kid: &str, header_kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = header_kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &encoding_key(signing_kid)).expect("token encodes")
    }

    /// An HS256 token over `claims`, keyed with `secret`, naming `kid`.
    pub fn mint_hs256(&self, kid: &str, secret: &[u8], claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
            .expect("token encodes")
    }
}

/// `token` with its header segment replaced by `header_segment` (base64url JSON).
pub fn with_header_segment(token: &str, header_segment: &str) -> String {
    let (_, rest) = token.split_once('.').expect("a JWT");
    format!("{header_segment}.{rest}")
}

/// `token` with its payload segment replaced by `payload_segment`.
pub fn with_payload_segment(token: &str, payload_segment: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{payload_segment}.{}", parts[0], parts[2])
}

/// A GET `/.well-known/jwks` mock answering `jwks`; chain `.expect(n)` and `.mount(&server)`.
pub fn jwks_mock(jwks: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks))
}

/// Serves the fixture JWKS on `server` at `/.well-known/jwks`, as often as asked.
pub async fn mount_jwks(server: &MockServer) {
    jwks_mock(jwks()).mount(server).await;
}

/// The `jwks_host` a token names to use `server`'s JWKS: `127.0.0.1:<port>`.
pub fn jwks_host(server: &MockServer) -> String {
    server.address().to_string()
}

/// Decoder settings for tests: plain http, only `server` allowed, a 2 s fetch, the contract's
/// cache durations.
pub fn settings_for(server: &MockServer) -> JwtSettings {
    JwtSettings {
        jwks_hosts: jwks_host(server),
        scheme: "http".to_owned(),
        fetch_timeout: Duration::from_secs(2),
        ..JwtSettings::default()
    }
}

/// A decoder for `server` with [`settings_for`].
pub fn decoder_for(server: &MockServer) -> JwtDecoder {
    JwtDecoder::new(settings_for(server)).expect("decoder builds")
}
