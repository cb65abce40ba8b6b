// The IDE's entry: `/` is the landing page, `/r/{room}` a room (the edge serves index.html for
// both; see wrangler.toml [assets]). A room opens with the token in the link's fragment, or with
// one this browser remembers (access.ts).

import './styles.css';
import { ROOM_NAME, parseFragment, rememberAccess, savedAccess } from './access';
import { loadUser } from './identity';
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
  const fromLink = parseFragment(location.hash);
  const access = fromLink ? { room, ...fromLink } : savedAccess(room);
  if (!ROOM_NAME.test(room)) {
    mountLanding(root, user, `“${room || match[1]}” is not a room name: use 1–64 letters, digits, “-” or “_”.`);
  } else if (!access) {
    mountLanding(root, user, 'This room opens only with its link: ask someone in the room to send it to you.');
  } else {
    // Once remembered, the token leaves the address bar, where a screen share or a screenshot
    // would show it (the Share menu gives the links).
    if (fromLink && rememberAccess(access)) history.replaceState(null, '', `/r/${encodeURIComponent(room)}`);
    mountRoom(root, access, user);
  }
  // Another link pasted into the address bar changes only the fragment: open it.
  window.addEventListener('hashchange', () => {
    if (parseFragment(location.hash)) location.reload();
  });
} else {
  if (location.pathname !== '/') history.replaceState(null, '', '/');
  mountLanding(root, user);
}
