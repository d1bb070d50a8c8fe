// Audit Logs page — the results: the first page and the next ones (keyset cursor, infinite
// scroll), rows, skeleton and empty states, the count in the footer, the selection (roving
// tabindex), relative times kept fresh.

import { api, handleError, hideBanner } from './api.js';
import { describe } from './catalogue.js';
import { openDetail } from './detail.js';
import { $, actorKind, announce, hueOf, humanize, initials, show, slot } from './dom.js';
import { activeFilterCount, apiFilterParams, rangeWords } from './filters.js';
import { integrityForRange } from './integrity.js';
import { ORG_PATH, PAGE_SIZE, state } from './state.js';
import { formatAbsolute, formatRelative, zoneLabel } from './time.js';

export function compareEvents(a, b) {
  // Newest first on (occurred_at, id), the list API's order.
  const at = Date.parse(b.occurred_at) - Date.parse(a.occurred_at);
  if (at) return at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export async function loadFirstPage() {
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

export async function loadMore() {
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

export function renderEmpty(kind) {
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

export function updateFooter() {
  const foot = $('table-foot');
  show(foot, state.events.length > 0);
  show($('load-more'), state.hasMore);
  show($('end-note'), !state.hasMore && state.events.length > PAGE_SIZE / 4);
  $('result-count').textContent = resultCountText();
}

export function fillTime(row, event) {
  const date = new Date(event.occurred_at);
  const abs = slot(row, 'abs');
  abs.textContent = formatAbsolute(date);
  abs.dateTime = event.occurred_at;
  abs.title = `${formatAbsolute(date, { ms: true })} ${zoneLabel(date)}`;
  slot(row, 'rel').textContent = formatRelative(date);
}

export function renderRow(event) {
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

export function rowOf(id) {
  return id ? document.getElementById(`row-${id}`) : null;
}

/** Marks the selected row (roving tabindex: the selected, else the first row, is tabbable). */
export function syncSelection({ focus, scroll = false }) {
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

export function select(id, { focus = true } = {}) {
  state.selectedId = id;
  syncSelection({ focus, scroll: true });
  if (state.detailId && id) openDetail(id, { focusPanel: false });
}

export function moveSelection(delta) {
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

export function refreshRelativeTimes() {
  const now = Date.now();
  for (const row of $('rows').rows) {
    const abs = slot(row, 'abs');
    if (abs && abs.dateTime) slot(row, 'rel').textContent = formatRelative(new Date(abs.dateTime), now);
  }
}
