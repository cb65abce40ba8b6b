// How this page's presence travels: only its own, and its renewals in step with the room's, so
// that an idle room's Durable Object can hibernate; the file it has open, only when that changes.
//
// The stock provider (y-websocket 3.1) sends every awareness change it sees, the ones it received
// included: each peer's state comes back to the server from every other page, one frame per page,
// and the server drops them all (it already has that clock). `sendOwnPresenceOnly` sends only
// this page's own entry; the server has everyone's and gives them to each page that joins.
//
// y-protocols' Awareness renews this page's state every 15 s (its outdatedTimeout, 30 s, halved)
// even when nothing changed, and every other page drops a peer it has not heard from in 30 s.
// Each page renews on its own clock, so an idle room of ten hears a renewal every 1.5 s on
// average: its Durable Object never goes 10 s without an event, so it never hibernates.
// `renewInStep` renews early when another page's renewal (not a change: a cursor moving)
// arrives and this page's own is at least half a period old: after one period every page renews
// in the same burst, one burst per period, and the room sleeps in between (crates/room relays a
// burst's renewals together). A page only renews sooner than it would have, so nobody's presence
// times out.
//
// This module has no run-time imports: bench/providers loads it into its Node clients as well.

import type { WebsocketProvider } from 'y-websocket';

/** A page whose own state is at least this old renews when it hears someone else's. */
export const RENEW_IN_STEP_AFTER_MS = 7_500;

/** What an awareness 'update' event lists. */
interface Changes { added: number[]; updated: number[]; removed: number[] }

/** Both of this module's rules, for the page's provider. */
export function quietPresence(provider: WebsocketProvider): void {
  sendOwnPresenceOnly(provider);
  renewInStep(provider);
}

/** The provider sends this page's own awareness entry and no one else's. */
export function sendOwnPresenceOnly(provider: WebsocketProvider): void {
  const { awareness } = provider;
  const me = awareness.clientID;
  const stock = provider._awarenessUpdateHandler;
  const ownOnly = ({ added, updated, removed }: Changes, origin: unknown) => {
    const mine = (clients: number[]) => clients.filter((client) => client === me);
    if (![added, updated, removed].some((clients) => clients.includes(me))) return;
    stock({ added: mine(added), updated: mine(updated), removed: mine(removed) }, origin);
  };
  awareness.off('update', stock);
  awareness.on('update', ownOnly);
  provider._awarenessUpdateHandler = ownOnly; // what destroy() unsubscribes
}

/** This page renews its awareness when another page's renewal arrives and its own is half due. */
export function renewInStep(provider: WebsocketProvider): void {
  const { awareness } = provider;
  // For one received message y-protocols emits 'change' (entries whose state changed) just
  // before 'update' (every entry with a newer clock): the difference is the renewals.
  let changed: number[] = [];
  awareness.on('change', ({ added, updated }: Changes) => { changed = added.concat(updated); });
  awareness.on('update', ({ updated }: Changes, origin: unknown) => {
    const renewals = updated.filter((client) => client !== awareness.clientID && !changed.includes(client));
    changed = [];
    if (origin === 'local' || renewals.length === 0) return;
    const state = awareness.getLocalState();
    const own = awareness.meta.get(awareness.clientID);
    if (state === null || own === undefined) return;
    if (Date.now() - own.lastUpdated >= RENEW_IN_STEP_AFTER_MS) awareness.setLocalState(state);
  });
}

/**
 * Says which file this page has open (the awareness field `file`, a path of the room's current
 * project), so the file tree shows who is in which file. Written only when it changes, in one
 * update with the cursor cleared: the cursor pointed into the file left behind, and the new
 * file's editor sets it again once it has the focus. So a switch of file costs one awareness
 * frame, and staying in a file none.
 */
export function publishOpenFile(awareness: WebsocketProvider['awareness'], path: string): void {
  const state = awareness.getLocalState();
  if (state === null || state.file === path) return;
  awareness.setLocalState({ ...state, file: path, cursor: null });
}
