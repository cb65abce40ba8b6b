//! Reading who is asking from a request: their token, their claims, and their client key.
//!
//! The decisions are `codebox_access`'s; this module only finds the inputs in a workerd
//! request. Tokens are never logged.

use codebox_access::token::Denied;
use codebox_access::{client_key, Claims, Role, TokenKey};
use worker::{Date, Request};

use crate::http::EdgeError;

/// The query parameter the stock y-websocket provider sends (`params: { token }`).
const TOKEN_PARAM: &str = "token";
/// The query parameter carrying a run credential (the fleet's live channel).
const CREDENTIAL_PARAM: &str = "credential";
/// The header Cloudflare sets to the connecting client's address.
const CLIENT_IP_HEADER: &str = "cf-connecting-ip";

/// Now, in Unix seconds (workerd's clock; it advances between I/O, which is all a check needs).
pub(crate) fn now_s() -> u64 {
    Date::now().as_millis() / 1000
}

/// The token of `req`: `Authorization: Bearer T`, else `?token=T`; empty when there is none.
pub(crate) fn token_of(req: &Request) -> Result<String, EdgeError> {
    if let Some(header) = req.headers().get("authorization")? {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(Denied::Malformed)?;
        return Ok(token.trim().to_owned());
    }
    let url = req.url()?;
    let token = url
        .query_pairs()
        .find(|(name, _)| name == TOKEN_PARAM)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    Ok(token)
}

/// The run credential of `req` (`?credential=C`); empty when there is none.
pub(crate) fn credential_of(req: &Request) -> Result<String, EdgeError> {
    Ok(req
        .url()?
        .query_pairs()
        .find(|(name, _)| name == CREDENTIAL_PARAM)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default())
}

/// The claims of `req`'s token if it opens `room` now, with at least `role`.
pub(crate) fn claims_for(
    req: &Request,
    key: &TokenKey,
    room: &str,
    role: Role,
) -> Result<Claims, EdgeError> {
    let claims = key.verify(&token_of(req)?, room, now_s())?;
    if role == Role::Edit {
        claims.require_edit()?;
    }
    Ok(claims)
}

/// The claims of `req`'s edit token, whatever room it names (runs name no room in their path).
pub(crate) fn edit_claims(req: &Request, key: &TokenKey) -> Result<Claims, EdgeError> {
    let claims = key.open(&token_of(req)?)?;
    claims.check_expiry(now_s())?;
    claims.require_edit()?;
    Ok(claims)
}

/// The client's address as Cloudflare saw it (empty when absent).
pub(crate) fn client_ip(req: &Request) -> Result<String, EdgeError> {
    Ok(req.headers().get(CLIENT_IP_HEADER)?.unwrap_or_default())
}

/// The rate-limit key of the client behind `req` (an IPv4 address or an IPv6 /64).
pub(crate) fn client_of(req: &Request) -> Result<String, EdgeError> {
    Ok(client_key(&client_ip(req)?))
}
