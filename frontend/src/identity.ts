// Who you are: a name and a colour, kept in localStorage.

export interface User {
  name: string;
  color: string;
}

/** Cursor and avatar colours: distinct on the dark background, readable under white text. */
export const COLORS = ['#e5484d', '#f76b15', '#d6a100', '#30a46c', '#12a594', '#0090ff', '#6e56cf', '#ab4aba', '#d6409f'];

const USER_KEY = 'codebox.user';

const ADJECTIVES = [
  'brave', 'calm', 'clever', 'cosmic', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'keen', 'lively', 'lucky',
  'mellow', 'nimble', 'polite', 'quick', 'quiet', 'rapid', 'shiny', 'silent', 'sunny', 'swift', 'tidy', 'witty',
];
const ANIMALS = [
  'otter', 'badger', 'falcon', 'heron', 'koala', 'lynx', 'marmot', 'narwhal', 'ocelot', 'panda', 'puffin', 'quokka',
  'raven', 'salmon', 'tapir', 'walrus', 'wombat', 'yak', 'zebra', 'beaver', 'gecko', 'ibex', 'lemur', 'moose',
];

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];
const capitalize = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

function read<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

function write(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the name simply is not remembered.
  }
}

export const MAX_NAME = 32;

export function cleanName(name: string): string {
  return name.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME);
}

/** The remembered user, or a new random one (remembered at once). */
export function loadUser(): User {
  const saved = read<Partial<User>>(USER_KEY);
  if (saved && typeof saved.name === 'string' && cleanName(saved.name) && typeof saved.color === 'string' && /^#[0-9a-f]{6}$/i.test(saved.color)) {
    return { name: cleanName(saved.name), color: saved.color };
  }
  const user = { name: `${capitalize(pick(ADJECTIVES))} ${capitalize(pick(ANIMALS))}`, color: pick(COLORS) };
  saveUser(user);
  return user;
}

export function saveUser(user: User): void {
  write(USER_KEY, user);
}

/** The colour with alpha, for remote selections. */
export function colorLight(color: string): string {
  return `${color}40`;
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] ?? '?').slice(0, 2);
  return letters.toUpperCase();
}
