//! Request ids: the client's own when it is short and printable, else a new one.

use warp::http::{HeaderMap, HeaderValue};

/// The longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID: usize = 100;

/// The client's `X-Request-Id` when it is 1 to 100 printable ASCII characters, else a new UUID.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .map(HeaderValue::as_bytes)
        .filter(|id| {
            (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
        })
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_printable_request_id_is_kept_and_anything_else_replaced() {
        let id = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(id("abc-123"), "abc-123");
        for replaced in ["", "a b", &"x".repeat(101)] {
            let new = id(replaced);
            assert!(uuid::Uuid::parse_str(&new).is_ok(), "{replaced:?} -> {new}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }
}
