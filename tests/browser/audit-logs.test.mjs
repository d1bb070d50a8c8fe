// Browser test of the Security → Audit Logs page, with Playwright (playwright-core) driving
// Debian's Chromium headless. Run by tests/tests/browser.rs, which starts the indexer and the
// gateway on the real engines, seeds events and passes:
//   GATEWAY_URL, ORG, TOKEN (admin), MEMBER_TOKEN, PRODUCER_KEY, SEED_COUNT, FORMULA_NAME,
//   MARKUP_NAME, SCREENSHOT_DIR, CHROMIUM_PATH
//
// Checks, in order, on one signed-in page:
//   1. `#token=` signs in and leaves the address bar; the page is served with a strict CSP;
//      the seeded events are listed with the time zone named; markup in event data is text.
//   2. Category and action-prefix filters narrow the rows, show the empty state, are reflected
//      in the URL and survive a reload (a shareable view).
//   3. Opening an event shows its full JSON; Esc closes; ?event=<id> deep-links to it.
//   4. Keyboard: j/k move the selection, Enter opens, j moves the open panel, / focuses search.
//   5. The UTC/local toggle changes the displayed times and the zone label.
//   6. Export CSV (parsed with csv-parse) honours the filters and neutralises formulas with `'`;
//      Export JSON holds the same events.
//   7. Live mode shows an event published now (POST /v1/events) without a reload.
//   8. A Member sees "Owners and Admins only"; a bad token gets the sign-in form with the
//      gateway's reason; signing out forgets the token.
// Screenshots: SCREENSHOT_DIR/audit-logs*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: this test is run by tests/tests/browser.rs (cargo test -p audit-tests --test browser)`);
  }
  return value;
}

const GATEWAY_URL = required('GATEWAY_URL');
const ORG = required('ORG');
const TOKEN = required('TOKEN');
const MEMBER_TOKEN = required('MEMBER_TOKEN');
const PRODUCER_KEY = required('PRODUCER_KEY');
const SEED_COUNT = Number(required('SEED_COUNT'));
const FORMULA_NAME = required('FORMULA_NAME');
const MARKUP_NAME = required('MARKUP_NAME');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOT_DIR = path.resolve(process.env.SCREENSHOT_DIR || '../../.local/test/screenshots');
const PAGE_PATH = `/orgs/${ORG}/security/audit-logs`;
/** A zone that is never UTC, so the UTC/local toggle must change what is shown. */
const LOCAL_ZONE = 'America/New_York';

const CSV_COLUMNS = [
  'id', 'occurred_at', 'received_at', 'category', 'action', 'outcome', 'actor_type', 'actor_id',
  'actor_name', 'actor_email', 'targets', 'ip', 'user_agent', 'location', 'request_id', 'metadata', 'source',
];

let browser;
let context;
let page;
const problems = [];

function watch(target) {
  target.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  target.on('console', (message) => {
    // A refused resource or inline code would be a CSP violation: the page must have none.
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
}

async function newPage() {
  const created = await context.newPage();
  created.setDefaultTimeout(20_000);
  watch(created);
  return created;
}

const rows = () => page.locator('#rows tr[data-id]');

async function rowIds() {
  return rows().evaluateAll((nodes) => nodes.map((node) => node.dataset.id));
}

/** Waits until the list is loaded (not busy) and returns the row count. */
async function settled() {
  await page.waitForFunction(() => document.getElementById('results').getAttribute('aria-busy') === 'false');
  return rows().count();
}

function searchParam(name) {
  return new URL(page.url()).searchParams.get(name);
}

/** Back to no filters (the button is disabled when there is nothing to clear). */
async function clearFilters() {
  if (await page.isEnabled('#clear-filters')) await page.click('#clear-filters');
  await page.waitForFunction(() => ['category', 'action', 'actor', 'ip', 'q'].every((name) => !new URL(location.href).searchParams.has(name)));
  return settled();
}

async function screenshot(name, options = {}) {
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, ...options });
  console.log(`screenshot: ${file}`);
}

async function download(buttonId) {
  const failed = page
    .locator('#banner')
    .waitFor({ state: 'visible' })
    .then(async () => {
      throw new Error(`the page reported: ${await page.locator('#banner').innerText()}`);
    });
  failed.catch(() => {});
  const [file] = await Promise.all([Promise.race([page.waitForEvent('download'), failed]), page.click(`#${buttonId}`)]);
  const failure = await file.failure();
  assert.equal(failure, null, `download failed: ${failure}`);
  return { name: file.suggestedFilename(), text: readFileSync(await file.path(), 'utf8') };
}

before(async () => {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Playwright gives every launch a fresh temporary profile (user data dir).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({
    viewport: { width: 1440, height: 900 },
    timezoneId: LOCAL_ZONE,
    locale: 'en-US',
    colorScheme: 'light',
    acceptDownloads: true,
  });
  page = await newPage();
});

after(async () => {
  await browser?.close();
});

test('signs in from the #token= link and lists the seeded events', async () => {
  const response = await page.goto(`${GATEWAY_URL}${PAGE_PATH}#token=${TOKEN}`);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'] || '';
  for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `CSP lacks ${directive}: ${csp}`);
  }
  await page.waitForFunction((count) => document.querySelectorAll('#rows tr[data-id]').length >= count, SEED_COUNT);
  assert.ok(!page.url().includes('token='), `the token left the address bar: ${page.url()}`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('audit-logs.token') !== null), true);

  await assert.doesNotReject(page.locator('#zone-label').waitFor({ state: 'visible' }));
  assert.match(await page.locator('#zone-label').innerText(), new RegExp(LOCAL_ZONE));
  assert.match(await page.locator('#session-role').innerText(), /admin/i);
  assert.match(await page.locator('#result-count').innerText(), /events/);

  // Hostile text is shown as text and never runs.
  await page.getByText(MARKUP_NAME).first().waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('#rows img').count(), 0);
  await page.getByText(FORMULA_NAME).first().waitFor();

  // Category chips come from the catalogue.
  await page.locator('#category-chips button[data-category="billing"]').waitFor();
  await screenshot('audit-logs-list.png', { fullPage: true });
});

test('filters narrow the rows, live in the URL and survive a reload', async () => {
  const all = await settled();

  await page.click('#category-chips button[data-category="billing"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('category') === 'billing');
  const billing = await settled();
  assert.ok(billing > 0 && billing < all, `billing rows ${billing} of ${all}`);
  const categories = await rows().locator('[data-f="category-name"]').allInnerTexts();
  assert.deepEqual([...new Set(categories)], ['Billing']);

  // An action prefix on top: no billing action starts with `user.` → the empty state.
  await page.fill('#f-action', 'user.*');
  await page.press('#f-action', 'Enter');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('action') === 'user.*');
  assert.equal(await settled(), 0);
  await page.locator('#empty').waitFor({ state: 'visible' });
  assert.match(await page.locator('#empty-title').innerText(), /No events match/);

  // Drop the category: every row is a `user.` action.
  await page.click('#category-chips button[data-category="billing"]');
  await page.waitForFunction(() => !new URL(location.href).searchParams.has('category'));
  const users = await settled();
  assert.ok(users > 0, 'user.* matches seeded events');
  for (const action of await rows().locator('[data-f="action"]').allInnerTexts()) {
    assert.ok(action.startsWith('user.'), `${action} does not match user.*`);
  }

  // The URL is the view: a reload (or a bookmark) shows the same thing.
  const before = await rowIds();
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#rows tr[data-id]').length > 0);
  await settled();
  assert.equal(await page.inputValue('#f-action'), 'user.*');
  assert.deepEqual(await rowIds(), before);

  // A wrong value is refused by the API, which names the parameter; the page shows it.
  await page.fill('#f-ip', '999.1.1.1');
  await page.press('#f-ip', 'Enter');
  await page.locator('#banner').waitFor({ state: 'visible' });
  assert.match(await page.locator('#banner-title').innerText(), /ip/);
  assert.equal(await page.getAttribute('#f-ip', 'aria-invalid'), 'true');
  await page.fill('#f-ip', '');
  await page.press('#f-ip', 'Enter');
  await page.locator('#banner').waitFor({ state: 'hidden' });
  assert.equal(await settled(), users);
});

test('an event opens in the detail panel with its full JSON', async () => {
  const first = rows().first();
  const id = await first.getAttribute('data-id');
  await first.click();
  await page.locator('#detail').waitFor({ state: 'visible' });
  const shown = JSON.parse(await page.locator('#detail-json').innerText());
  assert.equal(shown.id, id);
  assert.equal(shown.org_id, ORG);
  for (const field of ['occurred_at', 'received_at', 'category', 'action', 'outcome', 'actor', 'targets', 'context', 'metadata', 'source', 'version']) {
    assert.ok(field in shown, `the JSON lacks ${field}`);
  }
  assert.equal(await page.locator('#detail-title').innerText(), shown.action);
  assert.equal(searchParam('event'), id);
  await screenshot('audit-logs-detail.png', { animations: 'disabled' });

  await page.keyboard.press('Escape');
  await page.locator('#detail').waitFor({ state: 'hidden' });
  assert.equal(searchParam('event'), null);
  // Focus goes back to the row the panel was opened from.
  assert.equal(await page.evaluate(() => document.activeElement.dataset.id), id);

  // A deep link opens the same event.
  await page.goto(`${GATEWAY_URL}${PAGE_PATH}?event=${id}`);
  await page.locator('#detail').waitFor({ state: 'visible' });
  await page.waitForFunction((expected) => document.getElementById('detail-json').textContent.includes(expected), id);
  await page.keyboard.press('Escape');
  await page.locator('#detail').waitFor({ state: 'hidden' });
});

test('the keyboard moves the selection and opens events', async () => {
  // A fresh page: nothing selected yet.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#rows tr[data-id]').length > 0);
  await settled();
  const ids = await rowIds();
  assert.ok(ids.length >= 3, 'enough rows to move between');
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const selected = () => page.evaluate(() => document.querySelector('#rows tr[aria-selected="true"]')?.dataset.id ?? null);

  await page.keyboard.press('j');
  assert.equal(await selected(), ids[0]);
  await page.keyboard.press('j');
  assert.equal(await selected(), ids[1]);
  await page.keyboard.press('ArrowDown');
  assert.equal(await selected(), ids[2]);
  await page.keyboard.press('k');
  assert.equal(await selected(), ids[1]);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.id), ids[1], 'the selected row has focus');

  await page.keyboard.press('Enter');
  await page.locator('#detail').waitFor({ state: 'visible' });
  await page.waitForFunction((id) => JSON.parse(document.getElementById('detail-json').textContent).id === id, ids[1]);
  // With the panel open, j shows the next event in it.
  await page.keyboard.press('j');
  await page.waitForFunction((id) => JSON.parse(document.getElementById('detail-json').textContent).id === id, ids[2]);
  assert.equal(await selected(), ids[2]);
  await page.keyboard.press('Escape');
  await page.locator('#detail').waitFor({ state: 'hidden' });

  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-q');
  await page.keyboard.press('Escape');
});

test('the UTC/local toggle changes the times and the zone label', async () => {
  const firstTime = rows().first().locator('time');
  const instant = await firstTime.getAttribute('datetime');
  const localText = await firstTime.innerText();
  const expectedLocal = new Date(instant).toLocaleString('sv-SE', { timeZone: LOCAL_ZONE, hourCycle: 'h23' });
  assert.equal(localText, expectedLocal, 'local times are shown in the browser zone');

  await page.click('#tz-group button[data-tz="utc"]');
  assert.equal(await page.locator('#zone-label').innerText(), 'UTC');
  const utcText = await firstTime.innerText();
  assert.notEqual(utcText, localText);
  assert.equal(utcText, instant.slice(0, 19).replace('T', ' '), 'UTC times are the stored instants');
  assert.equal(await page.getAttribute('#tz-group button[data-tz="utc"]', 'aria-pressed'), 'true');

  await page.click('#tz-group button[data-tz="local"]');
  assert.match(await page.locator('#zone-label').innerText(), new RegExp(LOCAL_ZONE));
  assert.equal(await firstTime.innerText(), localText);
});

test('Export CSV and Export JSON honour the filters and neutralise formulas', async () => {
  await clearFilters();
  await page.click('#category-chips button[data-category="authentication"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('category') === 'authentication');
  const shown = await settled();
  assert.ok(shown > 0);
  const shownIds = new Set(await rowIds());

  const csv = await download('export-csv');
  assert.match(csv.name, new RegExp(`^audit-log_${ORG}_.*\\.csv$`));
  const records = parse(csv.text, { bom: true, skip_empty_lines: true });
  const [header, ...data] = records;
  assert.deepEqual(header, CSV_COLUMNS);
  assert.equal(data.length, shown, 'the export holds exactly the filtered events');
  const column = Object.fromEntries(header.map((name, index) => [name, index]));
  for (const record of data) {
    assert.equal(record.length, header.length);
    assert.equal(record[column.category], 'authentication');
    assert.ok(shownIds.has(record[column.id]), `${record[column.id]} is not on screen`);
    assert.match(record[column.occurred_at], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const cell of record) {
      assert.ok(!/^[=+\-@\t\r]/.test(cell), `a cell a spreadsheet would run: ${cell}`);
    }
  }
  const formula = data.filter((record) => record[column.actor_id] === 'user_mallory');
  assert.ok(formula.length > 0, 'the formula-named actor is in the export');
  for (const record of formula) assert.equal(record[column.actor_name], `'${FORMULA_NAME}`);

  const json = await download('export-json');
  assert.match(json.name, /\.json$/);
  const events = JSON.parse(json.text);
  assert.ok(Array.isArray(events));
  assert.equal(events.length, data.length);
  assert.ok(events.every((event) => event.category === 'authentication' && shownIds.has(event.id)));
  assert.ok(events.some((event) => event.actor.name === FORMULA_NAME), 'JSON keeps the original text');
});

test('live mode shows a newly published event without a reload', async () => {
  await clearFilters();
  await page.evaluate(() => {
    window.__samePage = true;
  });
  await page.click('#live-toggle');
  assert.equal(await page.getAttribute('#live-toggle', 'aria-checked'), 'true');
  assert.equal(searchParam('live'), '1');

  const name = `Live Lucy ${Date.now()}`;
  const published = await fetch(`${GATEWAY_URL}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PRODUCER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      org_id: ORG,
      occurred_at: new Date().toISOString(),
      category: 'security',
      action: 'api_key.generated',
      outcome: 'success',
      actor: { type: 'user', id: 'user_lucy', name, email: 'lucy@acme.example' },
      targets: [{ type: 'api_key', id: 'key_live_1', name: 'Live key' }],
      context: { ip: '192.0.2.10', location: 'Lisbon, PT' },
      metadata: { scope: 'read' },
    }),
  });
  const answer = await published.text();
  assert.equal(published.status, 202, answer);
  const accepted = JSON.parse(answer);
  const id = accepted.results[0].id;
  const sent = Date.now();

  // The page polls every ~1.2 s; the event needs the indexer's batch (≤ 250 ms) first.
  // Generous wait here; the elapsed time is printed, not asserted.
  await page.locator(`#row-${id}`).waitFor({ state: 'visible', timeout: 15_000 });
  console.log(`live: the published event appeared after ${Date.now() - sent} ms`);
  assert.equal((await rowIds())[0], id, 'the new event is the first row');
  assert.match(await page.locator(`#row-${id}`).innerText(), new RegExp(name));
  assert.equal(await page.evaluate(() => window.__samePage), true, 'no reload happened');

  await page.locator('#toast').waitFor({ state: 'hidden' });
  await screenshot('audit-logs.png', { fullPage: true });
  await page.click('#live-toggle');
  assert.equal(await page.getAttribute('#live-toggle', 'aria-checked'), 'false');
});

test('members are refused, bad tokens are sent to sign in, sign-out forgets the token', async () => {
  const main = page;
  page = await newPage();
  try {
    await page.goto(`${GATEWAY_URL}${PAGE_PATH}#token=${MEMBER_TOKEN}`);
    await page.locator('#blocked').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#blocked-title').innerText(), 'Owners and Admins only');
    await screenshot('audit-logs-forbidden.png', { animations: 'disabled' });

    await page.click('#blocked-signin');
    await page.locator('#signin').waitFor({ state: 'visible' });
    await page.fill('#token-input', 'not.a.jwt');
    await page.click('#signin-form button[type="submit"]');
    await page.locator('#signin-error').waitFor({ state: 'visible' });
    assert.match(await page.locator('#signin-error').innerText(), /invalid token/i);
    await screenshot('audit-logs-signin.png', { animations: 'disabled' });
  } finally {
    await page.close();
    page = main;
  }

  await page.click('#sign-out');
  await page.locator('#signin').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('audit-logs.token')), null);
  assert.equal(await page.locator('#rows tr').count(), 0, 'no events left on screen');
});

test('no page errors and no Content Security Policy violations', () => {
  assert.deepEqual(problems, []);
});
