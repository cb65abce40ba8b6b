// The landing page: create a room or join one, and say who you are.

import { h, icon, setChildren } from './dom';
import { COLORS, MAX_NAME, cleanName, parseRoomInput, randomRoomName, recentRooms, saveUser, type User } from './identity';
import { LANGUAGES } from './languages';
import { avatar, logo } from './room';

export function mountLanding(root: HTMLElement, user: User, problem: string | null = null): void {
  document.title = 'CodeBox · code together';
  const go = (room: string) => location.assign(`/r/${encodeURIComponent(room)}`);

  const preview = h('span', { class: 'avatar-slot' });
  const showPreview = () => setChildren(preview, avatar(user.name, user.color));
  const nameInput = h('input', { class: 'input', value: user.name, maxlength: MAX_NAME, 'aria-label': 'Your name', dataset: { testid: 'landing-name' } });
  nameInput.addEventListener('input', () => {
    const name = cleanName(nameInput.value);
    if (name) {
      user.name = name;
      saveUser(user);
      showPreview();
    }
  });
  const swatches = h('div', { class: 'swatches' }, COLORS.map((color) => {
    const swatch = h('button', { class: `swatch${color === user.color ? ' selected' : ''}`, type: 'button', style: `background:${color}`, 'aria-label': `Colour ${color}`,
      onclick: () => {
        user.color = color;
        saveUser(user);
        for (const s of swatches.children) s.classList.toggle('selected', s === swatch);
        showPreview();
      } });
    return swatch;
  }));
  showPreview();

  const joinInput = h('input', { class: 'input', placeholder: 'Room name or link', 'aria-label': 'Room name or link', dataset: { testid: 'join-input' } });
  const joinError = h('p', { class: 'form-error', role: 'alert' }, problem ?? '');
  const join = (event: Event) => {
    event.preventDefault();
    const room = parseRoomInput(joinInput.value);
    if (room) go(room);
    else joinError.textContent = 'Room names are 1–64 letters, digits, “-” or “_” (or paste a room link).';
  };
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
        h('button', { class: 'btn primary wide', type: 'button', dataset: { testid: 'create-room' }, onclick: () => go(randomRoomName()) },
          'Create a room', icon('arrow')),
        h('div', { class: 'divider' }, h('span', null, 'or join one')),
        h('form', { class: 'join', onsubmit: join },
          joinInput,
          h('button', { class: 'btn', type: 'submit', dataset: { testid: 'join-room' } }, 'Join')),
        joinError,
        recent.length ? h('div', { class: 'recent' },
          h('div', { class: 'field-label' }, 'Recent rooms'),
          h('div', { class: 'recent-list' }, recent.map((room) => h('a', { class: 'chip', href: `/r/${encodeURIComponent(room)}` }, room)))) : null)),
    h('footer', { class: 'landing-foot' }, 'Programs run with no network, 5 s of time and 256 MiB of memory.')));
}
