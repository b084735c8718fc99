//! One call to SpyCloud: waiting for the rate limiter, one HTTP attempt with its body read up
//! to a cap, retrying what is worth retrying, the causes SpyCloud names in headers, and every
//! HTTP status and transport failure as one [`SourceError`].

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::{MAX_ERROR_BODY_BYTES, MAX_ERROR_CHARS, SpyCloudClient};
use crate::domain::email::truncate;
use crate::domain::{ApiKey, SourceError};
use crate::telemetry::{self, CATALOG};

impl SpyCloudClient {
    /// One GET with rate limiting and retries, a success's body read up to `max_bytes`; the
    /// final answer whatever its status. `endpoint` names the call in logs and metrics
    /// (`emails`, `catalog`, `watchlist`, ...).
    pub(super) async fn get(
        &self,
        key: &ApiKey,
        endpoint: &'static str,
        url: &str,
        max_bytes: usize,
    ) -> Result<Answer, SourceError> {
        let fingerprint = key.fingerprint();
        let mut attempt = 0;
        loop {
            self.limiter.until_ready(&fingerprint).await;
            let outcome = self.attempt(key, endpoint, url, max_bytes).await;
            match self.wait_before_retry(&outcome, attempt) {
                Some(wait) if attempt < self.retry.max_retries => {
                    let status = match &outcome {
                        Ok(answer) => answer.status.as_str().to_owned(),
                        Err(_) => "error".to_owned(),
                    };
                    tracing::info!(
                        endpoint,
                        status,
                        retry = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying a SpyCloud call"
                    );
                    telemetry::upstream_retry(endpoint);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// How long to wait before trying again after attempt number `attempt` gave `outcome`;
    /// `None` when it is not worth retrying. A 429 is retried after its `Retry-After` (capped)
    /// unless SpyCloud named a cause (a used-up quota does not come back); 502/503/504 and
    /// connection failures after a backoff; everything else is final.
    fn wait_before_retry(
        &self,
        outcome: &Result<Answer, SourceError>,
        attempt: u32,
    ) -> Option<Duration> {
        match outcome {
            Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                if answer.signal.is_some() {
                    None
                } else {
                    Some(
                        answer
                            .retry_after
                            .map(|wait| wait.min(self.retry.max_retry_after))
                            .unwrap_or_else(|| self.retry.backoff(attempt)),
                    )
                }
            }
            Ok(answer)
                if matches!(
                    answer.status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                ) =>
            {
                Some(self.retry.backoff(attempt))
            }
            Err(SourceError::Connection(_)) => Some(self.retry.backoff(attempt)),
            _ => None,
        }
    }

    /// One HTTP attempt (a success's body read up to `max_bytes`); transport failures are
    /// already mapped.
    async fn attempt(
        &self,
        key: &ApiKey,
        endpoint: &'static str,
        url: &str,
        max_bytes: usize,
    ) -> Result<Answer, SourceError> {
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| SourceError::Unauthorized("Unauthorized".to_owned()))?;
        key_header.set_sensitive(true);
        let started = std::time::Instant::now();
        let response = self
            .http
            .get(url)
            .header("X-API-Key", key_header)
            .send()
            .await
            .map_err(|error| {
                telemetry::upstream_call(endpoint, "error", None, started.elapsed());
                transport_error(&error, self.timeout)
            })?;
        let status = response.status();
        let headers = response.headers();
        let signal = Signal::of(status, headers);
        telemetry::upstream_call(
            endpoint,
            status.as_str(),
            signal.map(Signal::name),
            started.elapsed(),
        );
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = self.read_body(response, endpoint, max_bytes).await?;
        Ok(Answer {
            status,
            retry_after,
            signal,
            body,
        })
    }

    /// The body of `response`: a success's whole, or refused past `max_bytes` (as announced or
    /// as read); of an error answer, only its first [`MAX_ERROR_BODY_BYTES`].
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        endpoint: &'static str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        let success = response.status().is_success();
        let limit = if success {
            max_bytes
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let announced = response.content_length().unwrap_or(0);
        if success && announced > limit as u64 {
            return Err(too_big(endpoint, limit));
        }
        // Sized once from the announced length (already checked against the cap).
        let mut body = Vec::with_capacity(announced.min(limit as u64) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| transport_error(&error, self.timeout))?
        {
            let room = limit - body.len();
            if chunk.len() > room {
                if success {
                    return Err(too_big(endpoint, limit));
                }
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// What one HTTP attempt brought back.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    retry_after: Option<Duration>,
    /// What SpyCloud's headers said beside a 429 or 403, if they named a cause.
    signal: Option<Signal>,
    body: Vec<u8>,
}

/// The causes SpyCloud names in headers beside its status (other integrations read them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// 429 with `x-amzn-ErrorType: LimitExceededException`: the key's monthly quota is used
    /// up; waiting won't help, so it is not retried.
    QuotaUsedUp,
    /// 403 with `SpyCloud-Error: Invalid IP`.
    InvalidIp,
    /// 403 with `SpyCloud-Error: Invalid API key`.
    InvalidKey,
}

impl Signal {
    /// The signal of an answer's status and headers, if it carries one.
    fn of(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        match status {
            StatusCode::TOO_MANY_REQUESTS => header("x-amzn-ErrorType")
                .is_some_and(|kind| kind.trim().starts_with("LimitExceededException"))
                .then_some(Self::QuotaUsedUp),
            StatusCode::FORBIDDEN => match header("SpyCloud-Error").map(str::trim) {
                Some(reason) if reason.eq_ignore_ascii_case("Invalid IP") => Some(Self::InvalidIp),
                Some(reason) if reason.eq_ignore_ascii_case("Invalid API key") => {
                    Some(Self::InvalidKey)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// How the request's log line names it.
    fn name(self) -> &'static str {
        match self {
            Self::QuotaUsedUp => "LimitExceededException",
            Self::InvalidIp => "Invalid IP",
            Self::InvalidKey => "Invalid API key",
        }
    }

    fn error(self) -> SourceError {
        match self {
            Self::QuotaUsedUp => SourceError::QuotaUsedUp,
            Self::InvalidIp => SourceError::IpNotAllowed,
            Self::InvalidKey => SourceError::InvalidApiKey,
        }
    }
}

/// The body of a 2xx answer, or the error its status stands for.
pub(super) fn success_body(answer: Answer) -> Result<Vec<u8>, SourceError> {
    if let Some(signal) = answer.signal {
        return Err(signal.error());
    }
    match status_error(answer.status, &answer.body) {
        None => Ok(answer.body),
        Some(error) => Err(error),
    }
}

/// The contract's status table: `None` for success, else the error the status stands for.
fn status_error(status: StatusCode, body: &[u8]) -> Option<SourceError> {
    if status.is_success() {
        return None;
    }
    let message = |fallback: &str| upstream_message(body).unwrap_or_else(|| fallback.to_owned());
    Some(match status {
        StatusCode::UNAUTHORIZED => SourceError::Unauthorized(message("Unauthorized")),
        StatusCode::FORBIDDEN => SourceError::Forbidden(message("Forbidden")),
        StatusCode::NOT_FOUND => SourceError::NotFound,
        StatusCode::INTERNAL_SERVER_ERROR => SourceError::Internal,
        StatusCode::TOO_MANY_REQUESTS => SourceError::RateLimited,
        _ => SourceError::Unexpected(
            truncate(&String::from_utf8_lossy(body), MAX_ERROR_CHARS).to_owned(),
        ),
    })
}

/// The `"message"` string of a JSON error body.
fn upstream_message(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()?.get("message")? {
        Value::String(message) => Some(message.clone()),
        _ => None,
    }
}

/// A success of a call to `endpoint` over `limit` bytes (a whole number of MiB).
fn too_big(endpoint: &str, limit: usize) -> SourceError {
    let answer = if endpoint == CATALOG {
        "catalog answer"
    } else {
        "answer"
    };
    SourceError::InvalidResponse(format!(
        "SpyCloud's {answer} is larger than {} MiB",
        limit / (1024 * 1024)
    ))
}

/// A reqwest failure as the contract's error. Messages name the cause, never the key (reqwest
/// errors do not carry headers) nor the URL (it holds the email).
fn transport_error(error: &reqwest::Error, timeout: Duration) -> SourceError {
    if error.is_timeout() {
        return SourceError::Timeout(format!(
            "SpyCloud did not answer within {} s",
            timeout.as_secs_f64()
        ));
    }
    if let Some(reason) = tls_failure(error) {
        return SourceError::Tls(reason);
    }
    let reason = root_cause(error);
    if error.is_connect() {
        SourceError::Connection(format!("could not connect to SpyCloud: {reason}"))
    } else {
        SourceError::Connection(format!("the connection to SpyCloud failed: {reason}"))
    }
}

/// The reason of a TLS failure anywhere in the error's source chain, if it is one.
///
/// rustls is not a direct dependency, so its errors are recognised by what they say (and by
/// the `InvalidData` I/O error hyper-rustls wraps them in).
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    const TLS_WORDS: [&str; 5] = ["certificate", "tls", "ssl", "handshake", "corrupt message"];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        let lower = text.to_ascii_lowercase();
        let invalid_data = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if invalid_data || TLS_WORDS.iter().any(|word| lower.contains(word)) {
            return Some(root_cause(error));
        }
        source = cause.source();
    }
    None
}

/// The innermost message of the chain: the one that says what actually happened.
fn root_cause(error: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RULES R13
    #[test]
    fn status_table() {
        let unauthorized = status_error(StatusCode::UNAUTHORIZED, br#"{"message":"bad key"}"#);
        assert_eq!(
            unauthorized,
            Some(SourceError::Unauthorized("bad key".into()))
        );
        assert_eq!(
            status_error(StatusCode::FORBIDDEN, br#"{"message":7}"#),
            Some(SourceError::Forbidden("Forbidden".into()))
        );
        assert_eq!(status_error(StatusCode::OK, b""), None);
        let long = "x".repeat(5000);
        assert_eq!(
            status_error(StatusCode::IM_A_TEAPOT, long.as_bytes()),
            Some(SourceError::Unexpected("x".repeat(MAX_ERROR_CHARS)))
        );
    }
}
