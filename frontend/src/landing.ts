// The landing page: create a room (POST /rooms) or open one from a pasted link, reopen a recent
// one, and say who you are.

import { createRoom, parseRoomInput, recentRooms, rememberAccess, rememberLinks, savedAccess } from './access';
import { ApiError, languages } from './api';
import { avatar, h, icon, logo, setChildren } from './dom';
import type { User } from './identity';
import { LANGUAGES } from './languages';
import { formatBytes, formatSeconds, runLimits, setRunLimits } from './limits';
import { identityFields } from './profile';

/** What the footer says of the sandbox, with the limits' figures once the API has served them. */
function sandboxSummary(): string {
  const limits = runLimits();
  return limits
    ? `Programs run with no network, ${formatSeconds(limits.run_ms)} of time and ${formatBytes(limits.memory_bytes)} of memory.`
    : 'Programs run with no network, within limits of time and memory.';
}

export function mountLanding(root: HTMLElement, user: User, problem: string | null = null): void {
  document.title = 'CodeBox · code together';
  const footer = h('footer', { class: 'landing-foot' }, sandboxSummary());
  const go = (room: string) => location.assign(`/r/${encodeURIComponent(room)}`);

  const preview = h('span', { class: 'avatar-slot' });
  const showPreview = () => setChildren(preview, avatar(user.name, user.color));
  const { nameInput, swatches } = identityFields(user, showPreview, 'landing-name');
  showPreview();

  const joinInput = h('input', { class: 'input', placeholder: 'Paste a room link', 'aria-label': 'Room link', dataset: { testid: 'join-input' } });
  const joinError = h('p', { class: 'form-error', role: 'alert' }, problem ?? '');
  const join = (event: Event) => {
    event.preventDefault();
    const found = parseRoomInput(joinInput.value);
    if (!found) {
      joinError.textContent = 'That is not a room link: paste the link someone shared with you.';
    } else if (found.role && found.token) {
      rememberAccess({ room: found.room, role: found.role, token: found.token });
      go(found.room);
    } else if (savedAccess(found.room)) {
      go(found.room);
    } else {
      joinError.textContent = 'A room opens only with its whole link (the part after “#” is its key): paste the link as it was shared.';
    }
  };
  const createLabel = h('span', null, 'Create a room');
  const createButton = h('button', { class: 'btn primary wide', type: 'button', dataset: { testid: 'create-room' } }, createLabel, icon('arrow'));
  createButton.addEventListener('click', async () => {
    createButton.disabled = true;
    createLabel.textContent = 'Creating…';
    joinError.textContent = '';
    try {
      const links = await createRoom();
      if (!rememberLinks(links)) {
        // Nothing can be remembered here (storage off): the link itself carries the key.
        location.assign(links.edit_url);
        return;
      }
      go(links.room);
    } catch (error) {
      createButton.disabled = false;
      createLabel.textContent = 'Create a room';
      const e = error instanceof ApiError ? error : new ApiError('error', String(error));
      joinError.textContent = e.code === 'rate_limited'
        ? 'You have created many rooms in a short time: try again in a few minutes.'
        : `The room could not be created: ${e.message}`;
    }
  });
  const recent = recentRooms();

  setChildren(root, h('div', { class: 'landing' },
    h('header', { class: 'landing-top' }, h('a', { class: 'brand', href: '/' }, logo(), h('span', { class: 'brand-name' }, 'CodeBox'))),
    h('main', { class: 'landing-main' },
      h('section', { class: 'hero' },
        h('h1', null, 'Write code together.', h('br'), h('span', { class: 'hero-accent' }, 'Run it in a sandbox.')),
        h('p', { class: 'lede' }, 'Open a room, send the link, and edit the same program in real time. Press Run and everyone in the room sees the output.'),
        h('ul', { class: 'langs' }, LANGUAGES.map((l) => h('li', null, l.name)))),
      h('section', { class: 'card' },
        h('div', { class: 'card-block' },
          h('label', { class: 'field-label' }, 'Your name'),
          h('div', { class: 'name-row' }, preview, nameInput),
          h('label', { class: 'field-label' }, 'Your colour'),
          swatches),
        createButton,
        h('div', { class: 'divider' }, h('span', null, 'or open a link')),
        h('form', { class: 'join', onsubmit: join },
          joinInput,
          h('button', { class: 'btn', type: 'submit', dataset: { testid: 'join-room' } }, 'Join')),
        joinError,
        recent.length ? h('div', { class: 'recent' },
          h('div', { class: 'field-label' }, 'Recent rooms'),
          h('div', { class: 'recent-list' }, recent.map((r) => h('a', { class: 'chip', href: `/r/${encodeURIComponent(r.room)}`, title: r.role === 'edit' ? 'You can edit' : 'You can view', dataset: { testid: 'recent-room' } },
            r.room, r.role === 'view' ? h('span', { class: 'chip-role' }, 'view') : null)))) : null)),
    footer));
  languages().then(({ limits }) => {
    setRunLimits(limits);
    footer.textContent = sandboxSummary();
  }, () => { /* the summary without figures stays */ });
}
