// The Share menu: the room's links, and rotating them. Someone with edit access sees both links
// (fetched fresh from the edge each time the menu opens, so they are the current ones) and can
// rotate them: after a confirmation, the edge issues new links and closes every socket opened
// with the old ones. A viewer sees only the view link it holds.

import { fetchLinks, roomLink, type RoomAccess, type RoomLinks } from './access';
import { ApiError } from './api';
import { copyButton, h, icon, popover, setChildren } from './dom';

/** The Share button. `access()` is the current access; `rotate()` rotates the links (the caller
 * also remembers the new ones and reconnects with the new edit token). */
export function createShareMenu(host: HTMLElement, access: () => RoomAccess, rotate: () => Promise<RoomLinks>): HTMLElement {
  const button = h('button', { class: 'btn ghost share', type: 'button', title: 'Share this room', 'aria-haspopup': 'dialog', dataset: { testid: 'share' } },
    icon('link'), h('span', null, 'Share'));
  popover(host, button, () => {
    const panel = h('div', { class: 'popover share-menu', role: 'dialog', 'aria-label': 'Share this room', dataset: { testid: 'share-menu' } });
    const current = access();
    if (current.role === 'view') {
      setChildren(panel,
        h('h3', { class: 'popover-title' }, 'Share this room'),
        linkRow('Can view', roomLink(current), 'view'),
        h('p', { class: 'popover-note' }, 'You can view this room. Ask someone with edit access for a link that can edit.'));
      return panel;
    }
    showLinks(panel, current, null);
    return panel;
  });

  /** The editor's menu: both links (loaded from the edge when `links` is null), the rotate
   * button, and what just happened (`said`: a problem, or a note after a rotation). */
  function showLinks(panel: HTMLElement, current: RoomAccess, links: RoomLinks | null, said: { error?: string; note?: string } = {}): void {
    const error = h('p', { class: 'form-error', role: 'alert', dataset: { testid: 'share-error' } }, said.error ?? '');
    const rotate = h('button', { class: 'btn ghost danger', type: 'button', dataset: { testid: 'rotate-links' }, disabled: !links },
      icon('rotate'), 'Rotate links…');
    rotate.addEventListener('click', () => confirmRotation(panel, current));
    setChildren(panel,
      h('h3', { class: 'popover-title' }, 'Share this room'),
      linkRow('Can edit', links?.edit_url ?? null, 'edit'),
      linkRow('Can view', links?.view_url ?? null, 'view'),
      h('p', { class: 'popover-note', dataset: { testid: 'share-note' } }, said.note
        ?? 'Anyone with a link can open the room: the edit link lets them change the program and run it, the view link only lets them watch.'),
      error,
      h('div', { class: 'popover-actions' }, rotate));
    if (links) return;
    fetchLinks(current).then(
      (fresh) => { if (panel.isConnected) showLinks(panel, current, fresh); },
      (e: unknown) => { if (panel.isConnected) error.textContent = `Could not load the links: ${describe(e)}`; },
    );
  }

  function confirmRotation(panel: HTMLElement, current: RoomAccess): void {
    const cancel = h('button', { class: 'btn', type: 'button', onclick: () => showLinks(panel, current, null) }, 'Cancel');
    const confirm = h('button', { class: 'btn danger-solid', type: 'button', dataset: { testid: 'confirm-rotate' } }, 'Rotate links');
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      cancel.disabled = true;
      confirm.textContent = 'Rotating…';
      try {
        const links = await rotate();
        if (panel.isConnected) {
          showLinks(panel, access(), links, { note: 'New links made: the old ones no longer open this room. Send the new ones to the people who should keep access.' });
        }
      } catch (e) {
        if (panel.isConnected) showLinks(panel, current, null, { error: `The links were not rotated: ${describe(e)}` });
      }
    });
    setChildren(panel,
      h('h3', { class: 'popover-title' }, 'Rotate this room’s links?'),
      h('p', { class: 'popover-text' }, 'Both links are replaced by new ones. Everyone who opened the room with an old link, edit or view, is disconnected at once and can come back only with a new link.'),
      h('div', { class: 'popover-actions' }, cancel, confirm));
    confirm.focus();
  }

  return button;
}

/** A link with its Copy button (`data-testid` share-edit-link / copy-edit-link, and view). */
function linkRow(label: string, url: string | null, role: 'edit' | 'view'): HTMLElement {
  const field = h('input', { class: 'input link-field', readonly: true, value: url ?? 'Loading…', 'aria-label': `${label} link`, dataset: { testid: `share-${role}-link` } });
  field.addEventListener('focus', () => field.select());
  const copy = copyButton('Copy', () => url, { class: 'btn', testid: `copy-${role}-link` });
  copy.disabled = url === null;
  return h('div', { class: 'link-row' },
    h('label', { class: 'field-label' }, icon(role === 'edit' ? 'edit' : 'eye', 'dim'), label),
    h('div', { class: 'link-line' }, field, copy));
}

const describe = (e: unknown) => (e instanceof ApiError ? e.message : String(e));
