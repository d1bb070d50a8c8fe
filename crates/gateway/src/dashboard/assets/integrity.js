// Audit Logs page — integrity (docs/integrity.md): the range's verdict in the results bar, the
// event's proof in the panel. Verifying reads every event of the range, so it runs by itself
// only for ranges of a day or less; longer ones are verified on request.

import { api } from './api.js';
import { $, h, show } from './dom.js';
import { apiFilterParams } from './filters.js';
import { ORG_PATH, RANGES, state } from './state.js';

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

export function integrityForRange(generation) {
  const { length } = integrityRange();
  show($('integrity-verify'), length > AUTO_VERIFY_MS);
  if (length > AUTO_VERIFY_MS) {
    showIntegrity('', '', '');
    return;
  }
  verifyIntegrity(generation);
}

export async function verifyIntegrity(generation = state.generation) {
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

export async function renderProof(id) {
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
