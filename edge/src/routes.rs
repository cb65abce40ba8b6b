//! The Worker's fetch handler: the edge's URL space, and who may use each part of it.
//!
//! ```text
//! POST /rooms                    anyone (rate-limited per client)   -> a new room and its links
//! GET  /rooms/{room}?token=T     edit or view token                 -> the room's WebSocket
//! GET  /rooms/{room}/snapshot    edit or view token                 -> the document
//! GET  /rooms/{room}/links       edit token                         -> the current links again
//! POST /rooms/{room}/rotate      edit token                         -> new links; older ones die
//! GET  /rooms/{room}/runs/{id}?credential=C   run credential        -> the run's live channel
//! POST /rooms/{room}/runs/{id}/input          edit token            -> a line (or EOF) for it
//! /api/...                       see exec_proxy (runs need an edit token)
//! ```
//!
//! The Worker checks what a token can prove alone (signature, room, role, expiry: 401/403)
//! and the room's object checks the rest (the generation, that the room exists). Everything
//! else is the IDE, served by Workers static assets before the Worker runs (wrangler.toml
//! `[assets]`); a path that reaches the Worker and matches nothing is a 404.

use codebox_access::room::ROOM_ID_BYTES;
use codebox_access::token::Denied;
use codebox_access::{is_valid_room_name, new_room_id, room_link, Claims, Role};
use serde::{Deserialize, Serialize};
use worker::{event, Context, Env, Headers, Method, Request, Response, Result};

use crate::auth::{claims_for, client_ip, client_of, credential_of, edit_claims, now_s};
use crate::config::Config;
use crate::exec_proxy::{self, api_route, ApiRoute};
use crate::http::{read_body, EdgeError, StorageError};
use crate::internal::{RoomCall, ToRoom};
use crate::limiter::{self, Scope};
use crate::store::FIRST_GENERATION;

/// Longest lifetime a link may be given when it is made (`expires_in`, seconds): one year.
const MAX_EXPIRES_IN_S: u64 = 365 * 24 * 3600;
/// Largest body of a run's input: one line of at most 4 KiB, JSON-escaped, and its author.
const MAX_INPUT_BODY_BYTES: usize = 32 * 1024;
/// Longest submission id in a run's path (the ids are UUIDs).
const MAX_SUBMISSION_ID: usize = 64;
/// Largest body of `POST /rooms` and `/rotate` (a tiny JSON object).
const MAX_OPTIONS_BYTES: usize = 1024;

/// What a request asks of the edge.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    CreateRoom,
    Socket(&'a str),
    Snapshot(&'a str),
    Links(&'a str),
    Rotate(&'a str),
    RunChannel(&'a str, &'a str),
    RunInput(&'a str, &'a str),
    Api(ApiRoute<'a>),
}

fn parse_route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, EdgeError> {
    if path.starts_with(exec_proxy::PREFIX) {
        return Ok(Route::Api(api_route(method, path)?));
    }
    if path == "/rooms" {
        return match method {
            Method::Post => Ok(Route::CreateRoom),
            _ => Err(EdgeError::MethodNotAllowed),
        };
    }
    let rest = path.strip_prefix("/rooms/").ok_or(EdgeError::NotFound)?;
    let (room, route, expected) = match rest.split_once('/') {
        None => (rest, Route::Socket(rest), Method::Get),
        Some((room, "snapshot")) => (room, Route::Snapshot(room), Method::Get),
        Some((room, "links")) => (room, Route::Links(room), Method::Get),
        Some((room, "rotate")) => (room, Route::Rotate(room), Method::Post),
        Some((room, run)) => match run.strip_prefix("runs/").map(|r| r.split_once('/')) {
            Some(None) => (room, Route::RunChannel(room, &run[5..]), Method::Get),
            Some(Some((id, "input"))) => (room, Route::RunInput(room, id), Method::Post),
            _ => return Err(EdgeError::NotFound),
        },
    };
    if let Route::RunChannel(_, id) | Route::RunInput(_, id) = route {
        if id.is_empty() || id.len() > MAX_SUBMISSION_ID || !is_valid_room_name(id) {
            return Err(EdgeError::NotFound);
        }
    }
    if !is_valid_room_name(room) {
        return Err(EdgeError::InvalidRoomName);
    }
    if *method != expected {
        return Err(EdgeError::MethodNotAllowed);
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

async fn route(mut req: Request, env: &Env) -> Result<Response, EdgeError> {
    let config = Config::from_env(env)?;
    let path = req.path();
    match parse_route(&req.method(), &path)? {
        Route::CreateRoom => create_room(&mut req, env, &config).await,
        Route::Socket(room) => {
            let claims = claims_for(&req, &config.token_key, room, Role::View)?;
            let upgrade = req
                .headers()
                .get("upgrade")?
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let answer = ToRoom::new(room, RoomCall::Connect)
                .claims(&claims)
                .upgrade(upgrade)
                .send(env)
                .await?;
            without_compression(answer)
        }
        Route::Snapshot(room) => {
            let claims = claims_for(&req, &config.token_key, room, Role::View)?;
            ToRoom::new(room, RoomCall::Snapshot)
                .claims(&claims)
                .send(env)
                .await
        }
        Route::Links(room) => {
            let claims = claims_for(&req, &config.token_key, room, Role::Edit)?;
            let answer = ToRoom::new(room, RoomCall::Links)
                .claims(&claims)
                .send(env)
                .await?;
            match generation_of(answer).await? {
                Ok(generation) => {
                    links_response(&req, &config, room, generation, claims.expires_at, 200)
                }
                Err(refusal) => Ok(refusal),
            }
        }
        Route::Rotate(room) => {
            let claims = claims_for(&req, &config.token_key, room, Role::Edit)?;
            let options = LinkOptions::read(&mut req).await?;
            let answer = ToRoom::new(room, RoomCall::Rotate)
                .claims(&claims)
                .send(env)
                .await?;
            match generation_of(answer).await? {
                Ok(generation) => {
                    let expires_at = earliest(claims.expires_at, options.expires_at());
                    links_response(&req, &config, room, generation, expires_at, 200)
                }
                Err(refusal) => Ok(refusal),
            }
        }
        Route::RunChannel(room, submission) => {
            let claims = config
                .run_key
                .verify(&credential_of(&req)?, room, now_s())?;
            if claims.submission != submission {
                return Err(Denied::OtherRoom.into());
            }
            let upgrade = req
                .headers()
                .get("upgrade")?
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let answer = ToRoom::new(room, RoomCall::RunChannel)
                .run(submission)
                .upgrade(upgrade)
                .send(env)
                .await?;
            without_compression(answer)
        }
        Route::RunInput(room, submission) => {
            let claims = claims_for(&req, &config.token_key, room, Role::Edit)?;
            let body = read_body(&mut req, MAX_INPUT_BODY_BYTES).await?;
            ToRoom::new(room, RoomCall::RunInput)
                .claims(&claims)
                .run(submission)
                .body(body)
                .send(env)
                .await
        }
        Route::Api(ApiRoute::Submit) => {
            let claims = edit_claims(&req, &config.token_key)?;
            limiter::count(env, &client_of(&req)?, Scope::Runs, config.run_rate).await?;
            let body = read_body(&mut req, exec_proxy::MAX_BODY_BYTES).await?;
            ToRoom::new(&claims.room, RoomCall::Run)
                .claims(&claims)
                .body(body)
                .client_ip(client_ip(&req)?)
                .send(env)
                .await
        }
        Route::Api(ApiRoute::Submission(_) | ApiRoute::Languages) => {
            exec_proxy::forward_get(&req, &config, &client_ip(&req)?).await
        }
    }
}

/// The `Sec-WebSocket-Extensions` of every room socket's 101: no extension, so no
/// permessage-deflate, whatever the client offers (browsers and `ws` always offer it).
///
/// workerd decides compression when the Worker's 101 is sent (`Response::send` in
/// src/workerd/api/http.c++, flag `web_socket_compression`, on since 2023-08-15). Without this
/// header it accepts the offer: each socket then holds a zlib deflate state and window (its
/// cost per socket is in docs/BENCHMARKS.md) and the runtime deflates every relayed frame once
/// per recipient. With the header, workerd agrees to what both it and the offer allow, which is
/// nothing here, and the 101 carries no extension (kj writes the agreed value in place of this
/// one). Figures and the decision: docs/BENCHMARKS.md,
/// "WebSocket compression". Two things that do not work: an empty value (kj's HttpHeaders take
/// it for an absent one), and the `no_web_socket_compression` flag under `wrangler dev`
/// (miniflare's entry Worker, on a compatibility date of its own, accepts the offer again in
/// front of this Worker). e2e/sync.test.mjs checks wrangler's port and the runtime's own.
const NO_EXTENSIONS: &str = "none";

/// The room's answer to a socket request; a 101 is answered again with [`NO_EXTENSIONS`] (the
/// Durable Object's response has immutable headers), anything else (a refusal) as it is.
fn without_compression(answer: Response) -> Result<Response, EdgeError> {
    if answer.status_code() != 101 {
        return Ok(answer);
    }
    let headers = Headers::new();
    headers.set("sec-websocket-extensions", NO_EXTENSIONS)?;
    let (builder, body) = answer.into_parts();
    Ok(builder.with_headers(headers).body(body))
}

/// `POST /rooms`: a new room with a 128-bit random id, at the first link generation.
async fn create_room(req: &mut Request, env: &Env, config: &Config) -> Result<Response, EdgeError> {
    limiter::count(env, &client_of(req)?, Scope::Rooms, config.room_rate).await?;
    let options = LinkOptions::read(req).await?;
    // 128 random bits never collide in practice; the room says so if they ever do.
    for _ in 0..3 {
        let mut random = [0u8; ROOM_ID_BYTES];
        getrandom::getrandom(&mut random)
            .map_err(|e| EdgeError::Config(format!("no randomness: {e}")))?;
        let room = new_room_id(random);
        let created = ToRoom::new(&room, RoomCall::Create).send(env).await?;
        match created.status_code() {
            201 => {
                tracing::info!(room = %room, "room created");
                return links_response(
                    req,
                    config,
                    &room,
                    FIRST_GENERATION,
                    options.expires_at(),
                    201,
                );
            }
            409 => continue,
            _ => return Ok(created),
        }
    }
    Err(StorageError::NoFreeRoomId.into())
}

/// The optional body of `POST /rooms` and `/rotate`: `{}`, absent, or `{"expires_in": S}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkOptions {
    /// Seconds until both links expire (at most [`MAX_EXPIRES_IN_S`]); never when absent.
    expires_in: Option<u64>,
}

impl LinkOptions {
    async fn read(req: &mut Request) -> Result<Self, EdgeError> {
        let body = read_body(req, MAX_OPTIONS_BYTES).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(LinkOptions::default());
        }
        let options: LinkOptions =
            serde_json::from_slice(&body).map_err(|e| EdgeError::InvalidBody(e.to_string()))?;
        if options
            .expires_in
            .is_some_and(|s| s == 0 || s > MAX_EXPIRES_IN_S)
        {
            return Err(EdgeError::InvalidValue {
                field: "expires_in",
                reason: format!("must be 1 to {MAX_EXPIRES_IN_S} seconds"),
            });
        }
        Ok(options)
    }

    fn expires_at(&self) -> Option<u64> {
        self.expires_in.map(|s| now_s() + s)
    }
}

/// The earlier of two optional expiries: a link never outlives the one that made it.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The generation in a room's answer to `Rotate` or `Links`, or the room's refusal (a stale
/// link, a room that does not exist) to pass on as it is.
async fn generation_of(mut answer: Response) -> Result<Result<u32, Response>, EdgeError> {
    #[derive(Deserialize)]
    struct Generation {
        generation: u32,
    }
    if answer.status_code() != 200 {
        return Ok(Err(answer));
    }
    Ok(Ok(answer.json::<Generation>().await?.generation))
}

/// The body of `POST /rooms`, `/links` and `/rotate`.
#[derive(Serialize)]
struct Links {
    room: String,
    edit_token: String,
    view_token: String,
    edit_url: String,
    view_url: String,
}

fn links_response(
    req: &Request,
    config: &Config,
    room: &str,
    generation: u32,
    expires_at: Option<u64>,
    status: u16,
) -> Result<Response, EdgeError> {
    let origin = req.url()?.origin().ascii_serialization();
    let token = |role| {
        config.token_key.sign(&Claims {
            room: room.to_owned(),
            role,
            generation,
            expires_at,
        })
    };
    let (edit_token, view_token) = (token(Role::Edit), token(Role::View));
    let body = Links {
        room: room.to_owned(),
        edit_url: room_link(&origin, room, Role::Edit, &edit_token),
        view_url: room_link(&origin, room, Role::View, &view_token),
        edit_token,
        view_token,
    };
    let mut response = Response::from_json(&body)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_methods() {
        assert_eq!(
            parse_route(&Method::Post, "/rooms").unwrap(),
            Route::CreateRoom
        );
        assert_eq!(
            parse_route(&Method::Get, "/rooms/abc").unwrap(),
            Route::Socket("abc")
        );
        assert_eq!(
            parse_route(&Method::Get, "/rooms/abc/snapshot").unwrap(),
            Route::Snapshot("abc")
        );
        assert_eq!(
            parse_route(&Method::Get, "/rooms/abc/links").unwrap(),
            Route::Links("abc")
        );
        assert_eq!(
            parse_route(&Method::Post, "/rooms/abc/rotate").unwrap(),
            Route::Rotate("abc")
        );
        assert!(matches!(
            parse_route(&Method::Get, "/rooms"),
            Err(EdgeError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse_route(&Method::Get, "/rooms/abc/rotate"),
            Err(EdgeError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse_route(&Method::Get, "/rooms/a.b"),
            Err(EdgeError::InvalidRoomName)
        ));
        assert!(matches!(
            parse_route(&Method::Get, "/rooms/abc/other"),
            Err(EdgeError::NotFound)
        ));
        assert_eq!(
            parse_route(&Method::Get, "/rooms/abc/runs/0b6f-4c").unwrap(),
            Route::RunChannel("abc", "0b6f-4c")
        );
        assert_eq!(
            parse_route(&Method::Post, "/rooms/abc/runs/0b6f-4c/input").unwrap(),
            Route::RunInput("abc", "0b6f-4c")
        );
        for path in [
            "/rooms/abc/runs/",
            "/rooms/abc/runs/a.b",
            "/rooms/abc/runs/x/other",
            "/rooms/abc/runs/x/input/more",
            "/rooms/abc/runsx",
        ] {
            assert!(
                matches!(parse_route(&Method::Get, path), Err(EdgeError::NotFound))
                    || matches!(parse_route(&Method::Post, path), Err(EdgeError::NotFound)),
                "{path}"
            );
        }
        assert!(matches!(
            parse_route(&Method::Get, "/rooms/abc/runs/x/input"),
            Err(EdgeError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse_route(&Method::Get, "/elsewhere"),
            Err(EdgeError::NotFound)
        ));
    }

    #[test]
    fn a_link_never_outlives_the_one_that_made_it() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(5), None), Some(5));
        assert_eq!(earliest(None, Some(7)), Some(7));
        assert_eq!(earliest(Some(9), Some(7)), Some(7));
    }
}
