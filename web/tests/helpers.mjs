// Shared pieces of the browser tests: Debian's Chromium driven by playwright-core (no browser
// download), map tiles answered locally (there is no internet), console errors collected per
// page, logging in, and publishing over MQTT with mosquitto_pub.
//
// Environment (set by crates/mytracks/tests/it/web_ui.rs):
//   WEBTEST_URL              http://127.0.0.1:PORT of a running server
//   WEBTEST_MQTT_PORT        its MQTT port
//   WEBTEST_ADMIN_PASSWORD   the initial admin password
//   WEBTEST_SCREENSHOTS      where to save screenshots
//   WEBTEST_TILE_PREFIX      the server's [web] tile_url up to {z} (requests there get a blank tile)
//   CHROMIUM                 the browser (default /usr/bin/chromium)

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through cargo test -p mytracks --test it -- web_ui`);
  return value;
}

export const base = required('WEBTEST_URL');
export const mqttPort = required('WEBTEST_MQTT_PORT');
export const adminPassword = required('WEBTEST_ADMIN_PASSWORD');
const screenshots = required('WEBTEST_SCREENSHOTS');
const tilePrefix = required('WEBTEST_TILE_PREFIX');
mkdirSync(screenshots, { recursive: true });

/** A 256×256 light grey PNG, what every tile request gets. */
const tile = (() => {
  const png = new PNG({ width: 256, height: 256 });
  png.data.fill(0xe8);
  return PNG.sync.write(png);
})();

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container: no sandbox. No background traffic: there is no internet here.
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

/**
 * A fresh browser context (its own cookies) and page, in UTC with an English locale. Console
 * errors and uncaught exceptions are collected in `page.errors`.
 */
export async function open(browser, options = {}) {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1280, height: 860 },
    timezoneId: 'UTC',
    locale: 'en-GB',
    acceptDownloads: true,
  });
  await context.route(`${tilePrefix}**`, (route) => route.fulfill({ status: 200, contentType: 'image/png', body: tile }));
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.errors.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => page.errors.push(`${page.url()}: uncaught ${error.message}`));
  return page;
}

/** Asserts that nothing was logged as an error, except messages matching `allowed`, then clears. */
export function assertNoConsoleErrors(page, allowed = []) {
  const errors = page.errors.filter((e) => !allowed.some((pattern) => pattern.test(e)));
  page.errors.length = 0;
  assert.deepEqual(errors, [], `console errors:\n${errors.join('\n')}`);
}

export async function screenshot(page, name, options = {}) {
  // A full-page capture of a scrolled page would paint the sticky top bar mid-page.
  if (options.fullPage ?? true) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: options.fullPage ?? true });
}

/** Logs in through the login page and waits for the map. */
export async function login(page, username, password) {
  await page.goto(`${base}/login/`);
  await page.locator('input[name=username]').fill(username);
  await page.locator('input[name=password]').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/`);
}

export async function logout(page) {
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('button', { name: 'Logout' }).click();
  await page.waitForURL(`${base}/login/`);
}

/** Publishes an OwnTracks message as `user` (QoS 1: stored before the acknowledgement). */
export function publish(user, password, topic, message) {
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', mqttPort, '-u', user, '-P', password, '-q', '1', '-t', topic, '-m', JSON.stringify(message)], {
    timeout: 10_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Sets a range input's value the way dragging does (an `input` event). */
export async function slide(locator, value) {
  await locator.evaluate((element, v) => {
    element.value = String(v);
    element.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}
