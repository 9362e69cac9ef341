//! Request bodies: a deadline for receiving them, and the rest of a body that a handler
//! left unread drained before its answer goes out.
//!
//! A client that writes its whole body before reading (Python's urllib, most scripts)
//! and is answered early, say 413 after the first 16 KiB, would otherwise see "connection
//! reset" instead of the answer: actix-web closes a connection whose body is unread, and
//! closing a socket with unread data in it makes the kernel send RST, which throws the
//! answer away on the client's side. So the rest is read and discarded, up to
//! [`DRAIN_LIMIT`] and within the body's deadline, and the answer closes the connection.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::config::HttpSettings;
use crate::web::AppState;
use crate::web::responses::{self, Format};

/// Most bytes of an unread body read and discarded so that the client sees the answer.
/// A larger rest is not read (its client may then see a reset): refusing a huge upload
/// must cost little.
pub const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

/// When one body must have arrived: `timeout` after its head, plus one second for every
/// `min_rate` bytes received.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    start: Instant,
    timeout: Duration,
    min_rate: u64,
}

impl Deadline {
    fn new(settings: &HttpSettings) -> Self {
        Self {
            start: Instant::now(),
            timeout: settings.body_timeout,
            min_rate: settings.body_min_rate,
        }
    }

    fn after(&self, received: u64) -> Instant {
        let earned = received.checked_div(self.min_rate).unwrap_or(0);
        self.start + self.timeout + Duration::from_secs(earned)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Finished,
    Failed,
    TimedOut,
}

/// The real payload, shared by the handler's view of it and the drain that follows.
struct Body {
    inner: Payload,
    deadline: Deadline,
    received: u64,
    state: State,
}

/// The payload as a handler sees it: the real one, cut off at the deadline.
struct Guarded {
    body: Rc<RefCell<Body>>,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(body: Rc<RefCell<Body>>) -> Self {
        let due = {
            let body = body.borrow();
            body.deadline.after(body.received)
        };
        Self {
            body,
            timer: Box::pin(tokio::time::sleep_until(due)),
        }
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut body = this.body.borrow_mut();
        if body.state != State::Reading {
            return Poll::Ready(None);
        }
        match Pin::new(&mut body.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                body.received += chunk.len() as u64;
                let due = body.deadline.after(body.received);
                if due != this.timer.deadline() {
                    this.timer.as_mut().reset(due);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                body.state = State::Failed;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                body.state = State::Finished;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    body.state = State::TimedOut;
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// How draining the unread rest of a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Read to its end: the client will read the answer.
    Whole,
    /// Longer than [`DRAIN_LIMIT`]: left unread.
    TooLong,
    /// The deadline passed first.
    TimedOut,
    /// The client broke it off or sent a malformed body.
    Broken,
}

async fn drain(body: &Rc<RefCell<Body>>, declared: Option<u64>) -> Drained {
    let received = body.borrow().received;
    if declared.is_some_and(|length| length.saturating_sub(received) > DRAIN_LIMIT) {
        return Drained::TooLong;
    }
    let mut rest = Guarded::new(Rc::clone(body));
    let mut discarded = 0u64;
    while let Some(chunk) = rest.next().await {
        match chunk {
            Ok(chunk) => {
                discarded += chunk.len() as u64;
                if discarded > DRAIN_LIMIT {
                    return Drained::TooLong;
                }
            }
            Err(_) if body.borrow().state == State::TimedOut => return Drained::TimedOut,
            Err(_) => return Drained::Broken,
        }
    }
    Drained::Whole
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Puts every request body under its deadline (408 when it is missed) and drains what a
/// handler left unread before its answer is sent, which then closes the connection.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let settings = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.server.http);
    let Some(settings) = settings else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        // No body (a GET, or a POST without one): nothing to wait for or drain.
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let declared = declared_length(req.headers());
    // Decided now: cloning the request before routing would keep the router from it.
    let format = Format::of(req.request());
    let body = Rc::new(RefCell::new(Body {
        inner: payload,
        deadline: Deadline::new(&settings),
        received: 0,
        state: State::Reading,
    }));
    req.set_payload(Payload::Stream {
        payload: Box::pin(Guarded::new(Rc::clone(&body))),
    });
    let answered = next.call(req).await;
    let (state, received) = {
        let body = body.borrow();
        (body.state, body.received)
    };
    if state == State::Reading {
        let drained = drain(&body, declared).await;
        tracing::debug!(
            received,
            declared,
            ?drained,
            "request body left unread by its handler; drained"
        );
    }
    let mut response = answered?.map_into_boxed_body();
    match state {
        State::Finished => return Ok(response),
        State::TimedOut => {
            tracing::info!(
                received,
                declared,
                "request body too slow; cut off at its deadline"
            );
            let answer = responses::error(
                format,
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Too slow",
                "The request took too long to arrive, so it was not used. Please try again.",
            );
            response = response.into_response(answer);
        }
        State::Reading | State::Failed => {}
    }
    // The connection cannot carry another request after a body that was not used.
    response
        .response_mut()
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_by_a_second_per_min_rate_bytes_and_not_without_a_rate() {
        let start = Instant::now();
        let deadline = Deadline {
            start,
            timeout: Duration::from_secs(10),
            min_rate: 1000,
        };
        assert_eq!(deadline.after(0), start + Duration::from_secs(10));
        assert_eq!(deadline.after(999), start + Duration::from_secs(10));
        assert_eq!(deadline.after(5_500), start + Duration::from_secs(15));
        let flat = Deadline {
            min_rate: 0,
            ..deadline
        };
        assert_eq!(flat.after(1 << 30), start + Duration::from_secs(10));
    }

    #[test]
    fn content_length_is_read_leniently_and_garbage_ignored() {
        let mut headers = HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, "42".parse().unwrap());
        assert_eq!(declared_length(&headers), Some(42));
        headers.insert(header::CONTENT_LENGTH, "lots".parse().unwrap());
        assert_eq!(declared_length(&headers), None);
    }
}
