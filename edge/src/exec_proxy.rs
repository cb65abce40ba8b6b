//! `/api/*`: the exec API behind the edge, so the browser talks to one origin.
//!
//! `/api/v1/submissions` becomes `{EXEC_API_URL}/v1/submissions` (query kept). The method, the
//! body and `Content-Type` are forwarded; `X-Forwarded-For` is set from `CF-Connecting-IP`, so a
//! client cannot pick its own, and the secret `EXEC_API_EDGE_SECRET` (when set) goes along in
//! `X-CodeBox-Edge-Secret`: with it the exec API rate-limits by that first hop, without it by
//! the hop its own gateway added (exec-lambda/src/rate_limit.rs). The exec API's
//! response, errors included, goes back unchanged. The edge's own failures (the exec API
//! unreachable or too slow, a body too large to buffer) are [`EdgeError`]s.

use worker::{AbortSignal, Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::http::EdgeError;

/// The path prefix this module serves.
pub const PREFIX: &str = "/api";
/// The variable naming the exec API's base URL (wrangler.toml `[vars]`).
const EXEC_API_VAR: &str = "EXEC_API_URL";
/// The secret proving to the exec API that a request comes through the edge
/// (`wrangler secret put EXEC_API_EDGE_SECRET`); its `CODEBOX_EDGE_SECRET`.
const EDGE_SECRET_VAR: &str = "EXEC_API_EDGE_SECRET";
/// The header carrying it (exec-lambda's `EDGE_SECRET_HEADER`).
const EDGE_SECRET_HEADER: &str = "x-codebox-edge-secret";
/// How long one proxied request may take. The exec API answers without waiting for runs
/// (202, then polling), so anything near this is a hung upstream.
const UPSTREAM_TIMEOUT_MS: u32 = 10_000;
/// Largest body buffered for the exec API: its own limits are 64 KiB of source and of stdin,
/// which JSON escaping can grow several times over.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The exec API URL for a path under [`PREFIX`], or `None` when the path is not under it.
fn upstream_url(base: &str, path: &str, query: Option<&str>) -> Option<String> {
    let rest = path.strip_prefix(PREFIX)?;
    if !rest.starts_with('/') {
        return None;
    }
    let mut url = format!("{}{rest}", base.trim_end_matches('/'));
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Some(url)
}

/// Forwards `req` (a path under [`PREFIX`]) to the exec API.
pub async fn forward(mut req: Request, env: &Env) -> Result<Response, EdgeError> {
    let base = env
        .var(EXEC_API_VAR)
        .map_err(|_| EdgeError::Config(format!("{EXEC_API_VAR} is not set")))?
        .to_string();
    let url = req.url()?;
    let target = upstream_url(&base, url.path(), url.query()).ok_or(EdgeError::NotFound)?;

    let headers = Headers::new();
    for name in ["content-type", "accept"] {
        if let Some(value) = req.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    if let Some(ip) = req.headers().get("cf-connecting-ip")? {
        headers.set("x-forwarded-for", &ip)?;
    }
    if let Ok(secret) = env.secret(EDGE_SECRET_VAR) {
        headers.set(EDGE_SECRET_HEADER, &secret.to_string())?;
    }

    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone()).with_headers(headers);
    if !matches!(method, Method::Get | Method::Head) {
        let declared = req
            .headers()
            .get("content-length")?
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(EdgeError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        let body = req.bytes().await?;
        if body.len() > MAX_BODY_BYTES {
            return Err(EdgeError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let upstream = Request::new_with_init(&target, &init)?;

    let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
        UPSTREAM_TIMEOUT_MS,
    ));
    match Fetch::Request(upstream).send_with_signal(&signal).await {
        Ok(response) => Ok(response),
        Err(error) if signal.aborted() => {
            tracing::warn!(%target, %error, "exec API timed out");
            Err(EdgeError::ExecApiTimeout(UPSTREAM_TIMEOUT_MS / 1000))
        }
        Err(error) => {
            tracing::warn!(%target, %error, "exec API unreachable");
            Err(EdgeError::ExecApiUnreachable)
        }
    }
}
