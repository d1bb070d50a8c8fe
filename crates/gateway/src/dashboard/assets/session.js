// Audit Logs page — the session: the token comes from `#token=…` (what `make run` prints) or
// the sign-in form and is kept in this tab's sessionStorage. Signing out, the views (sign-in,
// blocked, log), the signed-in user from the token's claims (display only), expiry.

import { closeDetail } from './detail.js';
import { $, humanize, initials, show } from './dom.js';
import { stopLive } from './live.js';
import { state, TOKEN_KEY } from './state.js';

export function takeTokenFromFragment() {
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
export function decodeClaims(token) {
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

export function claimText(name) {
  const value = state.claims && state.claims[name];
  return typeof value === 'string' ? value : '';
}

export function signOut(message) {
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

export function showView(name) {
  show($('signin'), name === 'signin');
  show($('blocked'), name === 'blocked');
  show($('log'), name === 'log');
  show($('session'), name !== 'signin' && Boolean(state.token));
  if (name !== 'log') closeDetail({ restoreFocus: false });
}

export function showSignIn(message) {
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

export function showBlocked(title, message, link) {
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

export function renderSession() {
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

export function watchExpiry() {
  clearTimeout(state.expiryTimer);
  const exp = Number(state.claims && state.claims.exp);
  if (!exp) return;
  const remaining = exp * 1000 - Date.now();
  // setTimeout cannot wait longer than ~24 days; the gateway's 401 covers the rest.
  if (remaining > 0 && remaining < 2 ** 31 - 1) {
    state.expiryTimer = setTimeout(() => showSignIn('Your session expired. Sign in again to keep reading the log.'), remaining);
  }
}
