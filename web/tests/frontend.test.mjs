// The real OwnTracks Frontend (2.15.3, unmodified) at /frontend/ of a real server, logged in
// with mytracks' session cookie (started and filled with data by
// crates/mytracks/tests/it/owntracks_frontend.rs): alice sees herself, bob (who shares his
// history with her) and carol (live only), never dave; a day of history is drawn; a new
// location of bob's appears live (the /ws/last push makes the Frontend fetch /api/0/last).
//
// Environment, besides helpers.mjs's: WEBTEST_ALICE_PASSWORD, WEBTEST_BOB_PASSWORD,
// WEBTEST_DAY (YYYY-MM-DD of the history, UTC).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoConsoleErrors, base, launch, login, open, publish, screenshot } from './helpers.mjs';

const alicePassword = process.env.WEBTEST_ALICE_PASSWORD;
const bobPassword = process.env.WEBTEST_BOB_PASSWORD;
const day = process.env.WEBTEST_DAY;
const origin = new URL(base).origin;
const tileHost = new URL(process.env.WEBTEST_TILE_PREFIX).host;

let browser;

before(async () => {
  assert.ok(alicePassword && bobPassword && day, 'run through cargo test -p mytracks --test it -- owntracks_frontend_in_chromium');
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Records what the page does: Recorder API answers, WebSocket frames, requests elsewhere. */
function watch(page) {
  const seen = { answers: [], frames: [], foreign: [] };
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.origin !== origin && url.host !== tileHost && url.protocol !== 'data:') seen.foreign.push(request.url());
  });
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (!url.pathname.startsWith('/api/0/')) return;
    const body = await response.text().catch(() => '');
    seen.answers.push({ path: url.pathname, query: url.searchParams, status: response.status(), body });
  });
  page.on('websocket', (socket) => {
    socket.on('framereceived', (frame) => seen.frames.push(String(frame.payload)));
  });
  return seen;
}

/** The text of the popup of each pin, clicking them in turn. */
async function popups(page) {
  const texts = [];
  const pins = page.locator('.leaflet-marker-icon');
  for (let i = 0; i < (await pins.count()); i += 1) {
    // The pin is a zero-sized div icon whose SVG overflows it: click it through the DOM.
    await pins.nth(i).dispatchEvent('click');
    const popup = page.locator('.leaflet-popup-content');
    await popup.waitFor();
    texts.push((await popup.innerText()).replace(/\s+/g, ' '));
    await page.locator('.leaflet-popup-close-button').click();
    await popup.waitFor({ state: 'detached' });
  }
  return texts;
}

test('the OwnTracks Frontend on the session cookie: devices, pins, a day of history, live', async () => {
  // Wide enough for the Frontend's header to show its selects (narrower: a menu button).
  const page = await open(browser, { viewport: { width: 1600, height: 900 } });
  // CSP violations are reported to the page as events as well as in the console.
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`);
    });
  });
  await login(page, 'alice', alicePassword);
  const seen = watch(page);
  try {
    await check(page, seen);
  } catch (error) {
    // What the page said and showed, to tell why.
    console.log(`console errors:\n${page.errors.join('\n')}\nanswers:\n${seen.answers.map((a) => `${a.status} ${a.path}?${a.query} ${a.body.slice(0, 200)}`).join('\n')}`);
    await screenshot(page, 'owntracks-frontend-failure');
    throw error;
  }
});

async function check(page, seen) {
  await page.goto(`${base}/frontend/?start=${day}T00:00:00&end=${day}T23:59:59`);

  // The users alice may see: herself, bob (history), carol (live only); not dave.
  const users = page.locator('select[title="Select user"]');
  await users.waitFor();
  await page.waitForFunction(() => document.querySelectorAll('select[title="Select user"] option').length >= 4);
  const names = (await users.locator('option').allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(names.slice(1).sort(), ['alice', 'bob', 'carol'], `users: ${names}`);

  // A pin at each visible device's last position.
  await page.waitForFunction(() => document.querySelectorAll('.leaflet-marker-icon').length === 3);
  // The day's history of alice and bob: long polylines (carol's history is not shared).
  await page.waitForFunction(() =>
    [...document.querySelectorAll('path.leaflet-interactive')].filter((p) => (p.getAttribute('d') ?? '').split('L').length > 20).length >= 2,
  );
  const distance = page.locator('.distance-travelled');
  await distance.waitFor();
  assert.match(await distance.innerText(), /\d/, 'distance travelled');
  await screenshot(page, 'owntracks-frontend');

  const texts = await popups(page);
  assert.equal(texts.length, 3, texts.join('\n'));
  assert.ok(texts.some((t) => t.includes('Bob Builder')), `bob's card name in a popup: ${texts.join('\n')}`);

  const locations = seen.answers.filter((a) => a.path === '/api/0/locations');
  const history = (user) => locations.filter((a) => a.query.get('user') === user).map((a) => JSON.parse(a.body));
  assert.ok(history('bob').some((h) => h.count === 121), `bob's day: ${JSON.stringify(history('bob')).slice(0, 300)}`);
  assert.ok(history('alice').some((h) => h.count === 121), 'alice\'s day');
  assert.deepEqual(
    history('carol').map((h) => [h.count, h.data.length]),
    history('carol').map(() => [0, 0]),
    'carol shares live positions only',
  );
  assert.ok(history('carol').length >= 1, 'the Frontend asked for carol\'s history');
  assert.equal(seen.answers.filter((a) => a.query.get('user') === 'dave').length, 0, 'dave is never listed');

  // Live: bob's phone reports; the WebSocket push makes the Frontend fetch the last positions.
  await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.includes('/api/0/version')));
  const wsOpen = Date.now();
  while (!seen.frames.some((f) => f === 'LAST' || f.startsWith('[') || f.startsWith('{')) && Date.now() - wsOpen < 10_000) {
    await page.waitForTimeout(100);
  }
  const tst = Math.floor(Date.now() / 1000);
  const lastAnswer = page.waitForResponse(async (response) =>
    response.url().includes('/api/0/last') && (await response.text()).includes(String(tst)),
  );
  publish('bob', bobPassword, 'owntracks/bob/tablet', { _type: 'location', lat: 52.5432, lon: 13.4567, tst, acc: 9, tid: 'bo' });
  await lastAnswer;
  assert.ok(seen.frames.some((f) => f.includes(String(tst)) && f.includes('"bob"')), `pushed: ${seen.frames.join('\n').slice(0, 500)}`);
  await page.waitForFunction(() => document.querySelectorAll('.leaflet-marker-icon').length === 3);
  const after = await popups(page);
  assert.ok(after.some((t) => t.includes('Bob Builder') && t.includes('52.5432') && t.includes('13.4567')), `bob's new position: ${after.join('\n')}`);
  await screenshot(page, 'owntracks-frontend-live');

  // Only bob's track when bob is selected.
  await users.selectOption({ label: 'bob' });
  await page.waitForFunction(() =>
    [...document.querySelectorAll('path.leaflet-interactive')].filter((p) => (p.getAttribute('d') ?? '').split('L').length > 20).length === 1,
  );

  // One refusal is expected and harmless: a library in the bundle probes for the global object
  // with `new Function("return this")()` inside try/catch and falls back to `window`. The
  // policy keeps refusing eval ('unsafe-eval' stays out); nothing else may be refused.
  const violations = await page.evaluate(() => window.cspViolations);
  const probe = /^script-src eval at .*\/frontend\/assets\/index-[\w-]+\.js:\d+:\d+$/;
  assert.deepEqual(violations.filter((v) => !probe.test(v)), [], 'no other CSP violation');
  assert.deepEqual(seen.foreign, [], 'every request stays on this origin (tiles aside)');
  assertNoConsoleErrors(page);
}
