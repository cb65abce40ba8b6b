//! The `Room` Durable Object: one per room id, holding the room's sockets and document.
//!
//! It uses the Hibernatable WebSocket API: workerd keeps the sockets open while the object is
//! evicted from memory, and wakes it (running `new` again) for the next frame. What must
//! survive that lives outside the object's memory: the document and the link generation in
//! SQLite (see [`crate::store`]) and, per socket, a [`SocketState`] attachment (its connection
//! id, its role and link generation, and the awareness entries it owns). The in-memory
//! [`Loaded`] state is rebuilt from those on the first event after a wake.
//!
//! The one timer is the object's alarm, set only while the room has work waiting
//! (`Effects::wake_at`: accepted updates to write within the commit window, renewals to relay
//! together), so an idle room runs nothing. Before it fires the object is not idle and is
//! not evicted, so what waits in memory is written; a crash loses it on the server, and the
//! clients, whose sockets the crash closes, send it again when they reconnect.
//!
//! The Worker has already checked each caller's token (signature, room, role, expiry); this
//! object checks what only it knows: that the room exists and that the token is of its
//! current link generation ([`crate::internal`]).

use std::cell::{Cell, RefCell};

use codebox_access::{Claims, Role};
use codebox_room::awareness::fit_budget;
use codebox_room::{AwarenessEntry, CloseReason, ConnId, Effects, Limits, Message};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{
    durable_object, Date, DurableObject, Env, Request, Response, Result, ScheduledTime, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

mod live;

use self::live::lose_orphaned_runs;
use crate::auth::now_s;
use crate::config::Config;
use crate::http::{EdgeError, StorageError};
use crate::internal::{FromWorker, RoomCall};
use crate::runs;
use crate::store::RoomStore;

/// Attachments may hold 16 KiB; leave room for the rest of the state and serialisation.
const PRESENCE_BUDGET: usize = 12 * 1024;
/// Close code for a failure on our side (RFC 6455 "internal error").
const INTERNAL_ERROR: u16 = 1011;
/// The text frame the runtime answers with [`KEEPALIVE_PONG`] while the object sleeps.
const KEEPALIVE_PING: &str = "ping";
/// The runtime's answer to [`KEEPALIVE_PING`].
const KEEPALIVE_PONG: &str = "pong";

/// What each socket carries across hibernation.
#[derive(Debug, Serialize, Deserialize)]
struct SocketState {
    conn: ConnId,
    room: String,
    role: Role,
    generation: u32,
    presence: Vec<AwarenessEntry>,
    /// For a run's live channel, its submission (such a socket is no participant).
    #[serde(default)]
    run: Option<String>,
}

/// The room as it lives in memory between hibernations.
pub(crate) struct Loaded {
    /// The room's name, for logs.
    name: String,
    room: codebox_room::Room,
    store: RoomStore,
    generation: u32,
    sockets: Vec<(ConnId, WebSocket)>,
    /// The live channels of runs, by submission.
    runs: Vec<(String, WebSocket)>,
    next_conn: ConnId,
    /// The document was read from storage (see [`Room::ensure_loaded`]).
    document_loaded: bool,
}

/// What of the room a step needs in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Presence and the link generation.
    Presence,
    /// The document too.
    Document,
}

/// The Durable Object behind `/rooms/{room}`.
#[durable_object]
pub struct Room {
    state: State,
    env: Env,
    loaded: RefCell<Option<Loaded>>,
    /// When the alarm this object set will fire, if it set one since it was created.
    alarm_at: Cell<Option<u64>>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        crate::log::init();
        // A client may keep its socket alive with a text "ping": the runtime answers "pong"
        // without waking the object (the protocol itself is binary; other text closes).
        match WebSocketRequestResponsePair::new(KEEPALIVE_PING, KEEPALIVE_PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(error) => {
                warn!(error = %worker::Error::from(error), "the ping auto-response could not be set")
            }
        }
        Room {
            state,
            env,
            loaded: RefCell::new(None),
            alarm_at: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.handle(req).await {
            Ok(response) => Ok(response),
            Err(error) => error.into_response(),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let Some(socket) = socket_state(&ws) else {
            warn!("frame on a socket without state; closing it");
            let _ = ws.close(Some(INTERNAL_ERROR), Some("lost socket state"));
            return Ok(());
        };
        if let Some(submission) = &socket.run {
            let wake_at = self.run_frame(&ws, &socket.room, submission, message);
            self.wake_at(wake_at).await;
            return Ok(());
        }
        let wake_at = {
            let mut guard = self.loaded.borrow_mut();
            let part = match &message {
                WebSocketIncomingMessage::Binary(frame) if Message::touches_document(frame) => {
                    Part::Document
                }
                _ => Part::Presence,
            };
            let loaded = match self.ensure_loaded(&mut guard, &socket.room, part) {
                Ok(loaded) => loaded,
                Err(error) => {
                    warn!(room = %socket.room, %error, "room failed to load");
                    let _ = ws.close(Some(INTERNAL_ERROR), Some("room storage failed"));
                    return Ok(());
                }
            };
            if socket.generation != loaded.generation {
                // Rotation closes these at once; one whose close was lost is closed here.
                close_socket(loaded, &ws, &socket, &CloseReason::LinkRotated);
                return Ok(());
            }
            let effects = match &message {
                WebSocketIncomingMessage::Binary(frame) => {
                    loaded
                        .room
                        .receive(socket.conn, frame, Date::now().as_millis())
                }
                WebSocketIncomingMessage::String(_) => loaded.room.receive_text(socket.conn),
            };
            if !write(&mut guard, &effects.store) {
                return Ok(());
            }
            let Some(loaded) = guard.as_mut() else {
                return Ok(());
            };
            let wake_at = effects.wake_at;
            run_effects(loaded, &ws, socket, effects);
            if is_sync_step2(&message) {
                // Each client's sync, which follows every load, may bring back a console the
                // room lost with its channel (written after the last commit): it is not live
                // any more. Checked here only, not on every keystroke.
                earliest(wake_at, lose_orphaned_runs(&mut guard))
            } else {
                wake_at
            }
        };
        self.wake_at(wake_at).await;
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        let wake_at = {
            let mut guard = self.loaded.borrow_mut();
            // Not in memory: evicted with nothing waiting (see the module's explanation).
            let Some(loaded) = guard.as_mut() else {
                return Response::empty();
            };
            let effects = loaded.room.tick(Date::now().as_millis());
            if !write(&mut guard, &effects.store) {
                return Response::empty();
            }
            let Some(loaded) = guard.as_mut() else {
                return Response::empty();
            };
            broadcast(loaded, None, &effects.broadcast);
            effects.wake_at
        };
        self.wake_at(wake_at).await;
        Response::empty()
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        let wake_at = self.forget_socket(&ws);
        // Complete the closing handshake; the socket may already be gone.
        let _ = ws.close(Some(1000), Some("bye"));
        self.wake_at(wake_at).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let wake_at = self.forget_socket(&ws);
        self.wake_at(wake_at).await;
        Ok(())
    }
}

impl Room {
    async fn handle(&self, mut req: Request) -> Result<Response, EdgeError> {
        let call = FromWorker::read(&req)?;
        match call.call {
            RoomCall::Run => {
                let config = Config::from_env(&self.env)?;
                let body = req.bytes().await?;
                runs::start(self, &config, &call, body).await
            }
            RoomCall::RunChannel => {
                let (response, wake_at) = self.open_run_channel(&call)?;
                self.wake_at(wake_at).await;
                Ok(response)
            }
            RoomCall::RunInput => {
                let body = req.bytes().await?;
                let wake_at = self.run_input(&call, &body)?;
                self.wake_at(wake_at).await;
                Ok(Response::empty()?.with_status(204))
            }
            _ => self.serve(&call),
        }
    }

    fn serve(&self, call: &FromWorker) -> Result<Response, EdgeError> {
        match call.call {
            RoomCall::Create => self.create(call),
            RoomCall::Connect => self.open_socket(call),
            RoomCall::Snapshot => {
                let mut guard = self.loaded.borrow_mut();
                let loaded = self.admit(&mut guard, call.claims()?, Part::Document)?;
                let mut response = Response::from_bytes(loaded.room.snapshot())?;
                response
                    .headers_mut()
                    .set("Content-Type", "application/octet-stream")?;
                response.headers_mut().set("Cache-Control", "no-store")?;
                Ok(response)
            }
            RoomCall::Links => {
                let mut guard = self.loaded.borrow_mut();
                let loaded = self.admit(&mut guard, call.claims()?, Part::Presence)?;
                generation_response(loaded.generation)
            }
            RoomCall::Rotate => self.rotate(call),
            // `handle` serves these: they await.
            RoomCall::Run | RoomCall::RunChannel | RoomCall::RunInput => Err(EdgeError::NotFound),
        }
    }

    fn create(&self, call: &FromWorker) -> Result<Response, EdgeError> {
        if !RoomStore::create(&self.state.storage().sql(), now_s())? {
            return Ok(Response::empty()?.with_status(409));
        }
        info!(room = %call.room, "room storage created");
        Ok(Response::empty()?.with_status(201))
    }

    fn open_socket(&self, call: &FromWorker) -> Result<Response, EdgeError> {
        let claims = call.claims()?;
        let mut guard = self.loaded.borrow_mut();
        let loaded = self.admit(&mut guard, claims, Part::Document)?;
        if !call.upgrade {
            return Err(EdgeError::UpgradeRequired);
        }
        let (conn, pair) = self.accept(
            loaded,
            SocketState {
                conn: 0,
                room: call.room.clone(),
                role: claims.role,
                generation: claims.generation,
                presence: Vec::new(),
                run: None,
            },
        )?;
        for frame in loaded.room.join(conn, claims.role) {
            pair.server.send_with_bytes(frame)?;
        }
        loaded.sockets.push((conn, pair.server));
        info!(room = %call.room, conn, role = claims.role.as_str(), sockets = loaded.sockets.len(), "socket opened");
        Ok(Response::from_websocket(pair.client)?)
    }

    /// Accepts a new socket (hibernatable) with `state`, under the room's next connection id;
    /// returns that id and the pair.
    fn accept(
        &self,
        loaded: &mut Loaded,
        mut state: SocketState,
    ) -> Result<(ConnId, WebSocketPair), EdgeError> {
        let pair = WebSocketPair::new()?;
        state.conn = loaded.next_conn;
        loaded.next_conn += 1;
        self.state.accept_web_socket(&pair.server);
        save_socket_state(&pair.server, &state);
        Ok((state.conn, pair))
    }

    /// A new link generation: every socket opened with an older one is closed at once.
    fn rotate(&self, call: &FromWorker) -> Result<Response, EdgeError> {
        let mut guard = self.loaded.borrow_mut();
        let loaded = self.admit(&mut guard, call.claims()?, Part::Presence)?;
        let next = loaded
            .generation
            .checked_add(1)
            .ok_or(StorageError::GenerationsExhausted)?;
        loaded.store.set_generation(next)?;
        loaded.generation = next;
        let stale: Vec<(WebSocket, SocketState)> = self
            .state
            .get_websockets()
            .into_iter()
            .filter_map(|ws| socket_state(&ws).map(|state| (ws, state)))
            .filter(|(_, state)| state.run.is_none() && state.generation < next)
            .collect();
        let reason = CloseReason::LinkRotated;
        // workerd finishes closing a socket outside of that socket's own event only ~10 s
        // later (measured under wrangler dev): the y-protocols "permission denied" message
        // tells the client at once.
        let denied = Message::PermissionDenied(&reason.reason()).encode();
        for (ws, state) in &stale {
            let _ = ws.send_with_bytes(&denied);
            close_socket(loaded, ws, state, &reason);
        }
        info!(room = %call.room, generation = next, closed = stale.len(), "links rotated");
        generation_response(next)
    }

    /// The loaded room (with `part` in memory), if `claims` are of its current generation.
    fn admit<'a>(
        &self,
        slot: &'a mut Option<Loaded>,
        claims: &Claims,
        part: Part,
    ) -> Result<&'a mut Loaded, EdgeError> {
        let loaded = self.ensure_loaded(slot, &claims.room, part)?;
        claims.check_generation(loaded.generation)?;
        Ok(loaded)
    }

    /// Checks `claims` against the room (for callers that must not hold the room across an
    /// await).
    pub(crate) fn check(&self, claims: &Claims) -> Result<(), EdgeError> {
        let mut guard = self.loaded.borrow_mut();
        self.admit(&mut guard, claims, Part::Presence).map(|_| ())
    }

    /// The room's SQLite storage.
    pub(crate) fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    /// The room (named `name`) in memory: after a wake, its presence is rebuilt from the
    /// sockets' attachments and its link generation read (one row); the document is read only
    /// when `part` needs it, so a wake for an awareness renewal reads no document.
    fn ensure_loaded<'a>(
        &self,
        slot: &'a mut Option<Loaded>,
        name: &str,
        part: Part,
    ) -> Result<&'a mut Loaded, EdgeError> {
        if slot.is_none() {
            let (store, generation) =
                RoomStore::open(self.state.storage().sql())?.ok_or(EdgeError::RoomNotFound)?;
            let mut room = codebox_room::Room::with_writer(Limits::default(), fresh_writer()?);
            let (mut sockets, mut runs, mut next_conn) = (Vec::new(), Vec::new(), 1);
            for ws in self.state.get_websockets() {
                if let Some(state) = socket_state(&ws) {
                    next_conn = next_conn.max(state.conn + 1);
                    match state.run {
                        Some(submission) => runs.push((submission, ws)),
                        None => {
                            room.rejoin(state.conn, state.role, state.presence);
                            sockets.push((state.conn, ws));
                        }
                    }
                }
            }
            info!(
                room = name,
                sockets = sockets.len(),
                generation,
                "room woke"
            );
            *slot = Some(Loaded {
                name: name.to_owned(),
                room,
                store,
                generation,
                sockets,
                runs,
                next_conn,
                document_loaded: false,
            });
        }
        let loaded = slot.as_mut().ok_or(StorageError::NotLoaded)?;
        if part == Part::Document && !loaded.document_loaded {
            let document = loaded.store.read_document()?;
            loaded
                .room
                .load_document(&document.snapshot, &document.log)
                .map_err(StorageError::from)?;
            loaded.document_loaded = true;
            info!(
                room = name,
                snapshot_bytes = document.snapshot.len(),
                log_entries = document.log.len(),
                "document loaded"
            );
        }
        Ok(loaded)
    }

    /// Drops a closed socket from the room; returns when the room next has work.
    fn forget_socket(&self, ws: &WebSocket) -> Option<u64> {
        let socket = socket_state(ws)?;
        if let Some(submission) = &socket.run {
            return self.lose_run(&socket.room, submission);
        }
        let mut guard = self.loaded.borrow_mut();
        let wake_at = match self.ensure_loaded(&mut guard, &socket.room, Part::Presence) {
            Ok(loaded) => disconnect(loaded, socket.conn),
            Err(error) => {
                warn!(room = %socket.room, %error, "room failed to load on close");
                None
            }
        };
        // After the room let it go (and wrote what waited, if it was the last).
        info!(room = %socket.room, conn = socket.conn, "socket closed");
        wake_at
    }

    /// Makes sure the alarm fires by `at`: an alarm set is a storage write, so one already
    /// due earlier is kept.
    async fn wake_at(&self, at: Option<u64>) {
        let Some(at) = at else {
            return;
        };
        if self.alarm_at.get().is_some_and(|set| set <= at) {
            return;
        }
        let time = ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(at as f64)));
        let room = self
            .loaded
            .borrow()
            .as_ref()
            .map(|loaded| loaded.name.clone());
        match self.state.storage().set_alarm(time).await {
            Ok(()) => {
                self.alarm_at.set(Some(at));
                info!(room, at, "alarm set");
            }
            Err(error) => warn!(room, %error, "setting the alarm failed"),
        }
    }
}

fn generation_response(generation: u32) -> Result<Response, EdgeError> {
    Ok(Response::from_json(
        &serde_json::json!({ "generation": generation }),
    )?)
}

/// Sends what one step produced (storage is already durable) and closes the sender if asked.
fn run_effects(loaded: &mut Loaded, ws: &WebSocket, mut socket: SocketState, effects: Effects) {
    for frame in &effects.reply {
        if let Err(error) = ws.send_with_bytes(frame) {
            warn!(room = %socket.room, conn = socket.conn, %error, "reply failed");
        }
    }
    broadcast(loaded, Some(socket.conn), &effects.broadcast);
    if effects.presence_changed {
        socket.presence = loaded.room.presence_of(socket.conn);
        fit_budget(&mut socket.presence, PRESENCE_BUDGET);
        save_socket_state(ws, &socket);
    }
    if let Some(reason) = effects.close {
        close_socket(loaded, ws, &socket, &reason);
    }
}

/// Closes one socket for `reason` and drops it from the room. A close the room decides is
/// followed by the socket's close event, which finds it gone; what the room must write is
/// written there, or at its next tick.
fn close_socket(loaded: &mut Loaded, ws: &WebSocket, socket: &SocketState, reason: &CloseReason) {
    info!(room = %socket.room, conn = socket.conn, code = reason.code(), %reason, "closing socket");
    let _ = ws.close(Some(reason.code()), Some(reason.reason()));
    disconnect(loaded, socket.conn);
}

/// Drops `conn` from the room and tells the others its awareness clients are gone; if it was
/// the last, writes what waited. Returns when the room next has work.
fn disconnect(loaded: &mut Loaded, conn: ConnId) -> Option<u64> {
    loaded.sockets.retain(|(c, _)| *c != conn);
    let effects = loaded.room.disconnect(conn);
    broadcast(loaded, Some(conn), &effects.broadcast);
    if let Err(error) = commit(loaded, &effects.store) {
        warn!(room = %loaded.name, %error, "writing the room as its last socket left failed");
    }
    effects.wake_at
}

/// Writes one step's store operations; logs what a write costs (rows written, as billed).
fn commit(loaded: &mut Loaded, ops: &[codebox_room::StoreOp]) -> Result<(), EdgeError> {
    if ops.is_empty() {
        return Ok(());
    }
    let rows_written = loaded.store.apply(ops)?;
    let bytes: usize = ops.iter().map(|op| op.bytes()).sum();
    info!(room = %loaded.name, ops = ops.len(), bytes, rows_written, "room committed");
    Ok(())
}

/// Writes `ops`; on failure the room in memory is ahead of storage, so it is dropped (and
/// reloaded on the next event) and every socket is closed: each client reconnects and sends
/// what storage lacks in its sync step. Returns whether the write succeeded.
fn write(slot: &mut Option<Loaded>, ops: &[codebox_room::StoreOp]) -> bool {
    let Some(loaded) = slot.as_mut() else {
        return false;
    };
    let Err(error) = commit(loaded, ops) else {
        return true;
    };
    warn!(room = %loaded.name, %error, "writing the room failed; closing its sockets");
    for (_, ws) in &loaded.sockets {
        let _ = ws.close(Some(INTERNAL_ERROR), Some("room storage failed"));
    }
    *slot = None;
    false
}

/// Sends `frames` to every socket but `sender`'s. Each frame is copied out of wasm memory
/// once, and that one buffer is handed to every socket (workerd keeps a reference to it).
fn broadcast(loaded: &Loaded, sender: Option<ConnId>, frames: &[Vec<u8>]) {
    for frame in frames {
        let buffer = Uint8Array::from(frame.as_slice()).buffer();
        for (conn, other) in &loaded.sockets {
            if Some(*conn) != sender {
                // A socket that is closing may refuse; its close event cleans it up.
                let socket: &worker::web_sys::WebSocket = other.as_ref();
                let _ = socket.send_with_array_buffer(&buffer);
            }
        }
    }
}

fn socket_state(ws: &WebSocket) -> Option<SocketState> {
    ws.deserialize_attachment().ok().flatten()
}

fn save_socket_state(ws: &WebSocket, state: &SocketState) {
    if let Err(error) = ws.serialize_attachment(state) {
        warn!(room = %state.room, conn = state.conn, %error, "saving socket state failed");
    }
}

/// Whether `message` is a client's SyncStep2 (its answer to the room's sync request).
fn is_sync_step2(message: &WebSocketIncomingMessage) -> bool {
    matches!(message, WebSocketIncomingMessage::Binary(frame)
        if matches!(Message::decode(frame), Ok(Message::SyncStep2(_))))
}

/// The earlier of two wake-up times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.into_iter().chain(b).min()
}

/// A fresh client id for the room's own edits, for this instance only (see
/// `codebox_room::Room::with_writer`): random, and never the ids a room reserves.
fn fresh_writer() -> Result<u32, EdgeError> {
    loop {
        let mut random = [0u8; 4];
        getrandom::getrandom(&mut random)
            .map_err(|e| EdgeError::Config(format!("no randomness: {e}")))?;
        let writer = u32::from_le_bytes(random);
        if writer > 1 {
            return Ok(writer);
        }
    }
}
