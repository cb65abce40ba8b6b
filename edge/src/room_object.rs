//! The `Room` Durable Object: one per room name, holding the room's sockets and document.
//!
//! It uses the Hibernatable WebSocket API: workerd keeps the sockets open while the object is
//! evicted from memory, and wakes it (running `new` again) for the next frame. What must
//! survive that lives outside the object's memory: the document in SQLite (see [`crate::store`])
//! and, per socket, a [`SocketState`] attachment (its connection id and the awareness entries
//! it owns). The in-memory [`Loaded`] state is rebuilt from those two on the first event after
//! a wake. No timers or alarms run, so an idle room costs nothing.

use std::cell::RefCell;

use codebox_room::awareness::fit_budget;
use codebox_room::{AwarenessEntry, ConnId, Effects, Limits};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::http::EdgeError;
use crate::routes::ROOM_HEADER;
use crate::store::RoomStore;

/// Attachments may hold 16 KiB; leave room for the id, the name and serialisation overhead.
const PRESENCE_BUDGET: usize = 12 * 1024;
/// Close code for a failure on our side (RFC 6455 "internal error").
const INTERNAL_ERROR: u16 = 1011;

/// What each socket carries across hibernation.
#[derive(Debug, Serialize, Deserialize)]
struct SocketState {
    conn: ConnId,
    room: String,
    presence: Vec<AwarenessEntry>,
}

/// The room as it lives in memory between hibernations.
struct Loaded {
    room: codebox_room::Room,
    store: RoomStore,
    sockets: Vec<(ConnId, WebSocket)>,
    next_conn: ConnId,
}

/// The Durable Object behind `/rooms/{room}`.
#[durable_object]
pub struct Room {
    state: State,
    loaded: RefCell<Option<Loaded>>,
}

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        crate::log::init();
        Room {
            state,
            loaded: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.serve(req) {
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
        let mut guard = self.loaded.borrow_mut();
        let loaded = match self.ensure_loaded(&mut guard) {
            Ok(loaded) => loaded,
            Err(error) => {
                warn!(room = %socket.room, %error, "room failed to load");
                let _ = ws.close(Some(INTERNAL_ERROR), Some("room storage failed"));
                return Ok(());
            }
        };
        let effects = match &message {
            WebSocketIncomingMessage::Binary(frame) => loaded.room.receive(socket.conn, frame),
            WebSocketIncomingMessage::String(_) => loaded.room.receive_text(socket.conn),
        };
        if let Err(error) = loaded.store.apply(&effects.store) {
            // Memory is now ahead of storage: forget it and reload on the next event. The
            // sender re-sends its state when it reconnects, so nothing acknowledged is lost.
            warn!(room = %socket.room, conn = socket.conn, %error, "storing an update failed");
            *guard = None;
            let _ = ws.close(Some(INTERNAL_ERROR), Some("room storage failed"));
            return Ok(());
        }
        run_effects(loaded, &ws, socket, effects);
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.forget_socket(&ws);
        // Complete the closing handshake; the socket may already be gone.
        let _ = ws.close(Some(1000), Some("bye"));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.forget_socket(&ws);
        Ok(())
    }
}

impl Room {
    fn serve(&self, req: Request) -> Result<Response, EdgeError> {
        let mut guard = self.loaded.borrow_mut();
        let loaded = self.ensure_loaded(&mut guard)?;
        if req.path().ends_with("/snapshot") {
            let mut response = Response::from_bytes(loaded.room.snapshot())?;
            response
                .headers_mut()
                .set("Content-Type", "application/octet-stream")?;
            response.headers_mut().set("Cache-Control", "no-store")?;
            return Ok(response);
        }
        let room = req.headers().get(ROOM_HEADER)?.unwrap_or_default();
        let pair = WebSocketPair::new()?;
        let conn = loaded.next_conn;
        loaded.next_conn += 1;
        self.state.accept_web_socket(&pair.server);
        let ping =
            WebSocketRequestResponsePair::new("ping", "pong").map_err(worker::Error::from)?;
        self.state.set_websocket_auto_response(&ping);
        save_socket_state(
            &pair.server,
            &SocketState {
                conn,
                room: room.clone(),
                presence: Vec::new(),
            },
        );
        for frame in loaded.room.greeting() {
            pair.server.send_with_bytes(frame)?;
        }
        loaded.sockets.push((conn, pair.server));
        info!(room = %room, conn, sockets = loaded.sockets.len(), "socket opened");
        Ok(Response::from_websocket(pair.client)?)
    }

    /// The room in memory, loading it from storage and the sockets' attachments after a wake.
    fn ensure_loaded<'a>(&self, slot: &'a mut Option<Loaded>) -> Result<&'a mut Loaded, EdgeError> {
        if slot.is_none() {
            let (store, stored) = RoomStore::open(self.state.storage().sql())?;
            let mut room =
                codebox_room::Room::load(Limits::default(), &stored.snapshot, &stored.log)
                    .map_err(|e| EdgeError::Storage(e.to_string()))?;
            let mut sockets = Vec::new();
            for ws in self.state.get_websockets() {
                if let Some(state) = socket_state(&ws) {
                    room.restore_presence(state.conn, state.presence);
                    sockets.push((state.conn, ws));
                }
            }
            let next_conn = sockets.iter().map(|(conn, _)| conn + 1).max().unwrap_or(1);
            info!(
                snapshot_bytes = stored.snapshot.len(),
                log_entries = stored.log.len(),
                sockets = sockets.len(),
                "room loaded"
            );
            *slot = Some(Loaded {
                room,
                store,
                sockets,
                next_conn,
            });
        }
        slot.as_mut()
            .ok_or_else(|| EdgeError::Storage("room failed to load".into()))
    }

    fn forget_socket(&self, ws: &WebSocket) {
        let Some(socket) = socket_state(ws) else {
            return;
        };
        let mut guard = self.loaded.borrow_mut();
        match self.ensure_loaded(&mut guard) {
            Ok(loaded) => disconnect(loaded, socket.conn),
            Err(error) => warn!(room = %socket.room, %error, "room failed to load on close"),
        }
        info!(room = %socket.room, conn = socket.conn, "socket closed");
    }
}

/// Sends what one step produced (storage is already durable) and closes the sender if asked.
fn run_effects(loaded: &mut Loaded, ws: &WebSocket, mut socket: SocketState, effects: Effects) {
    for frame in &effects.reply {
        if let Err(error) = ws.send_with_bytes(frame) {
            warn!(room = %socket.room, conn = socket.conn, %error, "reply failed");
        }
    }
    broadcast(loaded, socket.conn, &effects.broadcast);
    if effects.presence_changed {
        socket.presence = loaded.room.presence_of(socket.conn);
        fit_budget(&mut socket.presence, PRESENCE_BUDGET);
        save_socket_state(ws, &socket);
    }
    if let Some(reason) = effects.close {
        info!(room = %socket.room, conn = socket.conn, code = reason.code(), %reason, "closing socket");
        let _ = ws.close(Some(reason.code()), Some(reason.reason()));
        disconnect(loaded, socket.conn);
    }
}

/// Drops `conn` from the room and tells the others its awareness clients are gone.
fn disconnect(loaded: &mut Loaded, conn: ConnId) {
    loaded.sockets.retain(|(c, _)| *c != conn);
    let effects = loaded.room.disconnect(conn);
    broadcast(loaded, conn, &effects.broadcast);
}

fn broadcast(loaded: &Loaded, sender: ConnId, frames: &[Vec<u8>]) {
    for frame in frames {
        for (conn, other) in &loaded.sockets {
            if *conn != sender {
                // A socket that is closing may refuse; its close event cleans it up.
                let _ = other.send_with_bytes(frame);
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
