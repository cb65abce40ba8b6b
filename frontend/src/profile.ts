// You: the top bar's button with your name and colour, and the popover that changes them. A
// change is saved on this device and published in the room's awareness at once.

import { avatar, h, icon, popover } from './dom';
import { COLORS, MAX_NAME, cleanName, saveUser, type User } from './identity';

/** The "you" button; `onChange` runs after `user` changed (to publish it). */
export function createProfile(host: HTMLElement, user: User, onChange: () => void): { button: HTMLElement; render(): void } {
  const button = h('button', { class: 'me', type: 'button', title: 'Your name and colour', 'aria-haspopup': 'dialog', dataset: { testid: 'me' } });
  let shown = '';
  const render = () => {
    const key = `${user.name}\0${user.color}`;
    if (key === shown) return;
    shown = key;
    button.replaceChildren(avatar(user.name, user.color), h('span', { class: 'me-name' }, user.name), icon('edit', 'dim'));
  };

  popover(host, button, (close) => {
    const { nameInput, swatches } = identityFields(user, onChange, 'name-input');
    nameInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') close(); });
    const panel = h('div', { class: 'popover', role: 'dialog', 'aria-label': 'Your name and colour' },
      h('label', { class: 'field-label' }, 'Your name'), nameInput,
      h('label', { class: 'field-label' }, 'Your colour'), swatches,
      h('p', { class: 'popover-note' }, 'Others see this next to your cursor. Remembered on this device.'));
    setTimeout(() => {
      nameInput.focus();
      nameInput.select();
    }, 0);
    return panel;
  });
  return { button, render };
}

/** The name field and the colour swatches (this popover's and the landing page's): each change
 * is saved on this device, then `onChange` runs. */
export function identityFields(user: User, onChange: () => void, nameTestid: string): { nameInput: HTMLInputElement; swatches: HTMLElement } {
  const set = (next: Partial<User>) => {
    Object.assign(user, next);
    saveUser(user);
    onChange();
  };
  const nameInput = h('input', { class: 'input', value: user.name, maxlength: MAX_NAME, 'aria-label': 'Your name', dataset: { testid: nameTestid } });
  nameInput.addEventListener('input', () => {
    const name = cleanName(nameInput.value);
    if (name) set({ name });
  });
  const swatches = h('div', { class: 'swatches' }, COLORS.map((color) => {
    const swatch = h('button', {
      class: `swatch${color === user.color ? ' selected' : ''}`, type: 'button', style: `background:${color}`, title: color, 'aria-label': `Colour ${color}`,
      onclick: () => {
        set({ color });
        for (const s of swatches.children) s.classList.toggle('selected', s === swatch);
      },
    });
    return swatch;
  }));
  return { nameInput, swatches };
}
