// Profile → Import in a real browser, against a real server (started by
// crates/mytracks/tests/it/web_ui.rs): a small GPX uploaded with its progress bar, the import
// followed to its summary (stored, skipped by reason, the problem with its byte offset and
// line), the past imports listed; a second upload of the same file finds everything there.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminPassword, assertNoConsoleErrors, base, launch, login, open, screenshot } from './helpers.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const gpx = `<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><trkseg>
  <trkpt lat="52.5" lon="13.4"><ele>34.5</ele><time>2024-03-01T08:00:00Z</time></trkpt>
  <trkpt lat="52.6" lon="13.5"><time>2024-03-01T08:01:00Z</time></trkpt>
  <trkpt lat="52.7" lon="13.6"><time>2024-03-01T08:02:00Z</time></trkpt>
  <trkpt lat="95.0" lon="13.6"><time>2024-03-01T08:03:00Z</time></trkpt>
 </trkseg></trk>
</gpx>
`;

/** Uploads the GPX through the Import card and waits for the summary. */
async function importOnce(page, dryRun) {
  const form = page.locator('#import-form');
  await form.locator('input[type=file]').setInputFiles({ name: 'ride.gpx', mimeType: 'application/gpx+xml', buffer: Buffer.from(gpx) });
  await form.getByLabel('Device').fill('bike');
  await form.getByLabel('Format').selectOption('auto');
  const box = form.getByLabel('Dry run: check the file, write nothing');
  if (dryRun) await box.check();
  else await box.uncheck();
  await form.getByRole('button', { name: 'Upload and import' }).click();
  const summary = page.locator('#import-summary');
  await summary.waitFor({ timeout: 30_000 });
  return summary;
}

/** The number shown for `label` in the summary's list. */
async function count(summary, label) {
  const dt = summary.locator('dt', { hasText: label });
  return Number((await dt.locator('xpath=following-sibling::dd[1]').textContent()).replace(/,/g, ''));
}

test('profile → import: upload a GPX, follow it, read the summary and the list', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/profile/`);
  await page.getByRole('heading', { name: 'Import history' }).waitFor();
  await page.locator('#import-list').getByText('No imports yet.').waitFor();

  // A dry run writes nothing.
  let summary = await importOnce(page, true);
  await summary.getByText('Dry run finished').waitFor();
  assert.equal(await count(summary, 'Valid items'), 3);

  summary = await importOnce(page, false);
  await summary.getByText('Import finished').waitFor();
  assert.equal(await count(summary, 'Points stored'), 3);
  assert.equal(await count(summary, 'Points already there'), 0);
  assert.match(await summary.locator('dt', { hasText: 'Skipped:' }).first().textContent(), /Skipped: .*lat/i);
  const problem = await summary.locator('ul.problems li').first().textContent();
  assert.match(problem, /at byte \d+ \(line 7\)/, problem);
  // The upload's bar reached the file's size.
  const bar = page.locator('#import-upload-progress');
  assert.equal(Number(await bar.getAttribute('max')), Buffer.byteLength(gpx));
  assert.equal(await bar.evaluate((b) => b.value), Buffer.byteLength(gpx));
  await screenshot(page, 'profile-import');

  const rows = page.locator('#import-list tbody tr');
  await page.waitForFunction(() => document.querySelectorAll('#import-list tbody tr').length === 2);
  const newest = await rows.first().textContent();
  assert.match(newest, /ride\.gpx/);
  assert.match(newest, /bike/);
  assert.match(newest, /gpx/);
  assert.match(newest, /done/);
  assert.match(newest, /3 stored, 0 already there, 1 skipped/);

  // The same file again: everything is already there.
  summary = await importOnce(page, false);
  await summary.getByText('Import finished').waitFor();
  assert.equal(await count(summary, 'Points stored'), 0);
  assert.equal(await count(summary, 'Points already there'), 3);

  // The points are in the history.
  const history = await page.evaluate(async () => {
    const response = await fetch('/api/locations/?user=admin&device=bike&start_time=1709280000&end_time=1709290000');
    return response.json();
  });
  assert.equal(history.length, 3, JSON.stringify(history));
  assertNoConsoleErrors(page);
});

test('profile → import: a bad device name is refused in the form', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/profile/`);
  const form = page.locator('#import-form');
  await form.locator('input[type=file]').setInputFiles({ name: 'x.gpx', mimeType: 'application/gpx+xml', buffer: Buffer.from(gpx) });
  await form.getByLabel('Device').fill('a/b');
  await form.getByRole('button', { name: 'Upload and import' }).click();
  await page.getByRole('alert').filter({ hasText: 'device' }).waitFor();
  assertNoConsoleErrors(page, [/status of 400/]);
});
