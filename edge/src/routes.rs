//! The Worker's fetch handler: the edge's URL space.
//!
//! `/rooms/...` reaches a room's Durable Object, `/api/...` the exec API ([`crate::exec_proxy`]).
//! Everything else is the IDE, served by Workers static assets before the Worker runs
//! (wrangler.toml `[assets]`); a path that reaches the Worker and matches nothing is a 404.

use codebox_room::is_valid_room_name;
use worker::{event, Context, Env, Method, Request, Response, Result};

use crate::exec_proxy;
use crate::http::EdgeError;

/// The binding name of the Room Durable Object namespace (wrangler.toml).
const ROOMS_BINDING: &str = "ROOMS";
/// Header carrying the room name from the Worker to its object, for logs.
pub const ROOM_HEADER: &str = "x-codebox-room";

/// What a request asks of a room.
#[derive(Debug, PartialEq, Eq)]
enum RoomRoute<'a> {
    Socket(&'a str),
    Snapshot(&'a str),
}

fn parse_room_route(path: &str) -> Result<RoomRoute<'_>, EdgeError> {
    let rest = path.strip_prefix("/rooms/").ok_or(EdgeError::NotFound)?;
    let (room, route) = match rest.split_once('/') {
        None => (rest, RoomRoute::Socket(rest)),
        Some((room, "snapshot")) => (room, RoomRoute::Snapshot(room)),
        Some(_) => return Err(EdgeError::NotFound),
    };
    if !is_valid_room_name(room) {
        return Err(EdgeError::InvalidRoomName);
    }
    Ok(route)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    crate::log::init();
    match route(req, &env).await {
        Ok(response) => Ok(response),
        Err(error) => error.into_response(),
    }
}

async fn route(req: Request, env: &Env) -> Result<Response, EdgeError> {
    let url = req.url()?;
    if url.path().starts_with(exec_proxy::PREFIX) {
        return exec_proxy::forward(req, env).await;
    }
    let room = match parse_room_route(url.path())? {
        RoomRoute::Socket(room) => {
            let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
            if !upgrade.eq_ignore_ascii_case("websocket") {
                return Err(EdgeError::UpgradeRequired);
            }
            room
        }
        RoomRoute::Snapshot(room) => {
            if req.method() != Method::Get {
                return Err(EdgeError::MethodNotAllowed);
            }
            room
        }
    };
    let stub = env
        .durable_object(ROOMS_BINDING)?
        .id_from_name(room)?
        .get_stub()?;
    let mut forwarded = req.clone_mut()?;
    forwarded.headers_mut()?.set(ROOM_HEADER, room)?;
    Ok(stub.fetch_with_request(forwarded).await?)
}
