// Security → Audit Logs: the script of the dashboard page (an ES module, no build step).
//
// Everything it shows comes from the read API of the gateway that served it, called with the
// token the user signed in with (kept in this tab's sessionStorage only):
//   GET /v1/orgs/{org}/events            the filtered list, newest first, keyset cursor
//   GET /v1/orgs/{org}/events/{id}       one event (deep links: ?event=<id>)
//   GET /v1/orgs/{org}/events/export     CSV / JSON download with the same filters
//   GET /v1/catalogue                    categories and actions (chips, action suggestions)
//
// Safety rules this file keeps:
// * Event fields are attacker-controlled text. They are only ever written with textContent or
//   attribute setters, never parsed as HTML (there is no innerHTML anywhere in this file).
// * The page runs under a strict CSP (no inline script/style, connect-src 'self'), so styling
//   goes through classes and the hidden attribute, never style attributes.
// * The token never goes into a URL this page builds: share links carry filters only.

const ORG = decodeURIComponent(location.pathname.split('/')[2] || '');
const ORG_PATH = `/v1/orgs/${encodeURIComponent(ORG)}`;
const TOKEN_KEY = 'audit-logs.token';
const TZ_KEY = 'audit-logs.tz';

const PAGE_SIZE = 100;
/** Live mode polls the first page this often (start to start), so a new event shows in < 2 s. */
const LIVE_INTERVAL_MS = 1200;
const LIVE_PAGE_SIZE = 50;
const RANGES = {
  '1h': 3600e3,
  '24h': 24 * 3600e3,
  '7d': 7 * 24 * 3600e3,
  '30d': 30 * 24 * 3600e3,
  '90d': 90 * 24 * 3600e3,
};
const RANGE_WORDS = {
  '1h': 'in the last hour',
  '24h': 'in the last 24 hours',
  '7d': 'in the last 7 days',
  '30d': 'in the last 30 days',
  '90d': 'in the last 90 days',
};
const DEFAULT_RANGE = '7d';
/** Single-value text filters, named as in the API and in this page's URL. */
const TEXT_FILTERS = ['action', 'actor', 'target_type', 'target_id', 'ip', 'q'];
const ACTION_PATTERN = /^[a-z0-9_.]+\*?$/;
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

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  claims: null,
  tz: localStorage.getItem(TZ_KEY) === 'utc' ? 'utc' : 'local',
  filters: emptyFilters(),
  live: false,
  /** Loaded events, newest first, and their ids. */
  events: [],
  byId: new Map(),
  nextCursor: null,
  hasMore: false,
  /** The query string of the first page, reused for the next pages (same `since`). */
  pageQuery: null,
  selectedId: null,
  detailId: null,
  detailEvent: null,
  /** Bumped on every fresh load: answers of older loads and polls are dropped. */
  generation: 0,
  loading: false,
  loadingMore: false,
  controller: null,
  liveTimer: null,
  liveError: null,
  unseenNew: 0,
  catalogue: { categories: [], actions: new Map() },
  expiryTimer: null,
  retryTimer: null,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element. Children that are not nodes become text nodes (never HTML). */
function h(tag, props = {}, ...children) {
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
function setChildren(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
}

function slot(root, name) {
  return root.querySelector(`[data-f="${name}"]`);
}

function show(node, visible) {
  node.hidden = !visible;
}

function isTypingTarget(node) {
  if (!(node instanceof HTMLElement)) return false;
  if (node.isContentEditable) return true;
  if (node instanceof HTMLTextAreaElement || node instanceof HTMLSelectElement) return true;
  if (node instanceof HTMLInputElement) {
    return !['button', 'checkbox', 'radio', 'submit', 'reset'].includes(node.type);
  }
  return false;
}

function announce(text) {
  const announcer = $('announcer');
  announcer.textContent = '';
  // A fresh text node is what screen readers notice.
  setTimeout(() => {
    announcer.textContent = text;
  }, 30);
}

let toastTimer = null;
function toast(text) {
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

function humanize(name) {
  const text = String(name).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function hueOf(category) {
  if (category in CATEGORY_HUES) return CATEGORY_HUES[category];
  let hash = 0;
  for (const char of String(category)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 8;
}

function initials(text) {
  const words = String(text || '?')
    .replace(/@.*/, '')
    .split(/[\s._-]+/)
    .filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

const ACTOR_KINDS = { user: 'User', api_key: 'API key', service: 'Service', system: 'System' };

function actorKind(type) {
  return ACTOR_KINDS[type] || humanize(type);
}

function capitalize(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// ---------------------------------------------------------------------------------------------
// Session: the token comes from `#token=…` (what `make run` prints) or the sign-in form.

function takeTokenFromFragment() {
  if (!location.hash.includes('token=')) return;
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token');
  fragment.delete('token');
  const rest = fragment.toString();
  // Out of the address bar and the history at once: the token must not be bookmarked or shared.
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  if (token) sessionStorage.setItem(TOKEN_KEY, token.trim());
}

/** The JWT payload, for display only: the gateway verifies the token on every request. */
function decodeClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

function claimText(name) {
  const value = state.claims && state.claims[name];
  return typeof value === 'string' ? value : '';
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.claims = null;
  stopLive();
  if (state.controller) state.controller.abort();
  state.generation += 1;
  closeDetail({ restoreFocus: false });
  clearTimeout(state.expiryTimer);
  clearTimeout(state.retryTimer);
  state.events = [];
  state.byId.clear();
  $('rows').replaceChildren();
  showSignIn(message);
}

function showView(name) {
  show($('signin'), name === 'signin');
  show($('blocked'), name === 'blocked');
  show($('log'), name === 'log');
  show($('session'), name !== 'signin' && Boolean(state.token));
  if (name !== 'log') closeDetail({ restoreFocus: false });
}

function showSignIn(message) {
  if (state.token) {
    // Called on a 401: the stored token is no good any more.
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    stopLive();
  }
  showView('signin');
  const error = $('signin-error');
  error.textContent = message || '';
  show(error, Boolean(message));
  $('token-input').value = '';
  $('token-input').focus();
}

function showBlocked(title, message, link) {
  stopLive();
  showView('blocked');
  $('blocked-title').textContent = title;
  $('blocked-message').textContent = message;
  const anchor = $('blocked-link');
  if (link) {
    anchor.href = link.href;
    anchor.textContent = link.text;
  }
  show(anchor, Boolean(link));
  $('blocked-signin').focus();
}

function renderSession() {
  const token = state.token;
  if (token.startsWith('at_')) {
    $('session-name').textContent = 'API token';
    $('session-role').textContent = 'Read-only';
    $('session-org').textContent = token.split('_')[1] || '';
    $('session-avatar').textContent = 'AT';
    return;
  }
  const who = claimText('name') || claimText('email') || claimText('sub') || 'Signed in';
  $('session-name').textContent = who;
  $('session-name').title = [claimText('name'), claimText('email'), claimText('sub')].filter(Boolean).join(' · ');
  const role = claimText('role');
  $('session-role').textContent = role ? humanize(role) : '';
  show($('session-role'), Boolean(role));
  $('session-org').textContent = claimText('org_id') || claimText('org');
  $('session-avatar').textContent = initials(who);
}

function watchExpiry() {
  clearTimeout(state.expiryTimer);
  const exp = Number(state.claims && state.claims.exp);
  if (!exp) return;
  const remaining = exp * 1000 - Date.now();
  // setTimeout cannot wait longer than ~24 days; the gateway's 401 covers the rest.
  if (remaining > 0 && remaining < 2 ** 31 - 1) {
    state.expiryTimer = setTimeout(() => showSignIn('Your session expired. Sign in again to keep reading the log.'), remaining);
  }
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message, param, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.retryAfter = retryAfter;
  }
}

async function api(path, params, { signal } = {}) {
  const url = path + (params && params.toString() ? `?${params}` : '');
  let response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'The gateway could not be reached. Check that it is running and your connection.');
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let param;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      param = body.error.param;
    }
  } catch {
    // Not our JSON error shape (a proxy's page, say): keep the status text.
  }
  const retryAfter = Number(response.headers.get('Retry-After')) || undefined;
  return new ApiError(response.status, code, message, param, retryAfter);
}

/** Maps an API error to what the user sees. `where` is `list`, `more`, `detail`, `export`, `live` or `catalogue`. */
function handleError(error, where) {
  if (error.status === 401) {
    showSignIn(`The gateway refused the token (${error.message}). Sign in again.`);
    return;
  }
  if (error.status === 403) {
    const role = claimText('role');
    showBlocked(
      'Owners and Admins only',
      `${capitalize(error.message)}.${role ? ` You are signed in as ${role === 'admin' ? 'an' : 'a'} ${role} of ${claimText('org_id') || 'your organization'}.` : ''} Ask an Owner of ${ORG} for access.`,
    );
    return;
  }
  if (error.status === 404 && where !== 'detail') {
    const tokenOrg = claimText('org_id');
    const link =
      tokenOrg && tokenOrg !== ORG
        ? { href: `/orgs/${encodeURIComponent(tokenOrg)}/security/audit-logs`, text: `Open ${tokenOrg}'s audit logs` }
        : null;
    showBlocked(
      'Organization not found',
      `There is no organization “${ORG}” that your token can read.${tokenOrg && tokenOrg !== ORG ? ` Your token is for ${tokenOrg}.` : ''}`,
      link,
    );
    return;
  }
  if (error.status === 400) {
    markFieldError(error.param, error.message);
    showBanner(error.param ? `Invalid filter “${error.param}”` : 'Invalid request', error.message, false);
    if (where === 'list') renderEmpty('error');
    return;
  }
  if (error.code === 'read_limit_exceeded') {
    // The engine stopped this search (time, memory or size): the same search would be
    // stopped again, so ask for a narrower one instead of retrying.
    showBanner('This search is too broad', error.message, false);
    if (where === 'list') renderEmpty('error');
    return;
  }
  if (error.status === 429 || error.status === 503 || error.status === 0) {
    const seconds = Math.min(Math.max(error.retryAfter || 3, 1), 30);
    const titles = { 0: 'Connection lost', 429: 'Too many requests at once' };
    showBanner(
      titles[error.status] || 'The audit log is temporarily unavailable',
      `${error.message} Retrying in ${seconds} s…`,
      true,
    );
    if (where === 'list') {
      clearTimeout(state.retryTimer);
      state.retryTimer = setTimeout(() => loadFirstPage(), seconds * 1000);
    }
    return;
  }
  const titles = {
    list: 'Could not load events',
    more: 'Could not load more events',
    export: 'Export failed',
    catalogue: 'Could not load the event catalogue',
    live: 'Live update failed',
    detail: 'Could not load the event',
  };
  showBanner(titles[where] || 'Something went wrong', `${error.message} (${error.code}, HTTP ${error.status}).`, true);
}

function showBanner(title, message, retryable) {
  $('banner-title').textContent = title;
  $('banner-message').textContent = message;
  show($('banner-retry'), retryable);
  show($('banner'), true);
}

function hideBanner() {
  show($('banner'), false);
}

const FIELD_OF_PARAM = { since: 'f-since', until: 'f-until', q: 'f-q', action: 'f-action', actor: 'f-actor', target_type: 'f-target_type', target_id: 'f-target_id', outcome: 'f-outcome', ip: 'f-ip' };

function markFieldError(param, message) {
  const input = param && $(FIELD_OF_PARAM[param] || '');
  if (!input) return;
  input.setAttribute('aria-invalid', 'true');
  const note = $(`${input.id}-error`);
  if (note) {
    note.textContent = capitalize(message);
    show(note, true);
  }
  if (param === 'since' || param === 'until') show($('custom-range'), true);
}

function clearFieldErrors() {
  for (const id of Object.values(FIELD_OF_PARAM)) {
    const input = $(id);
    input.removeAttribute('aria-invalid');
    const note = $(`${id}-error`);
    if (note) show(note, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Time: absolute in UTC or the browser's zone (the zone always named), plus relative.

const formatters = new Map();

function dateParts(date) {
  let format = formatters.get(state.tz);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone: state.tz === 'utc' ? 'UTC' : undefined,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(state.tz, format);
  }
  const parts = {};
  for (const part of format.formatToParts(date)) parts[part.type] = part.value;
  return parts;
}

function localZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'Local time';
}

function offsetLabel(date) {
  const minutes = -date.getTimezoneOffset();
  if (minutes === 0) return 'UTC';
  const sign = minutes > 0 ? '+' : '−';
  const abs = Math.abs(minutes);
  const hours = String(Math.floor(abs / 60)).padStart(2, '0');
  const rest = abs % 60 ? `:${String(abs % 60).padStart(2, '0')}` : '';
  return `UTC${sign}${hours}${rest}`;
}

/** The zone of the displayed times, e.g. `UTC` or `Europe/Paris (UTC+01)`. */
function zoneLabel(date = new Date()) {
  if (state.tz === 'utc') return 'UTC';
  return `${localZoneName()} (${offsetLabel(date)})`;
}

function zoneShort(date = new Date()) {
  return state.tz === 'utc' ? 'UTC' : offsetLabel(date);
}

function formatAbsolute(date, { ms = false } = {}) {
  const p = dateParts(date);
  const base = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  return ms ? `${base}.${String(date.getUTCMilliseconds()).padStart(3, '0')}` : base;
}

const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'long' });

function formatRelative(date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 10) return 'just now';
  if (abs < 60) return relativeFormat.format(seconds, 'second');
  if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), 'hour');
  if (abs < 30 * 86400) return relativeFormat.format(Math.round(seconds / 86400), 'day');
  if (abs < 365 * 86400) return relativeFormat.format(Math.round(seconds / (30 * 86400)), 'month');
  return relativeFormat.format(Math.round(seconds / (365 * 86400)), 'year');
}

/** `2026-11-26T07:00:00.000Z` → the value of a datetime-local input in the displayed zone. */
function isoToInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const p = dateParts(date);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
}

/** A datetime-local value read in the displayed zone → RFC 3339 UTC; `null` when invalid. */
function inputToIso(value) {
  if (!value) return '';
  const full = value.length === 16 ? `${value}:00` : value;
  // Without an offset, `new Date()` reads date-times as local time.
  const date = state.tz === 'utc' ? new Date(`${full}Z`) : new Date(full);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function setTimeZone(tz) {
  state.tz = tz === 'utc' ? 'utc' : 'local';
  localStorage.setItem(TZ_KEY, state.tz);
  for (const button of $('tz-group').querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.tz === state.tz));
  }
  $('tz-local-button').textContent = state.tz === 'local' ? `Local · ${offsetLabel(new Date())}` : 'Local';
  $('tz-local-button').title = `Show times in ${localZoneName()} (U toggles)`;
  $('zone-label').textContent = zoneLabel();
  for (const hint of document.querySelectorAll('[data-zone-short]')) hint.textContent = zoneShort();
  // Times already on screen follow; the custom range keeps its instants.
  for (const row of $('rows').rows) {
    const event = state.byId.get(row.dataset.id);
    if (event) fillTime(row, event);
  }
  writeCustomRange();
  if (state.detailEvent) renderDetail(state.detailEvent);
}

// ---------------------------------------------------------------------------------------------
// Filters: the URL's query string is the source of truth, so any view can be shared.

function emptyFilters() {
  return {
    range: DEFAULT_RANGE,
    since: '',
    until: '',
    category: [],
    action: '',
    actor: '',
    target_type: '',
    target_id: '',
    outcome: '',
    ip: '',
    q: '',
  };
}

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const filters = emptyFilters();
  const range = params.get('range');
  if (params.get('since') || params.get('until') || range === 'custom') {
    filters.range = 'custom';
    filters.since = params.get('since') || '';
    filters.until = params.get('until') || '';
  } else if (range && range in RANGES) {
    filters.range = range;
  }
  filters.category = params
    .getAll('category')
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter(Boolean);
  for (const name of TEXT_FILTERS) {
    filters[name] = name === 'action' ? params.getAll('action').join(', ') : params.get(name) || '';
  }
  const outcome = params.get('outcome');
  filters.outcome = outcome === 'success' || outcome === 'failure' ? outcome : '';
  return filters;
}

function pageUrl() {
  const params = new URLSearchParams();
  const filters = state.filters;
  if (filters.range === 'custom') {
    if (filters.since) params.set('since', filters.since);
    if (filters.until) params.set('until', filters.until);
    if (!filters.since && !filters.until) params.set('range', 'custom');
  } else if (filters.range !== DEFAULT_RANGE) {
    params.set('range', filters.range);
  }
  if (filters.category.length) params.set('category', filters.category.join(','));
  for (const name of TEXT_FILTERS) if (filters[name].trim()) params.set(name, filters[name].trim());
  if (filters.outcome) params.set('outcome', filters.outcome);
  if (state.live) params.set('live', '1');
  if (state.detailId) params.set('event', state.detailId);
  const query = params.toString();
  return location.pathname + (query ? `?${query}` : '');
}

/** The API's filter parameters; preset ranges are relative to `now`. */
function apiFilterParams(now = Date.now()) {
  const params = new URLSearchParams();
  const filters = state.filters;
  if (filters.range === 'custom') {
    if (filters.since) params.set('since', filters.since);
    if (filters.until) params.set('until', filters.until);
  } else if (RANGES[filters.range]) {
    params.set('since', new Date(now - RANGES[filters.range]).toISOString());
  }
  if (filters.category.length) params.set('category', filters.category.join(','));
  for (const name of TEXT_FILTERS) {
    const value = filters[name].trim();
    if (!value) continue;
    params.set(name, name === 'action' ? value.split(',').map((item) => item.trim()).filter(Boolean).join(',') : value);
  }
  if (filters.outcome) params.set('outcome', filters.outcome);
  return params;
}

function activeFilterCount() {
  const filters = state.filters;
  let count = filters.category.length ? 1 : 0;
  for (const name of TEXT_FILTERS) if (filters[name].trim()) count += 1;
  if (filters.outcome) count += 1;
  return count;
}

function rangeWords() {
  const filters = state.filters;
  if (filters.range !== 'custom') return RANGE_WORDS[filters.range] || '';
  const shown = (iso) => {
    const date = new Date(iso);
    return iso && !Number.isNaN(date.getTime()) ? formatAbsolute(date) : null;
  };
  const from = shown(filters.since);
  const to = shown(filters.until);
  if (from && to) return `from ${from} to ${to} ${zoneShort()}`;
  if (from) return `since ${from} ${zoneShort()}`;
  if (to) return `before ${to} ${zoneShort()}`;
  return 'at any time';
}

/** Puts `state.filters` into the form. */
function writeForm() {
  const filters = state.filters;
  for (const button of $('range-group').querySelectorAll('button')) {
    button.setAttribute('aria-checked', String(button.dataset.range === filters.range));
    button.tabIndex = button.dataset.range === filters.range ? 0 : -1;
  }
  show($('custom-range'), filters.range === 'custom');
  writeCustomRange();
  for (const name of TEXT_FILTERS) $(`f-${name}`).value = filters[name];
  $('f-outcome').value = filters.outcome;
  for (const chip of $('category-chips').querySelectorAll('button[data-category]')) {
    chip.setAttribute('aria-pressed', String(filters.category.includes(chip.dataset.category)));
  }
  const count = activeFilterCount();
  $('active-summary').textContent = count
    ? `${count} filter${count > 1 ? 's' : ''} active ${rangeWords()}`
    : `No filters: all events ${rangeWords()}`;
  $('clear-filters').disabled = count === 0 && filters.range === DEFAULT_RANGE;
}

function writeCustomRange() {
  $('f-since').value = isoToInput(state.filters.since);
  $('f-until').value = isoToInput(state.filters.until);
}

/** Reads the form into `state.filters`; returns false (and marks the field) when invalid. */
function readForm() {
  clearFieldErrors();
  const next = { ...state.filters, category: [...state.filters.category] };
  for (const name of TEXT_FILTERS) next[name] = $(`f-${name}`).value;
  next.outcome = $('f-outcome').value;
  const actions = next.action.split(',').map((item) => item.trim()).filter(Boolean);
  const wrong = actions.find((item) => !ACTION_PATTERN.test(item) || item === '*');
  if (wrong) {
    markFieldError('action', `“${wrong}” is not an action like user.login.failed or a prefix like user.*`);
    return false;
  }
  if (next.range === 'custom') {
    const since = inputToIso($('f-since').value);
    const until = inputToIso($('f-until').value);
    const problem =
      since === null ? ['since', 'Not a valid date and time']
      : until === null ? ['until', 'Not a valid date and time']
      : since && until && since >= until ? ['until', 'Must be after “From”']
      : null;
    if (problem) {
      markFieldError(...problem);
      return false;
    }
    next.since = since;
    next.until = until;
  }
  state.filters = next;
  return true;
}

/** Applies the filters: new URL (a history entry, so Back works), fresh first page. */
function applyFilters({ fromForm = true } = {}) {
  if (fromForm && !readForm()) return;
  closeDetail({ restoreFocus: false, updateUrl: false });
  navigate();
  writeForm();
  loadFirstPage();
}

/** A history entry per distinct view, so Back returns to the previous filters. */
function navigate() {
  const url = pageUrl();
  if (url === location.pathname + location.search) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
}

let textTimer = null;
function onTextInput(event) {
  const input = event.target;
  clearTimeout(textTimer);
  if (input.id === 'f-q') {
    textTimer = setTimeout(() => applyFilters(), 450);
    return;
  }
  if (input.id === 'f-action') {
    // A suggestion picked from the list (a whole action or a prefix) applies at once.
    const value = input.value.trim();
    if (state.catalogue.actions.has(value) || (value.endsWith('*') && ACTION_PATTERN.test(value))) {
      textTimer = setTimeout(() => applyFilters(), 150);
    }
  }
}

function clearFilters() {
  state.filters = emptyFilters();
  clearFieldErrors();
  writeForm();
  closeDetail({ restoreFocus: false, updateUrl: false });
  navigate();
  loadFirstPage();
}

function setRange(range) {
  if (range === 'custom' && state.filters.range !== 'custom') {
    // Start from the span that was shown, open-ended.
    const span = RANGES[state.filters.range] || RANGES[DEFAULT_RANGE];
    state.filters.since = new Date(Math.floor((Date.now() - span) / 60000) * 60000).toISOString();
    state.filters.until = '';
  }
  if (range !== 'custom') {
    state.filters.since = '';
    state.filters.until = '';
  }
  state.filters.range = range;
  writeForm();
  applyFilters({ fromForm: false });
  if (range === 'custom') $('f-since').focus();
}

// ---------------------------------------------------------------------------------------------
// Catalogue: category chips and action suggestions.

async function loadCatalogue() {
  try {
    const body = await (await api('/v1/catalogue')).json();
    const categories = Array.isArray(body.categories) ? body.categories : [];
    state.catalogue.categories = categories;
    state.catalogue.actions.clear();
    for (const category of categories) {
      for (const action of category.actions || []) {
        state.catalogue.actions.set(action.name, { category: category.name, description: action.description });
      }
    }
    renderCategoryChips();
    renderActionOptions();
    // Rows drawn before the catalogue arrived get their descriptions now.
    for (const row of $('rows').rows) {
      const event = state.byId.get(row.dataset.id);
      if (event) row.title = describe(event);
    }
  } catch (error) {
    $('category-chips').replaceChildren(h('span', { class: 'muted small', text: 'Categories could not be loaded.' }));
    if (error.status === 401) handleError(error, 'catalogue');
  }
}

function renderCategoryChips() {
  const chips = state.catalogue.categories.map((category) =>
    h(
      'button',
      {
        type: 'button',
        class: `chip-toggle hue-${hueOf(category.name)}`,
        'data-category': category.name,
        'aria-pressed': String(state.filters.category.includes(category.name)),
        title: category.description || category.name,
        onclick: () => toggleCategory(category.name),
      },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      humanize(category.name),
      category.beta ? h('span', { class: 'beta', text: 'beta' }) : null,
    ),
  );
  $('category-chips').replaceChildren(...chips);
}

function renderActionOptions() {
  const prefixes = new Map();
  for (const name of state.catalogue.actions.keys()) {
    const parts = name.split('.');
    for (let length = 1; length < parts.length; length += 1) {
      const prefix = `${parts.slice(0, length).join('.')}.*`;
      prefixes.set(prefix, (prefixes.get(prefix) || 0) + 1);
    }
  }
  const options = [];
  for (const [prefix, count] of [...prefixes].sort()) {
    if (count > 1) options.push(h('option', { value: prefix, label: `All ${count} ${prefix.slice(0, -2)} actions` }));
  }
  for (const [name, info] of [...state.catalogue.actions].sort()) {
    options.push(h('option', { value: name, label: info.description || humanize(info.category) }));
  }
  $('action-options').replaceChildren(...options);
}

function toggleCategory(name) {
  const selected = new Set(state.filters.category);
  if (selected.has(name)) selected.delete(name);
  else selected.add(name);
  state.filters.category = state.catalogue.categories.map((c) => c.name).filter((c) => selected.has(c));
  applyFilters();
}

function describe(event) {
  const info = state.catalogue.actions.get(event.action);
  return info && info.description ? info.description : '';
}

// ---------------------------------------------------------------------------------------------
// Results

function compareEvents(a, b) {
  // Newest first on (occurred_at, id), the list API's order.
  const at = Date.parse(b.occurred_at) - Date.parse(a.occurred_at);
  if (at) return at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

async function loadFirstPage() {
  clearTimeout(state.retryTimer);
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const generation = ++state.generation;
  state.loading = true;
  state.unseenNew = 0;
  show($('new-pill'), false);
  hideBanner();
  setBusy(true);
  renderSkeleton();
  const params = apiFilterParams();
  state.pageQuery = params.toString();
  params.set('limit', String(PAGE_SIZE));
  try {
    const body = await (await api(`${ORG_PATH}/events`, params, { signal: controller.signal })).json();
    if (generation !== state.generation) return;
    state.events = body.data || [];
    state.byId = new Map(state.events.map((event) => [event.id, event]));
    state.nextCursor = body.next_cursor || null;
    state.hasMore = Boolean(body.has_more && body.next_cursor);
    if (state.selectedId && !state.byId.has(state.selectedId)) state.selectedId = null;
    renderRows();
    announce(`${resultCountText()}.`);
    integrityForRange(generation);
    requestAnimationFrame(loadMoreIfNearEnd);
  } catch (error) {
    if (error.name === 'AbortError' || generation !== state.generation) return;
    $('rows').replaceChildren();
    state.events = [];
    state.byId.clear();
    state.hasMore = false;
    renderEmpty('error');
    handleError(error, 'list');
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      setBusy(false);
    }
  }
}

async function loadMore() {
  if (!state.hasMore || state.loading || state.loadingMore || !state.nextCursor) return;
  state.loadingMore = true;
  const generation = state.generation;
  const button = $('load-more');
  button.disabled = true;
  button.textContent = 'Loading…';
  setBusy(true);
  const params = new URLSearchParams(state.pageQuery || '');
  params.set('limit', String(PAGE_SIZE));
  params.set('cursor', state.nextCursor);
  try {
    const body = await (await api(`${ORG_PATH}/events`, params)).json();
    if (generation !== state.generation) return;
    const fragment = document.createDocumentFragment();
    for (const event of body.data || []) {
      if (state.byId.has(event.id)) continue;
      state.events.push(event);
      state.byId.set(event.id, event);
      fragment.append(renderRow(event));
    }
    $('rows').append(fragment);
    state.nextCursor = body.next_cursor || null;
    state.hasMore = Boolean(body.has_more && body.next_cursor);
    updateFooter();
    syncSelection({ focus: false });
    requestAnimationFrame(loadMoreIfNearEnd);
  } catch (error) {
    if (generation === state.generation) handleError(error, 'more');
  } finally {
    state.loadingMore = false;
    button.disabled = false;
    button.textContent = 'Load more events';
    if (generation === state.generation) setBusy(false);
  }
}

/** Infinite scroll: keep loading while the end of the list is (nearly) in view. */
function loadMoreIfNearEnd() {
  if (!state.hasMore || $('table-foot').hidden) return;
  const rect = $('sentinel').getBoundingClientRect();
  if (rect.top < window.innerHeight + 400) loadMore();
}

function setBusy(busy) {
  $('results').setAttribute('aria-busy', String(busy));
  show($('progress'), busy);
}

function renderSkeleton() {
  const template = $('skeleton-template');
  const rows = Array.from({ length: 8 }, () => template.content.firstElementChild.cloneNode(true));
  $('rows').replaceChildren(...rows);
  show($('empty'), false);
  show($('table-foot'), false);
  $('result-count').textContent = 'Loading events…';
}

function renderRows() {
  const fragment = document.createDocumentFragment();
  for (const event of state.events) fragment.append(renderRow(event));
  $('rows').replaceChildren(fragment);
  if (!state.events.length) renderEmpty(activeFilterCount() ? 'filtered' : 'none');
  else show($('empty'), false);
  syncSelection({ focus: false });
  updateFooter();
}

function renderEmpty(kind) {
  const empty = $('empty');
  show(empty, true);
  show($('table-foot'), false);
  if (kind === 'error') {
    $('empty-title').textContent = 'Events could not be loaded';
    $('empty-message').textContent = 'See the message above.';
    show($('empty-clear'), activeFilterCount() > 0);
    show($('empty-widen'), false);
    $('result-count').textContent = '';
    return;
  }
  $('empty-title').textContent = kind === 'filtered' ? 'No events match these filters' : `No events ${rangeWords()}`;
  $('empty-message').textContent =
    kind === 'filtered'
      ? `Nothing ${rangeWords()} matches. Try a wider time range or remove a filter.`
      : 'Events appear here as soon as your organization records them. Try a wider time range, or turn on Live mode.';
  show($('empty-clear'), kind === 'filtered');
  // Custom ranges are deliberate; presets shorter than the default retention can widen.
  show($('empty-widen'), state.filters.range !== 'custom' && state.filters.range !== '90d');
  $('result-count').textContent = resultCountText();
}

function resultCountText() {
  const count = state.events.length;
  const noun = count === 1 ? 'event' : 'events';
  if (state.hasMore) return `Showing the latest ${count} ${noun} ${rangeWords()} · more below`;
  return `${count} ${noun} ${rangeWords()}`;
}

function updateFooter() {
  const foot = $('table-foot');
  show(foot, state.events.length > 0);
  show($('load-more'), state.hasMore);
  show($('end-note'), !state.hasMore && state.events.length > PAGE_SIZE / 4);
  $('result-count').textContent = resultCountText();
}

function fillTime(row, event) {
  const date = new Date(event.occurred_at);
  const abs = slot(row, 'abs');
  abs.textContent = formatAbsolute(date);
  abs.dateTime = event.occurred_at;
  abs.title = `${formatAbsolute(date, { ms: true })} ${zoneLabel(date)}`;
  slot(row, 'rel').textContent = formatRelative(date);
}

function renderRow(event) {
  const row = $('row-template').content.firstElementChild.cloneNode(true);
  row.dataset.id = event.id;
  row.id = `row-${event.id}`;
  fillTime(row, event);

  slot(row, 'action').textContent = event.action;
  row.title = describe(event);
  const chip = slot(row, 'category');
  chip.classList.add(`hue-${hueOf(event.category)}`);
  slot(row, 'category-name').textContent = humanize(event.category);

  const actor = event.actor || {};
  const primary = actor.name || actor.email || actor.id || 'Unknown actor';
  slot(row, 'actor-name').textContent = primary;
  const secondary = actor.name && actor.email ? actor.email : actor.id !== primary ? actor.id : '';
  const kind = actor.type && actor.type !== 'user' ? actorKind(actor.type) : '';
  slot(row, 'actor-sub').textContent = [kind, secondary].filter(Boolean).join(' · ');
  slot(row, 'avatar').textContent = initials(actor.name || actor.email || actor.id);
  slot(row, 'avatar').classList.add(`hue-${hueOf(actor.id || '')}`);

  const targets = Array.isArray(event.targets) ? event.targets : [];
  const first = targets[0];
  if (first) {
    slot(row, 'target-name').textContent = first.name || first.id;
    slot(row, 'target-sub').textContent = `${first.type}:${first.id}${targets.length > 1 ? `  +${targets.length - 1} more` : ''}`;
  } else {
    slot(row, 'target-name').textContent = '—';
    slot(row, 'target-name').classList.add('muted');
  }

  const outcome = slot(row, 'outcome');
  outcome.textContent = event.outcome === 'failure' ? 'Failure' : 'Success';
  outcome.classList.add(event.outcome === 'failure' ? 'badge-failure' : 'badge-success');

  const context = event.context || {};
  slot(row, 'ip').textContent = context.ip || '—';
  if (!context.ip) slot(row, 'ip').classList.add('muted');
  slot(row, 'location').textContent = context.location || '';
  return row;
}

function rowOf(id) {
  return id ? document.getElementById(`row-${id}`) : null;
}

/** Marks the selected row (roving tabindex: the selected, else the first row, is tabbable). */
function syncSelection({ focus, scroll = false }) {
  const rows = $('rows').rows;
  let tabbable = rowOf(state.selectedId);
  for (const row of rows) {
    if (!row.dataset.id) continue;
    const selected = row.dataset.id === state.selectedId;
    row.setAttribute('aria-selected', String(selected));
    row.tabIndex = -1;
    if (!tabbable) tabbable = row;
  }
  if (tabbable) tabbable.tabIndex = 0;
  const selected = rowOf(state.selectedId);
  if (selected) {
    if (scroll) selected.scrollIntoView({ block: 'nearest' });
    if (focus) selected.focus({ preventScroll: true });
  }
}

function select(id, { focus = true } = {}) {
  state.selectedId = id;
  syncSelection({ focus, scroll: true });
  if (state.detailId && id) openDetail(id, { focusPanel: false });
}

function moveSelection(delta) {
  if (!state.events.length) return;
  const index = state.events.findIndex((event) => event.id === state.selectedId);
  let next;
  if (index < 0) next = delta > 0 ? 0 : state.events.length - 1;
  else next = Math.min(Math.max(index + delta, 0), state.events.length - 1);
  // Near the end: fetch the next page so J keeps going.
  if (next >= state.events.length - 5) loadMore();
  const focusRow = !state.detailId || document.activeElement instanceof HTMLTableRowElement;
  select(state.events[next].id, { focus: focusRow });
}

function refreshRelativeTimes() {
  const now = Date.now();
  for (const row of $('rows').rows) {
    const abs = slot(row, 'abs');
    if (abs && abs.dateTime) slot(row, 'rel').textContent = formatRelative(new Date(abs.dateTime), now);
  }
}

// ---------------------------------------------------------------------------------------------
// Detail panel

async function openDetail(id, { focusPanel = true } = {}) {
  state.detailId = id;
  history.replaceState(history.state, '', pageUrl());
  const drawer = $('detail');
  const wasHidden = drawer.hidden;
  show(drawer, true);
  document.body.classList.add('drawer-open');
  const known = state.byId.get(id);
  if (known) {
    renderDetail(known);
  } else {
    renderDetailMessage('Loading event…');
    try {
      const event = await (await api(`${ORG_PATH}/events/${encodeURIComponent(id)}`)).json();
      if (state.detailId !== id) return;
      renderDetail(event);
    } catch (error) {
      if (state.detailId !== id) return;
      if (error.status === 404 || error.status === 400) {
        renderDetailMessage(`Event ${id} was not found in ${ORG}'s log (it may be past its retention).`);
      } else {
        renderDetailMessage('The event could not be loaded.');
        handleError(error, 'detail');
      }
    }
  }
  if (focusPanel || wasHidden) drawer.focus({ preventScroll: true });
}

function closeDetail({ restoreFocus = true, updateUrl = true } = {}) {
  const drawer = $('detail');
  if (drawer.hidden && !state.detailId) return;
  state.detailId = null;
  state.detailEvent = null;
  show(drawer, false);
  document.body.classList.remove('drawer-open');
  if (updateUrl && state.token && !$('log').hidden) {
    history.replaceState(history.state, '', pageUrl());
  }
  if (restoreFocus) {
    const row = rowOf(state.selectedId);
    if (row) row.focus();
  }
}

function renderDetailMessage(message) {
  state.detailEvent = null;
  $('detail-category').textContent = '';
  $('detail-title').textContent = 'Event';
  $('detail-description').textContent = message;
  for (const id of ['detail-badges', 'detail-facts', 'detail-targets', 'detail-metadata', 'detail-quick', 'detail-json']) {
    $(id).replaceChildren();
  }
}

function fact(label, ...value) {
  return h('div', { class: 'fact' }, h('dt', { text: label }), h('dd', {}, ...value));
}

function copyButton(text, label) {
  return h('button', {
    type: 'button',
    class: 'copy-btn',
    'aria-label': `Copy ${label}`,
    title: `Copy ${label}`,
    text: 'Copy',
    onclick: () => copy(text, label),
  });
}

// How an event reached the log (server-owned `provenance`): whether the platform wrote it,
// and whether its `source` was verified (a producer key over HTTP) or only claimed (a
// producer writing straight to Kafka). Events stored before the field existed have none.
const PROVENANCE = {
  system: { text: 'Written by the audit log', title: 'Recorded by the audit-log service itself; no producer can write these events' },
  gateway: { text: 'Verified producer', title: 'Published with a producer key over the API: the source is that key' },
  kafka: { text: 'Source claimed', title: 'Produced straight to Kafka: the source is what the producer claimed, not verified' },
};

function provenanceTag(provenance) {
  const known = PROVENANCE[provenance];
  return known ? h('span', { class: 'tag', title: known.title, text: known.text }) : null;
}

function sourceText(event) {
  return event.provenance === 'kafka' ? `${event.source} (claimed)` : event.source;
}

function sourceTitle(provenance) {
  return provenance === 'kafka'
    ? 'Source as claimed by a producer writing straight to Kafka (not verified)'
    : 'Source (the producer that published it)';
}

function renderDetail(event) {
  state.detailEvent = event;
  const category = h('span', { class: `cat-chip hue-${hueOf(event.category)}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), humanize(event.category));
  setChildren($('detail-category'), category);
  $('detail-title').textContent = event.action;
  $('detail-description').textContent = describe(event);

  const failed = event.outcome === 'failure';
  setChildren($('detail-badges'),
    h('span', { class: `badge ${failed ? 'badge-failure' : 'badge-success'}`, text: failed ? 'Failure' : 'Success' }),
    event.source ? h('span', { class: 'tag mono', title: sourceTitle(event.provenance), text: sourceText(event) }) : null,
    provenanceTag(event.provenance),
    event.version !== undefined ? h('span', { class: 'tag', text: `Schema v${event.version}` }) : null,
  );

  const occurred = new Date(event.occurred_at);
  const received = event.received_at ? new Date(event.received_at) : null;
  const actor = event.actor || {};
  const context = event.context || {};
  const otherZone = state.tz === 'utc' ? `${localZoneName()}: ${localAbsolute(occurred)}` : `UTC: ${event.occurred_at}`;
  setChildren($('detail-facts'),
    fact(
      'Occurred',
      h('span', { class: 'mono', text: `${formatAbsolute(occurred, { ms: true })} ${zoneShort(occurred)}` }),
      h('span', { class: 'sub', text: `${formatRelative(occurred)} · ${otherZone}` }),
    ),
    received
      ? fact('Received', h('span', { class: 'mono', text: `${formatAbsolute(received, { ms: true })} ${zoneShort(received)}` }))
      : null,
    fact('Event ID', h('span', { class: 'mono break', text: event.id }), copyButton(event.id, 'event ID')),
    fact(
      'Actor',
      h('span', { class: 'strong', text: actor.name || actor.email || actor.id || 'Unknown' }),
      actor.email && actor.name ? h('span', { class: 'sub', text: actor.email }) : null,
      h('span', { class: 'sub mono', text: `${actorKind(actor.type || 'actor')} · ${actor.id || '—'}` }),
    ),
    fact('IP address', h('span', { class: 'mono', text: context.ip || '—' }), context.location ? h('span', { class: 'sub', text: context.location }) : null),
    context.user_agent ? fact('User agent', h('span', { class: 'mono break small', text: context.user_agent })) : null,
    context.request_id ? fact('Request ID', h('span', { class: 'mono break', text: context.request_id })) : null,
  );

  const targets = Array.isArray(event.targets) ? event.targets : [];
  setChildren($('detail-targets'),
    ...(targets.length
      ? targets.map((target) =>
          h(
            'li',
            {},
            h('span', { class: 'tag mono', text: target.type }),
            h('span', { class: 'target-text' }, h('span', { class: 'strong', text: target.name || target.id }), target.name ? h('span', { class: 'sub mono', text: target.id }) : null),
          ),
        )
      : [h('li', { class: 'muted', text: 'No targets' })]),
  );

  const metadata = event.metadata && typeof event.metadata === 'object' ? Object.entries(event.metadata) : [];
  setChildren($('detail-metadata'),
    ...(metadata.length
      ? metadata.map(([key, value]) =>
          h('div', { class: 'kv-row' }, h('dt', { class: 'mono', text: key }), h('dd', { class: 'mono', text: typeof value === 'string' ? value : JSON.stringify(value) })),
        )
      : [h('div', { class: 'kv-row muted', text: 'No metadata' })]),
  );

  const quick = [
    ['Same action', { action: event.action }, event.action],
    actor.id ? ['Same actor', { actor: actor.email || actor.id }, actor.email || actor.id] : null,
    context.ip ? ['Same IP', { ip: context.ip }, context.ip] : null,
    targets[0] ? ['Same target', { target_type: targets[0].type, target_id: targets[0].id }, `${targets[0].type}:${targets[0].id}`] : null,
  ].filter(Boolean);
  setChildren($('detail-quick'),
    ...quick.map(([label, patch, value]) =>
      h(
        'button',
        { type: 'button', class: 'quick-btn', onclick: () => filterBy(patch) },
        h('span', { class: 'quick-label', text: label }),
        h('span', { class: 'mono', text: value }),
      ),
    ),
  );

  $('detail-json').replaceChildren(highlightJson(JSON.stringify(event, null, 2)));
  renderProof(event.id);
  updateDetailNav();
}

function localAbsolute(date) {
  const saved = state.tz;
  state.tz = 'local';
  const text = `${formatAbsolute(date, { ms: true })} ${offsetLabel(date)}`;
  state.tz = saved;
  return text;
}

function updateDetailNav() {
  const index = state.events.findIndex((event) => event.id === state.detailId);
  $('detail-prev').disabled = index <= 0;
  $('detail-next').disabled = index < 0 || (index >= state.events.length - 1 && !state.hasMore);
}

function filterBy(patch) {
  const filters = emptyFilters();
  filters.range = state.filters.range;
  filters.since = state.filters.since;
  filters.until = state.filters.until;
  state.filters = { ...filters, ...patch };
  closeDetail({ restoreFocus: false, updateUrl: false });
  writeForm();
  navigate();
  loadFirstPage();
}

/** Syntax-highlighted JSON, built from text nodes and spans (no HTML parsing). */
function highlightJson(text) {
  const fragment = document.createDocumentFragment();
  const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  let last = 0;
  for (const match of text.matchAll(token)) {
    if (match.index > last) fragment.append(text.slice(last, match.index));
    if (match[1] && match[2]) {
      fragment.append(h('span', { class: 'j-key', text: match[1] }), match[2]);
    } else if (match[1]) {
      fragment.append(h('span', { class: 'j-str', text: match[1] }));
    } else if (match[3]) {
      fragment.append(h('span', { class: 'j-lit', text: match[3] }));
    } else {
      fragment.append(h('span', { class: 'j-num', text: match[0] }));
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

async function copy(text, label) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`Copied ${label}`);
  } catch {
    toast(`Could not copy ${label}: your browser refused clipboard access`);
  }
}

// ---------------------------------------------------------------------------------------------
// Export. The browser cannot put an Authorization header on a plain link, so the file is
// fetched with the header and handed to the user through a Blob and an <a download>. Fine
// for a demo, but the whole file is held in memory: a production deployment would hand out a
// short-lived signed download URL (or use a cookie session) so that the browser streams the
// export straight to disk.

async function exportLog(format, button) {
  if (button.getAttribute('aria-busy') === 'true') return;
  const label = button.querySelector('.btn-text');
  const original = label.textContent;
  button.setAttribute('aria-busy', 'true');
  button.disabled = true;
  label.textContent = 'Preparing…';
  try {
    const params = apiFilterParams();
    params.set('format', format);
    const response = await api(`${ORG_PATH}/events/export`, params);
    let blob;
    try {
      blob = await response.blob();
    } catch {
      // The export is streamed: a failure after the first byte cuts the body short.
      throw new ApiError(response.status, 'export_interrupted', 'The export was interrupted before it was complete, so no file was saved. Try again.');
    }
    const name = fileNameOf(response.headers.get('Content-Disposition')) || `audit-log_${ORG}.${format}`;
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    toast(`Exported ${name} (${formatBytes(blob.size)})`);
  } catch (error) {
    handleError(error, 'export');
  } finally {
    button.removeAttribute('aria-busy');
    button.disabled = false;
    label.textContent = original;
  }
}

function fileNameOf(disposition) {
  const match = /filename="?([^";]+)"?/i.exec(disposition || '');
  // Only a plain file name: nothing that could name a path.
  return match ? match[1].replace(/[^\w.-]/g, '_') : null;
}

// ---------------------------------------------------------------------------------------------
// Live mode: poll the first page with the current filters and merge in unseen events.

function setLive(on) {
  state.live = on;
  const toggle = $('live-toggle');
  toggle.setAttribute('aria-checked', String(on));
  toggle.classList.toggle('is-on', on);
  if (!$('log').hidden) history.replaceState(history.state, '', pageUrl());
  clearTimeout(state.liveTimer);
  state.liveError = null;
  if (on) state.liveTimer = setTimeout(poll, 0);
  else {
    state.unseenNew = 0;
    show($('new-pill'), false);
  }
  renderLiveStatus();
}

function stopLive() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
}

async function poll() {
  if (!state.live || !state.token) return;
  const started = performance.now();
  if (!state.loading && document.visibilityState !== 'hidden') {
    const generation = state.generation;
    const params = apiFilterParams();
    params.set('limit', String(LIVE_PAGE_SIZE));
    try {
      const body = await (await api(`${ORG_PATH}/events`, params)).json();
      if (generation === state.generation && state.live) mergeNew(body.data || []);
      state.liveError = null;
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 404) {
        handleError(error, 'live');
        return;
      }
      state.liveError = error;
    }
    renderLiveStatus();
  }
  if (!state.live) return;
  const wait = Math.max(0, LIVE_INTERVAL_MS - (performance.now() - started));
  state.liveTimer = setTimeout(poll, wait);
}

function mergeNew(events) {
  const oldest = state.events[state.events.length - 1];
  // Unseen events older than everything loaded belong to a later page while there is one.
  const fresh = events.filter((event) => !state.byId.has(event.id) && (!state.hasMore || !oldest || compareEvents(event, oldest) < 0));
  if (!fresh.length) return;
  fresh.sort(compareEvents);

  const tbody = $('rows');
  const headerHeight = document.querySelector('.topbar').offsetHeight;
  const tableTop = $('results').getBoundingClientRect().top;
  // Scrolled into the list: keep what the reader is looking at still.
  const anchor = tableTop < headerHeight ? firstVisibleRow(headerHeight) : null;
  const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;

  let above = 0;
  for (const event of fresh) {
    let index = state.events.findIndex((known) => compareEvents(event, known) < 0);
    if (index < 0) index = state.events.length;
    state.events.splice(index, 0, event);
    state.byId.set(event.id, event);
    const row = renderRow(event);
    row.classList.add('is-new');
    setTimeout(() => row.classList.remove('is-new'), 4000);
    const before = tbody.rows[index] || null;
    tbody.insertBefore(row, before && before.dataset.id ? before : null);
    if (anchor && anchor.getBoundingClientRect().top > anchorTop) above += 1;
  }
  if (anchor) {
    window.scrollBy(0, anchor.getBoundingClientRect().top - anchorTop);
    state.unseenNew += above;
  }
  show($('empty'), false);
  syncSelection({ focus: false });
  updateFooter();
  updateNewPill();
  if (state.detailId) updateDetailNav();
  announce(`${fresh.length} new ${fresh.length === 1 ? 'event' : 'events'}`);
}

function firstVisibleRow(headerHeight) {
  for (const row of $('rows').rows) {
    if (row.getBoundingClientRect().bottom > headerHeight) return row;
  }
  return null;
}

function updateNewPill() {
  const pill = $('new-pill');
  pill.textContent = `↑ ${state.unseenNew} new ${state.unseenNew === 1 ? 'event' : 'events'}`;
  show(pill, state.unseenNew > 0);
}

function renderLiveStatus() {
  const status = $('live-status');
  status.classList.toggle('is-live', state.live && !state.liveError);
  status.classList.toggle('is-error', Boolean(state.live && state.liveError));
  if (!state.live) {
    status.textContent = '';
  } else if (state.liveError) {
    status.textContent = `Live: reconnecting (${state.liveError.message})`;
  } else {
    status.textContent = 'Live: new events appear automatically';
  }
}

// ---------------------------------------------------------------------------------------------
// Keyboard

function onKeyDown(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($('log').hidden || $('shortcuts').open) return;
  const target = event.target;
  if (event.key === 'Escape') {
    if (isTypingTarget(target) && target.closest('#filters')) {
      target.blur();
      return;
    }
    if (state.detailId) {
      event.preventDefault();
      closeDetail();
    }
    return;
  }
  if (isTypingTarget(target)) return;
  const onControl = target instanceof HTMLElement && target.closest('button, a, summary, [role="switch"]');
  const inGridOrBody = target === document.body || target instanceof HTMLTableRowElement || target === $('main') || target === $('detail');
  switch (event.key) {
    case '/':
      event.preventDefault();
      $('f-q').focus();
      $('f-q').select();
      break;
    case 'j':
    case 'J':
      event.preventDefault();
      moveSelection(1);
      break;
    case 'k':
    case 'K':
      event.preventDefault();
      moveSelection(-1);
      break;
    case 'ArrowDown':
    case 'ArrowUp':
      if (!inGridOrBody) return;
      event.preventDefault();
      moveSelection(event.key === 'ArrowDown' ? 1 : -1);
      break;
    case 'Home':
    case 'End':
      if (!(target instanceof HTMLTableRowElement) || !state.events.length) return;
      event.preventDefault();
      select(event.key === 'Home' ? state.events[0].id : state.events[state.events.length - 1].id);
      break;
    case 'Enter':
      if (onControl || !state.selectedId) return;
      if (!inGridOrBody) return;
      event.preventDefault();
      openDetail(state.selectedId);
      break;
    case 'l':
    case 'L':
      if (onControl && target.id === 'live-toggle') return;
      setLive(!state.live);
      break;
    case 'u':
    case 'U':
      setTimeZone(state.tz === 'utc' ? 'local' : 'utc');
      break;
    case '?':
      event.preventDefault();
      $('shortcuts').showModal();
      break;
    default:
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function wire() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim().replace(/^bearer\s+/i, '');
    const looksLikeJwt = /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
    if (!looksLikeJwt && !token.startsWith('at_')) {
      const error = $('signin-error');
      error.textContent = token ? 'That does not look like a token: a JWT has three parts separated by dots.' : 'Paste a token to sign in.';
      show(error, true);
      $('token-input').focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    enter();
  });
  $('sign-out').addEventListener('click', () => signOut('You signed out.'));
  $('blocked-signin').addEventListener('click', () => signOut());
  $('integrity-verify').addEventListener('click', () => verifyIntegrity());

  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(textTimer);
    applyFilters();
  });
  for (const name of TEXT_FILTERS) {
    $(`f-${name}`).addEventListener('input', onTextInput);
    $(`f-${name}`).addEventListener('change', () => {
      clearTimeout(textTimer);
      if ($(`f-${name}`).value !== state.filters[name]) applyFilters();
    });
  }
  $('f-outcome').addEventListener('change', () => applyFilters());
  for (const id of ['f-since', 'f-until']) $(id).addEventListener('change', () => applyFilters());
  $('range-group').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-range]');
    if (button) setRange(button.dataset.range);
  });
  $('range-group').addEventListener('keydown', (event) => {
    // Radio-group arrows.
    if (!['ArrowLeft', 'ArrowRight'].includes(event.key)) return;
    const buttons = [...$('range-group').querySelectorAll('button')];
    const index = buttons.indexOf(document.activeElement);
    const next = buttons[(index + (event.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    event.preventDefault();
    next.focus();
    if (next.dataset.range !== 'custom') setRange(next.dataset.range);
  });
  $('clear-filters').addEventListener('click', clearFilters);
  $('empty-clear').addEventListener('click', clearFilters);
  $('empty-widen').addEventListener('click', () => setRange('90d'));
  $('banner-retry').addEventListener('click', () => {
    hideBanner();
    loadFirstPage();
  });

  $('tz-group').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-tz]');
    if (button) setTimeZone(button.dataset.tz);
  });
  $('live-toggle').addEventListener('click', () => setLive(!state.live));
  for (const id of ['export-csv', 'export-json']) {
    $(id).addEventListener('click', () => exportLog($(id).dataset.format, $(id)));
  }

  const rows = $('rows');
  rows.addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-id]');
    if (!row) return;
    state.selectedId = row.dataset.id;
    syncSelection({ focus: false });
    openDetail(row.dataset.id);
  });
  rows.addEventListener('focusin', (event) => {
    const row = event.target.closest('tr[data-id]');
    if (row && row.dataset.id !== state.selectedId) {
      state.selectedId = row.dataset.id;
      syncSelection({ focus: false });
    }
  });

  $('detail-close').addEventListener('click', () => closeDetail());
  $('detail-prev').addEventListener('click', () => moveSelection(-1));
  $('detail-next').addEventListener('click', () => moveSelection(1));
  $('copy-json').addEventListener('click', () => state.detailEvent && copy(JSON.stringify(state.detailEvent, null, 2), 'event JSON'));
  $('copy-link').addEventListener('click', () => copy(location.origin + pageUrl(), 'link to this event'));

  $('load-more').addEventListener('click', loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: '400px 0px' }).observe($('sentinel'));

  $('new-pill').addEventListener('click', () => {
    state.unseenNew = 0;
    updateNewPill();
    window.scrollTo({ top: 0 });
    const first = state.events[0];
    if (first) {
      state.selectedId = first.id;
      syncSelection({ focus: true });
    }
  });
  window.addEventListener('scroll', () => {
    if (state.unseenNew && $('results').getBoundingClientRect().top >= 0) {
      state.unseenNew = 0;
      updateNewPill();
    }
  }, { passive: true });

  $('shortcuts-open').addEventListener('click', () => $('shortcuts').showModal());
  $('shortcuts-close').addEventListener('click', () => $('shortcuts').close());

  document.addEventListener('keydown', onKeyDown);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.live) {
      clearTimeout(state.liveTimer);
      poll();
    }
  });
  window.addEventListener('popstate', () => {
    if ($('log').hidden) return;
    readStateFromUrl();
    loadFirstPage();
  });
  setInterval(refreshRelativeTimes, 15_000);
}

function readStateFromUrl() {
  state.filters = filtersFromUrl();
  clearFieldErrors();
  writeForm();
  const params = new URLSearchParams(location.search);
  const live = params.get('live') === '1';
  if (live !== state.live) setLive(live);
  const eventId = params.get('event');
  if (eventId && eventId !== state.detailId) {
    state.selectedId = eventId;
    openDetail(eventId, { focusPanel: false });
  } else if (!eventId && state.detailId) {
    closeDetail({ restoreFocus: false });
  }
}

function enter() {
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) {
    showSignIn();
    return;
  }
  state.claims = decodeClaims(state.token);
  const exp = Number(state.claims && state.claims.exp);
  if (exp && exp * 1000 < Date.now()) {
    showSignIn(`Your token expired on ${new Date(exp * 1000).toLocaleString()}. Sign in again.`);
    return;
  }
  renderSession();
  watchExpiry();
  showView('log');
  hideBanner();
  setTimeZone(state.tz);
  readStateFromUrl();
  loadCatalogue();
  loadFirstPage();
}

function start() {
  document.title = `Audit Logs · ${ORG}`;
  for (const id of ['crumb-org', 'org-name', 'signin-org']) $(id).textContent = ORG;
  takeTokenFromFragment();
  wire();
  enter();
}

start();

// ---------------------------------------------------------------------------------------------
// Integrity (docs/integrity.md): the range's verdict in the results bar, the event's proof in
// the panel. Verifying reads every event of the range, so it runs by itself only for ranges of
// a day or less; longer ones are verified on request.

const AUTO_VERIFY_MS = 24 * 3600e3;
const INTEGRITY_STATES = {
  intact: ['badge-success', 'Integrity verified', 'Every event of this range is in a signed, sealed window; nothing was deleted, altered, inserted or cut off'],
  not_yet_sealed: ['badge-pending', 'Not yet sealed', 'Intact so far; the newest events are sealed within the next window'],
  problems: ['badge-failure', 'Integrity problem', 'The log of this range differs from its signed digests'],
};

/** The `since`/`until` of the shown range, and its length. */
function integrityRange(now = Date.now()) {
  const shown = apiFilterParams(now);
  const until = shown.get('until') ? Date.parse(shown.get('until')) : now;
  const since = shown.get('since') ? Date.parse(shown.get('since')) : now - RANGES['90d'];
  const range = new URLSearchParams();
  range.set('since', new Date(since).toISOString());
  range.set('until', new Date(until).toISOString());
  return { range, length: until - since };
}

function showIntegrity(kind, text, title) {
  const badge = $('integrity-badge');
  badge.className = `badge ${kind}`;
  badge.textContent = text;
  badge.title = title || '';
  show($('integrity-status'), true);
}

function integrityForRange(generation) {
  const { length } = integrityRange();
  show($('integrity-verify'), length > AUTO_VERIFY_MS);
  if (length > AUTO_VERIFY_MS) {
    showIntegrity('', '', '');
    return;
  }
  verifyIntegrity(generation);
}

async function verifyIntegrity(generation = state.generation) {
  const { range } = integrityRange();
  showIntegrity('badge-pending', 'Verifying integrity…', '');
  try {
    const verdict = await (await api(`${ORG_PATH}/integrity/verify`, range)).json();
    if (generation !== state.generation) return;
    const [kind, text, title] = INTEGRITY_STATES[verdict.state] || ['badge-pending', verdict.state, ''];
    const findings = (verdict.findings || []).length;
    showIntegrity(kind, findings ? `${text}: ${findings} finding${findings === 1 ? '' : 's'}` : text,
      findings ? verdict.findings.slice(0, 5).map((f) => `${f.kind}${f.seq !== undefined && f.seq !== null ? ` in window ${f.seq}` : ''}${f.event_id ? ` (${f.event_id})` : ''}`).join('\n') : title);
    show($('integrity-verify'), false);
  } catch (error) {
    if (generation !== state.generation) return;
    if (error.status === 404) {
      show($('integrity-status'), false); // tamper evidence is not enabled on this gateway
      return;
    }
    showIntegrity('badge-pending', error.status === 400 ? 'Range too large to verify' : 'Integrity not checked', error.message);
  }
}

/** RFC 6962 audit path → root (RFC 9162 §2.1.3.2), with the browser's SHA-256. */
async function rootFromPath(leafHex, index, size, pathHex) {
  const bytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));
  const node = async (left, right) =>
    new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array([1, ...left, ...right])));
  let fn = index;
  let sn = size - 1;
  let hash = bytes(leafHex);
  for (const sibling of pathHex.map(bytes)) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      hash = await node(sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      hash = await node(hash, sibling);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 ? Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('') : null;
}

function kvRow(label, value) {
  return h('div', { class: 'kv-row' }, h('dt', { text: label }), h('dd', {}, value));
}

async function renderProof(id) {
  const section = $('detail-integrity-section');
  const list = $('detail-integrity');
  list.replaceChildren();
  try {
    const proof = await (await api(`${ORG_PATH}/integrity/proof/${encodeURIComponent(id)}`)).json();
    if (state.detailId !== id) return;
    const note = String(proof.digest && proof.digest.note || '');
    const field = (name) => (note.split('\n').find((line) => line.startsWith(`${name}: `)) || '').slice(name.length + 2);
    const root = await rootFromPath(proof.leaf, proof.leaf_index, proof.tree_size, proof.audit_path || []);
    if (state.detailId !== id) return;
    const checked = root !== null && root === field('root');
    list.replaceChildren(
      kvRow('Window', h('span', { class: 'mono', text: `#${field('seq')} · sealed ${field('sealed_at')}` })),
      kvRow('Position', h('span', { text: `leaf ${proof.leaf_index + 1} of ${proof.tree_size}` })),
      kvRow('Leaf (SHA-256)', h('span', { class: 'mono break small', text: proof.leaf })),
      kvRow('Window root', h('span', { class: 'mono break small', text: field('root') })),
      kvRow('Audit path', h('span', { text: `${(proof.audit_path || []).length} hashes` })),
      kvRow('Signed by', h('span', { class: 'mono', text: proof.digest.key_id || '—' })),
      kvRow('Checked here', h('span', {
        class: `badge ${checked ? 'badge-success' : 'badge-failure'}`,
        text: checked ? 'Leaf hashes up to the signed root' : 'Path does not reach the signed root',
      })),
    );
    show(section, true);
  } catch (error) {
    if (state.detailId !== id) return;
    if (error.status === 404 && /sealed/.test(error.message)) {
      list.replaceChildren(kvRow('Window', h('span', { text: 'Not sealed yet: proofs appear once its window is sealed' })));
      show(section, true);
      return;
    }
    show(section, false); // integrity off, or the proof could not be loaded: the event stands alone
  }
}

