//! Request bodies: read within the size limit and the body timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use warp::{Filter, Rejection};

use super::HttpSettings;
use super::routes::{Incoming, incoming, with};
use crate::domain::Error;
use crate::relay::Relay;

/// A request body as read: its bytes, or why they cannot be read.
pub(super) type Body = Result<Vec<u8>, Error>;

/// A request with its body read, within the size limit and the body timeout: who sent it,
/// when it began, the body (or why it cannot be read) and the relay.
pub(super) fn with_body(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Incoming, Instant, Body, Arc<Relay>), Error = Rejection> + Clone {
    let limit = settings.body_limit;
    let body_timeout = settings.connections.body_read_timeout;
    incoming(settings)
        .and(warp::body::stream())
        .then(move |incoming: Incoming, body| async move {
            let started = Instant::now();
            let body = read_body(incoming.content_length, body, limit, body_timeout).await;
            (incoming, started, body)
        })
        .untuple_one()
        .and(with(relay))
}
/// The most of a refused body read and thrown away before answering, so that a client that
/// writes its whole body before reading (many HTTP clients do) reads the answer instead of a
/// broken connection: nginx's lingering close. A larger body is answered at once.
const MAX_DISCARDED_BODY: u64 = 4 * 1024 * 1024;

/// Reads at most `limit` bytes of body within `timeout`. A larger body is refused without
/// being kept (the rest of it read and thrown away, up to [`MAX_DISCARDED_BODY`] and the same
/// timeout); a body that does not arrive in time is refused, and its connection then closes.
pub(super) async fn read_body<S, B>(
    declared: Option<u64>,
    body: S,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Error>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let too_large =
        || Error::invalid_payload(format!("The request body is larger than {limit} bytes."));
    let unreadable = || Error::invalid_payload("The request body could not be read.");
    futures::pin_mut!(body);
    if declared.is_some_and(|n| n > limit as u64) {
        discard_rest(body, 0, declared, deadline).await;
        return Err(too_large());
    }
    let mut buffer = BytesMut::new();
    loop {
        let mut chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) => return Err(unreadable()),
            Err(_) => {
                return Err(Error::invalid_payload(format!(
                    "The request body did not arrive within {} s.",
                    timeout.as_secs_f64()
                )));
            }
        };
        if buffer.len() + chunk.remaining() > limit {
            let read = (buffer.len() + chunk.remaining()) as u64;
            drop(buffer);
            discard_rest(body, read, declared, deadline).await;
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buffer.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buffer.to_vec())
}

/// Reads what is left of a refused body, `read` bytes of it in already, and throws it away:
/// unless it is announced or turns out larger than [`MAX_DISCARDED_BODY`], or `deadline`
/// passes first.
async fn discard_rest<S, B>(
    mut body: std::pin::Pin<&mut S>,
    mut read: u64,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|n| n > MAX_DISCARDED_BODY) {
        return;
    }
    while read <= MAX_DISCARDED_BODY {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.remaining() as u64,
            _ => return,
        }
    }
}
