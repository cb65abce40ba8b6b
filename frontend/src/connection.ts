// The connection to the room: the state pill in the top bar, and the end of access.
//
// A socket the edge refuses before the upgrade (a rotated-out, expired or foreign link, a room
// that does not exist) looks to the browser like any network failure: the close event says
// nothing. So after an attempt that never opened, the edge is asked why (`refusal` in access.ts).
// An open socket whose link is rotated is told at once by a y-protocols auth message ("permission
// denied"). Either way the provider stops, instead of reconnecting forever, and the page says why.

import { messageAuth, type WebsocketProvider } from 'y-websocket';
import * as authProtocol from 'y-protocols/auth';
import { refusal, refusalMessage, type RoomAccess } from './access';
import { ApiError } from './api';
import { h } from './dom';

type State = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'locked';

const LABEL: Record<State, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  locked: 'No access',
};
/** After this long without the server (browser online), "Reconnecting" becomes "Offline". */
const OFFLINE_AFTER_MS = 15_000;
/** The auth message's reason when the room's links were rotated (the edge's CloseReason). */
const LINK_ROTATED = 'link rotated';

export interface ConnectionHooks {
  /** The first sync with the room. */
  synced(): void;
  /** The edge no longer accepts this page's link; `code` is the edge's error code. */
  lockedOut(message: string, code: string): void;
  /** Something the pill shows changed. */
  changed(): void;
}

/** Watches `provider`; `access()` is the link it connects with (it changes on rotation). */
export function watchConnection(provider: WebsocketProvider, access: () => RoomAccess, hooks: ConnectionHooks): {
  pill: HTMLElement;
  render(): void;
  /** Connected and synced: what the room shows is the room's state. */
  online(): boolean;
  /** Runs `rotation` (this page rotating the links) without taking the old link's end as a lockout. */
  rotating<T>(rotation: Promise<T>): Promise<T>;
} {
  const pill = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite', dataset: { testid: 'connection' } },
    h('span', { class: 'dot' }), h('span', { class: 'label' }));
  const label = pill.querySelector('.label') as HTMLElement;
  let everSynced = false;
  let lostAt = 0; // when the connection was last lost (0: not lost)
  let opened = false; // whether the current attempt's socket opened
  let locked = false;
  let rotations = 0; // rotations of this page in flight
  let asking = false;

  const online = () => provider.wsconnected && provider.synced;
  const state = (): State => {
    if (locked) return 'locked';
    if (!navigator.onLine) return 'offline';
    if (online()) return 'connected';
    if (!everSynced) return lostAt && Date.now() - lostAt > OFFLINE_AFTER_MS ? 'offline' : 'connecting';
    return Date.now() - lostAt > OFFLINE_AFTER_MS ? 'offline' : 'reconnecting';
  };

  const lockOut = (message: string, code: string) => {
    if (locked || rotations > 0) return;
    locked = true;
    provider.disconnect();
    hooks.lockedOut(message, code);
    hooks.changed();
  };

  provider.on('status', ({ status }) => {
    opened = status === 'connected';
    if (status === 'disconnected' && !lostAt) lostAt = Date.now();
    if (status === 'connecting' && !lostAt && !everSynced) lostAt = Date.now();
    hooks.changed();
  });
  provider.on('sync', (synced: boolean) => {
    if (!synced) return;
    lostAt = 0;
    if (!everSynced) {
      everSynced = true;
      hooks.synced();
    }
    hooks.changed();
  });
  // A refused socket: ask the edge why (once at a time; the provider keeps retrying meanwhile).
  provider.on('connection-close', (event) => {
    if (event === null || opened || asking || locked || rotations > 0) return;
    asking = true;
    const tried = access();
    refusal(tried).then((error) => {
      asking = false;
      if (error && access().token === tried.token) lockOut(refusalMessage(error), error.code);
    }, () => { asking = false; });
  });
  // An open socket told its link is no longer valid.
  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    authProtocol.readAuthMessage(decoder, provider.doc, (_doc, reason) => {
      const code = reason === LINK_ROTATED ? 'link_rotated' : 'permission_denied';
      lockOut(refusalMessage(new ApiError(code, reason)), code);
    });
  };

  // The browser knows before the socket does: go offline at once, and come back at once.
  window.addEventListener('offline', () => {
    lostAt = lostAt || Date.now();
    provider.disconnect();
    hooks.changed();
  });
  window.addEventListener('online', () => {
    if (!locked) provider.connect();
    hooks.changed();
  });

  return {
    pill,
    online,
    render() {
      const now = state();
      pill.dataset.state = now;
      label.textContent = LABEL[now];
      pill.title = now === 'connected'
        ? 'Edits are shared live'
        : now === 'locked'
          ? 'This page’s link no longer opens the room'
          : 'Your edits are kept here and sync when the connection returns';
    },
    async rotating(rotation) {
      rotations += 1;
      try {
        return await rotation;
      } finally {
        rotations -= 1;
      }
    },
  };
}
