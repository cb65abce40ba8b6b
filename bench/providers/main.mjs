// The room benchmark with full clients: every client is what the IDE runs (a Y.Doc, the stock
// y-websocket WebsocketProvider with the room's token, awareness holding a user and a cursor),
// on the `ws` client with its defaults (it offers permessage-deflate, as browsers do). One
// server per run; bench/run-room-bench.sh runs each mode against each server. Modes:
//
//   fanout    1 writer + N readers in one room: latency from the writer's edit to each
//             reader seeing it (p50/p90/p99/max), deliveries lost, and the server's CPU per
//             edit over a window that takes in the 15 s awareness heartbeats (fanout.mjs).
//   idle      C clients spread over R rooms, idle after joining: the server's memory per room
//             and per connection, its CPU while idle, and whether memory comes back once they
//             leave (idle.mjs).
//   coldjoin  a room holding a 100,000-edit document (~460 KiB): the time from a fresh
//             provider to synced with the full text; --rejoin times it again after the server
//             was restarted (coldjoin.mjs).
//   wakes     an idle room of N people joined over time: the events the server handles per
//             minute and, from the edge's log, its wakes from hibernation and alarms (wakes.mjs).
//
//   node bench/providers/main.mjs MODE --url ws://127.0.0.1:8787/rooms --rooms-api http://127.0.0.1:8787 [options]
//   node bench/providers/main.mjs MODE --help
//
// Server CPU is read from /proc for --server-pid / --server-tree processes, server memory for
// --memory-pid processes; --summary FILE --server NAME adds the key figures to FILE for the
// side-by-side table (summary.mjs). Exit status: 0 ok, 1 error, 2 lost or incomplete data,
// 64 usage.

const MODES = {
  fanout: () => import('./fanout.mjs'),
  idle: () => import('./idle.mjs'),
  coldjoin: () => import('./coldjoin.mjs'),
  wakes: () => import('./wakes.mjs'),
};

const USAGE = `usage: node bench/providers/main.mjs ${Object.keys(MODES).join('|')} --url WS [options] (MODE --help for its options)`;

const mode = process.argv[2];
if (!MODES[mode]) {
  process.stderr.write(`${mode ? `unknown mode "${mode}"\n` : ''}${USAGE}\n`);
  process.exit(64);
}
const { main } = await MODES[mode]();
process.setMaxListeners(0); // every WebsocketProvider adds a process 'exit' listener of its own
main(process.argv.slice(3)).then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`error (${mode}): ${error.message}\n`);
    process.exit(1);
  },
);
