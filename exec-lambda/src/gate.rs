//! Who may call the exec API, and who the client behind a call is.
//!
//! The API serves only the edge. The edge proves itself with a shared secret
//! ([`EDGE_SECRET_HEADER`], compared in constant time), which production always configures: a
//! request without it is refused (401) before any route runs. Locally, with no secret set, the
//! edge (`wrangler dev`) and the local tools call from the same machine, so loopback callers
//! are served and every other caller is refused.
//!
//! Every admitted request therefore comes from the edge, and its forwarded headers are the
//! edge's word: the first `X-Forwarded-For` hop is the client (the edge writes its client's
//! address there; API Gateway appends the edge's own address after it), and `x-codebox-room`
//! names the room a run was started from. A direct caller's own `X-Forwarded-For` never gets
//! this far. The client's key is an IPv4 address or an IPv6 /64
//! ([`codebox_access::client_key`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use codebox_access::client::UNKNOWN_CLIENT;

use crate::error::ApiError;

use codebox_access::headers::{EDGE_SECRET_HEADER, MIN_EDGE_SECRET_BYTES};

/// Who may call the API.
#[derive(Clone, Debug)]
pub enum Gate {
    /// Callers that send the edge's secret.
    EdgeSecret(EdgeSecret),
    /// Callers on the loopback interface (the local stack, with no secret set).
    Loopback,
}

/// The edge's shared secret: at least [`MIN_EDGE_SECRET_BYTES`] of visible ASCII, the
/// characters a header carries as they are.
#[derive(Clone)]
pub struct EdgeSecret(Arc<str>);

/// Why a secret cannot be the edge's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakEdgeSecret {
    /// Shorter than [`MIN_EDGE_SECRET_BYTES`].
    #[error("it has {0} bytes; it needs at least {MIN_EDGE_SECRET_BYTES}")]
    TooShort(usize),
    /// Holds a space, a control character or non-ASCII.
    #[error("it may hold only visible ASCII characters")]
    NotVisibleAscii,
}

impl EdgeSecret {
    /// Checks `secret`.
    pub fn new(secret: &str) -> Result<Self, WeakEdgeSecret> {
        if secret.len() < MIN_EDGE_SECRET_BYTES {
            return Err(WeakEdgeSecret::TooShort(secret.len()));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakEdgeSecret::NotVisibleAscii);
        }
        Ok(EdgeSecret(Arc::from(secret)))
    }

    /// Whether `sent` is the secret, compared without an early exit, so the time taken says
    /// nothing about how much of a guess was right.
    fn matches(&self, sent: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        sent.len() == secret.len()
            && sent
                .iter()
                .zip(secret)
                .fold(0u8, |diff, (x, y)| diff | (x ^ y))
                == 0
    }
}

impl fmt::Debug for EdgeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EdgeSecret(<redacted>)")
    }
}

/// A request the gate admitted, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Admitted {
    /// The client's rate-limit key.
    pub client: String,
}

impl Gate {
    /// Refuses a request the gate does not let in; `peer` is the caller's address when the
    /// server knows it (the local server does, Lambda does not).
    fn check(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), ApiError> {
        match self {
            Gate::EdgeSecret(secret) => match headers.get(EDGE_SECRET_HEADER) {
                Some(sent) if secret.matches(sent.as_bytes()) => Ok(()),
                Some(_) => Err(ApiError::Unauthorized("the edge secret is wrong")),
                None => Err(ApiError::Unauthorized(
                    "this API serves the CodeBox edge only",
                )),
            },
            Gate::Loopback => match peer {
                Some(peer) if peer.ip().is_loopback() => Ok(()),
                _ => Err(ApiError::Unauthorized(
                    "without an edge secret this API serves loopback callers only",
                )),
            },
        }
    }
}

/// The middleware in front of every route: refuses what the gate does not let in, and tells
/// the handlers who the client is.
pub(crate) async fn admit(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    gate.check(request.headers(), peer)?;
    let client = client_of(request.headers(), peer);
    request.extensions_mut().insert(Admitted { client });
    Ok(next.run(request).await)
}

/// The client of an admitted request: the first `X-Forwarded-For` hop, else the caller itself
/// (a local tool calling directly).
fn client_of(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let first_hop = headers
        .get("x-forwarded-for")
        .and_then(|hops| hops.to_str().ok())
        .and_then(|hops| hops.split(',').next())
        .map(str::trim)
        .filter(|hop| !hop.is_empty());
    match (first_hop, peer) {
        (Some(hop), _) => codebox_access::client_key(hop),
        (None, Some(peer)) => codebox_access::client_key(&peer.ip().to_string()),
        (None, None) => UNKNOWN_CLIENT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.parse().unwrap()))
            .map(|(k, v)| (axum::http::HeaderName::from_static(k), v))
            .collect()
    }

    #[test]
    fn secrets_are_long_visible_ascii() {
        assert!(EdgeSecret::new(SECRET).is_ok());
        assert_eq!(
            EdgeSecret::new(&SECRET[1..]).unwrap_err(),
            WeakEdgeSecret::TooShort(31)
        );
        assert_eq!(
            EdgeSecret::new(&format!("{SECRET} x")).unwrap_err(),
            WeakEdgeSecret::NotVisibleAscii
        );
        assert!(!format!("{:?}", EdgeSecret::new(SECRET).unwrap()).contains(SECRET));
    }

    #[test]
    fn only_the_whole_secret_matches() {
        let secret = EdgeSecret::new(SECRET).unwrap();
        assert!(secret.matches(SECRET.as_bytes()));
        for wrong in [
            "",
            &SECRET[..31],
            &format!("{SECRET}0"),
            "0123456789abcdef0123456789abcdeF",
        ] {
            assert!(!secret.matches(wrong.as_bytes()), "{wrong:?}");
        }
    }

    #[test]
    fn the_client_is_the_first_hop_else_the_caller() {
        let local = Some(SocketAddr::from(([127, 0, 0, 1], 40000)));
        let xff = |v| headers(&[("x-forwarded-for", v)]);
        assert_eq!(
            client_of(&xff("198.51.100.1, 203.0.113.9"), None),
            "198.51.100.1"
        );
        assert_eq!(
            client_of(&xff("2001:db8:1:2::7"), local),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_of(&xff(" "), local), "127.0.0.1");
        assert_eq!(client_of(&headers(&[]), local), "127.0.0.1");
        assert_eq!(client_of(&headers(&[]), None), "unknown");
        assert_eq!(client_of(&xff("not an address"), local), "unknown");
    }
}
