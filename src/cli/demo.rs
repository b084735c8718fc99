//! The offline demo: the real relay over a bundled sample dataset, with a ready token.
//!
//! Everything SecureX would do is played locally, so every production path runs: the relay
//! serves its own JWKS at `/.well-known/jwks`, the token names this relay as its `jwks_host`,
//! and the real [`JwtDecoder`] fetches that JWKS over loopback and checks the token like any
//! other. Only the breach source differs: [`MemorySource::sample`] instead of SpyCloud.
//!
//! The signing key, `demo/demo-key.pem`, is public: it is committed with the crate, and a token
//! it signs is only accepted by a relay whose allow-list names this demo's own address.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use spycloud_relay::adapters::{HttpSettings, JwtDecoder, JwtSettings, MemorySource, Server};
use spycloud_relay::domain::Timestamp;
use spycloud_relay::{Relay, RelaySettings};

use super::{DemoArgs, logging};

/// The `kid` of the demo signing key, in token headers and in the demo JWKS.
pub const DEMO_KID: &str = "spycloud-relay-demo";
/// The SpyCloud API key demo tokens carry; the in-memory source accepts any key.
pub const DEMO_API_KEY: &str = "demo-api-key";
/// The entities limit demo tokens carry.
pub const DEMO_ENTITIES_LIMIT: usize = 100;

/// The demo's RSA private key: public, committed, for the demo only.
const DEMO_KEY_PEM: &[u8] = include_bytes!("../../demo/demo-key.pem");
/// The public half of [`DEMO_KEY_PEM`] as a JWKS.
const DEMO_JWKS: &str = include_str!("../../demo/jwks.json");

/// Seconds requests in flight get to finish after SIGTERM/SIGINT.
const GRACE: Duration = Duration::from_secs(5);

/// Serves the demo until SIGTERM/SIGINT.
///
/// Prints what it is, the sample observables (emails, a domain, an IP address, a username), a
/// token and ready-to-paste `curl` lines on stdout,
/// then the `spycloud-relay listening on ...` line, then serves.
///
/// # Errors
/// When logging cannot start, the listener cannot be bound, or it is bound to an IPv6 address
/// other than `::` (tokens name their JWKS host as `host:port`, which takes no IPv6 literal).
pub async fn run(args: DemoArgs) -> Result<(), Box<dyn Error>> {
    logging::init(&args.log)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {} (RELAY_LISTEN): {error}", args.listen))?;
    let bound = listener.local_addr()?;
    let local = reachable_address(bound)?;
    let host = local.to_string();
    let base = format!("http://{host}");

    let decoder = JwtDecoder::new(JwtSettings {
        jwks_hosts: host.clone(),
        scheme: "http".to_owned(),
        ..JwtSettings::default()
    })?;
    // The watchlist is spread over the 90 days before now, so every period has records.
    let source = MemorySource::sample_at(Timestamp::from_utc(chrono::Utc::now()));
    let samples = samples(&source);
    let settings = RelaySettings {
        mapping: args.output.mapping(),
        ..RelaySettings::default()
    };
    let relay = Relay::new(Arc::new(source), Arc::new(decoder), settings);

    let token = mint_token(&host, &base)?;
    print!("{}", instructions(&base, &samples, &token));
    logging::announce(bound, false);

    let http = HttpSettings {
        // Fixed, so a curl to the printed address works whatever Host header it sends.
        audience: Some(base),
        grace: GRACE,
        // Where the token's `jwks_host` points.
        jwks: Some(serde_json::from_str(DEMO_JWKS)?),
        ..HttpSettings::default()
    };
    Server::new(relay, http).serve(listener).await?;
    Ok(())
}

/// The address a client on this machine reaches the listener at: the bound address, or
/// `127.0.0.1` when it is bound to all interfaces.
fn reachable_address(bound: SocketAddr) -> Result<SocketAddr, Box<dyn Error>> {
    match bound.ip() {
        ip if ip.is_unspecified() => Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            bound.port(),
        )),
        IpAddr::V4(_) => Ok(bound),
        IpAddr::V6(_) => Err(format!(
            "the demo needs an IPv4 address or 0.0.0.0 to listen on, not {bound}"
        )
        .into()),
    }
}

/// An RS256 token signed by the demo key, accepted by this demo relay and no other.
///
/// # Errors
/// Only if the committed key is not an RSA private key.
pub fn mint_token(jwks_host: &str, audience: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEMO_KID.to_owned());
    let claims = json!({
        "key": DEMO_API_KEY,
        "jwks_host": jwks_host,
        "aud": audience,
        "CTR_ENTITIES_LIMIT": DEMO_ENTITIES_LIMIT,
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(DEMO_KEY_PEM)?)
}

/// The dataset's values as observables: its emails, then its domains, IP addresses and
/// usernames (the observable type of each endpoint).
pub fn samples(source: &MemorySource) -> Vec<(&'static str, String)> {
    let ip_type = |ip: &str| if ip.contains(':') { "ipv6" } else { "ip" };
    let mut samples = Vec::new();
    for (endpoint, kind) in [
        ("emails", "email"),
        ("domains", "domain"),
        ("ips", "ip"),
        ("usernames", "user"),
    ] {
        for value in source.values_of(endpoint) {
            let kind = if kind == "ip" { ip_type(value) } else { kind };
            samples.push((kind, value.to_owned()));
        }
    }
    samples
}

/// What the demo prints before serving.
fn instructions(base: &str, samples: &[(&str, String)], token: &str) -> String {
    let observables = samples
        .iter()
        .map(|(kind, value)| json!({"type": kind, "value": value}))
        .collect::<Vec<_>>();
    let body = Value::Array(observables);
    let sample_lines: String = samples
        .iter()
        .map(|(kind, value)| format!("  {kind:<7}{value}\n"))
        .collect();
    let tile_lines: String = [
        ("spycloud_exposure_summary", "last_24_hours"),
        ("spycloud_exposures_by_day", "last_7_days"),
        ("spycloud_top_breaches", "last_30_days"),
        ("spycloud_most_exposed_employees", "last_90_days"),
    ]
    .iter()
    .map(|(tile, period)| {
        format!(
            "  curl -s -X POST {base}/tiles/tile-data -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"tile_id\":\"{tile}\",\"period\":\"{period}\"}}'\n"
        )
    })
    .collect();
    format!(
        "\
spycloud-relay demo: the real relay (JWT checks, SpyCloud paging, CTIM mapping) over a bundled
sample of invented SpyCloud data. Nothing leaves this machine: tokens are checked against the
relay's own JWKS at {base}/.well-known/jwks, and the key that signs them
(demo/demo-key.pem) is public and only good for this demo.

Sample observables (type, value):
{sample_lines}
Token (RS256, kid {DEMO_KID}, no expiry, entities limit {DEMO_ENTITIES_LIMIT}):
Authorization: Bearer {token}

Try it (paste into a shell):
  TOKEN={token}
  curl -s -X POST {base}/observe/observables -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}'
  curl -s -X POST {base}/health -H \"Authorization: Bearer $TOKEN\"
  curl -s -X POST {base}/version

The Employee ATO dashboard (a watchlist of 12 employees over the last 90 days):
  curl -s -X POST {base}/tiles -H \"Authorization: Bearer $TOKEN\"
  curl -s -X POST {base}/tiles/tile -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"tile_id\":\"spycloud_top_breaches\"}}'
{tile_lines}
Stop with Ctrl-C.
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_key_and_jwks_are_one_pair() {
        let token = mint_token("127.0.0.1:1", "http://127.0.0.1:1").unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(DEMO_JWKS).unwrap();
        let jwk = jwks.find(DEMO_KID).expect("the demo kid is in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["http://127.0.0.1:1"]);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(decoded.claims["key"], DEMO_API_KEY);
        assert_eq!(decoded.claims["jwks_host"], "127.0.0.1:1");
        assert_eq!(decoded.claims["CTR_ENTITIES_LIMIT"], 100);
        assert_eq!(decoded.header.kid.as_deref(), Some(DEMO_KID));
    }

    #[test]
    fn the_sample_observables_are_every_type_the_demo_shows() {
        let samples = samples(&MemorySource::sample());
        let kinds: Vec<&str> = samples.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            kinds,
            ["email", "email", "email", "email", "domain", "ip", "user"]
        );
        let text = instructions("http://127.0.0.1:9090", &samples, "t0k3n");
        assert!(text.contains("  domain acme.test\n"), "{text}");
        assert!(
            text.contains(r#"{"type":"ip","value":"203.0.113.77"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"type":"user","value":"arivera"}"#),
            "{text}"
        );
    }

    #[test]
    fn all_interfaces_are_reached_over_loopback() {
        let reach = |s: &str| reachable_address(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(reach("0.0.0.0:9090").unwrap(), "127.0.0.1:9090");
        assert_eq!(reach("[::]:9090").unwrap(), "127.0.0.1:9090");
        assert_eq!(reach("192.0.2.1:80").unwrap(), "192.0.2.1:80");
        assert!(reach("[::1]:9090").is_err());
    }
}
