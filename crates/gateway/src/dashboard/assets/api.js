// Audit Logs page — the read API client: one fetch wrapper (the user's bearer token, no
// cookies, no cache), the API's error shape as an `ApiError`, and how each error is shown:
// sign in again (401), blocked (403, 404), a banner with retry (429, 503, network), the
// offending filter field marked (400).

import { $, capitalize, show } from './dom.js';
import { loadFirstPage, renderEmpty } from './results.js';
import { claimText, showBlocked, showSignIn } from './session.js';
import { ORG, state } from './state.js';

export class ApiError extends Error {
  constructor(status, code, message, param, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.retryAfter = retryAfter;
  }
}

export async function api(path, params, { signal } = {}) {
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
export function handleError(error, where) {
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

export function hideBanner() {
  show($('banner'), false);
}

const FIELD_OF_PARAM = { since: 'f-since', until: 'f-until', q: 'f-q', action: 'f-action', actor: 'f-actor', target_type: 'f-target_type', target_id: 'f-target_id', outcome: 'f-outcome', ip: 'f-ip' };

export function markFieldError(param, message) {
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

export function clearFieldErrors() {
  for (const id of Object.values(FIELD_OF_PARAM)) {
    const input = $(id);
    input.removeAttribute('aria-invalid');
    const note = $(`${id}-error`);
    if (note) show(note, false);
  }
}
