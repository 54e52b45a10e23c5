// The web UI in a real browser, against a real server (started by
// crates/mytracks/tests/it/web_ui.rs). The tests run in order and build on each other: the
// admin creates `carol`, whose certificate the PKI test issues, and so on.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import mqtt from 'mqtt';
import {
  adminPassword,
  assertNoConsoleErrors,
  base,
  launch,
  login,
  logout,
  mqttPort,
  open,
  publish,
  screenshot,
  slide,
} from './helpers.mjs';

let browser;
const carol = { username: 'carol', password: 'Blue-Harbor-Lantern-42', second: 'Quiet-Meadow-Falcon-77' };

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('login page: labels, password toggle, refusal, login, menu, logout', async () => {
  const page = await open(browser);
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/login/?next=%2F`);
  await page.getByLabel('Username', { exact: true }).waitFor();
  const password = page.getByLabel('Password', { exact: true });
  assert.equal(await password.getAttribute('name'), 'password');
  assert.equal(await page.getByLabel('Username', { exact: true }).getAttribute('name'), 'username');
  await screenshot(page, 'login');

  await password.fill('secret');
  assert.equal(await password.getAttribute('type'), 'password');
  await page.getByRole('button', { name: 'Show password' }).click();
  assert.equal(await password.getAttribute('type'), 'text');
  await page.getByRole('button', { name: 'Hide password' }).click();
  assert.equal(await password.getAttribute('type'), 'password');

  await page.getByLabel('Username', { exact: true }).fill('admin');
  await password.fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Invalid username or password' }).waitFor();
  // The refused login is a 401 the browser reports; nothing else may appear.
  assertNoConsoleErrors(page, [/status of 401/]);

  await password.fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/`);
  await page.locator('.topbar .badge.admin', { hasText: 'admin' }).waitFor();

  await page.getByRole('button', { name: 'Menu' }).click();
  const menu = page.locator('#main-menu');
  assert.deepEqual(
    (await menu.locator('a, button').allInnerTexts()).map((t) => t.trim()),
    ['Profile', 'Admin Panel', 'MQTT Console', 'About & Setup', 'Logout'],
  );
  await screenshot(page, 'menu', { fullPage: false });
  await page.keyboard.press('Escape');
  assert.equal(await menu.isHidden(), true);

  // A logged-in visit to the login page goes on to `next`.
  await page.goto(`${base}/login/?next=%2Fhistory%2F`);
  await page.waitForURL(`${base}/history/`);

  await logout(page);
  await page.goto(`${base}/profile/`);
  await page.waitForURL(`${base}/login/?next=%2Fprofile%2F`);
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('live map: a marker for an MQTT location, moved by the next one', async () => {
  const now = Math.floor(Date.now() / 1000);
  publish('admin', adminPassword, 'owntracks/admin/phone', {
    _type: 'location', lat: 52.5, lon: 13.4, tst: now - 60, acc: 25, batt: 80, vel: 5, tid: 'ph',
  });
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  const pin = page.locator('.device-pin[data-device="admin/phone"]');
  await pin.waitFor();
  assert.equal(await pin.innerText(), 'PH');
  assert.equal(await pin.getAttribute('data-lat'), '52.5');
  await page.locator('.live-status', { hasText: 'Live' }).waitFor();
  const item = page.locator('li.device[data-device="admin/phone"]');
  await item.locator('.coords', { hasText: '52.50000, 13.40000' }).waitFor();

  await pin.click();
  const popup = page.locator('.leaflet-popup-content');
  await popup.waitFor();
  const text = await popup.innerText();
  for (const part of ['phone', 'online', 'Battery', '80 %', 'Speed', '5 km/h', 'Time']) {
    assert.ok(text.includes(part), `popup lacks ${part}: ${text}`);
  }
  await page.locator('.leaflet-popup-close-button').click();
  assert.ok((await page.locator('path.leaflet-interactive, path').count()) >= 1, 'accuracy circle or tail drawn');
  const before = await pin.evaluate((e) => e.parentElement.style.transform);

  publish('admin', adminPassword, 'owntracks/admin/phone', {
    _type: 'location', lat: 52.51, lon: 13.42, tst: now, acc: 15, batt: 79, vel: 12, tid: 'ph',
  });
  await page.locator('.device-pin[data-device="admin/phone"][data-lat="52.51"]').waitFor({ timeout: 10_000 });
  await item.locator('.coords', { hasText: '52.51000, 13.42000' }).waitFor();
  const moved = await pin.evaluate((e) => e.parentElement.style.transform);
  assert.notEqual(moved, before, 'the marker moved on the map');

  // The filter hides online devices when asking for offline ones.
  await page.getByLabel('Offline', { exact: true }).check();
  await item.waitFor({ state: 'hidden' });
  await page.getByLabel('All', { exact: true }).check();
  await item.waitFor();
  await page.getByRole('button', { name: 'Fit to devices' }).click();
  await page.waitForTimeout(400);
  await screenshot(page, 'map', { fullPage: false });
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('history: the time slider narrows the points; exports follow it', async () => {
  // 2024-05-01 in UTC (the browser runs in UTC): 08:00, 12:00, 18:00, a transition at 12:30.
  const day = Date.UTC(2024, 4, 1) / 1000;
  for (const [hour, lat, lon] of [[8, 52.50, 13.40], [12, 52.52, 13.41], [18, 52.53, 13.45]]) {
    publish('admin', adminPassword, 'owntracks/admin/phone', { _type: 'location', lat, lon, tst: day + hour * 3600, acc: 10, tid: 'ph' });
  }
  publish('admin', adminPassword, 'owntracks/admin/phone/event', {
    _type: 'transition', event: 'enter', desc: 'Home', lat: 52.52, lon: 13.41, tst: day + 12.5 * 3600, wtst: day - 86400, acc: 10, tid: 'ph', t: 'c',
  });
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/history/`);
  const summary = page.locator('#summary');
  await page.getByLabel('Device').selectOption({ label: 'phone (admin)' });
  // The date defaults to today.
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(await page.getByLabel('Date').inputValue(), today);
  await page.getByLabel('Date').fill('2024-05-01');
  await page.getByLabel('Date').dispatchEvent('change');
  await summary.filter({ hasText: '3 points, 1 transition' }).waitFor();
  assert.equal(await page.locator('path.track-point').count(), 3);
  assert.equal(await page.locator('.transition-marker').count(), 1);
  assert.equal(await page.locator('#from-label').innerText(), '00:00');
  assert.equal(await page.locator('#to-label').innerText(), '23:59');

  await slide(page.getByRole('slider', { name: 'From' }), 10 * 60);
  assert.equal(await page.locator('#from-label').innerText(), '10:00');
  await summary.filter({ hasText: '2 points, 1 transition' }).waitFor();
  await slide(page.getByRole('slider', { name: 'To' }), 15 * 60);
  assert.equal(await page.locator('#to-label').innerText(), '15:00');
  await summary.filter({ hasText: '1 point, 1 transition' }).waitFor();
  assert.equal(await page.locator('path.track-point').count(), 1);
  // The handles cannot cross.
  await slide(page.getByRole('slider', { name: 'From' }), 20 * 60);
  assert.equal(await page.locator('#from-label').innerText(), '15:00');
  await slide(page.getByRole('slider', { name: 'From' }), 10 * 60);
  await summary.filter({ hasText: '1 point' }).waitFor();

  const gpx = await page.getByRole('link', { name: 'GPX' }).getAttribute('href');
  assert.match(gpx, /format=gpx/);
  const answer = await page.request.get(`${base}${gpx}`);
  assert.equal(answer.status(), 200);
  const body = await answer.text();
  assert.equal((body.match(/<trkpt/g) ?? []).length, 1, body);
  for (const [name, format] of [['GeoJSON', 'geojson'], ['CSV', 'csv']]) {
    assert.match(await page.getByRole('link', { name }).getAttribute('href'), new RegExp(`format=${format}`));
  }
  await screenshot(page, 'history', { fullPage: false });
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('history: delete the selected range (count confirmed), one point from its popup, a device from the profile', async () => {
  // 2024-05-02 in UTC: 06:00, 09:00, 12:00, 15:00.
  const day = Date.UTC(2024, 4, 2) / 1000;
  for (const [hour, lat] of [[6, 52.40], [9, 52.41], [12, 52.42], [15, 52.43]]) {
    publish('admin', adminPassword, 'owntracks/admin/phone', { _type: 'location', lat, lon: 13.4, tst: day + hour * 3600, acc: 10, tid: 'ph' });
  }
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/history/`);
  const summary = page.locator('#summary');
  await page.getByLabel('Device').selectOption({ label: 'phone (admin)' });
  await page.getByLabel('Date').fill('2024-05-02');
  await page.getByLabel('Date').dispatchEvent('change');
  await summary.filter({ hasText: '4 points' }).waitFor();
  await slide(page.getByRole('slider', { name: 'From' }), 8 * 60);
  await slide(page.getByRole('slider', { name: 'To' }), 13 * 60);
  await summary.filter({ hasText: '2 points' }).waitFor();

  // Cancelling deletes nothing.
  await page.getByRole('button', { name: 'Delete this range' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete this range?' });
  await dialog.waitFor();
  assert.match(await dialog.locator('#delete-range-count').innerText(), /^2 locations, 0 transitions and 0 other messages from /);
  await screenshot(page, 'history-delete-range', { fullPage: false });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await summary.filter({ hasText: '2 points' }).waitFor();

  await page.getByRole('button', { name: 'Delete this range' }).click();
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await page.locator('.notice.success', { hasText: 'Deleted 2 locations, 0 transitions and 0 other messages.' }).waitFor();
  // Redrawn from the server: nothing left in the window, the rest of the day kept.
  await summary.filter({ hasText: '0 points' }).waitFor();
  const stored = async () => {
    const answer = await page.request.get(`${base}/api/locations/?device=phone&user=admin&start_time=${day}&end_time=${day + 86399}`);
    assert.equal(answer.status(), 200);
    return (await answer.json()).map((l) => (l.tst - day) / 3600);
  };
  assert.deepEqual(await stored(), [6, 15]);
  await slide(page.getByRole('slider', { name: 'From' }), 0);
  await slide(page.getByRole('slider', { name: 'To' }), 23 * 60 + 59);
  await summary.filter({ hasText: '2 points' }).waitFor();

  // One point, from its popup.
  await page.locator('path.track-point').first().click();
  await page.getByRole('button', { name: 'Delete this point' }).click();
  await page.getByRole('dialog', { name: 'Delete this point?' }).getByRole('button', { name: 'Delete' }).click();
  await summary.filter({ hasText: '1 point,' }).waitFor();
  assert.equal((await stored()).length, 1);

  // A whole device, from the profile page.
  publish('admin', adminPassword, 'owntracks/admin/oldphone', { _type: 'location', lat: 52.4, lon: 13.4, tst: day, tid: 'op' });
  await page.goto(`${base}/profile/`);
  const form = page.locator('form.device-form[data-device="oldphone"]');
  await form.getByRole('button', { name: 'Delete device' }).click();
  await page.getByRole('dialog', { name: 'Delete oldphone?' }).getByRole('button', { name: 'Delete device' }).click();
  await form.waitFor({ state: 'detached' });
  const devices = await (await page.request.get(`${base}/api/devices/`)).json();
  assert.deepEqual(devices.filter((d) => d.name === 'oldphone'), []);
  assert.ok(devices.some((d) => d.name === 'phone'));
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('admin panel: an admin creates a user who can then log in', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/admin-panel/`);
  await page.getByRole('tab', { name: 'Users' }).waitFor();
  const form = page.locator('#create-user');
  await form.getByLabel('Username').fill(carol.username);
  await form.getByLabel('Email').fill('carol@example.org');
  await form.getByLabel('First name').fill('Carol');
  await form.getByLabel('Password', { exact: true }).fill(carol.password);
  assert.equal(await form.getByLabel('Administrator').isChecked(), false);
  await form.getByRole('button', { name: 'Create user' }).click();
  await form.getByText('User carol created.').waitFor();
  const row = page.locator('tr', { has: page.locator('[data-username="carol"]') });
  await row.waitFor();

  // Admin toggle both ways.
  await row.getByRole('button', { name: 'Make admin' }).click();
  await row.locator('.badge.admin').waitFor();
  await row.getByRole('button', { name: 'Remove admin' }).click();
  await row.locator('.badge.admin').waitFor({ state: 'detached' });

  // Deactivate and reactivate.
  await row.getByRole('button', { name: 'Deactivate' }).click();
  await row.locator('.badge.bad', { hasText: 'inactive' }).waitFor();
  await row.getByRole('button', { name: 'Reactivate' }).click();
  await row.locator('.badge.bad').waitFor({ state: 'detached' });

  // The set-password modal.
  await row.getByRole('button', { name: 'Set password' }).click();
  const dialog = page.getByRole('dialog', { name: 'Password for carol' });
  await dialog.getByLabel('New password', { exact: true }).fill(carol.second);
  await screenshot(page, 'admin-set-password', { fullPage: false });
  await dialog.getByRole('button', { name: 'Set password' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByText('Password for carol changed.').waitFor();
  await screenshot(page, 'admin-users');
  assertNoConsoleErrors(page);

  await logout(page);
  await login(page, carol.username, carol.second);
  await page.locator('.topbar .name', { hasText: 'carol' }).waitFor();
  assert.equal(await page.locator('.topbar .badge.admin').count(), 0);
  await page.getByRole('button', { name: 'Menu' }).click();
  assert.equal(await page.locator('#main-menu').getByText('Admin Panel').count(), 0);
  assertNoConsoleErrors(page);
  // The admin panel is not for her: the server says so (a 403 the browser reports).
  const refused = await page.goto(`${base}/admin-panel/`);
  assert.equal(refused.status(), 403);
  await page.getByRole('heading', { name: 'Admins only' }).waitFor();
  assertNoConsoleErrors(page, [/status of 403/]);
  await page.context().close();
});

test('admin panel, PKI: CA, one-click issue, issue and revoke a client certificate, CRL', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/admin-panel/#pki`);
  await page.locator('#no-ca').waitFor();
  const caForm = page.locator('#ca-form');
  await caForm.getByLabel('Common name').fill('Test CA One');
  await caForm.getByRole('button', { name: 'Generate CA' }).click();
  const create = page.getByRole('dialog', { name: 'Create a certificate authority?' });
  await create.getByRole('button', { name: 'Generate CA' }).click();
  await page.locator('#active-ca', { hasText: 'Test CA One' }).waitFor();
  const fingerprint = await page.locator('#ca-fingerprint').innerText();
  assert.match(fingerprint, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/i);

  // Replacing it asks first, naming the CA that would be replaced; cancelling keeps it.
  await caForm.getByLabel('Common name').fill('Test CA Two');
  await caForm.getByRole('button', { name: 'Generate CA' }).click();
  const replace = page.getByRole('dialog', { name: 'Replace the certificate authority?' });
  await replace.locator('.replaced-ca', { hasText: 'Test CA One' }).waitFor();
  await screenshot(page, 'admin-pki-confirm', { fullPage: false });
  await replace.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('#ca-fingerprint').innerText(), fingerprint);

  // Issue for carol, then revoke.
  const clientForm = page.locator('#client-form');
  await clientForm.getByLabel('User').selectOption({ label: 'carol' });
  await clientForm.getByRole('button', { name: 'Issue client certificate' }).click();
  const carolRow = page.locator('#client-certificates tr', { hasText: 'carol' });
  await carolRow.locator('.client-status', { hasText: 'valid' }).waitFor();
  await carolRow.getByRole('button', { name: /Revoke certificate/ }).click();
  await page.getByRole('dialog', { name: 'Revoke certificate?' }).getByRole('button', { name: 'Revoke' }).click();
  await carolRow.locator('.client-status', { hasText: 'revoked' }).waitFor();

  // A server certificate: the TLS listener starts with it (the setup page shows its port).
  await page.locator('#server-form').getByRole('button', { name: 'Issue server certificate' }).click();
  await page.locator('#server-certificates .badge.ok', { hasText: 'active' }).waitFor();

  const crl = await page.request.get(`${base}${await page.locator('#crl-pem').getAttribute('href')}`);
  assert.equal(crl.status(), 200);
  assert.match(await crl.text(), /BEGIN X509 CRL/);
  await screenshot(page, 'admin-pki');

  // One-click issue on the Users tab, with the status in a tooltip.
  await page.getByRole('tab', { name: 'Users' }).click();
  const adminRow = page.locator('tr', { has: page.locator('[data-username="admin"]') });
  await adminRow.getByRole('button', { name: 'Issue a certificate for admin' }).click();
  const badge = adminRow.locator('.cert-status', { hasText: 'valid' });
  await badge.waitFor();
  assert.match(await badge.getAttribute('title'), /^Valid until .* serial /);
  const carolBadge = page.locator('tr', { has: page.locator('[data-username="carol"]') }).locator('.cert-status');
  assert.equal(await carolBadge.innerText(), 'revoked');

  // The owner sees it on their profile, with downloads.
  await page.goto(`${base}/profile/`);
  const certificate = page.locator('#certificate');
  await certificate.getByText('valid', { exact: true }).waitFor();
  await certificate.getByRole('link', { name: 'PEM (certificate and key)' }).waitFor();
  await page.getByLabel('Passphrase for the PKCS#12 file', { exact: true }).fill('phone-pass');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'PKCS#12 (.p12, Android)' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'admin.p12');
  assert.ok((await readFile(await download.path())).length > 500);
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('profile: account, tokens and credentials shown once, sharing, encryption key', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/profile/`);
  await page.locator('#account-form').getByLabel('First name').fill('Ada');
  await page.locator('#account-form').getByRole('button', { name: 'Save' }).click();
  await page.locator('#account-form').getByText('Saved.').waitFor();

  const tokens = page.locator('#s-api-tokens-section');
  await tokens.getByLabel('Label').fill('script');
  await tokens.getByRole('button', { name: 'Create token' }).click();
  const token = await tokens.locator('.secret-value').innerText();
  assert.ok(token.length > 20, token);
  await tokens.locator('#token-list', { hasText: 'script' }).waitFor();

  const credentials = page.locator('#s-device-credentials-section');
  await credentials.getByLabel('Device').fill('tablet');
  await credentials.getByRole('button', { name: 'Generate credential' }).click();
  assert.equal((await credentials.locator('.secret-value').nth(1).innerText()).length, 24);

  const sharing = page.locator('#s-sharing-section');
  await sharing.getByLabel('Username').fill('carol');
  await sharing.getByLabel('Also let them see my history').check();
  await sharing.getByRole('button', { name: 'Share my locations' }).click();
  await sharing.locator('#shares-outgoing', { hasText: 'carol' }).waitFor();

  const phone = page.locator('form.device-form[data-device="phone"]');
  await phone.getByLabel('Encryption key for phone', { exact: true }).fill('correct horse battery');
  await phone.getByRole('button', { name: 'Save' }).click();
  await page.locator('form.device-form[data-device="phone"] .badge', { hasText: 'key set' }).waitFor();
  await screenshot(page, 'profile');
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('about & setup: endpoints, and a QR code that decodes to a working configuration', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.goto(`${base}/about/`);
  const endpoints = page.locator('#s-endpoints-section');
  await endpoints.getByText(`127.0.0.1:${mqttPort}`).waitFor();
  await endpoints.getByText(`${base}/pub`).waitFor();
  // TLS started when the PKI test issued a server certificate, on a port the OS chose.
  const tls = endpoints.locator('tr', { hasText: 'MQTT over TLS' }).locator('code');
  assert.match(await tls.innerText(), /^127\.0\.0\.1:\d+$/);

  const form = page.locator('#provision-form');
  await form.getByLabel('Device name').fill('qrphone');
  await form.getByLabel('Tracker ID (optional)').fill('QR');
  await form.getByLabel('MQTT', { exact: true }).check();
  assert.equal(await form.getByLabel(/Generate a new device credential/).isChecked(), true);
  await form.getByRole('button', { name: 'Create configuration' }).click();
  const canvas = page.locator('canvas.qr');
  await canvas.waitFor();
  await screenshot(page, 'about');

  // Decode what is on the screen.
  const image = PNG.sync.read(await canvas.screenshot());
  const code = jsQR(new Uint8ClampedArray(image.data), image.width, image.height);
  assert.ok(code, 'the QR code decodes');
  assert.ok(code.data.startsWith('owntracks:///config?inline='), code.data);
  const inline = decodeURIComponent(code.data.slice('owntracks:///config?inline='.length));
  const config = JSON.parse(Buffer.from(inline, 'base64').toString('utf8'));
  assert.equal(config._type, 'configuration');
  assert.equal(config.mode, 0);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, Number(mqttPort));
  assert.equal(config.tls, false);
  assert.equal(config.auth, true);
  assert.equal(config.username, 'admin');
  assert.equal(config.deviceId, 'qrphone');
  assert.equal(config.tid, 'QR');
  assert.equal(config.password.length, 24);

  // The file holds the same configuration.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-otrc').click()]);
  assert.equal(download.suggestedFilename(), 'qrphone.otrc');
  assert.deepEqual(JSON.parse(await readFile(await download.path(), 'utf8')), config);

  // And it works: the generated credential publishes, and the map shows the new device.
  publish(config.username, config.password, `owntracks/${config.username}/${config.deviceId}`, {
    _type: 'location', lat: 48.85, lon: 2.35, tst: Math.floor(Date.now() / 1000), tid: 'QR',
  });
  await page.goto(`${base}/`);
  await page.locator('.device-pin[data-device="admin/qrphone"]').waitFor();
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('MQTT console: a session credential, subscribe and publish within the ACL, live messages', async () => {
  const page = await open(browser);
  await login(page, carol.username, carol.second);

  // Carol registers a device (through the API, with her session and its CSRF token); the
  // device connects over TCP with MQTT.js in node and listens for commands.
  const csrf = (await page.context().cookies()).find((c) => c.name === 'csrftoken')?.value;
  assert.ok(csrf, 'the login set a CSRF cookie');
  const registered = await page.request.post(`${base}/api/iot/devices/`, {
    headers: { 'X-CSRFToken': csrf },
    data: { device_id: 'thermo1', group: 'lab' },
  });
  assert.equal(registered.status(), 201, await registered.text());
  const { password } = await registered.json();
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    username: 'thermo1',
    password,
    clientId: 'thermo1',
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  const commands = [];
  device.on('message', (topic, payload) => commands.push({ topic, payload: payload.toString() }));
  await device.subscribeAsync('iot/devices/thermo1/commands/#', { qos: 1 });

  try {
    await page.goto(`${base}/console/`);
    await page.locator('#mqtt-state', { hasText: 'Connected' }).waitFor();
    await page.locator('#mqtt-info', { hasText: 'as carol' }).waitFor();
    // The server suggested her device's topics.
    assert.equal(await page.locator('#topic-suggestions option[value="iot/devices/thermo1/#"]').count(), 1);

    // Subscribe to everything of the device: granted.
    await page.locator('#subscribe-form').getByLabel('Topic filter').fill('iot/devices/thermo1/#');
    await page.locator('#subscribe-form').getByLabel('QoS').selectOption('1');
    await page.locator('#subscribe-form').getByRole('button', { name: 'Subscribe' }).click();
    await page.locator('#subscriptions li[data-filter="iot/devices/thermo1/#"] .badge.ok', { hasText: 'QoS 1' }).waitFor();

    // The device's telemetry shows up live.
    await device.publishAsync('iot/devices/thermo1/telemetry/temperature', JSON.stringify({ celsius: 21.5 }), { qos: 1 });
    const reading = page.locator('#messages li[data-topic="iot/devices/thermo1/telemetry/temperature"]');
    await reading.waitFor();
    assert.match(await reading.locator('.payload').innerText(), /"celsius": 21\.5/);

    // A command from the console reaches the device (and, as Carol reads all of it, the log).
    const publish = page.locator('#publish-form');
    await publish.getByLabel('Topic').fill('iot/devices/thermo1/commands/blink');
    await publish.getByLabel('Payload').fill('{"times": 3}');
    await publish.getByRole('button', { name: 'Publish' }).click();
    await page.locator('#s-publish-section').getByText('Published to iot/devices/thermo1/commands/blink (QoS 1, acknowledged).').waitFor();
    await page.locator('#messages li[data-topic="iot/devices/thermo1/commands/blink"]').waitFor();
    for (let i = 0; i < 50 && commands.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(commands, [{ topic: 'iot/devices/thermo1/commands/blink', payload: '{"times": 3}' }]);

    // Outside her ACL: writing as another account is refused with the broker's reason code.
    await publish.getByLabel('Topic').fill('owntracks/admin/phone');
    await publish.getByLabel('Payload').fill('{"_type":"location","lat":1,"lon":2,"tst":1700000000}');
    await publish.getByRole('button', { name: 'Publish' }).click();
    await page.locator('#s-publish-section').getByText('Refused: not authorized (0x87).').waitFor();
    assert.equal(await page.locator('#mqtt-state', { hasText: 'Connected' }).count(), 1);
    assert.equal(await page.locator('#message-count').innerText(), '2 messages');

    // Unsubscribing stops the flow.
    await page.getByRole('button', { name: 'Unsubscribe from iot/devices/thermo1/#' }).click();
    await page.locator('#subscriptions li[data-filter]').waitFor({ state: 'detached' });
    await screenshot(page, 'console');
    assertNoConsoleErrors(page);
  } finally {
    await device.endAsync();
    await page.context().close();
  }
});

test('devices: register, telemetry, commands with delivery and answer, fleet, rotate, remove', async () => {
  const page = await open(browser);
  await login(page, 'admin', adminPassword);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
  await page.waitForURL(`${base}/devices/`);
  // An admin sees every user's devices, with the owner: Carol's from the console test.
  const thermo = page.locator('#device-list tr', { has: page.locator('[data-device="thermo1"]') });
  await thermo.waitFor();
  assert.match(await thermo.innerText(), /carol[\s\S]*offline[\s\S]*lab/);

  // Registering: the server's refusal lands at the field it names; then the login, once.
  const form = page.locator('#register-form');
  const deviceId = form.getByLabel('Device ID', { exact: true });
  await deviceId.fill('bad id!');
  await form.getByRole('button', { name: 'Register device' }).click();
  await form.locator('.field-error', { hasText: 'must be 1 to 64 letters' }).waitFor();
  assert.equal(await deviceId.getAttribute('aria-invalid'), 'true');
  await deviceId.fill('soil1');
  await form.getByLabel('Group (optional)').fill('greenhouse');
  await form.getByLabel('Description (optional)').fill('Soil moisture, bed 3');
  await form.getByRole('button', { name: 'Register device' }).click();
  const registered = page.locator('#registered');
  await registered.locator('.secret').waitFor();
  assert.equal(await registered.locator('.secret-value').first().innerText(), 'soil1');
  const password = await registered.locator('.secret-value').nth(1).innerText();
  assert.equal(password.length, 24);
  await registered.locator('code', { hasText: `127.0.0.1:${mqttPort}` }).first().waitFor();
  await registered.locator('code', { hasText: 'iot/devices/soil1/commands/#' }).waitFor();
  await registered.locator('code', { hasText: 'iot/fleet/greenhouse/commands' }).waitFor();
  assert.equal(await deviceId.inputValue(), '', 'the form is cleared');
  const row = page.locator('#device-list tr', { has: page.locator('[data-device="soil1"]') });
  await row.locator('.badge', { hasText: 'offline' }).waitFor();

  // The device: MQTT.js over TCP, commands at QoS 2 (the broker waits for its PUBCOMP).
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    username: 'soil1',
    password,
    clientId: 'soil1',
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  device.on('error', () => {});
  const received = [];
  device.on('message', (topic, payload) => received.push({ topic, body: payload.toString() }));
  const waitFor = async (what, check) => {
    for (let i = 0; i < 100; i++) {
      const found = check();
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`the device never received ${what}: ${JSON.stringify(received)}`);
  };
  try {
    await device.subscribeAsync('iot/devices/soil1/commands/#', { qos: 2 });
    await device.subscribeAsync('iot/fleet/+/commands', { qos: 2 });
    await device.publishAsync('iot/devices/soil1/status/online', '', { qos: 1 });
    await device.publishAsync('iot/devices/soil1/telemetry/moisture', JSON.stringify({ percent: 41.5, celsius: 18.25 }), { qos: 1 });
    await device.publishAsync('iot/devices/soil1/telemetry/battery', '3.71', { qos: 1 });

    // What is typed survives the 10 s refresh that brings the presence.
    const fleet = page.locator('#fleet-form');
    await fleet.getByLabel('Command', { exact: true }).fill('ping');
    await row.locator('.badge', { hasText: 'online' }).waitFor({ timeout: 25_000 });
    assert.equal(await fleet.getByLabel('Command', { exact: true }).inputValue(), 'ping');
    assert.match(await row.innerText(), /just now/);

    // The panel: the latest reading per topic, downloads of the last day.
    await row.getByRole('button', { name: 'soil1 details' }).click();
    const panel = page.getByRole('dialog', { name: 'Device soil1' });
    await panel.waitFor();
    assert.equal(await page.evaluate(() => location.hash), '#soil1');
    const moisture = panel.locator('#telemetry-latest tr', { has: page.locator('[data-topic="moisture"]') });
    await moisture.waitFor();
    const reading = await moisture.innerText();
    assert.match(reading, /percent\s+41\.5/);
    assert.match(reading, /celsius\s+18\.25/);
    assert.match(await panel.locator('#telemetry-latest tr', { has: page.locator('[data-topic="battery"]') }).innerText(), /3\.71/);
    const csvLink = await panel.getByRole('link', { name: 'CSV' }).getAttribute('href');
    assert.match(csvLink, /^\/api\/iot\/devices\/soil1\/telemetry\/\?start_time=\d+&end_time=\d+&format=csv$/);
    const csv = await page.request.get(`${base}${csvLink}`);
    assert.equal(csv.status(), 200);
    const csvText = await csv.text();
    assert.ok(csvText.startsWith('time,ts_ms,topic,data\n') && csvText.includes('moisture'), csvText);
    const json = await page.request.get(`${base}${await panel.getByRole('link', { name: 'JSON' }).getAttribute('href')}`);
    assert.equal((await json.json()).count, 2);

    // A command: parameters checked here, the name by the server (shown at its field).
    const command = panel.locator('#device-command-form');
    await command.getByLabel('Command', { exact: true }).fill('blink');
    await command.getByLabel('Parameters (JSON object, optional)').fill('{times: 3}');
    await command.getByRole('button', { name: 'Send command' }).click();
    await command.locator('.field-error', { hasText: 'Not valid JSON' }).waitFor();
    await command.getByLabel('Parameters (JSON object, optional)').fill('{"times": 3}');
    await command.getByLabel('Command', { exact: true }).fill('blink fast');
    await command.getByRole('button', { name: 'Send command' }).click();
    await command.locator('.field-error', { hasText: 'must be 1 to 64 letters' }).waitFor();
    assert.equal(await command.getByLabel('Command', { exact: true }).getAttribute('aria-invalid'), 'true');
    await command.getByLabel('Command', { exact: true }).fill('blink');
    await command.getByRole('button', { name: 'Send command' }).click();
    await command.getByText('Sent “blink”').waitFor();
    const blink = await waitFor('the blink command', () => received.find((m) => m.topic === 'iot/devices/soil1/commands/blink'));
    const payload = JSON.parse(blink.body);
    assert.equal(payload.command, 'blink');
    assert.deepEqual(payload.parameters, { times: 3 });
    const history = panel.locator('#command-history tr', { has: page.locator(`[data-command-id="${payload.command_id}"]`) });
    await history.locator('.command-status', { hasText: 'delivered' }).waitFor();
    await device.publishAsync('iot/devices/soil1/commands/ack', JSON.stringify({ command_id: payload.command_id, result: 'ok', blinked: 3 }), { qos: 1 });
    await history.locator('.command-status', { hasText: 'acknowledged' }).waitFor();
    assert.match(await history.innerText(), /"blinked":3/);

    // Configuration: saved as the retained message the device gets on its config topic.
    const configuration = panel.locator('#device-config');
    await configuration.getByLabel('Configuration (JSON object)').fill('[1, 2]');
    await configuration.getByRole('button', { name: 'Save configuration' }).click();
    await configuration.getByText('The configuration must be a JSON object', { exact: false }).waitFor();
    await configuration.getByLabel('Configuration (JSON object)').fill('{"interval": 60}');
    await configuration.getByRole('button', { name: 'Save configuration' }).click();
    await configuration.getByText('Configuration saved.').waitFor();
    await device.subscribeAsync('iot/devices/soil1/config', { qos: 1 });
    const config = await waitFor('its configuration', () => received.find((m) => m.topic === 'iot/devices/soil1/config'));
    assert.deepEqual(JSON.parse(config.body), { interval: 60 });

    // Settings: a new group, in the panel and the list.
    const settings = panel.locator('#device-settings');
    await settings.getByLabel('Group', { exact: true }).fill('garden');
    await settings.getByRole('button', { name: 'Save' }).click();
    await settings.getByText('Saved.').waitFor();
    await panel.locator('.overview dd', { hasText: 'garden' }).waitFor();
    await row.locator('.group', { hasText: 'garden' }).waitFor();
    // The panel scrolls by itself: a tall window shows most of it.
    await page.setViewportSize({ width: 1280, height: 1400 });
    await panel.evaluate((e) => e.scrollTo(0, 0));
    await screenshot(page, 'devices-details', { fullPage: false });

    // On a phone the panel takes the whole screen and nothing scrolls sideways.
    await page.setViewportSize({ width: 375, height: 740 });
    assert.ok(await panel.evaluate((e) => e.scrollWidth <= 375), 'the panel fits 375 px');
    await panel.evaluate((e) => e.scrollTo(0, 0));
    await screenshot(page, 'mobile-devices-details', { fullPage: false });
    await page.setViewportSize({ width: 1280, height: 860 });
    await panel.getByRole('button', { name: 'Close details' }).click();
    await panel.waitFor({ state: 'detached' });
    // The hash goes with the panel (in the dialog's close event, a moment after it hides).
    await page.waitForFunction(() => location.hash === '');

    // A fleet command: the group chosen among the listed devices' groups.
    assert.deepEqual(await fleet.getByLabel('Group', { exact: true }).locator('option').allInnerTexts(), ['garden (1)', 'lab (1)']);
    await fleet.getByLabel('Group', { exact: true }).selectOption('garden');
    await fleet.getByRole('button', { name: 'Send to group' }).click();
    await fleet.getByText('Sent “ping” to 1 device in garden').waitFor();
    const ping = await waitFor('the fleet ping', () => received.find((m) => m.topic === 'iot/fleet/garden/commands'));
    assert.equal(JSON.parse(ping.body).command, 'ping');
    // The group's history counts the device's completed delivery (its PUBCOMP).
    await page.locator('#fleet-history tr', { hasText: 'ping' }).locator('.delivered-count', { hasText: '1 of 1' }).waitFor();
    await screenshot(page, 'devices');

    // Rotating the password: asked first, shown once; the old one stops working.
    await row.getByRole('button', { name: 'soil1 details' }).click();
    await panel.getByRole('button', { name: 'Rotate password' }).click();
    await page.getByRole('dialog', { name: 'Rotate the password of soil1?' }).getByRole('button', { name: 'Rotate password' }).click();
    const fresh = await panel.locator('#rotated .secret-value').nth(1).innerText();
    assert.equal(fresh.length, 24);
    assert.notEqual(fresh, password);
    assert.throws(() => publish('soil1', password, 'iot/devices/soil1/telemetry/moisture', { percent: 1 }));
    publish('soil1', fresh, 'iot/devices/soil1/telemetry/moisture', { percent: 39 });
    // The panel's own refresh brings the new reading.
    await moisture.filter({ hasText: '39' }).waitFor({ timeout: 25_000 });

    // Removing: asked first; gone from the list, and its login with it.
    await panel.getByRole('button', { name: 'Remove device' }).click();
    await page.getByRole('dialog', { name: 'Remove soil1?' }).getByRole('button', { name: 'Remove soil1' }).click();
    await panel.waitFor({ state: 'detached' });
    await row.waitFor({ state: 'detached' });
    assert.throws(() => publish('soil1', fresh, 'iot/devices/soil1/telemetry/moisture', { percent: 2 }));
    // The refusals above were 400s on purpose.
    assertNoConsoleErrors(page, [/status of 400/]);
  } finally {
    await device.endAsync(true).catch(() => {});
    await page.context().close();
  }
});

test('every page fits a 375 px wide phone screen', async () => {
  const page = await open(browser, { viewport: { width: 375, height: 740 } });
  await page.goto(`${base}/login/`);
  await screenshot(page, 'mobile-login');
  await login(page, 'admin', adminPassword);
  for (const [path, name, ready] of [
    ['/', 'map', '.device-pin'],
    ['/history/', 'history', '#summary'],
    ['/profile/', 'profile', '#certificate dl'],
    ['/admin-panel/', 'admin-users', '[data-username="carol"]'],
    ['/admin-panel/#pki', 'admin-pki', '#ca-fingerprint'],
    ['/about/', 'about', '#provision-form'],
    ['/console/', 'console', '#mqtt-state.ok'],
    ['/devices/', 'devices', '#device-list [data-device]'],
  ]) {
    await page.goto(`${base}${path}`);
    await page.locator(ready).first().waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `${path} is ${width} px wide on a 375 px screen`);
    await screenshot(page, `mobile-${name}`);
  }
  await page.goto(`${base}/`);
  await page.getByRole('button', { name: 'Menu' }).click();
  await screenshot(page, 'mobile-menu', { fullPage: false });
  assertNoConsoleErrors(page);
  await page.context().close();
});
