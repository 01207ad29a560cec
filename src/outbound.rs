//! Every HTTP request the bridge itself sends (the gateway conversation in `gateway::client`, the
//! OAuth client metadata fetch in `auth::clients`) goes through the [`HttpClient`] built here:
//! hyper's HTTP/1.1 client (`hyper-util`'s pooled client) over rustls with the ring provider and
//! the webpki roots, host names resolved by the system (`getaddrinfo`) or, with the `static`
//! feature, by hickory (`/etc/resolv.conf`, `/etc/hosts`).
//!
//! hyper reads every response framing HTTP/1.1 allows: `Content-Length`, chunked, and a body
//! that ends when the server closes the connection (RFC 9112 §6.3 rule 8, HTTP/1.0 servers and
//! some proxies); interim `1xx` answers (`100 Continue`, `103 Early Hints`) are skipped, never
//! taken as the answer. Redirects are never followed: hyper has no such machinery, so a bearer
//! token never travels to another host. Dropping a request's future, or the [`Response`] while
//! its body is read, closes the connection, which is how a cancelled chat aborts the gateway's
//! run. Deadlines are the callers' (`tokio::time::timeout` around each step); this module bounds
//! only the connect (TCP and TLS handshake together) and the number of connections one client
//! holds.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, body::Incoming, header::HeaderMap, http::Uri};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Errors of the connect step and of the resolver, as the connector stack passes them on.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver of host names: the system's, or hickory with the `static` feature.
#[cfg(not(feature = "static"))]
type Resolver = hyper_util::client::legacy::connect::dns::GaiResolver;
#[cfg(feature = "static")]
type Resolver = hickory::HickoryResolver;

/// The connector stack: TCP (with the resolver), TLS for `https`, and a deadline over both.
type Connector = TimedConnect<hyper_rustls::HttpsConnector<HttpConnector<Resolver>>>;

/// How one [`HttpClient`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Deadline of one connect: TCP connect and TLS handshake together.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept; zero keeps none (one connection a request).
    pub idle_timeout: Duration,
    /// Most requests in flight at once through this client (each holds at most one connection);
    /// more wait for a free slot, within their caller's deadline.
    pub max_connections: usize,
}

/// What went wrong with one request, in words fit for a user (never a header or a body).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    /// The URL cannot be requested (it does not parse as an HTTP URI).
    #[error("invalid URL: {0}")]
    Url(String),
    /// The request cannot be sent as it is (a header value that no header may carry).
    #[error("invalid request: {0}")]
    Request(String),
    /// No connection could be made (name resolution, TCP, TLS).
    #[error("{0}")]
    Connect(String),
    /// The connection broke, before the response head or while its body came.
    #[error("{0}")]
    Broken(String),
    /// What came back is not an HTTP/1.x response.
    #[error("not an HTTP response ({0})")]
    Malformed(String),
    /// The body is larger than the caller's cap.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}

/// A cloneable, pooled HTTP/1.1 client (clones share the pool and the connection slots).
#[derive(Clone)]
pub struct HttpClient {
    /// hyper's pooled client.
    inner: Client<Connector, Full<Bytes>>,
    /// One permit per request in flight (see [`Options::max_connections`]).
    slots: Arc<Semaphore>,
}

/// The answer to one request: status and headers at once, the body read on demand.
///
/// Dropping it before the body has been read to its end closes the connection.
pub struct Response {
    /// Status code of the final (non-`1xx`) answer.
    status: StatusCode,
    /// Its headers.
    headers: HeaderMap,
    /// Its body as it arrives.
    body: Incoming,
    /// The connection slot, held until the body is done with.
    _slot: OwnedSemaphorePermit,
}

impl HttpClient {
    /// A client with `options`. Cheap enough to build per actor (re)start; the TLS configuration
    /// is built once per process and shared.
    pub fn new(options: Options) -> HttpClient {
        #[cfg(not(feature = "static"))]
        let resolver = Resolver::new();
        #[cfg(feature = "static")]
        let resolver = Resolver::default();
        let mut http = HttpConnector::new_with_resolver(resolver);
        // `https` URLs are handed to the TLS layer above, which needs them let through.
        http.enforce_http(false);
        http.set_nodelay(true);
        // `http` and `https` URLs alike; the configuration is shared, not copied.
        let https = hyper_rustls::HttpsConnector::from((http, tls_config()));
        let connector = TimedConnect {
            inner: https,
            timeout: options.connect_timeout,
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            // A request that hyper could not start on a pooled connection the server had just
            // closed is sent again on a fresh one (never one that went out).
            .retry_canceled_requests(true);
        if options.idle_timeout.is_zero() {
            builder.pool_max_idle_per_host(0);
        } else {
            builder.pool_idle_timeout(options.idle_timeout);
        }
        HttpClient {
            inner: builder.build(connector),
            slots: Arc::new(Semaphore::new(options.max_connections.max(1))),
        }
    }

    /// Sends `request` and waits for the final answer's head.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response, OutboundError> {
        // The semaphore is never closed, so `acquire_owned` cannot fail; answered all the same.
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            Err(_) => return Err(OutboundError::Connect("the client is closed".to_string())),
        };
        let response = self.inner.request(request).await.map_err(send_error)?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            _slot: slot,
        })
    }
}

/// A request for `url` with `method`, `headers` and `body`; the URL's own errors as
/// [`OutboundError::Url`].
pub fn request(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, OutboundError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| OutboundError::Url(e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(OutboundError::Url(
            "not an http:// or https:// URL".to_string(),
        ));
    }
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| OutboundError::Request(e.to_string()))
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body; `None` at its end (for a body framed by the connection's
    /// close, the close).
    pub async fn chunk(&mut self) -> Option<Result<Bytes, OutboundError>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    // Trailers carry nothing the bridge reads.
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(body_error(&e))),
            }
        }
    }

    /// The whole body, refused once it passes `limit` bytes (at once when `Content-Length`
    /// says it will).
    pub async fn bytes(mut self, limit: usize) -> Result<Bytes, OutboundError> {
        let declared = self
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(OutboundError::TooLarge(limit));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > limit {
                return Err(OutboundError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// The process-wide TLS configuration: rustls with the ring provider (whatever provider is
/// installed as the default), TLS 1.2 and 1.3, the webpki (Mozilla) roots, and ALPN offering
/// `http/1.1` alone (the only protocol this client speaks; hyper-rustls's builder would leave
/// ALPN empty for an HTTP/1-only connector).
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // unwrap: ring's default provider supports the safe default protocol versions.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    config.clone()
}

/// Opens a TCP connection to `host:port` (no TLS) within `timeout`, resolving the name as the
/// HTTP client does (the system's resolver, or hickory in the static build): the WebSocket
/// backend's transport.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, OutboundError> {
    #[cfg(not(feature = "static"))]
    let resolver = Resolver::new();
    #[cfg(feature = "static")]
    let resolver = Resolver::default();
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.set_nodelay(true);
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let uri: Uri = format!("http://{authority}/")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| OutboundError::Url(e.to_string()))?;
    let connect = tower_service::Service::call(&mut http, uri);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(OutboundError::Connect(format!(
            "connect timed out after {} ms",
            timeout.as_millis()
        ))),
        Ok(Err(e)) => Err(OutboundError::Connect(chain(&e))),
        Ok(Ok(io)) => Ok(io.into_inner()),
    }
}

/// The first error of `kind` in `err`'s chain of sources.
fn find<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The most specific words for an I/O failure.
fn io_words(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        ErrorKind::UnexpectedEof => "connection closed".to_string(),
        ErrorKind::TimedOut => "connection timed out".to_string(),
        _ => io.to_string(),
    }
}

/// Whether `io` is one of the failures [`io_words`] names.
fn known_kind(io: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        io.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
            | ErrorKind::TimedOut
    )
}

/// The messages of the causes of a client error (its own `client error (Connect)` left out).
fn sources(err: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(err) {
        Some(source) => chain(source),
        None => err.to_string(),
    }
}

/// The chain of messages of `err`, innermost last, without repeats (`tcp connect error:
/// Connection refused (os error 111)`).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !words.iter().any(|w| w.contains(&text)) {
            words.push(text);
        }
        current = e.source();
    }
    words.join(": ")
}

/// Maps a failed request (no final response head) to an [`OutboundError`].
fn send_error(err: hyper_util::client::legacy::Error) -> OutboundError {
    if err.is_connect() {
        if find::<ConnectTimedOut>(&err).is_some() {
            return OutboundError::Connect("connection timed out".to_string());
        }
        // The connector wraps the I/O error in its own (`tcp connect error`); name resolution and
        // TLS failures say more in their own words than in an I/O kind.
        return OutboundError::Connect(match find::<std::io::Error>(&err) {
            Some(io) if known_kind(io) => io_words(io),
            _ => sources(&err),
        });
    }
    match find::<hyper::Error>(&err) {
        Some(h) if h.is_parse() || h.is_parse_status() => OutboundError::Malformed(h.to_string()),
        Some(h) if h.is_incomplete_message() => {
            OutboundError::Broken("connection closed".to_string())
        }
        _ => OutboundError::Broken(match find::<std::io::Error>(&err) {
            Some(io) => io_words(io),
            None => sources(&err),
        }),
    }
}

/// Maps an error while the body came to an [`OutboundError`].
fn body_error(err: &hyper::Error) -> OutboundError {
    match find::<std::io::Error>(err) {
        Some(io) => OutboundError::Broken(io_words(io)),
        None if err.is_incomplete_message() => {
            OutboundError::Broken("connection closed".to_string())
        }
        None => OutboundError::Broken(chain(err)),
    }
}

/// The connect step took longer than [`Options::connect_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("connection timed out")]
struct ConnectTimedOut;

/// A connector with a deadline over the whole connect (TCP and TLS handshake).
#[derive(Clone)]
pub struct TimedConnect<C> {
    /// The connector it bounds.
    inner: C,
    /// The deadline.
    timeout: Duration,
}

impl<C> tower_service::Service<Uri> for TimedConnect<C>
where
    C: tower_service::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

/// Host names resolved by hickory, for the statically linked binary (feature `static`): a static
/// glibc cannot use `getaddrinfo` without the NSS libraries a distroless image lacks.
#[cfg(feature = "static")]
mod hickory {
    use std::net::SocketAddr;

    use super::*;
    use hickory_resolver::{
        TokioResolver, config::ResolverConfig, net::runtime::TokioRuntimeProvider,
    };
    use hyper_util::client::legacy::connect::dns::Name;

    /// A resolver built on first use (inside the runtime that will drive its lookups) from
    /// `/etc/resolv.conf`, hosts from `/etc/hosts`; shared by the clones of one client.
    #[derive(Clone, Default)]
    pub struct HickoryResolver {
        /// The resolver, once built.
        state: Arc<OnceLock<TokioResolver>>,
    }

    fn build() -> Result<TokioResolver, BoxError> {
        let builder = TokioResolver::builder_tokio().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the system's DNS configuration; only /etc/hosts resolves host names");
            TokioResolver::builder_with_config(
                ResolverConfig::default(),
                TokioRuntimeProvider::default(),
            )
        });
        Ok(builder.build()?)
    }

    impl tower_service::Service<Name> for HickoryResolver {
        type Response = std::vec::IntoIter<SocketAddr>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, name: Name) -> Self::Future {
            let state = self.state.clone();
            Box::pin(async move {
                let resolver = match state.get() {
                    Some(resolver) => resolver.clone(),
                    None => {
                        let built = build()?;
                        state.get_or_init(|| built).clone()
                    }
                };
                let found = resolver.lookup_ip(name.as_str()).await?;
                // The port is the connector's to set.
                Ok(found
                    .iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_make_requests() {
        assert!(
            request(
                hyper::Method::GET,
                "http://127.0.0.1:1/x",
                &[],
                Bytes::new()
            )
            .is_ok()
        );
        assert!(
            request(
                hyper::Method::GET,
                "https://gw.example/x",
                &[],
                Bytes::new()
            )
            .is_ok()
        );
        for bad in ["ftp://gw/x", "/relative", "http://", "not a url"] {
            assert!(
                matches!(
                    request(hyper::Method::GET, bad, &[], Bytes::new()),
                    Err(OutboundError::Url(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_header_no_header_may_carry_is_refused_before_anything_is_sent() {
        let bad = request(
            hyper::Method::GET,
            "http://127.0.0.1:1/x",
            &[("x-openclaw-session-key", "a\r\nInjected: yes")],
            Bytes::new(),
        );
        assert!(matches!(bad, Err(OutboundError::Request(_))));
    }

    #[test]
    fn the_tls_configuration_offers_tls_1_2_and_1_3() {
        let config = tls_config();
        let suites = &config.crypto_provider().cipher_suites;
        assert!(
            suites
                .iter()
                .any(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
        );
        assert!(
            suites
                .iter()
                .any(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)))
        );
    }
}
