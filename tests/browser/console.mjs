// The console's browser test: drives Debian's chromium through playwright-core against a
// running `kvhost serve --admin` (started by crates/kvhost-cli/tests/console.rs, which passes
// KVHOST_ADMIN_URL, KVHOST_ADMIN_TOKEN, KVHOST_APP_URL and, optionally, KVHOST_SCREENSHOT).
// Browses, filters by prefix, pages with "More", views text/JSON/hex, creates, edits
// (text and file upload), deletes with confirmation, exports and imports through the page,
// and checks that a key named <img src=x onerror=alert(1)> shows as text with no script run.
// Exits non-zero, saying what failed, on the first failed step.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const admin = process.env.KVHOST_ADMIN_URL;
const token = process.env.KVHOST_ADMIN_TOKEN;
const app = process.env.KVHOST_APP_URL;
assert.ok(admin && token && app, 'KVHOST_ADMIN_URL, KVHOST_ADMIN_TOKEN and KVHOST_APP_URL are needed');
const XSS = '<img src=x onerror=alert(1)>';
const STEP_MS = 15000;

async function api(method, path, body) {
  const response = await fetch(admin + path, { method, body, headers: { Authorization: `Bearer ${token}` } });
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) };
}
const valuePath = (key) => `/api/v1/buckets/default/value?key=${encodeURIComponent(key)}`;
const text = (bytes) => new TextDecoder().decode(bytes);

async function seed() {
  for (let i = 0; i < 25; i++) {
    assert.equal((await api('PUT', valuePath(`user/${String(i).padStart(2, '0')}`), `name ${i}`)).status, 204);
  }
  for (const [key, value] of [
    ['order/1', 'one order'],
    [XSS, '<script>alert(2)</script>'],
    ['doc.json', '{"a":[1,2],"b":{"c":"d"}}'],
    ['bin', new Uint8Array(Array.from({ length: 40 }, (_, i) => i))],
    ['doomed', 'delete me'],
  ]) {
    assert.equal((await api('PUT', valuePath(key), value)).status, 204, key);
  }
}

const problems = [];
function watch(page) {
  page.on('dialog', async (dialog) => {
    problems.push(`a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 40[14]/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
}

async function keysShown(page) {
  return page.locator('#keys button').allTextContents();
}

async function run(browser) {
  await seed();
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  watch(page);

  // Without a token: the sign-in form; a wrong token is refused; the right one opens it.
  await page.goto(admin + '/');
  await page.locator('#sign-in').waitFor();
  await page.fill('#token-input', 'not-the-token');
  await page.press('#token-input', 'Enter');
  await page.locator('#status', { hasText: 'refused' }).waitFor();
  await page.fill('#token-input', token);
  await page.press('#token-input', 'Enter');
  await page.locator('#buckets button', { hasText: 'default (embedded, immediate)' }).waitFor();

  // Browse: the first page holds list_page_keys (10) keys, "More" brings the rest.
  await page.locator('#keys button').first().waitFor();
  assert.equal((await keysShown(page)).length, 10);
  assert.ok(await page.locator('#more').isVisible(), 'More is offered');

  // Filter by prefix (keyboard: "/" focuses the filter), then page through with More.
  await page.locator('body').press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'prefix');
  await page.keyboard.type('user/');
  await page.waitForFunction(() => [...document.querySelectorAll('#keys button')].every((b) => b.textContent.startsWith('user/')) && document.querySelectorAll('#keys button').length === 10);
  await page.click('#more');
  await page.waitForFunction(() => document.querySelectorAll('#keys button').length === 20);
  await page.click('#more');
  await page.waitForFunction(() => document.querySelectorAll('#keys button').length === 25);
  assert.ok(!(await page.locator('#more').isVisible()), 'no More after the last page');
  const users = await keysShown(page);
  assert.deepEqual(users, Array.from({ length: 25 }, (_, i) => `user/${String(i).padStart(2, '0')}`));

  // The hostile key shows as text; its value too; no element was made from either.
  await page.fill('#prefix', '<');
  await page.locator('#keys button', { hasText: XSS }).waitFor();
  assert.equal(await page.locator('#keys button').first().textContent(), XSS);
  await page.locator('#keys button', { hasText: XSS }).click();
  await page.locator('#entry-value', { hasText: '<script>alert(2)</script>' }).waitFor();
  assert.equal(await page.locator('#entry-key').textContent(), XSS);
  assert.equal(await page.locator('img, main script').count(), 0, 'no element was made from a key or value');

  // Views: pretty JSON, hex dump, size.
  await page.fill('#prefix', 'doc');
  await page.locator('#keys button', { hasText: 'doc.json' }).click();
  await page.locator('#entry-size', { hasText: '(25 bytes)' }).waitFor();
  await page.click('[data-view="json"]');
  assert.equal(await page.locator('#entry-value').textContent(), JSON.stringify({ a: [1, 2], b: { c: 'd' } }, null, 2));
  await page.fill('#prefix', 'bin');
  await page.locator('#keys button', { hasText: 'bin' }).click();
  await page.click('[data-view="hex"]');
  await page.locator('#entry-value', { hasText: '00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f' }).waitFor();
  await page.click('[data-view="text"]');

  // Edit a value as text.
  await page.fill('#prefix', 'order/');
  await page.locator('#keys button', { hasText: 'order/1' }).click();
  await page.click('#edit');
  await page.fill('#editor-value', 'two orders');
  await page.click('#editor-form button[type="submit"]');
  await page.locator('#entry-value', { hasText: 'two orders' }).waitFor();
  assert.equal(text((await api('GET', valuePath('order/1'))).bytes), 'two orders');

  // Create a key, then give it a file's bytes.
  await page.click('#new-key');
  await page.fill('#editor-key', 'made/in the browser');
  await page.fill('#editor-value', 'hello from chromium');
  await page.click('#editor-form button[type="submit"]');
  await page.locator('#entry-key', { hasText: 'made/in the browser' }).waitFor();
  assert.equal(text((await api('GET', valuePath('made/in the browser'))).bytes), 'hello from chromium');
  await page.click('#edit');
  const upload = Buffer.from([0, 255, 1, 254, 10, 13]);
  await page.setInputFiles('#editor-file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: upload });
  await page.click('#editor-form button[type="submit"]');
  await page.locator('#entry-size', { hasText: '(6 bytes)' }).waitFor();
  assert.deepEqual([...(await api('GET', valuePath('made/in the browser'))).bytes], [...upload]);

  // Delete, with confirmation: Cancel keeps the key, Delete removes it.
  await page.fill('#prefix', 'doomed');
  await page.locator('#keys button', { hasText: 'doomed' }).click();
  await page.click('#delete');
  await page.locator('#confirm[open]').waitFor();
  await page.keyboard.press('Escape');
  await page.locator('#confirm[open]').waitFor({ state: 'detached' });
  assert.equal((await api('GET', valuePath('doomed'))).status, 200, 'Cancel keeps the key');
  await page.click('#delete');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelectorAll('#keys button').length === 0);
  assert.equal((await api('GET', valuePath('doomed'))).status, 404, 'Delete removes the key');

  // Export what the filter shows: a download of JSON lines.
  await page.fill('#prefix', 'user/');
  await page.waitForFunction(() => document.querySelectorAll('#keys button').length === 10);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  assert.equal(download.suggestedFilename(), 'default.jsonl');
  const exported = (await readFile(await download.path(), 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(exported.length, 25);
  assert.equal(exported[3].key, 'user/03');
  assert.equal(Buffer.from(exported[3].value, 'base64').toString(), 'name 3');

  // Import a file through the page.
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ key: `imported/${i}`, value: Buffer.from(`v${i}`).toString('base64') })).join('\n');
  await page.setInputFiles('#import-file', { name: 'entries.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(lines) });
  await page.locator('#status', { hasText: 'Imported 300 entries into default' }).waitFor();
  assert.equal(text((await api('GET', valuePath('imported/299'))).bytes), 'v299');

  // The live panel shows the app's writes per second while they happen.
  const writing = (async () => {
    for (let i = 0; i < 60; i++) {
      const response = await fetch(`${app}/kv/live-${i}`, { method: 'PUT', body: 'x' });
      assert.equal(response.status, 204);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  await page.waitForFunction(() => [...document.querySelectorAll('#live tbody tr')].some((row) => row.cells[0].textContent === 'default' && parseFloat(row.cells[2].textContent) > 0));
  await writing;

  await page.fill('#prefix', '');
  await page.locator('#keys button', { hasText: XSS }).waitFor();
  await page.locator('#keys button', { hasText: 'doc.json' }).click();
  await page.click('[data-view="json"]');
  if (process.env.KVHOST_SCREENSHOT) {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.screenshot({ path: process.env.KVHOST_SCREENSHOT });
  }
  assert.deepEqual(problems, [], 'no dialog, page error or console error');
  await context.close();
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  await run(browser);
  console.log('console.mjs: every step passed');
} finally {
  await browser.close();
}
