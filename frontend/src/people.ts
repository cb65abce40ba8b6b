// Who is here: the avatars in the top bar and the People panel, from the room's awareness, with
// the file each one has open (the field `file`: presence.ts; none from the IDE's previous
// version, whose people are in the entry file). A viewer shows as viewing: the edge stamps `role: "view"` into every awareness state a view-only
// socket sends, so nobody can pass for an editor (or make someone else look like a viewer).

import type { Awareness } from 'y-protocols/awareness';
import { avatar, h, panelHead, setChildren } from './dom';

interface Person {
  client: number;
  name: string;
  color: string;
  me: boolean;
  viewer: boolean;
  file: string | null;
}

/** The People panel and the top bar's avatars; `render` redraws them when who is here changed. */
export function createPeople(awareness: Awareness, iAmViewer: boolean): { avatars: HTMLElement; panel: HTMLElement; render(): void } {
  const avatars = h('div', { class: 'avatars', dataset: { testid: 'avatars' } });
  const list = h('ul', { class: 'people', dataset: { testid: 'people' } });
  const count = h('span', { class: 'count' });
  const panel = h('section', { class: 'panel panel-people' }, panelHead('users', 'People', count), list);
  let shown = '';

  function people(): Person[] {
    const me = awareness.clientID;
    const found: Person[] = [];
    awareness.getStates().forEach((state, client) => {
      const u = (state as { user?: { name?: unknown; color?: unknown } }).user;
      if (!u || typeof u.name !== 'string') return;
      found.push({
        client,
        name: u.name,
        color: typeof u.color === 'string' ? u.color : '#888',
        me: client === me,
        viewer: client === me ? iAmViewer : (state as { role?: unknown }).role === 'view',
        file: typeof (state as { file?: unknown }).file === 'string' ? (state as { file: string }).file : null,
      });
    });
    // You first, then editors, then viewers, each by name.
    return found.sort((a, b) => Number(b.me) - Number(a.me) || Number(a.viewer) - Number(b.viewer)
      || a.name.localeCompare(b.name) || a.client - b.client);
  }

  function render(): void {
    const here = people();
    const key = JSON.stringify(here);
    if (key === shown) return;
    shown = key;
    const others = here.filter((p) => !p.me);
    setChildren(avatars, others.slice(0, 4).map((p) => avatar(p.name, p.color, p.viewer ? `${p.name} (viewing)` : p.name)),
      others.length > 4 ? h('span', { class: 'avatar more' }, `+${others.length - 4}`) : null);
    count.textContent = String(here.length);
    setChildren(list, here.map((p) => h('li', { class: `person${p.viewer ? ' viewer' : ''}`, dataset: { testid: 'person', client: String(p.client), role: p.viewer ? 'view' : 'edit' } },
      avatar(p.name, p.color), h('span', { class: 'person-name' }, p.name),
      p.file ? h('span', { class: 'person-file', title: `${p.me ? 'You have' : `${p.name} has`} ${p.file} open`, dataset: { testid: 'person-file' } }, p.file) : null,
      p.me ? h('span', { class: 'tag' }, 'you') : null,
      p.viewer ? h('span', { class: 'tag', title: 'Can see the room, not change it' }, 'viewing') : null)));
  }

  return { avatars, panel, render };
}
