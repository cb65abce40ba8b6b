// The IDE's entry: `/` is the landing page, `/r/{room}` a room (the edge serves index.html for
// both; see wrangler.toml [assets]).

import './styles.css';
import { loadUser, ROOM_NAME } from './identity';
import { mountLanding } from './landing';
import { mountRoom } from './room';

const root = document.getElementById('app') as HTMLElement;
const user = loadUser();
const match = /^\/r\/([^/]+)\/?$/.exec(location.pathname);

if (match) {
  let room = '';
  try {
    room = decodeURIComponent(match[1]);
  } catch {
    // Malformed escapes: not a room name.
  }
  if (ROOM_NAME.test(room)) mountRoom(root, room, user);
  else mountLanding(root, user, `“${room || match[1]}” is not a room name: use 1–64 letters, digits, “-” or “_”.`);
} else {
  if (location.pathname !== '/') history.replaceState(null, '', '/');
  mountLanding(root, user);
}
