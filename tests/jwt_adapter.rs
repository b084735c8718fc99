//! The JWT adapter against a wiremock JWKS host: one test per row of the contract's
//! authorization table, the order of the rows, and the JWKS cache.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};
use spycloud_relay::adapters::{JwtDecoder, JwtSettings};
use spycloud_relay::domain::{AuthError, Credentials};
use spycloud_relay::ports::CredentialDecoder;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::jwt::{
    API_KEY, AUDIENCE, JWKS_PATH, KID_1, KID_2, TokenMinter, decoder_for, default_claims, jwks,
    jwks_host, jwks_mock, jwks_with, mount_jwks, settings_for, with_header_segment,
    with_payload_segment,
};

/// base64url of `{"alg":"none","kid":"relay-test-1","typ":"JWT"}`.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwia2lkIjoicmVsYXktdGVzdC0xIiwidHlwIjoiSldUIn0";
/// base64url of `not json`.
const NOT_JSON: &str = "bm90IGpzb24";
/// base64url of `[1]`.
const JSON_ARRAY: &str = "WzFd";

/// A JWKS host serving the fixture set, and a decoder allowed to use it.
struct Host {
    server: MockServer,
    decoder: JwtDecoder,
}

impl Host {
    /// A host serving the fixture JWKS as often as asked.
    async fn serving() -> Self {
        let server = MockServer::start().await;
        mount_jwks(&server).await;
        Self::over(server)
    }

    /// A host whose mocks the test mounts itself.
    fn over(server: MockServer) -> Self {
        let decoder = decoder_for(&server);
        Self { server, decoder }
    }

    fn host(&self) -> String {
        jwks_host(&self.server)
    }

    /// Default claims for this host, with `changes` merged in (`null` removes a claim).
    fn claims(&self, changes: Value) -> Value {
        with_changes(default_claims(&self.host(), AUDIENCE), changes)
    }

    /// A token signed by key 1 over the default claims changed by `changes`.
    fn token(&self, changes: Value) -> String {
        TokenMinter.mint(KID_1, &self.claims(changes))
    }

    async fn decode(&self, token: &str) -> Result<Credentials, AuthError> {
        self.decoder.decode(token, AUDIENCE).await
    }
}

/// `claims` with each field of `changes` set, or removed when it is `null`.
fn with_changes(mut claims: Value, changes: Value) -> Value {
    let map = claims.as_object_mut().expect("claims are an object");
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    claims
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A server that must not be asked for its JWKS.
async fn untouchable_server() -> MockServer {
    let server = MockServer::start().await;
    jwks_mock(jwks()).expect(0).mount(&server).await;
    server
}

// ---- the authorization table, row by row ----

#[tokio::test]
async fn garbage_tokens_are_wrong_structure() {
    let host = Host::over(untouchable_server().await);
    let valid = host.token(json!({}));
    for garbage in [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "!!!.???.***",
        &format!("{valid}.extra"),
        &with_header_segment(&valid, NOT_JSON),
        &with_header_segment(&valid, JSON_ARRAY),
    ] {
        assert_eq!(
            host.decode(garbage).await,
            Err(AuthError::WrongStructure),
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn a_valid_header_with_a_payload_that_is_not_a_json_object_is_wrong_structure() {
    let host = Host::over(untouchable_server().await);
    let valid = host.token(json!({}));
    for payload in [NOT_JSON, JSON_ARRAY, "%%%"] {
        assert_eq!(
            host.decode(&with_payload_segment(&valid, payload)).await,
            Err(AuthError::WrongStructure),
            "{payload}"
        );
    }
}

#[tokio::test]
async fn a_missing_or_unusable_jwks_host_is_jwks_host_missing() {
    let host = Host::over(untouchable_server().await);
    for jwks_host in [Value::Null, json!(""), json!(42), json!(["h"])] {
        // (`null` here removes the claim.)
        let token = host.token(json!({ "jwks_host": jwks_host }));
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::JwksHostMissing),
            "{jwks_host}"
        );
    }
    // A claim present as null is as missing as an absent one.
    let mut claims = host.claims(json!({}));
    claims["jwks_host"] = Value::Null;
    assert_eq!(
        host.decode(&TokenMinter.mint(KID_1, &claims)).await,
        Err(AuthError::JwksHostMissing)
    );
}

#[tokio::test]
async fn a_disallowed_jwks_host_is_refused_before_any_request() {
    // The token names a live JWKS host that the allow-list does not hold.
    let server = untouchable_server().await;
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_hosts: "127.0.0.1:1,visibility.*.amp.cisco.com".into(),
        ..settings_for(&server)
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    assert_eq!(
        decoder.decode(&token, AUDIENCE).await,
        Err(AuthError::WrongJwksHost)
    );
}

#[tokio::test]
async fn url_tricks_in_jwks_host_are_refused_before_any_request() {
    let host = Host::over(untouchable_server().await);
    let allowed = host.host();
    for trick in [
        format!("{allowed}/.well-known/jwks#"),
        format!("{allowed}/x"),
        format!("{allowed}?"),
        format!("{allowed}#"),
        format!("user@{allowed}"),
        format!("{allowed}@evil.test"),
        format!("http://{allowed}"),
        format!(" {allowed}"),
        format!("{allowed}\n"),
    ] {
        let token = host.token(json!({"jwks_host": trick}));
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::WrongJwksHost),
            "{trick:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_jwks_host_is_wrong_jwks_host() {
    let unused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_hosts: unused.clone(),
        scheme: "http".to_owned(),
        fetch_timeout: Duration::from_secs(2),
        ..JwtSettings::default()
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&unused, AUDIENCE));
    assert_eq!(
        decoder.decode(&token, AUDIENCE).await,
        Err(AuthError::WrongJwksHost)
    );
}

#[tokio::test]
async fn a_jwks_endpoint_answering_an_error_status_is_wrong_jwks_host() {
    for status in [404, 500, 204] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(JWKS_PATH))
            .respond_with(ResponseTemplate::new(status).set_body_json(jwks()))
            .expect(1)
            .mount(&server)
            .await;
        let host = Host::over(server);
        // 204 is a success, but without a body it is no JWKS either.
        assert_eq!(
            host.decode(&host.token(json!({}))).await,
            Err(AuthError::WrongJwksHost),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_jwks_endpoint_answering_something_else_than_a_jwks_is_wrong_jwks_host() {
    for body in ["not json", "[]", "{}", r#"{"keys": {}}"#, "<html></html>"] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(JWKS_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let host = Host::over(server);
        assert_eq!(
            host.decode(&host.token(json!({}))).await,
            Err(AuthError::WrongJwksHost),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_jwks_body_over_one_mib_is_wrong_jwks_host() {
    // The fixture set, valid JSON, padded past 1 MiB with whitespace: only the size is wrong.
    let mut body = jwks().to_string();
    body.insert_str(1, &" ".repeat(1024 * 1024));
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let host = Host::over(server);
    assert_eq!(
        host.decode(&host.token(json!({}))).await,
        Err(AuthError::WrongJwksHost)
    );
}

#[tokio::test]
async fn a_jwks_body_just_under_one_mib_is_accepted() {
    let mut body = jwks().to_string();
    let padding = 1024 * 1024 - body.len();
    body.insert_str(1, &" ".repeat(padding));
    assert_eq!(body.len(), 1024 * 1024);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let host = Host::over(server);
    assert!(host.decode(&host.token(json!({}))).await.is_ok());
}

#[tokio::test]
async fn a_jwks_endpoint_slower_than_the_fetch_timeout_is_wrong_jwks_host() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks())
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let decoder = JwtDecoder::new(JwtSettings {
        fetch_timeout: Duration::from_millis(200),
        ..settings_for(&server)
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    assert_eq!(
        decoder.decode(&token, AUDIENCE).await,
        Err(AuthError::WrongJwksHost)
    );
}

// RULES R17
#[tokio::test]
async fn a_redirect_away_from_the_jwks_host_is_not_followed() {
    let elsewhere = untouchable_server().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}{JWKS_PATH}", elsewhere.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let host = Host::over(server);
    assert_eq!(
        host.decode(&host.token(json!({}))).await,
        Err(AuthError::WrongJwksHost)
    );
}

#[tokio::test]
async fn an_unknown_kid_is_kid_not_found() {
    let host = Host::serving().await;
    let token = TokenMinter.mint_as(KID_1, Some("rotated-away"), &host.claims(json!({})));
    assert_eq!(host.decode(&token).await, Err(AuthError::KidNotFound));
}

#[tokio::test]
async fn a_token_without_kid_is_kid_not_found() {
    let host = Host::serving().await;
    let token = TokenMinter.mint_as(KID_1, None, &host.claims(json!({})));
    assert_eq!(host.decode(&token).await, Err(AuthError::KidNotFound));
}

#[tokio::test]
async fn an_hs256_token_is_wrong_key() {
    let host = Host::serving().await;
    // Keyed with the public modulus: the classic RS256/HS256 confusion.
    let modulus = jwks()["keys"][0]["n"].as_str().unwrap().to_owned();
    let token = TokenMinter.mint_hs256(KID_1, modulus.as_bytes(), &host.claims(json!({})));
    assert_eq!(host.decode(&token).await, Err(AuthError::WrongKey));
}

#[tokio::test]
async fn an_hs256_token_is_wrong_key_even_when_the_jwks_holds_its_secret() {
    let server = MockServer::start().await;
    let mut set = jwks();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "shared", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}));
    jwks_mock(set).mount(&server).await;
    let host = Host::over(server);
    let token = TokenMinter.mint_hs256(
        "shared",
        b"secret-secret-secret-secret",
        &host.claims(json!({})),
    );
    assert_eq!(host.decode(&token).await, Err(AuthError::WrongKey));
}

#[tokio::test]
async fn an_alg_none_token_is_wrong_key() {
    let host = Host::serving().await;
    let signed = host.token(json!({}));
    let unsigned = with_header_segment(&signed, ALG_NONE_HEADER);
    let (without_signature, _) = unsigned.rsplit_once('.').unwrap();
    for token in [unsigned.clone(), format!("{without_signature}.")] {
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::WrongKey),
            "{token}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_this_kid_is_wrong_key() {
    let host = Host::serving().await;
    let token = TokenMinter.mint_as(KID_2, Some(KID_1), &host.claims(json!({})));
    assert_eq!(host.decode(&token).await, Err(AuthError::WrongKey));
    // The same key under its own kid verifies: the kid picks the key.
    let token = TokenMinter.mint(KID_2, &host.claims(json!({})));
    assert!(host.decode(&token).await.is_ok());
}

#[tokio::test]
async fn a_tampered_payload_is_wrong_key() {
    let host = Host::serving().await;
    let original = host.token(json!({}));
    let forged = host.token(json!({"key": "someone-elses-key"}));
    let forged_payload = forged.split('.').nth(1).unwrap();
    let tampered = with_payload_segment(&original, forged_payload);
    assert_eq!(host.decode(&tampered).await, Err(AuthError::WrongKey));
}

#[tokio::test]
async fn a_kid_naming_a_key_that_is_not_an_rs256_signing_key_is_wrong_key() {
    let public = jwks()["keys"][0].clone();
    let mut for_encryption = public.clone();
    for_encryption["use"] = json!("enc");
    let mut for_rs512 = public.clone();
    for_rs512["alg"] = json!("RS512");
    for jwk in [
        for_encryption,
        for_rs512,
        json!({"kty": "oct", "kid": KID_1, "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": KID_1, "n": "!!", "e": "AQAB"}),
    ] {
        let server = MockServer::start().await;
        jwks_mock(json!({"keys": [jwk]})).mount(&server).await;
        let host = Host::over(server);
        assert_eq!(
            host.decode(&host.token(json!({}))).await,
            Err(AuthError::WrongKey),
            "{jwk}"
        );
    }
}

// RULES R17
#[tokio::test]
async fn a_missing_or_wrong_audience_is_wrong_audience() {
    let host = Host::serving().await;
    for aud in [
        Value::Null,
        json!("http://other.test"),
        json!(format!("{AUDIENCE}/")),
        json!(AUDIENCE.to_uppercase()),
        json!(["http://other.test"]),
        json!([]),
        json!(1),
    ] {
        // (`null` here removes the claim.)
        let token = host.token(json!({ "aud": aud }));
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::WrongAudience),
            "{aud}"
        );
    }
}

#[tokio::test]
async fn an_audience_array_holding_the_expected_audience_is_accepted() {
    let host = Host::serving().await;
    let token = host.token(json!({"aud": ["http://other.test", AUDIENCE]}));
    assert!(host.decode(&token).await.is_ok());
}

#[tokio::test]
async fn a_missing_or_non_string_key_is_wrong_payload() {
    let host = Host::serving().await;
    for key in [Value::Null, json!(42), json!(["k"]), json!({"k": 1})] {
        // (`null` here removes the claim.)
        let token = host.token(json!({ "key": key }));
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::WrongPayload),
            "{key}"
        );
    }
}

// RULES R17
#[tokio::test]
async fn a_key_unusable_as_a_header_value_is_unauthorized() {
    let host = Host::serving().await;
    for key in ["trailing ", " leading", "clé", "new\nline", ""] {
        let token = host.token(json!({"key": key}));
        assert_eq!(
            host.decode(&token).await,
            Err(AuthError::Unauthorized),
            "{key:?}"
        );
    }
}

#[tokio::test]
async fn a_token_past_its_exp_is_expired() {
    let host = Host::serving().await;
    for exp in [
        json!(unix_now() - 10),
        json!(1),
        json!("9999999999"),
        json!(true),
    ] {
        let token = host.token(json!({"exp": exp}));
        assert_eq!(host.decode(&token).await, Err(AuthError::Expired), "{exp}");
    }
}

#[tokio::test]
async fn a_token_with_exp_in_the_future_or_no_exp_is_accepted() {
    let host = Host::serving().await;
    for changes in [json!({"exp": unix_now() + 600}), json!({"exp": null})] {
        let token = host.token(changes.clone());
        assert!(host.decode(&token).await.is_ok(), "{changes}");
    }
}

#[tokio::test]
async fn a_valid_token_gives_its_key_and_entities_limit() {
    let host = Host::serving().await;
    let credentials = host.decode(&host.token(json!({}))).await.unwrap();
    assert_eq!(credentials.api_key.expose(), API_KEY);
    assert_eq!(credentials.entities_limit.get(), 20);
}

#[tokio::test]
async fn the_entities_limit_is_an_integer_or_a_string_of_one_above_zero() {
    let host = Host::serving().await;
    for (claim, limit) in [
        (json!(7), 7),
        (json!("15"), 15),
        (json!(0), 100),
        (json!("0"), 100),
        (json!("junk"), 100),
        (json!(-5), 100),
        (Value::Null, 100),
    ] {
        let token = host.token(json!({"CTR_ENTITIES_LIMIT": claim}));
        let credentials = host.decode(&token).await.unwrap();
        assert_eq!(credentials.entities_limit.get(), limit, "{claim}");
    }
}

// ---- the order of the rows ----

#[tokio::test]
async fn failures_are_reported_in_the_contract_order() {
    let host = Host::serving().await;
    let past = unix_now() - 10;
    let cases = [
        // no jwks_host beats a bad signature
        (
            TokenMinter.mint_as(KID_2, Some(KID_1), &host.claims(json!({"jwks_host": null}))),
            AuthError::JwksHostMissing,
        ),
        // a disallowed host beats a missing kid
        (
            TokenMinter.mint_as(KID_1, None, &host.claims(json!({"jwks_host": "evil.test"}))),
            AuthError::WrongJwksHost,
        ),
        // an unknown kid beats a wrong algorithm
        (
            TokenMinter.mint_hs256("unknown", b"secret", &host.claims(json!({}))),
            AuthError::KidNotFound,
        ),
        // a bad signature beats every claim
        (
            TokenMinter.mint_as(
                KID_2,
                Some(KID_1),
                &host.claims(json!({"aud": "x", "key": null, "exp": past})),
            ),
            AuthError::WrongKey,
        ),
        // a wrong audience beats a missing key
        (
            host.token(json!({"aud": "x", "key": null, "exp": past})),
            AuthError::WrongAudience,
        ),
        // a missing key beats expiry
        (
            host.token(json!({"key": null, "exp": past})),
            AuthError::WrongPayload,
        ),
        // an unusable key beats expiry
        (
            host.token(json!({"key": "bad ", "exp": past})),
            AuthError::Unauthorized,
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(
            host.decode(&token).await,
            Err(expected.clone()),
            "{expected:?}"
        );
    }
}

#[tokio::test]
async fn an_unusable_jwks_host_beats_a_missing_kid() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let host = Host::over(server);
    let token = TokenMinter.mint_as(KID_1, None, &host.claims(json!({})));
    assert_eq!(host.decode(&token).await, Err(AuthError::WrongJwksHost));
}

// ---- the JWKS cache ----

#[tokio::test]
async fn tokens_with_the_same_kid_share_one_fetch() {
    let server = MockServer::start().await;
    jwks_mock(jwks()).expect(1).mount(&server).await;
    let host = Host::over(server);
    for _ in 0..3 {
        assert!(host.decode(&host.token(json!({}))).await.is_ok());
    }
    // A token without a kid is answered from the cache too.
    let no_kid = TokenMinter.mint_as(KID_1, None, &host.claims(json!({})));
    assert_eq!(host.decode(&no_kid).await, Err(AuthError::KidNotFound));
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks())
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let host = Host::over(server);
    let token = host.token(json!({}));
    let results = futures::future::join_all((0..8).map(|_| host.decode(&token))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[tokio::test]
async fn concurrent_requests_share_one_failed_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_millis(100)))
        .expect(1)
        .mount(&server)
        .await;
    let host = Host::over(server);
    let token = host.token(json!({}));
    let results = futures::future::join_all((0..8).map(|_| host.decode(&token))).await;
    assert!(
        results.iter().all(|r| *r == Err(AuthError::WrongJwksHost)),
        "{results:?}"
    );
}

#[tokio::test]
async fn an_unknown_kid_right_after_a_fetch_does_not_refetch() {
    let server = MockServer::start().await;
    jwks_mock(jwks()).expect(1).mount(&server).await;
    let host = Host::over(server);
    for _ in 0..3 {
        let token = TokenMinter.mint_as(KID_1, Some("unknown"), &host.claims(json!({})));
        assert_eq!(host.decode(&token).await, Err(AuthError::KidNotFound));
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_refetch_interval() {
    let server = MockServer::start().await;
    jwks_mock(jwks()).expect(2).mount(&server).await;
    let decoder = JwtDecoder::new(JwtSettings {
        refetch_interval: Duration::from_millis(500),
        ..settings_for(&server)
    })
    .unwrap();
    let claims = default_claims(&jwks_host(&server), AUDIENCE);
    assert!(
        decoder
            .decode(&TokenMinter.mint(KID_1, &claims), AUDIENCE)
            .await
            .is_ok()
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    let unknown = TokenMinter.mint_as(KID_1, Some("unknown"), &claims);
    // The interval has passed: one refetch, still without the kid...
    assert_eq!(
        decoder.decode(&unknown, AUDIENCE).await,
        Err(AuthError::KidNotFound)
    );
    // ...and straight after it, no other.
    assert_eq!(
        decoder.decode(&unknown, AUDIENCE).await,
        Err(AuthError::KidNotFound)
    );
    // Known kids keep being served from the cache.
    assert!(
        decoder
            .decode(&TokenMinter.mint(KID_2, &claims), AUDIENCE)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_rotated_key_is_found_by_the_refetch() {
    let server = MockServer::start().await;
    jwks_mock(jwks_with(&[KID_1]))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    jwks_mock(jwks()).expect(1).mount(&server).await;
    let decoder = JwtDecoder::new(JwtSettings {
        refetch_interval: Duration::ZERO,
        ..settings_for(&server)
    })
    .unwrap();
    let claims = default_claims(&jwks_host(&server), AUDIENCE);
    assert!(
        decoder
            .decode(&TokenMinter.mint(KID_1, &claims), AUDIENCE)
            .await
            .is_ok()
    );
    assert!(
        decoder
            .decode(&TokenMinter.mint(KID_2, &claims), AUDIENCE)
            .await
            .is_ok()
    );
    // Both are now cached.
    assert!(
        decoder
            .decode(&TokenMinter.mint(KID_1, &claims), AUDIENCE)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_jwks_older_than_its_ttl_is_refetched() {
    let server = MockServer::start().await;
    jwks_mock(jwks()).expect(2).mount(&server).await;
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_ttl: Duration::from_millis(50),
        ..settings_for(&server)
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
}

#[tokio::test]
async fn a_failed_fetch_is_remembered_for_the_refetch_interval() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    jwks_mock(jwks()).expect(1).mount(&server).await;
    let decoder = JwtDecoder::new(JwtSettings {
        refetch_interval: Duration::from_millis(300),
        ..settings_for(&server)
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    // The failure stands for the interval: the host is not asked again...
    for _ in 0..3 {
        assert_eq!(
            decoder.decode(&token, AUDIENCE).await,
            Err(AuthError::WrongJwksHost)
        );
    }
    // ...and is asked once it is over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
}

#[tokio::test]
async fn a_known_kid_is_answered_while_another_kid_is_refetched() {
    let server = MockServer::start().await;
    jwks_mock(jwks()).up_to_n_times(1).mount(&server).await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks())
                .set_delay(Duration::from_secs(1)),
        )
        .mount(&server)
        .await;
    let decoder = std::sync::Arc::new(
        JwtDecoder::new(JwtSettings {
            refetch_interval: Duration::ZERO,
            ..settings_for(&server)
        })
        .unwrap(),
    );
    let claims = default_claims(&jwks_host(&server), AUDIENCE);
    let known = TokenMinter.mint(KID_1, &claims);
    assert!(decoder.decode(&known, AUDIENCE).await.is_ok());
    let unknown = TokenMinter.mint_as(KID_1, Some("unknown"), &claims);
    let refetch = {
        let decoder = decoder.clone();
        tokio::spawn(async move { decoder.decode(&unknown, AUDIENCE).await })
    };
    while server.received_requests().await.unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    assert!(decoder.decode(&known, AUDIENCE).await.is_ok());
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(refetch.await.unwrap(), Err(AuthError::KidNotFound));
}

#[tokio::test]
async fn the_cache_is_per_host() {
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    jwks_mock(jwks_with(&[KID_1])).expect(1).mount(&first).await;
    jwks_mock(jwks_with(&[KID_2]))
        .expect(1)
        .mount(&second)
        .await;
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_hosts: format!("{},{}", jwks_host(&first), jwks_host(&second)),
        ..settings_for(&first)
    })
    .unwrap();
    let on = |server: &MockServer, kid: &str| {
        TokenMinter.mint(kid, &default_claims(&jwks_host(server), AUDIENCE))
    };
    assert!(decoder.decode(&on(&first, KID_1), AUDIENCE).await.is_ok());
    assert!(decoder.decode(&on(&second, KID_2), AUDIENCE).await.is_ok());
    // Each host's key verifies only tokens naming that host.
    assert_eq!(
        decoder.decode(&on(&second, KID_1), AUDIENCE).await,
        Err(AuthError::KidNotFound)
    );
    assert!(decoder.decode(&on(&first, KID_1), AUDIENCE).await.is_ok());
}

// RULES R21
#[tokio::test]
async fn a_remembered_signature_does_not_outlive_its_key() {
    let server = MockServer::start().await;
    mount_jwks(&server).await;
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_ttl: Duration::from_millis(50),
        ..settings_for(&server)
    })
    .unwrap();
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
    assert!(
        decoder.decode(&token, AUDIENCE).await.is_ok(),
        "the same token again"
    );

    // The host now publishes the other key under the same kid: the token no longer verifies.
    let mut rotated = jwks_with(&[KID_2]);
    rotated["keys"][0]["kid"] = json!(KID_1);
    server.reset().await;
    jwks_mock(rotated).mount(&server).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        decoder.decode(&token, AUDIENCE).await,
        Err(AuthError::WrongKey)
    );
}

// RULES R21
#[tokio::test]
async fn a_remembered_signature_still_has_its_claims_checked() {
    let server = MockServer::start().await;
    mount_jwks(&server).await;
    let decoder = decoder_for(&server);
    let token = TokenMinter.mint(KID_1, &default_claims(&jwks_host(&server), AUDIENCE));
    assert!(decoder.decode(&token, AUDIENCE).await.is_ok());
    assert_eq!(
        decoder.decode(&token, "http://other").await,
        Err(AuthError::WrongAudience)
    );
}
