//! How the Worker talks to its Durable Objects: internal requests whose headers carry what the
//! Worker has already checked.
//!
//! A Durable Object is reachable only through this Worker, so it trusts these headers; the
//! Worker builds every internal request itself and never copies a client's headers into one.

use codebox_access::Claims;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

use crate::http::EdgeError;

/// The binding of the Room Durable Object namespace (wrangler.toml).
const ROOMS_BINDING: &str = "ROOMS";
/// Header: the verified claims of the caller's token, as JSON.
const CLAIMS_HEADER: &str = "x-codebox-claims";
/// Header: the room's id (for logs; the object itself has no name to read).
const ROOM_HEADER: &str = "x-codebox-room";
/// Header: the submission a run call is about.
const RUN_HEADER: &str = "x-codebox-run";
/// Header: the caller's address, forwarded to the exec API for its rate limit.
const CLIENT_IP_HEADER: &str = "x-codebox-client-ip";
/// Internal requests need an absolute URL; its host means nothing.
const INTERNAL_ORIGIN: &str = "https://room.internal";

/// What the Worker asks of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomCall {
    /// Create the room (generation 1); 409 if it exists.
    Create,
    /// Open a socket (or, without `Upgrade`, only check the token's generation).
    Connect,
    /// The document as one Yjs v1 update.
    Snapshot,
    /// Move to a new link generation and close every socket of an older one.
    Rotate,
    /// Check the token's generation before the Worker re-issues the current links.
    Links,
    /// Start a run: take one of the room's run slots and forward it to the exec API.
    Run,
    /// Open a run's live channel (the Worker checked its credential).
    RunChannel,
    /// A participant's input for a live run.
    RunInput,
}

impl RoomCall {
    const ALL: [RoomCall; 8] = [
        RoomCall::Create,
        RoomCall::Connect,
        RoomCall::Snapshot,
        RoomCall::Rotate,
        RoomCall::Links,
        RoomCall::Run,
        RoomCall::RunChannel,
        RoomCall::RunInput,
    ];

    fn path(self) -> &'static str {
        match self {
            RoomCall::Create => "/create",
            RoomCall::Connect => "/connect",
            RoomCall::Snapshot => "/snapshot",
            RoomCall::Rotate => "/rotate",
            RoomCall::Links => "/links",
            RoomCall::Run => "/run",
            RoomCall::RunChannel => "/run-channel",
            RoomCall::RunInput => "/run-input",
        }
    }

    fn method(self) -> Method {
        match self {
            RoomCall::Create | RoomCall::Rotate | RoomCall::Run | RoomCall::RunInput => {
                Method::Post
            }
            RoomCall::Connect | RoomCall::Snapshot | RoomCall::Links | RoomCall::RunChannel => {
                Method::Get
            }
        }
    }
}

/// An internal request to a room, as the Worker builds it.
pub(crate) struct ToRoom<'a> {
    room: &'a str,
    call: RoomCall,
    claims: Option<&'a Claims>,
    upgrade: bool,
    body: Option<Vec<u8>>,
    client_ip: Option<String>,
    run: Option<&'a str>,
}

impl<'a> ToRoom<'a> {
    /// `call` for `room`, with nothing attached yet.
    pub(crate) fn new(room: &'a str, call: RoomCall) -> Self {
        ToRoom {
            room,
            call,
            claims: None,
            upgrade: false,
            body: None,
            client_ip: None,
            run: None,
        }
    }

    /// Names the submission (`RunChannel`, `RunInput`).
    pub(crate) fn run(mut self, submission: &'a str) -> Self {
        self.run = Some(submission);
        self
    }

    /// Carries the caller's verified claims (every call but `Create`).
    pub(crate) fn claims(mut self, claims: &'a Claims) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Asks for a WebSocket (`Connect`).
    pub(crate) fn upgrade(mut self, upgrade: bool) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// Carries a body (`Run`: the submission JSON; `RunInput`: the input).
    pub(crate) fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Carries the caller's address (`Run`: for the exec API's per-client limit).
    pub(crate) fn client_ip(mut self, ip: String) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sends it to the room's Durable Object and returns the object's response.
    pub(crate) async fn send(self, env: &Env) -> Result<Response, EdgeError> {
        let headers = Headers::new();
        headers.set(ROOM_HEADER, self.room)?;
        if let Some(claims) = self.claims {
            let json = serde_json::to_string(claims)
                .map_err(|e| EdgeError::Config(format!("claims do not serialise: {e}")))?;
            headers.set(CLAIMS_HEADER, &json)?;
        }
        if self.upgrade {
            headers.set("upgrade", "websocket")?;
        }
        if let Some(ip) = &self.client_ip {
            headers.set(CLIENT_IP_HEADER, ip)?;
        }
        if let Some(submission) = self.run {
            headers.set(RUN_HEADER, submission)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.call.method()).with_headers(headers);
        if let Some(body) = &self.body {
            init.with_body(Some(
                worker::js_sys::Uint8Array::from(body.as_slice()).into(),
            ));
        }
        let request =
            Request::new_with_init(&format!("{INTERNAL_ORIGIN}{}", self.call.path()), &init)?;
        let stub = env
            .durable_object(ROOMS_BINDING)?
            .id_from_name(self.room)?
            .get_stub()?;
        Ok(stub.fetch_with_request(request).await?)
    }
}

/// What a room reads from an internal request.
pub(crate) struct FromWorker {
    /// What is asked.
    pub call: RoomCall,
    /// The room's id.
    pub room: String,
    /// The caller's claims, if the call carries them.
    pub claims: Option<Claims>,
    /// Whether a WebSocket was asked for.
    pub upgrade: bool,
    /// The caller's address, if forwarded.
    pub client_ip: Option<String>,
    /// The submission a run call is about.
    pub run: Option<String>,
}

impl FromWorker {
    /// Reads an internal request (in a Durable Object).
    pub(crate) fn read(req: &Request) -> Result<Self, EdgeError> {
        let path = req.path();
        let call = RoomCall::ALL
            .into_iter()
            .find(|call| call.path() == path && call.method() == req.method())
            .ok_or(EdgeError::NotFound)?;
        let headers = req.headers();
        let claims = headers
            .get(CLAIMS_HEADER)?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| EdgeError::Config(format!("unreadable internal claims: {e}")))?;
        let upgrade = headers
            .get("upgrade")?
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        Ok(FromWorker {
            call,
            room: headers.get(ROOM_HEADER)?.unwrap_or_default(),
            claims,
            upgrade,
            client_ip: headers.get(CLIENT_IP_HEADER)?,
            run: headers.get(RUN_HEADER)?,
        })
    }

    /// The submission of a run call.
    pub(crate) fn run(&self) -> Result<&str, EdgeError> {
        self.run
            .as_deref()
            .ok_or_else(|| EdgeError::Config("internal run call without a submission".into()))
    }

    /// The caller's claims, which every call but `Create` carries.
    pub(crate) fn claims(&self) -> Result<&Claims, EdgeError> {
        self.claims
            .as_ref()
            .ok_or_else(|| EdgeError::Config("internal call without claims".into()))
    }
}
