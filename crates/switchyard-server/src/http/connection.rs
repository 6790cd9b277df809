//! Client connections: the accept loop, and the limits that keep slow or idle clients from holding the
//! server.
//!
//! Each connection is in one of three phases, and a watchdog closes it when its phase outlasts its limit:
//! - **idle**: no request on it (just opened, or its last answer sent); closed after
//!   `server.keepalive_timeout_ms`;
//! - **head**: a request's first bytes arrived, its headers are not complete; closed after
//!   `server.header_timeout_ms`;
//! - **busy**: requests in flight. The body's own limit (`server.body_timeout_ms`) is kept per request by
//!   [`timed_body`](crate::http::body::timed_body); an answer may take as long as its upstream is allowed to, but a client that stops reading
//!   it (the connection's writes blocked) is closed after `server.send_timeout_ms`.
//!
//! Every connection starts *unauthenticated*, and stays so until a request on it shows a valid key (or, on a
//! server without keys, until its first request arrives). At most `server.max_unauthenticated_connections`
//! such connections are open: a new one closes the oldest, so clients that never send a key cannot crowd
//! out those that do. Requests themselves are limited per key in [`crate::http`].

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::Service;

use crate::config::server::ClientTimeouts;

/// What a connection is doing, for its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request on it since this instant.
    Idle(Instant),
    /// A request's first bytes arrived at this instant; its headers are not complete.
    Head(Instant),
    /// This many requests are in flight.
    Busy(usize),
}

/// Why the watchdog closed a connection (the `reason` label of `switchyard_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Idle past `server.keepalive_timeout_ms`.
    Idle,
    /// Headers not complete within `server.header_timeout_ms`.
    SlowHeaders,
    /// The oldest unauthenticated connection, closed for a new one.
    Evicted,
    /// The client left an answer unread past `server.send_timeout_ms`.
    SlowReader,
}

impl Closed {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Idle => "keepalive_timeout",
            Self::SlowHeaders => "header_timeout",
            Self::Evicted => "unauthenticated_evicted",
            Self::SlowReader => "send_timeout",
        }
    }
}

/// One client connection's state.
#[derive(Debug)]
pub(crate) struct Connection {
    id: u64,
    phase: Mutex<Phase>,
    authenticated: AtomicBool,
    evicted: tokio::sync::Notify,
    /// Wakes the watchdog when the phase changes.
    changed: tokio::sync::Notify,
    /// Since when the connection's writes have been blocked, if they are.
    blocked: Mutex<Option<Instant>>,
}

impl Connection {
    fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            phase: Mutex::new(Phase::Idle(now)),
            authenticated: AtomicBool::new(false),
            evicted: tokio::sync::Notify::new(),
            changed: tokio::sync::Notify::new(),
            blocked: Mutex::new(None),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = change(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived from the client: an idle connection starts a request's head.
    fn bytes_arrived(&self, now: Instant) {
        self.update(|p| match p {
            Phase::Idle(_) => Phase::Head(now),
            other => other,
        });
    }

    /// A request's headers are complete: it is in flight.
    fn request_started(&self) {
        self.update(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
    }

    /// A request's answer was sent (or abandoned).
    fn request_finished(&self, now: Instant) {
        self.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(now),
        });
    }

    /// A write could not go out (`true`, the client's window is full) or went out (`false`).
    fn write_blocked(&self, blocked: bool, now: Instant) {
        let mut since = self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match (blocked, *since) {
            (true, None) => {
                *since = Some(now);
                self.changed.notify_one();
            }
            (false, Some(_)) => *since = None,
            _ => {}
        }
    }

    /// When the connection's phase runs out, and why; `None` while requests are in flight and their answers
    /// go out.
    fn deadline(&self, limits: &ClientTimeouts) -> Option<(Instant, Closed)> {
        match self.phase() {
            Phase::Idle(since) => Some((since + limits.keepalive, Closed::Idle)),
            Phase::Head(since) => Some((since + limits.header, Closed::SlowHeaders)),
            Phase::Busy(_) => {
                let blocked = *self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                blocked.map(|since| (since + limits.send, Closed::SlowReader))
            }
        }
    }
}

/// The open connections that have not shown a valid key yet, oldest first.
#[derive(Debug)]
pub(crate) struct Registry {
    limits: ClientTimeouts,
    max_unauthenticated: usize,
    next_id: AtomicU64,
    unauthenticated: Mutex<VecDeque<Arc<Connection>>>,
}

impl Registry {
    /// Appends the gauge of open connections that have not shown a valid key.
    pub(crate) fn render(&self, out: &mut String) {
        let help = "Open client connections that have not yet sent a request with a valid key.";
        crate::metrics::scalar(out, "switchyard_unauthenticated_connections", "gauge", help, self.unauthenticated());
    }

    /// A registry for connections held to `limits`, with at most `max_unauthenticated` unauthenticated.
    pub(crate) fn new(limits: ClientTimeouts, max_unauthenticated: usize) -> Arc<Self> {
        Arc::new(Self {
            limits,
            max_unauthenticated: max_unauthenticated.max(1),
            next_id: AtomicU64::new(0),
            unauthenticated: Mutex::new(VecDeque::new()),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Connection>>> {
        self.unauthenticated.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection, unauthenticated; when that makes too many, the oldest is told to close.
    pub(crate) fn open(&self) -> Arc<Connection> {
        let conn = Arc::new(Connection::new(self.next_id.fetch_add(1, Ordering::Relaxed), Instant::now()));
        let mut queue = self.queue();
        while queue.len() >= self.max_unauthenticated {
            if let Some(oldest) = queue.pop_front() {
                oldest.evicted.notify_one();
            }
        }
        queue.push_back(conn.clone());
        conn
    }

    /// A request on `conn` showed a valid key (or needed none): it leaves the unauthenticated pool.
    pub(crate) fn authenticated(&self, conn: &Connection) {
        if !conn.authenticated.swap(true, Ordering::Relaxed) {
            self.queue().retain(|c| c.id != conn.id);
        }
    }

    fn closed(&self, conn: &Connection) {
        if !conn.authenticated.load(Ordering::Relaxed) {
            self.queue().retain(|c| c.id != conn.id);
        }
    }

    /// The limits every connection is held to.
    pub(crate) fn limits(&self) -> ClientTimeouts {
        self.limits
    }

    /// Unauthenticated connections open now.
    pub(crate) fn unauthenticated(&self) -> usize {
        self.queue().len()
    }
}

/// A request extension: the connection it came on, so that authentication can vouch for it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    registry: Arc<Registry>,
    conn: Arc<Connection>,
}

impl ConnectionHandle {
    /// The request showed a valid key (or the server needs none).
    pub(crate) fn authenticated(&self) {
        self.registry.authenticated(&self.conn);
    }
}

/// A client socket that tells its connection when bytes arrive.
struct Watched {
    stream: TcpStream,
    conn: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_arrived(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.conn.write_blocked(polled.is_pending(), Instant::now());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.conn.write_blocked(polled.is_pending(), Instant::now());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves connection `conn` (from [`Registry::open`], called as it is accepted, so that the oldest is the
/// first accepted) with `app` until it ends, its watchdog closes it, or `stopping` turns true (then the
/// request in flight finishes and the connection closes). `closed` counts the watchdog's closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    conn: Arc<Connection>,
    app: axum::Router,
    registry: Arc<Registry>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    closed: impl Fn(Closed),
) {
    let handle = ConnectionHandle { registry: registry.clone(), conn: conn.clone() };
    let io = hyper_util::rt::TokioIo::new(Watched { stream, conn: conn.clone() });
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut app = app.clone();
        let handle = handle.clone();
        async move {
            handle.conn.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(handle.clone());
            let response = app.call(request).await?;
            Ok::<_, std::convert::Infallible>(crate::http::body::holding(response, InFlight(handle.conn)))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None::<Duration>);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        let limits = registry.limits;
        // While requests are in flight there is nothing to time here; look again after the shorter limit.
        let (at, why) =
            conn.deadline(&limits).unwrap_or((Instant::now() + limits.header.min(limits.keepalive), Closed::Idle));
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection {}: {e}", conn.id);
                }
                break;
            }
            () = tokio::time::sleep_until(at) => {
                if conn.deadline(&limits).is_some_and(|(due, _)| due <= Instant::now()) {
                    tracing::debug!("connection {} closed: {}", conn.id, why.label());
                    closed(why);
                    break;
                }
            }
            () = conn.changed.notified() => {}
            () = conn.evicted.notified() => {
                tracing::debug!("connection {} closed: {}", conn.id, Closed::Evicted.label());
                closed(Closed::Evicted);
                break;
            }
            changed = stopping.changed(), if !draining => {
                if changed.is_err() || *stopping.borrow() {
                    draining = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    registry.closed(&conn);
}

/// Held by an answer's body: when it is sent or dropped, the request is no longer in flight.
struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientTimeouts {
        ClientTimeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            keepalive: Duration::from_secs(60),
            send: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_connection_is_timed_by_its_phase() {
        let t = Instant::now();
        let c = Connection::new(0, t);
        assert_eq!(c.deadline(&limits()), Some((t + Duration::from_secs(60), Closed::Idle)));
        let first_byte = t + Duration::from_secs(5);
        c.bytes_arrived(first_byte);
        // More bytes of the same head do not extend its limit.
        c.bytes_arrived(first_byte + Duration::from_secs(3));
        assert_eq!(c.deadline(&limits()), Some((first_byte + Duration::from_secs(10), Closed::SlowHeaders)));
        c.request_started();
        c.bytes_arrived(t + Duration::from_secs(100));
        assert_eq!(c.deadline(&limits()), None, "a request in flight is not timed here");
        // ... unless its answer stops going out.
        let stuck = t + Duration::from_secs(150);
        c.write_blocked(true, stuck);
        c.write_blocked(true, stuck + Duration::from_secs(5));
        assert_eq!(c.deadline(&limits()), Some((stuck + Duration::from_secs(30), Closed::SlowReader)));
        c.write_blocked(false, stuck + Duration::from_secs(6));
        assert_eq!(c.deadline(&limits()), None, "a write that went out clears it");
        let done = t + Duration::from_secs(200);
        c.request_finished(done);
        assert_eq!(c.deadline(&limits()), Some((done + Duration::from_secs(60), Closed::Idle)));
    }

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room() {
        let registry = Registry::new(limits(), 2);
        let a = registry.open();
        let b = registry.open();
        registry.authenticated(&b);
        let c = registry.open();
        assert_eq!(registry.unauthenticated(), 2);
        let d = registry.open();
        assert_eq!(registry.unauthenticated(), 2, "a, the oldest, was closed for d");
        // The eviction is a stored permit: the watchdog sees it even if it was not yet waiting.
        assert!(futures_util::FutureExt::now_or_never(a.evicted.notified()).is_some());
        assert!(futures_util::FutureExt::now_or_never(c.evicted.notified()).is_none());
        registry.closed(&c);
        registry.closed(&d);
        assert_eq!(registry.unauthenticated(), 0);
    }
}
