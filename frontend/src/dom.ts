// A small DOM helper instead of a framework: h('div', { class: 'x', onclick }, children...),
// inline icons, and the few widgets every page uses (logo, avatar, panel heading, popover, copy).

import { initials } from './identity';

type Child = Node | string | number | null | undefined | false;
type Props = {
  class?: string;
  style?: string;
  dataset?: Record<string, string>;
  [attr: string]: unknown;
};

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value as Record<string, string>);
      else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key in el && typeof value !== 'string') {
        (el as unknown as Record<string, unknown>)[key] = value;
      } else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: (Child | Child[])[]): void {
  for (const child of children) {
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else if (child !== null && child !== undefined && child !== false) {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replaces the children of `parent`. */
export function setChildren(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** Inline SVG icons (stroke icons, 16px box), so no icon font is downloaded. */
const ICONS: Record<string, string> = {
  play: '<path d="M5 3.5v9l7.5-4.5z" fill="currentColor" stroke="none"/>',
  copy: '<rect x="5.5" y="5.5" width="8" height="8" rx="1.5"/><path d="M10.5 5.5v-2a1.5 1.5 0 0 0-1.5-1.5H4A1.5 1.5 0 0 0 2.5 3.5V9A1.5 1.5 0 0 0 4 10.5h1.5"/>',
  check: '<path d="M3 8.5l3.2 3L13 4.5"/>',
  link: '<path d="M6.5 9.5l3-3"/><path d="M7.5 4.5l1-1a2.8 2.8 0 0 1 4 4l-1 1"/><path d="M8.5 11.5l-1 1a2.8 2.8 0 0 1-4-4l1-1"/>',
  edit: '<path d="M10.5 2.5l3 3L6 13H3v-3z"/>',
  clock: '<circle cx="8" cy="8" r="5.5"/><path d="M8 5v3l2 1.5"/>',
  alert: '<path d="M8 2l6.5 11.5h-13z"/><path d="M8 6.5v3"/><path d="M8 11.6v.2"/>',
  box: '<path d="M2.5 5L8 2l5.5 3v6L8 14l-5.5-3z"/><path d="M2.5 5L8 8l5.5-3"/><path d="M8 8v6"/>',
  users: '<circle cx="6" cy="5.5" r="2.5"/><path d="M1.5 13.5c.5-2.5 2.2-3.8 4.5-3.8s4 1.3 4.5 3.8"/><path d="M10.5 3.2a2.5 2.5 0 0 1 0 4.6"/><path d="M12 9.9c1.3.5 2.2 1.7 2.5 3.6"/>',
  history: '<path d="M2.5 8a5.5 5.5 0 1 0 1.6-3.9"/><path d="M2.5 2.5v2.5H5"/><path d="M8 5v3l2 1.5"/>',
  terminal: '<rect x="1.5" y="2.5" width="13" height="11" rx="1.5"/><path d="M4.5 6l2 2-2 2"/><path d="M8 10.5h3.5"/>',
  input: '<path d="M2.5 10.5v2a1 1 0 0 0 1 1h9a1 1 0 0 0 1-1v-2"/><path d="M8 2.5v7"/><path d="M5 6.5l3 3 3-3"/>',
  arrow: '<path d="M3 8h10"/><path d="M9 4l4 4-4 4"/>',
  eye: '<path d="M1.5 8s2.4-4.5 6.5-4.5S14.5 8 14.5 8s-2.4 4.5-6.5 4.5S1.5 8 1.5 8z"/><circle cx="8" cy="8" r="2"/>',
  rotate: '<path d="M13.5 8a5.5 5.5 0 1 1-1.6-3.9"/><path d="M13.5 2.5v2.5H11"/>',
  lock: '<rect x="3" y="7" width="10" height="7" rx="1.5"/><path d="M5.5 7V5a2.5 2.5 0 0 1 5 0v2"/>',
  close: '<path d="M4.5 4.5l7 7M11.5 4.5l-7 7"/>',
  file: '<path d="M4 1.75h5l3 3v9.5H4z"/><path d="M9 1.75v3h3"/>',
  folder: '<path d="M1.75 4a1 1 0 0 1 1-1h3.5l1.5 1.75h5.5a1 1 0 0 1 1 1V12.5a1 1 0 0 1-1 1h-10.5a1 1 0 0 1-1-1z"/>',
  chevron: '<path d="M6 4l4 4-4 4"/>',
  'file-plus': '<path d="M4 1.75h5l3 3v9.5H4z"/><path d="M8 7.5v4M6 9.5h4"/>',
  'folder-plus': '<path d="M1.75 4a1 1 0 0 1 1-1h3.5l1.5 1.75h5.5a1 1 0 0 1 1 1V12.5a1 1 0 0 1-1 1h-10.5a1 1 0 0 1-1-1z"/><path d="M8 7v4M6 9h4"/>',
  upload: '<path d="M2.5 10.5v2a1 1 0 0 0 1 1h9a1 1 0 0 0 1-1v-2"/><path d="M8 9.5v-7"/><path d="M5 5.5l3-3 3 3"/>',
  download: '<path d="M2.5 10.5v2a1 1 0 0 0 1 1h9a1 1 0 0 0 1-1v-2"/><path d="M8 2.5v7"/><path d="M5 6.5l3 3 3-3"/>',
  trash: '<path d="M2.5 4.5h11"/><path d="M6 4.5V3h4v1.5"/><path d="M4 4.5l.75 9h6.5l.75-9"/>',
  plus: '<path d="M8 3v10M3 8h10"/>',
  tests: '<path d="M2.5 4l1.5 1.5L6.5 3"/><path d="M2.5 10l1.5 1.5L6.5 9"/><path d="M8.5 4.5h5M8.5 10.5h5"/>',
};

export function icon(name: keyof typeof ICONS | string, cls = ''): SVGSVGElement {
  const wrap = document.createElement('span');
  wrap.innerHTML = `<svg class="icon ${cls}" viewBox="0 0 16 16" width="16" height="16" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name] ?? ''}</svg>`;
  return wrap.firstChild as SVGSVGElement;
}

export function logo(): SVGSVGElement {
  const wrap = document.createElement('span');
  wrap.innerHTML = '<svg class="logo" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="1" y="1" width="22" height="22" rx="6" fill="#5b6cff"/><path d="M9.5 8l-4 4 4 4M14.5 8l4 4-4 4" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>';
  return wrap.firstChild as SVGSVGElement;
}

export function avatar(name: string, color: string, title?: string): HTMLElement {
  return h('span', { class: 'avatar', style: `background:${color}`, title: title ?? null }, initials(name));
}

/** A side panel's heading: icon, title, and maybe a count or hint. */
export function panelHead(iconName: string, title: string, extra?: Node): HTMLElement {
  return h('div', { class: 'panel-head' }, icon(iconName, 'dim'), h('h2', null, title), extra ?? null);
}

/** A popover under the top bar, opened and closed by `toggle`; a click outside both, or Escape,
 * closes it. `build` makes its content each time it opens. */
export function popover(host: HTMLElement, toggle: HTMLElement, build: (close: () => void) => HTMLElement): { close(): void } {
  let open: HTMLElement | null = null;
  const close = () => {
    open?.remove();
    open = null;
    toggle.setAttribute('aria-expanded', 'false');
    document.removeEventListener('mousedown', outside, true);
    document.removeEventListener('keydown', escape, true);
  };
  const outside = (event: Event) => {
    if (open && !open.contains(event.target as Node) && !toggle.contains(event.target as Node)) close();
  };
  const escape = (event: KeyboardEvent) => {
    if (event.key === 'Escape') {
      close();
      toggle.focus();
    }
  };
  toggle.setAttribute('aria-expanded', 'false');
  toggle.addEventListener('click', () => {
    if (open) return close();
    open = build(close);
    host.appendChild(open);
    toggle.setAttribute('aria-expanded', 'true');
    document.addEventListener('mousedown', outside, true);
    document.addEventListener('keydown', escape, true);
  });
  return { close };
}

/** Copies `text` to the clipboard (with the old fallback where the Clipboard API is refused). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const field = h('textarea', { style: 'position:fixed;opacity:0' });
    field.value = text;
    document.body.appendChild(field);
    field.select();
    const ok = document.execCommand('copy');
    field.remove();
    return ok;
  }
}

/** A button whose label says "Copied" (or "Copy failed") for a moment after it copies. */
export function copyButton(label: string, text: () => string | null, props: { class?: string; testid: string }): HTMLButtonElement {
  const labelEl = h('span', null, label);
  const button = h('button', { class: props.class ?? 'btn', type: 'button', dataset: { testid: props.testid } }, icon('copy'), labelEl);
  let timer = 0;
  button.addEventListener('click', async () => {
    const value = text();
    if (value === null) return;
    const ok = await copyText(value);
    labelEl.textContent = ok ? 'Copied' : 'Copy failed';
    button.replaceChild(icon(ok ? 'check' : 'alert'), button.firstChild as Node);
    button.classList.toggle('done', ok);
    clearTimeout(timer);
    timer = window.setTimeout(() => {
      labelEl.textContent = label;
      button.replaceChild(icon('copy'), button.firstChild as Node);
      button.classList.remove('done');
    }, 1800);
  });
  return button;
}

/** A button that acts only when pressed twice: the first press makes it ask (`question`), and it
 * goes back after a few seconds, or when the focus leaves it. For deletions, which no undo brings
 * back. */
export function confirmButton(content: Node[], question: string, onConfirm: () => void, props: { class: string; title: string; testid: string }): HTMLButtonElement {
  const button = h('button', { class: props.class, type: 'button', title: props.title, 'aria-label': props.title, dataset: { testid: props.testid } }, content);
  let timer = 0;
  const reset = () => {
    clearTimeout(timer);
    if (button.dataset.asking !== 'true') return;
    delete button.dataset.asking;
    button.setAttribute('aria-label', props.title);
    setChildren(button, content);
  };
  button.addEventListener('click', (event) => {
    event.stopPropagation();
    if (button.dataset.asking === 'true') {
      reset();
      onConfirm();
      return;
    }
    button.dataset.asking = 'true';
    button.setAttribute('aria-label', question);
    setChildren(button, question);
    timer = window.setTimeout(reset, 4000);
  });
  button.addEventListener('blur', reset);
  return button;
}
