// Audit Logs page — the detail panel of one event: its facts, how it reached the log
// (provenance), its full JSON highlighted from text nodes (no HTML parsing), copy buttons,
// previous/next, and "filter by this" links. Its integrity proof comes from integrity.js.

import { api, handleError } from './api.js';
import { describe } from './catalogue.js';
import { $, actorKind, h, hueOf, humanize, setChildren, show, toast } from './dom.js';
import { navigate, pageUrl, writeForm } from './filters.js';
import { renderProof } from './integrity.js';
import { loadFirstPage, rowOf } from './results.js';
import { emptyFilters, ORG, ORG_PATH, state } from './state.js';
import { formatAbsolute, formatRelative, localZoneName, offsetLabel, zoneShort } from './time.js';

export async function openDetail(id, { focusPanel = true } = {}) {
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

export function closeDetail({ restoreFocus = true, updateUrl = true } = {}) {
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

export function renderDetail(event) {
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

export function updateDetailNav() {
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

export async function copy(text, label) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`Copied ${label}`);
  } catch {
    toast(`Could not copy ${label}: your browser refused clipboard access`);
  }
}
