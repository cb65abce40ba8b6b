// The floor: the least a room can be in workerd, to tell the runtime's own cost per socket and
// per frame from the CodeBox Room's (bench/run-room-bench.sh, server `floor`).
//
// One Durable Object per room name, sockets accepted with the hibernation API as the edge does,
// and no document: it greets each socket with an empty SyncStep1 as room servers do, answers a
// SyncStep1 with an empty SyncStep2 (so clients count as synced), drops SyncStep2 (a client's
// state, for a server that keeps none) and relays each Update to the room's other sockets.
// An awareness frame goes back to its sender alone, which keeps the provider's 30 s liveness
// check fed: relaying it would need the clocks a room server keeps, since stock providers send
// back every entry they receive, and a relay without them multiplies each renewal by the room's
// size at every hop. Like the edge, it refuses permessage-deflate. It stores nothing and checks
// nothing: it is not a room server, it is what any room server in workerd pays at least.

const EMPTY_SYNC_STEP_1 = Uint8Array.of(0, 0, 1, 0); // sync, step 1, an empty state vector
const EMPTY_SYNC_STEP_2 = Uint8Array.of(0, 1, 2, 0, 0); // sync, step 2, a 2-byte empty update

export class FloorRoom {
  constructor(ctx) {
    this.ctx = ctx;
    this.sockets = new Set(ctx.getWebSockets()); // after a wake from hibernation too
  }

  fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    this.sockets.add(server);
    server.send(EMPTY_SYNC_STEP_1);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    if (typeof message === 'string') return;
    const bytes = new Uint8Array(message);
    if (bytes[0] === 0 && bytes[1] === 0) {
      ws.send(EMPTY_SYNC_STEP_2);
      return;
    }
    if (bytes[0] === 1) {
      ws.send(message);
      return;
    }
    if (bytes[0] !== 0 || bytes[1] !== 2) return;
    for (const other of this.sockets) {
      if (other !== ws) {
        try {
          other.send(message);
        } catch {} // closing; its close event removes it
      }
    }
  }

  webSocketClose(ws) {
    this.sockets.delete(ws);
  }

  webSocketError(ws) {
    this.sockets.delete(ws);
  }
}

export default {
  async fetch(request, env) {
    if (request.headers.get('Upgrade') !== 'websocket') return new Response('floor room: WebSocket only\n', { status: 426 });
    const name = new URL(request.url).pathname.split('/').pop() || 'floor';
    const answer = await env.ROOMS.get(env.ROOMS.idFromName(name)).fetch(request);
    if (answer.status !== 101) return answer;
    // The Durable Object's response headers are immutable: answer again, without extensions.
    return new Response(null, { status: 101, webSocket: answer.webSocket, headers: { 'Sec-WebSocket-Extensions': 'none' } });
  },
};
