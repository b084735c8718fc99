//! The SecureX reply envelope: every answer as JSON, recorded in the request metrics.

use std::time::Instant;

use serde_json::json;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::{Bundle, Error, ErrorDoc};
use crate::telemetry;

/// The Flask-style JSON body of a 404 or 405.
pub(super) fn status_reply(status: StatusCode) -> Response {
    let reason = match status {
        StatusCode::METHOD_NOT_ALLOWED => "The method is not allowed for the requested URL.",
        _ => {
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
        }
    };
    let body = json!({
        "code": status.as_u16(),
        "message": status.canonical_reason().unwrap_or_default(),
        "reason": reason,
    });
    json_reply(&body, status)
}

/// An answer that stands, warnings and all: its outcome is its fatal error's, if it has one
/// (warnings do not change the outcome).
pub(super) fn answer_with_errors(
    route: &'static str,
    started: Instant,
    upstream: &telemetry::UpstreamSummary,
    fatal: Option<&ErrorDoc>,
    body: &impl serde::Serialize,
) -> Response {
    let outcome = match fatal {
        Some(error) => (error.code.as_str(), Some(error.message.as_str())),
        None => ("ok", None),
    };
    answer(route, started, Some(upstream), outcome, body)
}

/// `{"data": ...}` on success, else the fatal error in the envelope.
pub(super) fn data_or_fatal(
    route: &'static str,
    started: Instant,
    upstream: &telemetry::UpstreamSummary,
    outcome: Result<impl serde::Serialize, Error>,
) -> Response {
    /// The success envelope of the routes that answer one document.
    #[derive(serde::Serialize)]
    struct Data<T> {
        data: T,
    }
    match outcome {
        Ok(data) => answer(route, started, Some(upstream), ("ok", None), &Data { data }),
        Err(error) => fatal(route, started, Some(upstream), &error),
    }
}

/// Answers 200 with `error` alone in the SecureX envelope.
pub(super) fn fatal(
    route: &'static str,
    started: Instant,
    upstream: Option<&telemetry::UpstreamSummary>,
    error: &Error,
) -> Response {
    let doc = error.to_doc();
    let body = Bundle::with_error(doc.clone());
    answer(
        route,
        started,
        upstream,
        (error.code(), Some(&doc.message)),
        &body,
    )
}

/// Answers 200 with `body`, after recording the request (never its headers or body) and its
/// outcome: `ok`, or the fatal error's code and message.
pub(super) fn answer(
    route: &'static str,
    started: Instant,
    upstream: Option<&telemetry::UpstreamSummary>,
    (outcome, reason): (&str, Option<&str>),
    body: &impl serde::Serialize,
) -> Response {
    telemetry::request_done(&telemetry::Done {
        route,
        status: 200,
        outcome,
        reason,
        duration: started.elapsed(),
        upstream,
    });
    json_reply(body, StatusCode::OK)
}

/// `body` as a JSON response, written into one buffer sized for a typical observe answer
/// (warp's `reply::json` grows its buffer from empty, copying a large answer many times).
pub(super) fn json_reply(body: &impl serde::Serialize, status: StatusCode) -> Response {
    let mut bytes = Vec::with_capacity(32 * 1024);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => {
            let mut response = Response::new(bytes.into());
            *response.status_mut() = status;
            response.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        // Only a type that cannot be JSON fails here, and the relay's types all can; even then
        // the caller gets the envelope, not a 500.
        Err(_) => {
            let error = json!({"errors": [{"type": "fatal", "code": "unknown",
                                           "message": "The relay could not write its answer."}]});
            warp::reply::json(&error).into_response()
        }
    }
}
