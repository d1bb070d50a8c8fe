// Audit Logs page — filters. The URL's query string is the source of truth, so any view can be
// shared: the filters are read from it and written to it (a history entry per view), put into
// and read from the form, and turned into the API's parameters (preset ranges relative to now).

import { clearFieldErrors, markFieldError } from './api.js';
import { closeDetail } from './detail.js';
import { $, show } from './dom.js';
import { loadFirstPage } from './results.js';
import { ACTION_PATTERN, DEFAULT_RANGE, emptyFilters, RANGE_WORDS, RANGES, state, TEXT_FILTERS } from './state.js';
import { formatAbsolute, inputToIso, isoToInput, zoneShort } from './time.js';

export function filtersFromUrl() {
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

export function pageUrl() {
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
export function apiFilterParams(now = Date.now()) {
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

export function activeFilterCount() {
  const filters = state.filters;
  let count = filters.category.length ? 1 : 0;
  for (const name of TEXT_FILTERS) if (filters[name].trim()) count += 1;
  if (filters.outcome) count += 1;
  return count;
}

export function rangeWords() {
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
export function writeForm() {
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

export function writeCustomRange() {
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
export function applyFilters({ fromForm = true } = {}) {
  if (fromForm && !readForm()) return;
  closeDetail({ restoreFocus: false, updateUrl: false });
  navigate();
  writeForm();
  loadFirstPage();
}

/** A history entry per distinct view, so Back returns to the previous filters. */
export function navigate() {
  const url = pageUrl();
  if (url === location.pathname + location.search) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
}

export let textTimer = null;
export function onTextInput(event) {
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

export function clearFilters() {
  state.filters = emptyFilters();
  clearFieldErrors();
  writeForm();
  closeDetail({ restoreFocus: false, updateUrl: false });
  navigate();
  loadFirstPage();
}

export function setRange(range) {
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
