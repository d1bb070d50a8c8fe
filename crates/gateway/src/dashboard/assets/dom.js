// Audit Logs page — DOM helpers and small text formatters. Elements are built with `h`, whose
// children become text nodes: event data is never parsed as HTML. Also: screen-reader
// announcements, toasts, names, initials, category hues, byte sizes.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Creates an element. Children that are not nodes become text nodes (never HTML). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the children of `node`, skipping null/false ones (optional parts). */
export function setChildren(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
}

export function slot(root, name) {
  return root.querySelector(`[data-f="${name}"]`);
}

export function show(node, visible) {
  node.hidden = !visible;
}

export function isTypingTarget(node) {
  if (!(node instanceof HTMLElement)) return false;
  if (node.isContentEditable) return true;
  if (node instanceof HTMLTextAreaElement || node instanceof HTMLSelectElement) return true;
  if (node instanceof HTMLInputElement) {
    return !['button', 'checkbox', 'radio', 'submit', 'reset'].includes(node.type);
  }
  return false;
}

export function announce(text) {
  const announcer = $('announcer');
  announcer.textContent = '';
  // A fresh text node is what screen readers notice.
  setTimeout(() => {
    announcer.textContent = text;
  }, 30);
}

let toastTimer = null;
export function toast(text) {
  const node = $('toast');
  node.textContent = text;
  show(node, true);
  node.classList.add('is-visible');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.classList.remove('is-visible');
    setTimeout(() => show(node, false), 250);
  }, 2600);
}

export function humanize(name) {
  const text = String(name).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Stable hues for the shipped categories; other categories get one from their name. */
const CATEGORY_HUES = {
  authentication: 0,
  user_management: 1,
  billing: 2,
  service: 3,
  security: 4,
  data_access: 5,
  audit_log: 6,
};

export function hueOf(category) {
  if (category in CATEGORY_HUES) return CATEGORY_HUES[category];
  let hash = 0;
  for (const char of String(category)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 8;
}

export function initials(text) {
  const words = String(text || '?')
    .replace(/@.*/, '')
    .split(/[\s._-]+/)
    .filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

const ACTOR_KINDS = { user: 'User', api_key: 'API key', service: 'Service', system: 'System' };

export function actorKind(type) {
  return ACTOR_KINDS[type] || humanize(type);
}

export function capitalize(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
