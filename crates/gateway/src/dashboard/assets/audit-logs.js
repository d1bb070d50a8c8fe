// Security → Audit Logs: the entry module of the dashboard page (ES modules, no build step).
// It wires the page's controls to the other modules and starts; each of those holds one part:
//   state.js      constants and the one mutable state object
//   dom.js        DOM helpers (text only, never HTML) and small formatters
//   session.js    the token, signing in and out, the page's views
//   api.js        the read API client and how its errors are shown
//   time.js       UTC or local times, the zone always named
//   filters.js    the filters, in the URL and the form
//   catalogue.js  category chips and action suggestions
//   results.js    the list: pages, rows, selection
//   detail.js     the panel of one event
//   integrity.js  the range's verdict and the event's proof
//   export.js     CSV / JSON downloads
//   live.js       live mode
//   keyboard.js   shortcuts
//
// Everything it shows comes from the read API of the gateway that served it, called with the
// token the user signed in with (kept in this tab's sessionStorage only):
//   GET /v1/orgs/{org}/events            the filtered list, newest first, keyset cursor
//   GET /v1/orgs/{org}/events/{id}       one event (deep links: ?event=<id>)
//   GET /v1/orgs/{org}/events/export     CSV / JSON download with the same filters
//   GET /v1/catalogue                    categories and actions (chips, action suggestions)
//
// Safety rules every module keeps:
// * Event fields are attacker-controlled text. They are only ever written with textContent or
//   attribute setters, never parsed as HTML (there is no innerHTML anywhere in these files).
// * The page runs under a strict CSP (no inline script/style, connect-src 'self'), so styling
//   goes through classes and the hidden attribute, never style attributes.
// * The token never goes into a URL this page builds: share links carry filters only.

import { clearFieldErrors, hideBanner } from './api.js';
import { loadCatalogue } from './catalogue.js';
import { closeDetail, copy, openDetail } from './detail.js';
import { $, show } from './dom.js';
import { exportLog } from './export.js';
import { applyFilters, clearFilters, filtersFromUrl, onTextInput, pageUrl, setRange, textTimer, writeForm } from './filters.js';
import { verifyIntegrity } from './integrity.js';
import { onKeyDown } from './keyboard.js';
import { poll, setLive, updateNewPill } from './live.js';
import { loadFirstPage, loadMore, moveSelection, refreshRelativeTimes, syncSelection } from './results.js';
import { decodeClaims, renderSession, showSignIn, showView, signOut, takeTokenFromFragment, watchExpiry } from './session.js';
import { ORG, state, TEXT_FILTERS, TOKEN_KEY } from './state.js';
import { setTimeZone } from './time.js';

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
