// Who may open a room (Contract 3): a room opens only with a token, which the edge signs and
// which names the room, the role (`edit` or `view`) and the room's link generation. Links carry
// the token in the URL fragment (`/r/{room}#edit=T`), which browsers never send to a server;
// this browser remembers the tokens it has seen, per room, so a room keeps opening after a
// reload or from the recent rooms. The edge calls here are the room half of the edge's HTTP API:
// create a room, read its links, rotate them, and ask why a socket was refused.

import { ApiError, request } from './api';

export type Role = 'edit' | 'view';

/** A room as this browser may open it. */
export interface RoomAccess {
  room: string;
  role: Role;
  token: string;
}

/** What `POST /rooms`, `GET /rooms/{room}/links` and `POST /rooms/{room}/rotate` answer. */
export interface RoomLinks {
  room: string;
  edit_token: string;
  view_token: string;
  edit_url: string;
  view_url: string;
}

/** Room names as Contract 1 allows them: 1-64 of [A-Za-z0-9_-]. */
export const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Tokens are URL-safe and at most 256 bytes (Contract 3). */
const TOKEN_PATTERN = '[A-Za-z0-9_-]{1,256}';
const TOKEN = new RegExp(`^${TOKEN_PATTERN}$`);
const FRAGMENT = new RegExp(`^#?(edit|view)=(${TOKEN_PATTERN})$`);

const STORE_KEY = 'codebox.rooms';
/** The rooms remembered; the oldest are forgotten first. */
const MAX_REMEMBERED = 24;

/** One remembered room: its tokens as last seen, and when it was last opened. */
interface Remembered {
  room: string;
  edit?: string;
  view?: string;
  openedAt: number;
}

/** The role and token a link's fragment (`#edit=T` or `#view=T`) carries. */
export function parseFragment(hash: string): { role: Role; token: string } | null {
  const match = FRAGMENT.exec(hash);
  return match ? { role: match[1] as Role, token: match[2] } : null;
}

/** The link that opens `access.room` with its token. */
export function roomLink(access: RoomAccess): string {
  return `${location.origin}/r/${encodeURIComponent(access.room)}#${access.role}=${access.token}`;
}

/** A room and maybe a token from what someone typed or pasted: a link, a `/r/{room}` path or a
 * bare room name. */
export function parseRoomInput(input: string): { room: string; role?: Role; token?: string } | null {
  const text = input.trim();
  const fromPath = /\/r\/([^/?#]+)\/?(#.*)?$/.exec(text);
  let room = text;
  if (fromPath) {
    try {
      room = decodeURIComponent(fromPath[1]);
    } catch {
      return null;
    }
  }
  if (!ROOM_NAME.test(room)) return null;
  const fragment = fromPath?.[2] ? parseFragment(fromPath[2]) : null;
  return fragment ? { room, ...fragment } : { room };
}

function load(): Remembered[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(STORE_KEY) ?? '[]');
    if (!Array.isArray(parsed)) return [];
    return parsed.filter((r): r is Remembered => !!r && typeof r === 'object'
      && typeof r.room === 'string' && ROOM_NAME.test(r.room)
      && (r.edit === undefined || (typeof r.edit === 'string' && TOKEN.test(r.edit)))
      && (r.view === undefined || (typeof r.view === 'string' && TOKEN.test(r.view)))
      && (r.edit !== undefined || r.view !== undefined)
      && typeof r.openedAt === 'number');
  } catch {
    return [];
  }
}

/** Whether the list was stored (storage may be full or disabled). */
function save(rooms: Remembered[]): boolean {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(rooms.slice(0, MAX_REMEMBERED)));
    return true;
  } catch {
    return false;
  }
}

function upsert(room: string, change: (entry: Remembered) => void): boolean {
  const rooms = load();
  const entry = rooms.find((r) => r.room === room) ?? { room, openedAt: 0 };
  change(entry);
  const rest = rooms.filter((r) => r.room !== room);
  return save(entry.edit || entry.view ? [entry, ...rest] : rest);
}

/** Remembers `access` (and marks the room as just opened); whether it could be stored. */
export function rememberAccess(access: RoomAccess): boolean {
  return upsert(access.room, (entry) => {
    entry[access.role] = access.token;
    entry.openedAt = Date.now();
  });
}

/** Remembers both of a room's links (after creating or rotating it). */
export function rememberLinks(links: RoomLinks): boolean {
  return upsert(links.room, (entry) => {
    entry.edit = links.edit_token;
    entry.view = links.view_token;
    entry.openedAt = Date.now();
  });
}

/** Forgets a token the edge no longer accepts (or every token of a room that does not exist). */
export function forgetAccess(room: string, token?: string): void {
  upsert(room, (entry) => {
    if (token === undefined || entry.edit === token) delete entry.edit;
    if (token === undefined || entry.view === token) delete entry.view;
  });
}

/** The strongest access this browser holds for `room`: edit if it has an edit token. */
export function savedAccess(room: string): RoomAccess | null {
  const entry = load().find((r) => r.room === room);
  if (entry?.edit) return { room, role: 'edit', token: entry.edit };
  if (entry?.view) return { room, role: 'view', token: entry.view };
  return null;
}

/** The rooms this browser can open, most recently opened first. */
export function recentRooms(): RoomAccess[] {
  return load().sort((a, b) => b.openedAt - a.openedAt)
    .map((r) => savedAccess(r.room))
    .filter((a): a is RoomAccess => a !== null);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const roomPath = (room: string) => `/rooms/${encodeURIComponent(room)}`;

/** `POST /rooms`: a new room, with its edit and view links. */
export function createRoom(): Promise<RoomLinks> {
  return request<RoomLinks>('/rooms', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 15_000);
}

/** `GET /rooms/{room}/links`: the room's current links (edit access only). */
export function fetchLinks(access: RoomAccess): Promise<RoomLinks> {
  return request<RoomLinks>(`${roomPath(access.room)}/links`, { headers: bearer(access.token) }, 10_000);
}

/** `POST /rotate`: new links for the room; every socket opened with the old ones is closed. */
export function rotateLinks(access: RoomAccess): Promise<RoomLinks> {
  return request<RoomLinks>(`${roomPath(access.room)}/rotate`, { method: 'POST', headers: bearer(access.token) }, 15_000);
}

/** Why the edge refuses `access`, or null when it would accept it (or cannot say now). The room
 * socket is a plain GET: without an upgrade the edge checks the token and the room, then answers
 * 426, so a refused WebSocket, whose reason browsers hide, can be explained. */
export async function refusal(access: RoomAccess): Promise<ApiError | null> {
  try {
    await request(`${roomPath(access.room)}?token=${encodeURIComponent(access.token)}`, {}, 10_000);
    return null;
  } catch (error) {
    if (error instanceof ApiError && error.status !== null && [401, 403, 404].includes(error.status)) return error;
    return null;
  }
}

/** A sentence for a person whose link the edge refused. */
export function refusalMessage(error: ApiError): string {
  switch (error.code) {
    case 'link_rotated':
      return 'This link was replaced by a newer one: someone with edit access rotated the room’s links. Ask them for the new link.';
    case 'token_expired':
      return 'This link has expired. Ask someone in the room for a new one.';
    case 'room_not_found':
      return 'This room does not exist (or no longer exists).';
    case 'token_required':
      return 'This room opens only with its link. Ask someone in the room to share it with you.';
    default:
      return `This link does not open this room (${error.message}). Ask someone in the room for a new one.`;
  }
}
