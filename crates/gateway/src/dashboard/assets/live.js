// Audit Logs page — live mode: polls the first page with the current filters and merges in
// the events not seen yet; a pill counts those that arrived above the visible rows.

import { api, handleError } from './api.js';
import { updateDetailNav } from './detail.js';
import { $, announce, show } from './dom.js';
import { apiFilterParams, pageUrl } from './filters.js';
import { compareEvents, renderRow, syncSelection, updateFooter } from './results.js';
import { LIVE_INTERVAL_MS, LIVE_PAGE_SIZE, ORG_PATH, state } from './state.js';

export function setLive(on) {
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

export function stopLive() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
}

export async function poll() {
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

export function updateNewPill() {
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
