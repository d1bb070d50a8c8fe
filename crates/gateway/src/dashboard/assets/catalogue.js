// Audit Logs page — the event catalogue (`GET /v1/catalogue`): category chips and action
// suggestions in the filters, and the description of an event's action.

import { api, handleError } from './api.js';
import { $, h, hueOf, humanize } from './dom.js';
import { applyFilters } from './filters.js';
import { state } from './state.js';

export async function loadCatalogue() {
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

export function describe(event) {
  const info = state.catalogue.actions.get(event.action);
  return info && info.description ? info.description : '';
}
