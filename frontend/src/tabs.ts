// The tabs above the editor: the files this person has open, and the one shown. They are this
// page's own (the room shares files, not tabs), kept per language for the browser tab's session
// (sessionStorage), so a reload keeps them. A tab follows its file when someone renames it, and
// closes when someone deletes it; the entry file is open when nothing else is. Until the room's
// state has arrived, tabs of files not there yet are kept, not closed.

import { h, icon, setChildren } from './dom';
import { baseName } from './paths';
import type { Project } from './project';

export interface Tabs {
  /** The tab strip. */
  element: HTMLElement;
  /** The path of the file shown. */
  active(): string;
  /** Opens `path` in a tab (or goes to its tab) and shows it. */
  open(path: string): void;
  /** Shows the tabs of `project` (the room's language changed). */
  setProject(project: Project): void;
  render(): void;
}

interface Open {
  paths: string[];
  active: string;
}

/** `ready`: whether the room's state has arrived; `onSwitch`: the file shown changed (or its
 * text did: a rename). */
export function createTabs(roomName: string, initial: Project, ready: () => boolean, onSwitch: () => void): Tabs {
  const key = `codebox.tabs:${roomName}`;
  const element = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Open files', dataset: { testid: 'tabs' } });
  let project = initial;
  let state: Open = load(project);
  let stopMoves = watchMoves();
  let shown = '';

  function load(p: Project): Open {
    try {
      const saved = JSON.parse(sessionStorage.getItem(key) ?? '{}')[p.language] as Open | undefined;
      if (saved && Array.isArray(saved.paths) && typeof saved.active === 'string') return { paths: saved.paths.filter((x) => typeof x === 'string'), active: saved.active };
    } catch {
      // Nothing usable saved: start with the entry file.
    }
    return { paths: [p.entry], active: p.entry };
  }

  function save(): void {
    try {
      const all = JSON.parse(sessionStorage.getItem(key) ?? '{}') as Record<string, Open>;
      all[project.language] = state;
      sessionStorage.setItem(key, JSON.stringify(all));
    } catch {
      // Storage full or disabled: the tabs are not kept across reloads.
    }
  }

  /** Drops tabs of files that are gone (once the room's state is here). */
  function settle(): void {
    if (!ready()) return;
    state.paths = state.paths.filter((path, i) => project.has(path) && state.paths.indexOf(path) === i);
    if (!state.paths.length) state.paths = [project.entry];
    if (!state.paths.includes(state.active)) state.active = state.paths[0];
    save();
  }

  /** The file shown: the active tab's, or the entry file while that one has not arrived. */
  const active = () => (project.has(state.active) ? state.active : project.entry);

  function watchMoves(): () => void {
    return project.observeMoves((moves) => {
      state.paths = state.paths.map((path) => moves.get(path) ?? path);
      state.active = moves.get(state.active) ?? state.active;
      settle();
      render();
      onSwitch(); // the file shown may be gone, or renamed: a new text under its tab
    });
  }

  function show(path: string): void {
    if (!state.paths.includes(path)) state.paths.push(path);
    const before = active();
    state.active = path;
    save();
    render();
    if (active() !== before) onSwitch();
  }

  function close(path: string): void {
    const before = active();
    const index = state.paths.indexOf(path);
    state.paths = state.paths.filter((p) => p !== path);
    if (before === path && state.paths.length) state.active = state.paths[Math.min(index, state.paths.length - 1)];
    settle();
    render();
    if (active() !== before) onSwitch();
  }

  /** Draws the tabs (the caller shows the active one's file: see `active`). */
  function render(): void {
    settle();
    const paths = state.paths.filter((path) => project.has(path));
    const now = JSON.stringify([paths, active()]);
    if (now === shown) return;
    shown = now;
    setChildren(element, paths.map((path) => {
      const current = path === active();
      return h('div', { class: `tab${current ? ' active' : ''}`, dataset: { testid: 'tab', path } },
        h('button', { class: 'tab-name', type: 'button', role: 'tab', 'aria-selected': String(current), title: path, onclick: () => show(path) }, baseName(path)),
        h('button', { class: 'tab-close', type: 'button', 'aria-label': `Close ${path}`, title: 'Close', onclick: () => close(path) }, icon('close')));
    }));
    element.querySelector('.tab.active')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  return {
    element,
    active,
    open: show,
    setProject(next) {
      if (next === project) return;
      stopMoves();
      project = next;
      state = load(project);
      stopMoves = watchMoves();
      settle();
      render();
    },
    render,
  };
}
