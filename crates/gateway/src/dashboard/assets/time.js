// Audit Logs page — time: absolute in UTC or the browser's zone (the zone always named), plus
// relative; the inputs of a custom range read and written in the displayed zone.

import { renderDetail } from './detail.js';
import { $ } from './dom.js';
import { writeCustomRange } from './filters.js';
import { fillTime } from './results.js';
import { state, TZ_KEY } from './state.js';

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

export function localZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'Local time';
}

export function offsetLabel(date) {
  const minutes = -date.getTimezoneOffset();
  if (minutes === 0) return 'UTC';
  const sign = minutes > 0 ? '+' : '−';
  const abs = Math.abs(minutes);
  const hours = String(Math.floor(abs / 60)).padStart(2, '0');
  const rest = abs % 60 ? `:${String(abs % 60).padStart(2, '0')}` : '';
  return `UTC${sign}${hours}${rest}`;
}

/** The zone of the displayed times, e.g. `UTC` or `Europe/Paris (UTC+01)`. */
export function zoneLabel(date = new Date()) {
  if (state.tz === 'utc') return 'UTC';
  return `${localZoneName()} (${offsetLabel(date)})`;
}

export function zoneShort(date = new Date()) {
  return state.tz === 'utc' ? 'UTC' : offsetLabel(date);
}

export function formatAbsolute(date, { ms = false } = {}) {
  const p = dateParts(date);
  const base = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  return ms ? `${base}.${String(date.getUTCMilliseconds()).padStart(3, '0')}` : base;
}

const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'long' });

export function formatRelative(date, now = Date.now()) {
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
export function isoToInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const p = dateParts(date);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
}

/** A datetime-local value read in the displayed zone → RFC 3339 UTC; `null` when invalid. */
export function inputToIso(value) {
  if (!value) return '';
  const full = value.length === 16 ? `${value}:00` : value;
  // Without an offset, `new Date()` reads date-times as local time.
  const date = state.tz === 'utc' ? new Date(`${full}Z`) : new Date(full);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export function setTimeZone(tz) {
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
