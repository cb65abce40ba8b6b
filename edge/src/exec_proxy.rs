//! `/api/*`: the exec API behind the edge, so the browser talks to one origin.
//!
//! Only the exec API's own routes pass, each checked here first:
//!
//! ```text
//! POST /api/v1/submissions       edit token (Authorization: Bearer) -> the room's object -> exec API
//! GET  /api/v1/submissions/{id}  -> exec API
//! GET  /api/v1/languages         -> exec API
//! ```
//!
//! Every forwarded request carries `X-Forwarded-For` set from `CF-Connecting-IP` (a client
//! cannot pick its own) and the edge secret `CODEBOX_EDGE_SECRET` when set: with it the exec
//! API trusts that hop and the room id (`x-codebox-room`), and in production it refuses
//! anyone without it. The exec API's response, errors included, goes back unchanged. The
//! edge's own failures (the exec API unreachable or too slow, a body too large to buffer) are
//! [`EdgeError`]s.

use codebox_access::headers::{
    EDGE_SECRET_HEADER, ROOM_HEADER, RUN_CREDENTIAL_HEADER, SUBMISSION_HEADER,
};
use serde::Deserialize;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::config::Config;
use crate::http::EdgeError;

/// The path prefix this module serves.
pub(crate) const PREFIX: &str = "/api";
/// How long one proxied request may take. The exec API answers without waiting for runs
/// (202, then polling), so anything near this is a hung upstream.
const UPSTREAM_TIMEOUT_MS: u32 = 10_000;
/// Largest body buffered for the exec API: the most it reads itself (a project and its tests).
pub(crate) const MAX_BODY_BYTES: usize = codebox_access::headers::MAX_SUBMISSION_BODY_BYTES;

/// The exec API routes the edge lets through.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ApiRoute<'a> {
    /// `POST /api/v1/submissions`: a run, which needs the room's edit token.
    Submit,
    /// `GET /api/v1/submissions/{id}`.
    Submission(&'a str),
    /// `GET /api/v1/languages`.
    Languages,
}

/// The route of a path under [`PREFIX`].
pub(crate) fn api_route<'a>(method: &Method, path: &'a str) -> Result<ApiRoute<'a>, EdgeError> {
    let rest = path.strip_prefix(PREFIX).ok_or(EdgeError::NotFound)?;
    let route = match rest {
        "/v1/submissions" => ApiRoute::Submit,
        "/v1/languages" => ApiRoute::Languages,
        _ => match rest.strip_prefix("/v1/submissions/") {
            Some(id) if !id.is_empty() && !id.contains('/') => ApiRoute::Submission(id),
            _ => return Err(EdgeError::NotFound),
        },
    };
    let expected = match route {
        ApiRoute::Submit => Method::Post,
        ApiRoute::Submission(_) | ApiRoute::Languages => Method::Get,
    };
    if *method != expected {
        return Err(EdgeError::MethodNotAllowed);
    }
    Ok(route)
}

/// One request to the exec API.
pub(crate) struct Upstream<'a> {
    /// GET or POST.
    pub method: Method,
    /// The exec API path, e.g. `/v1/languages` (with its query, if any).
    pub path: &'a str,
    /// The JSON body of a POST.
    pub body: Option<&'a [u8]>,
    /// The client's address, for the exec API's per-client limit.
    pub client_ip: Option<&'a str>,
    /// The room a run comes from.
    pub room: Option<&'a str>,
    /// What names a run the room follows live.
    pub live: Option<LiveHeaders<'a>>,
}

/// The id and credential of a run the room follows live (Contract 4).
pub(crate) struct LiveHeaders<'a> {
    /// The submission id the edge chose.
    pub submission: &'a str,
    /// The credential it signed for the run's channel.
    pub credential: &'a str,
}

impl Upstream<'_> {
    /// Sends it, with the edge secret, within [`UPSTREAM_TIMEOUT_MS`].
    pub(crate) async fn send(self, config: &Config) -> Result<Response, EdgeError> {
        let target = format!(
            "{}{}",
            config.exec_api_url()?.trim_end_matches('/'),
            self.path
        );
        let headers = Headers::new();
        headers.set("accept", "application/json")?;
        if self.body.is_some() {
            headers.set("content-type", "application/json")?;
        }
        if let Some(ip) = self.client_ip.filter(|ip| !ip.is_empty()) {
            headers.set("x-forwarded-for", ip)?;
        }
        if let Some(secret) = &config.edge_secret {
            headers.set(EDGE_SECRET_HEADER, secret)?;
        }
        if let Some(room) = self.room {
            headers.set(ROOM_HEADER, room)?;
        }
        if let Some(live) = &self.live {
            headers.set(SUBMISSION_HEADER, live.submission)?;
            headers.set(RUN_CREDENTIAL_HEADER, live.credential)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method).with_headers(headers);
        if let Some(body) = self.body {
            init.with_body(Some(worker::js_sys::Uint8Array::from(body).into()));
        }
        let upstream = Request::new_with_init(&target, &init)?;
        let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
            UPSTREAM_TIMEOUT_MS,
        ));
        match Fetch::Request(upstream).send_with_signal(&signal).await {
            Ok(response) => Ok(response),
            Err(error) if signal.aborted() => {
                tracing::warn!(path = self.path, %error, "exec API timed out");
                Err(EdgeError::ExecApiTimeout(UPSTREAM_TIMEOUT_MS / 1000))
            }
            Err(error) => {
                tracing::warn!(path = self.path, %error, "exec API unreachable");
                Err(EdgeError::ExecApiUnreachable)
            }
        }
    }
}

/// Forwards a GET route to the exec API (the path under [`PREFIX`], query kept).
pub(crate) async fn forward_get(
    req: &Request,
    config: &Config,
    client_ip: &str,
) -> Result<Response, EdgeError> {
    let url = req.url()?;
    let mut path = url.path().trim_start_matches(PREFIX).to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Upstream {
        method: Method::Get,
        path: &path,
        body: None,
        client_ip: Some(client_ip),
        room: None,
        live: None,
    }
    .send(config)
    .await
}

/// What the exec API says a submission's status is; `None` when it does not know the id.
pub(crate) async fn submission_status(
    config: &Config,
    id: &str,
) -> Result<Option<String>, EdgeError> {
    #[derive(Deserialize)]
    struct Record {
        status: String,
    }
    let path = format!("/v1/submissions/{id}");
    let mut response = Upstream {
        method: Method::Get,
        path: &path,
        body: None,
        client_ip: None,
        room: None,
        live: None,
    }
    .send(config)
    .await?;
    match response.status_code() {
        200 => Ok(Some(response.json::<Record>().await?.status)),
        404 => Ok(None),
        status => Err(EdgeError::ExecApiStatus(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exec_apis_routes_pass() {
        assert_eq!(
            api_route(&Method::Post, "/api/v1/submissions").unwrap(),
            ApiRoute::Submit
        );
        assert_eq!(
            api_route(&Method::Get, "/api/v1/submissions/abc").unwrap(),
            ApiRoute::Submission("abc")
        );
        assert_eq!(
            api_route(&Method::Get, "/api/v1/languages").unwrap(),
            ApiRoute::Languages
        );
        for path in [
            "/api",
            "/api/",
            "/api/v1/submissions/",
            "/api/v1/submissions/a/b",
            "/api/v2/x",
            "/apix",
        ] {
            assert!(api_route(&Method::Get, path).is_err(), "{path}");
        }
        assert!(matches!(
            api_route(&Method::Get, "/api/v1/submissions"),
            Err(EdgeError::MethodNotAllowed)
        ));
        assert!(matches!(
            api_route(&Method::Post, "/api/v1/languages"),
            Err(EdgeError::MethodNotAllowed)
        ));
    }
}
