//! The routes and their handlers: SecureX's requests turned into use-case calls, and the
//! 404/405 fallback.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::HttpSettings;
use super::body::{Body, with_body};
use super::envelope::{answer, answer_with_errors, data_or_fatal, fatal, status_reply};
use crate::domain::tiles::{Definition, TileAnswer, parse_tile_request};
use crate::domain::{Bundle, Error, Observable, ObservableType, Period, TileId, parse_observables};
use crate::relay::{Caller, Relay};
use crate::telemetry;

/// The routes the relay serves, in the order they are tried. Their paths also tell a wrong
/// method (405) from an unknown path (404) and are the route labels of the request metrics;
/// the authenticated ones are SecureX's, those `module_type.json` advertises. A new route is
/// one handler and one entry here.
#[rustfmt::skip]
pub(super) static ROUTES: [Route; 7] = [
    Route::new("/health",              Method::POST, Authenticated::Yes, health),
    Route::new("/observe/observables", Method::POST, Authenticated::Yes, observe),
    Route::new("/tiles",               Method::POST, Authenticated::Yes, tiles),
    Route::new("/tiles/tile",          Method::POST, Authenticated::Yes, tile),
    Route::new("/tiles/tile-data",     Method::POST, Authenticated::Yes, tile_data),
    Route::new("/version",             Method::POST, Authenticated::No,  version),
    Route::new("/watchdog",            Method::GET,  Authenticated::No,  watchdog),
];

/// Whether a route asks for a SecureX token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Authenticated {
    Yes,
    No,
}

/// One route: its path, method, whether it asks for a token, and its handler.
pub(super) struct Route {
    /// The path, `/` first; also the route's label in metrics and logs.
    pub(super) path: &'static str,
    method: Method,
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "read by the test of what module_type.json advertises"
        )
    )]
    pub(super) authenticated: Authenticated,
    handler: fn(Handling) -> BoxedFilter<(Response,)>,
}

/// What a handler answers with: the relay, the settings, and its route's path.
#[derive(Clone)]
struct Handling {
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
    route: &'static str,
}

impl Route {
    const fn new(
        path: &'static str,
        method: Method,
        authenticated: Authenticated,
        handler: fn(Handling) -> BoxedFilter<(Response,)>,
    ) -> Self {
        Self {
            path,
            method,
            authenticated,
            handler,
        }
    }

    /// The route as a filter: its path (segment by segment, as `warp::path!` matches), then
    /// its method, then its handler.
    fn filter(
        &'static self,
        relay: Arc<Relay>,
        settings: Arc<HttpSettings>,
    ) -> BoxedFilter<(Response,)> {
        let path = self
            .path
            .trim_start_matches('/')
            .split('/')
            .fold(warp::any().boxed(), |path, segment| {
                path.and(warp::path(segment)).boxed()
            })
            .and(warp::path::end());
        let method = warp::method()
            .and_then(move |method: Method| async move {
                if method == self.method {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            })
            .untuple_one();
        let handling = Handling {
            relay,
            settings,
            route: self.path,
        };
        path.and(method).and((self.handler)(handling)).boxed()
    }
}

/// The paths of [`ROUTES`], for the request metrics.
pub(super) fn paths() -> Vec<&'static str> {
    ROUTES.iter().map(|route| route.path).collect()
}

/// Who sent a request, as the headers tell it.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    authorization: Option<String>,
    audience: String,
    /// The announced body length, when it is a number.
    pub(super) content_length: Option<u64>,
}

impl Incoming {
    fn caller(&self) -> Caller<'_> {
        Caller {
            authorization: self.authorization.as_deref(),
            audience: &self.audience,
        }
    }
}

/// The relay's routes, with the 404/405 fallback; the filter never rejects.
pub(crate) fn routes(
    relay: Arc<Relay>,
    settings: HttpSettings,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let settings = Arc::new(settings);
    let [first, rest @ ..] = &ROUTES;
    let served = rest.iter().fold(
        first.filter(relay.clone(), settings.clone()),
        |served, route| {
            served
                .or(route.filter(relay.clone(), settings.clone()))
                .unify()
                .boxed()
        },
    );
    jwks(settings.jwks.clone()).or(served).or(fallback())
}

/// `GET /.well-known/jwks`: the JWKS of [`HttpSettings::jwks`]; without one, a rejection the
/// fallback answers 404.
fn jwks(
    jwks: Option<serde_json::Value>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let jwks = jwks.map(Arc::new);
    warp::path!(".well-known" / "jwks")
        .and(warp::get())
        .and_then(move || {
            let jwks = jwks.clone();
            async move {
                match jwks {
                    Some(jwks) => Ok(warp::reply::json(jwks.as_ref()).into_response()),
                    None => Err(warp::reject::not_found()),
                }
            }
        })
}

pub(super) fn with<T: Clone + Send>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

pub(super) fn incoming(
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Incoming,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |headers: HeaderMap| Incoming {
        authorization: headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        audience: settings
            .audience
            .clone()
            .unwrap_or_else(|| request_root(&headers, settings.tls.is_some())),
        content_length: headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    })
}

/// `<scheme>://<Host>`: `https` when the relay serves TLS itself; else the scheme from
/// `X-Forwarded-Proto` (first value) when present, else http.
fn request_root(headers: &HeaderMap, tls: bool) -> String {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if tls {
        return format!("https://{}", text("host").unwrap_or_default());
    }
    let scheme = text("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("http");
    format!("{scheme}://{}", text("host").unwrap_or_default())
}

/// `/health`: one authenticated call to SpyCloud.
fn health(
    Handling {
        relay,
        settings,
        route,
    }: Handling,
) -> BoxedFilter<(Response,)> {
    incoming(settings)
        .and(with(relay))
        .then(move |incoming: Incoming, relay: Arc<Relay>| async move {
            let started = Instant::now();
            let caller = incoming.caller();
            let checked = health_request(&relay, &caller);
            let (outcome, upstream) = telemetry::counting_upstream_calls(checked).await;
            let outcome = outcome.map(|()| json!({"status": "ok"}));
            data_or_fatal(route, started, &upstream, outcome)
        })
        .boxed()
}

/// `/observe/observables`: the findings on the observables of the body, as CTIM.
fn observe(
    Handling {
        relay,
        settings,
        route,
    }: Handling,
) -> BoxedFilter<(Response,)> {
    with_body(relay, settings)
        .then(
            move |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
                let observed = async {
                    let observables = parse_observables(&body?)?;
                    Ok::<_, Error>(observe_request(&relay, &incoming.caller(), &observables).await)
                };
                let (outcome, upstream) = telemetry::counting_upstream_calls(observed).await;
                match outcome {
                    Ok(bundle) => {
                        answer_with_errors(route, started, &upstream, bundle.fatal(), &bundle)
                    }
                    Err(error) => fatal(route, started, Some(&upstream), &error),
                }
            },
        )
        .boxed()
}

/// `/tiles`: the dashboard's tile definitions (the body is not read).
fn tiles(
    Handling {
        relay,
        settings,
        route,
    }: Handling,
) -> BoxedFilter<(Response,)> {
    incoming(settings)
        .and(with(relay))
        .then(move |incoming: Incoming, relay: Arc<Relay>| async move {
            let started = Instant::now();
            let caller = incoming.caller();
            let described = tiles_request(&relay, &caller);
            let (outcome, upstream) = telemetry::counting_upstream_calls(described).await;
            data_or_fatal(route, started, &upstream, outcome)
        })
        .boxed()
}

/// `/tiles/tile`: one tile's definition.
fn tile(
    Handling {
        relay,
        settings,
        route,
    }: Handling,
) -> BoxedFilter<(Response,)> {
    with_body(relay, settings)
        .then(
            move |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
                let described = async { tile_request(&relay, &incoming.caller(), &body?).await };
                let (outcome, upstream) = telemetry::counting_upstream_calls(described).await;
                data_or_fatal(route, started, &upstream, outcome)
            },
        )
        .boxed()
}

/// `/tiles/tile-data`: one tile's figures for a period, with the token's invalid module
/// settings as warnings beside them.
fn tile_data(
    Handling {
        relay,
        settings,
        route,
    }: Handling,
) -> BoxedFilter<(Response,)> {
    with_body(relay, settings)
        .then(
            move |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
                let figures = async {
                    Ok::<_, Error>(tile_data_request(&relay, &incoming.caller(), &body?).await)
                };
                let (outcome, upstream) = telemetry::counting_upstream_calls(figures).await;
                match outcome {
                    Ok(figures) => {
                        answer_with_errors(route, started, &upstream, figures.fatal(), &figures)
                    }
                    Err(error) => fatal(route, started, Some(&upstream), &error),
                }
            },
        )
        .boxed()
}

// The requests of the routes, in the contract's order: the token first, within the request's
// deadline (which the work that follows shares), then the body, then the use case.

/// `/health`: one authenticated call to SpyCloud.
pub(crate) async fn health_request(relay: &Relay, caller: &Caller<'_>) -> Result<(), Error> {
    let caller = relay.authorize(caller).await?;
    relay
        .health_until(&caller.credentials, caller.deadline)
        .await
}

/// `/observe/observables`: without a supported observable, an empty answer (the token is not
/// looked at); else the findings as CTIM, or the authorization failure alone.
pub(crate) async fn observe_request(
    relay: &Relay,
    caller: &Caller<'_>,
    observables: &[Observable],
) -> Bundle {
    if !observables
        .iter()
        .any(|o| ObservableType::of(&o.kind).is_some())
    {
        return Bundle::default();
    }
    match relay.authorize(caller).await {
        Ok(caller) => relay.observe(&caller, observables).await,
        Err(error) => Bundle::with_error(error.to_doc()),
    }
}

/// `/tiles`: the four tile definitions.
pub(crate) async fn tiles_request(
    relay: &Relay,
    caller: &Caller<'_>,
) -> Result<Vec<Definition>, Error> {
    relay.authorize(caller).await?;
    Ok(TileId::ALL.map(TileId::definition).to_vec())
}

/// `/tiles/tile`: the definition of the tile `body` names.
pub(crate) async fn tile_request(
    relay: &Relay,
    caller: &Caller<'_>,
    body: &[u8],
) -> Result<Definition, Error> {
    relay.authorize(caller).await?;
    Ok(parse_tile_request(body, false)?.tile.definition())
}

/// `/tiles/tile-data`: the figures of the tile and period `body` names (the default period
/// when it names none), the token's invalid module settings beside them; the fatal error,
/// if any, is the authorization failure, then the body's (invalid, unknown tile or period),
/// then the use case's.
pub(crate) async fn tile_data_request(
    relay: &Relay,
    caller: &Caller<'_>,
    body: &[u8],
) -> TileAnswer {
    let caller = match relay.authorize(caller).await {
        Ok(caller) => caller,
        Err(error) => return TileAnswer::failed(&error),
    };
    match parse_tile_request(body, true) {
        Ok(request) => {
            let period = request.period.unwrap_or(Period::DEFAULT);
            relay.tile_figures(&caller, request.tile, period).await
        }
        Err(error) => TileAnswer::of(&caller.credentials, Err(error)),
    }
}

/// `/version`: the relay's version.
fn version(Handling { route, .. }: Handling) -> BoxedFilter<(Response,)> {
    warp::any()
        .map(move || {
            let version = json!({"version": env!("CARGO_PKG_VERSION")});
            answer(route, Instant::now(), None, ("ok", None), &version)
        })
        .boxed()
}

/// `/watchdog`: the `Health-Check` header echoed back.
fn watchdog(Handling { route, .. }: Handling) -> BoxedFilter<(Response,)> {
    warp::header::headers_cloned()
        .map(move |headers: HeaderMap| {
            let started = Instant::now();
            match headers.get("health-check") {
                Some(value) => {
                    let echo = json!({"data": String::from_utf8_lossy(value.as_bytes())});
                    answer(route, started, None, ("ok", None), &echo)
                }
                None => fatal(route, started, None, &Error::health_check()),
            }
        })
        .boxed()
}

/// A known path with another method is 405; anything else 404.
fn fallback() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::path::full().map(|path: warp::path::FullPath| {
        let status = if ROUTES.iter().any(|route| route.path == path.as_str()) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        telemetry::request_done(&telemetry::Done {
            route: "-",
            status: status.as_u16(),
            outcome: "-",
            reason: None,
            duration: Duration::ZERO,
            upstream: None,
        });
        status_reply(status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ApiKey, AuthError, Credentials};
    use crate::ports::{MockBreachSource, MockCredentialDecoder};
    use crate::relay::RelaySettings;
    use serde_json::Value;

    fn relay_with(source: MockBreachSource, decoder: MockCredentialDecoder) -> Arc<Relay> {
        Arc::new(Relay::new(
            Arc::new(source),
            Arc::new(decoder),
            RelaySettings::default(),
        ))
    }

    fn idle_relay() -> Arc<Relay> {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().times(0);
        relay_with(MockBreachSource::new(), decoder)
    }

    /// A decoder that accepts any token, but only for `audience`.
    fn decoder_for(audience: &'static str) -> MockCredentialDecoder {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().returning(move |_, aud| {
            if aud == audience {
                Ok(Credentials::new(ApiKey::parse("k").unwrap()))
            } else {
                Err(AuthError::WrongAudience)
            }
        });
        decoder
    }

    async fn call(
        relay: Arc<Relay>,
        settings: HttpSettings,
        request: warp::test::RequestBuilder,
    ) -> (u16, Value) {
        let response = request.reply(&routes(relay, settings)).await;
        let body = serde_json::from_slice(response.body()).expect("every answer is JSON");
        (response.status().as_u16(), body)
    }

    fn post(path: &str) -> warp::test::RequestBuilder {
        warp::test::request().method("POST").path(path)
    }

    #[tokio::test]
    async fn version_answers_the_crate_version() {
        let (status, body) = call(idle_relay(), HttpSettings::default(), post("/version")).await;
        assert_eq!(
            (status, body),
            (200, json!({"version": env!("CARGO_PKG_VERSION")}))
        );
    }

    #[tokio::test]
    async fn watchdog_echoes_the_health_check_header() {
        let request = warp::test::request()
            .path("/watchdog")
            .header("Health-Check", "ping-42");
        let (status, body) = call(idle_relay(), HttpSettings::default(), request).await;
        assert_eq!((status, body), (200, json!({"data": "ping-42"})));
        let (status, body) = call(
            idle_relay(),
            HttpSettings::default(),
            warp::test::request().path("/watchdog"),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"errors": [{"type": "fatal", "code": "health check failed", "message": "Invalid Health Check"}]})
            )
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_wrong_methods_405_in_json() {
        let not_found = json!({
            "code": 404, "message": "Not Found",
            "reason": "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
        });
        let not_allowed = json!({"code": 405, "message": "Method Not Allowed", "reason": "The method is not allowed for the requested URL."});
        for (method, path, expected) in [
            ("GET", "/nope", (404, not_found.clone())),
            ("POST", "/observe", (404, not_found.clone())),
            ("POST", "/health/extra", (404, not_found.clone())),
            ("POST", "/tiles/other", (404, not_found)),
            ("GET", "/health", (405, not_allowed.clone())),
            ("GET", "/observe/observables", (405, not_allowed.clone())),
            ("GET", "/version", (405, not_allowed.clone())),
            ("POST", "/watchdog", (405, not_allowed.clone())),
            ("GET", "/tiles", (405, not_allowed.clone())),
            ("GET", "/tiles/tile", (405, not_allowed.clone())),
            ("PUT", "/tiles/tile-data", (405, not_allowed.clone())),
            ("DELETE", "/health", (405, not_allowed)),
        ] {
            let request = warp::test::request().method(method).path(path);
            assert_eq!(
                call(idle_relay(), HttpSettings::default(), request).await,
                expected,
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn every_route_of_the_table_answers_its_method_in_the_envelope() {
        for route in &ROUTES {
            let request = warp::test::request()
                .method(route.method.as_str())
                .path(route.path);
            let (status, body) = call(idle_relay(), HttpSettings::default(), request).await;
            assert_eq!(status, 200, "{} {}", route.method, route.path);
            assert!(
                body.get("code").is_none(),
                "{} {}: {body}",
                route.method,
                route.path
            );
        }
    }

    #[tokio::test]
    async fn an_invalid_body_is_an_invalid_argument_in_the_envelope() {
        let (status, body) = call(
            idle_relay(),
            HttpSettings::default(),
            post("/observe/observables").body("{oops"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["errors"][0]["code"], "invalid argument");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON payload received.")
        );
        assert!(body.get("data").is_none());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let settings = HttpSettings {
            body_limit: 64,
            ..HttpSettings::default()
        };
        let big = format!(
            r#"[{{"type":"email","value":"{}@x.com"}}]"#,
            "a".repeat(100)
        );
        let (status, body) = call(
            idle_relay(),
            settings,
            post("/observe/observables").body(big),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["errors"][0]["message"],
            "Invalid JSON payload received. The request body is larger than 64 bytes."
        );
    }

    #[tokio::test]
    async fn observe_without_a_supported_observable_does_not_need_a_token() {
        let request = post("/observe/observables")
            .body(r#"[{"type":"sha256","value":"ab12"},{"type":"url","value":"x"}]"#);
        assert_eq!(
            call(idle_relay(), HttpSettings::default(), request).await,
            (200, json!({"data": {}}))
        );
    }

    #[test]
    fn served_over_tls_the_request_root_is_https_whatever_a_header_says() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "relay.example:9443".parse().unwrap());
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(request_root(&headers, true), "https://relay.example:9443");
        assert_eq!(request_root(&headers, false), "http://relay.example:9443");
    }

    #[test]
    fn module_type_advertises_the_tiles_and_every_securex_route() {
        let module: Value =
            serde_json::from_str(include_str!("../../../module_type.json")).unwrap();
        let apis: Vec<String> = module["properties"]["supported-apis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|api| format!("/{}", api.as_str().unwrap()))
            .collect();
        let securex: Vec<&str> = ROUTES
            .iter()
            .filter(|route| route.authenticated == Authenticated::Yes)
            .map(|route| route.path)
            .collect();
        assert_eq!(apis, securex);
        let capabilities: Vec<&str> = module["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(capabilities, ["health", "observe", "tiles"]);
    }

    #[tokio::test]
    async fn tile_routes_answer_in_the_envelope() {
        let mut source = MockBreachSource::new();
        source.expect_watchlist().times(1).returning(|_, _, into| {
            let record = serde_json::from_value(
                json!({"email": "a@x.com", "spycloud_publish_date": "2000-01-01T00:00:00Z"}),
            )
            .unwrap();
            into.hits(1);
            into.add(record);
            Ok(())
        });
        let relay = relay_with(source, decoder_for("http://relay"));
        let request = |path: &str| {
            post(path)
                .header("authorization", "Bearer t")
                .header("host", "relay")
        };
        let settings = HttpSettings::default;

        let (status, body) = call(relay.clone(), settings(), request("/tiles").body("x")).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"].as_array().unwrap().len(), 4);
        assert_eq!(body["data"][3]["type"], "markdown");

        let one = request("/tiles/tile").body(r#"{"tile_id":"spycloud_top_breaches"}"#);
        let (_, body) = call(relay.clone(), settings(), one).await;
        assert_eq!(body["data"]["id"], "spycloud_top_breaches");

        let unknown = request("/tiles/tile").body(r#"{"tile_id":"nope"}"#);
        let (status, body) = call(relay.clone(), settings(), unknown).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"errors": [{"type": "fatal", "code": "invalid argument", "message": "Unknown tile_id: nope"}]})
            )
        );

        let figures = request("/tiles/tile-data")
            .body(r#"{"tile_id":"spycloud_most_exposed_employees","period":"last_7_days"}"#);
        let (_, body) = call(relay.clone(), settings(), figures).await;
        assert_eq!(
            body["data"]["data"],
            json!(["No exposures in this period."])
        );
        assert_eq!(body["data"]["cache_scope"], "org");

        let unauthorized = post("/tiles/tile-data").body("{}");
        let (_, body) = call(relay, settings(), unauthorized).await;
        assert_eq!(
            body["errors"][0]["message"],
            "Authorization failed: Authorization header is missing"
        );
    }

    #[tokio::test]
    async fn the_audience_is_the_request_root_unless_configured() {
        let health = || {
            let mut source = MockBreachSource::new();
            source.expect_probe().returning(|_| Ok(()));
            source
        };
        let ok = json!({"data": {"status": "ok"}});
        let request = || {
            post("/health")
                .header("authorization", "Bearer t")
                .header("host", "relay.example:9090")
        };

        let relay = relay_with(health(), decoder_for("http://relay.example:9090"));
        assert_eq!(
            call(relay, HttpSettings::default(), request()).await,
            (200, ok.clone())
        );

        let relay = relay_with(health(), decoder_for("https://relay.example:9090"));
        let forwarded = request().header("x-forwarded-proto", "https");
        assert_eq!(
            call(relay, HttpSettings::default(), forwarded).await,
            (200, ok.clone())
        );

        let relay = relay_with(health(), decoder_for("https://configured"));
        let settings = HttpSettings {
            audience: Some("https://configured".into()),
            ..HttpSettings::default()
        };
        assert_eq!(call(relay, settings, request()).await, (200, ok));

        let relay = relay_with(health(), decoder_for("https://configured"));
        let (_, body) = call(relay, HttpSettings::default(), request()).await;
        assert_eq!(
            body["errors"][0]["message"],
            "Authorization failed: Wrong configuration-token-audience"
        );
    }

    #[tokio::test]
    async fn a_jwks_is_published_only_when_set() {
        let jwks = serde_json::json!({"keys": [{"kid": "k"}]});
        let get = || {
            warp::test::request()
                .method("GET")
                .path("/.well-known/jwks")
        };
        let published = HttpSettings {
            jwks: Some(jwks.clone()),
            ..HttpSettings::default()
        };
        assert_eq!(call(idle_relay(), published, get()).await, (200, jwks));
        let (status, _) = call(idle_relay(), HttpSettings::default(), get()).await;
        assert_eq!(status, 404);
    }
}
