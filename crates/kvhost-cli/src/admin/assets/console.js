// The kvhost console: one page over the admin API (docs/admin.md). No framework, no network
// but this origin. Keys and values are only ever put on the page as text (textContent),
// never as HTML. The token is kept in sessionStorage (this tab), never in a cookie.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'kvhost-admin-token';
const STATS_EVERY_MS = 2000;
const READS = new Set(['get', 'exists', 'list-keys', 'get-many', 'cas-begin']);
const WRITES = new Set(['set', 'delete', 'increment', 'cas-swap', 'set-many', 'delete-many']);

const state = {
  token: null,
  bucket: null,
  cursor: null,
  key: null,
  value: null,
  view: 'text',
  lastStats: null,
};

// ---- the API ----

function valuePath(bucket, key) {
  return `/api/v1/buckets/${encodeURIComponent(bucket)}/value?key=${encodeURIComponent(key)}`;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    body,
    headers: { Authorization: `Bearer ${state.token}` },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (response.status === 401) {
    signOut('The token was refused; paste the current one.');
    throw new Error('the token was refused');
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

// ---- status line ----

function say(message, ok) {
  const status = $('status');
  status.textContent = message;
  status.className = ok ? 'ok' : '';
}

function failed(error) {
  say(`Error: ${error.message}`, false);
}

// ---- sign in ----

function signIn(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('sign-in').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  loadBuckets().catch(failed);
}

function signOut(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  say(message || '', false);
  $('token-input').focus();
}

// ---- buckets and the live panel ----

async function loadBuckets() {
  const { buckets } = await (await api('GET', '/api/v1/buckets')).json();
  const list = $('buckets');
  list.replaceChildren();
  for (const bucket of buckets) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.bucket = bucket.name;
    const detail = bucket.durability ? `${bucket.backend}, ${bucket.durability}` : bucket.backend;
    button.textContent = `${bucket.name} (${detail})`;
    button.addEventListener('click', () => openBucket(bucket.name));
    const item = document.createElement('li');
    item.append(button);
    list.append(item);
  }
  say(`${buckets.length} bucket${buckets.length === 1 ? '' : 's'}`, true);
  if (buckets.length > 0) {
    await openBucket(buckets[0].name);
  }
}

async function refreshStats() {
  if (!state.token) return;
  let totals;
  try {
    totals = await (await api('GET', '/api/v1/stats')).json();
  } catch (_) {
    return;
  }
  const now = performance.now();
  const last = state.lastStats;
  state.lastStats = { at: now, totals };
  const body = $('live').tBodies[0];
  body.replaceChildren();
  for (const [bucket, ops] of Object.entries(totals)) {
    const row = document.createElement('tr');
    const sums = { reads: 0, writes: 0, other: 0 };
    for (const [op, count] of Object.entries(ops)) {
      const before = last && last.totals[bucket] ? last.totals[bucket][op] || 0 : count;
      const rate = last ? (count - before) / ((now - last.at) / 1000) : 0;
      sums[READS.has(op) ? 'reads' : WRITES.has(op) ? 'writes' : 'other'] += rate;
    }
    for (const text of [bucket, sums.reads.toFixed(1), sums.writes.toFixed(1), sums.other.toFixed(1)]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    body.append(row);
  }
}

// ---- keys ----

async function openBucket(name) {
  state.bucket = name;
  for (const button of $('buckets').querySelectorAll('button')) {
    button.setAttribute('aria-current', String(button.dataset.bucket === name));
  }
  $('bucket-title').textContent = `Keys of ${name}`;
  closeEntry();
  await loadKeys(false);
}

async function loadKeys(more) {
  const bucket = state.bucket;
  if (!bucket) return;
  const prefix = $('prefix').value;
  let path = `/api/v1/buckets/${encodeURIComponent(bucket)}/keys?prefix=${encodeURIComponent(prefix)}`;
  if (more && state.cursor) path += `&cursor=${encodeURIComponent(state.cursor)}`;
  const page = await (await api('GET', path)).json();
  if (bucket !== state.bucket || prefix !== $('prefix').value) return; // superseded
  const list = $('keys');
  if (!more) list.replaceChildren();
  for (const key of page.keys) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'key';
    button.textContent = key;
    button.addEventListener('click', () => openEntry(key).catch(failed));
    const item = document.createElement('li');
    item.append(button);
    list.append(item);
  }
  state.cursor = page.cursor;
  $('more').hidden = !page.cursor;
  const shown = list.children.length;
  say(`${shown}${page.cursor ? '+' : ''} key${shown === 1 ? '' : 's'} in ${bucket}${prefix ? ` starting with “${prefix}”` : ''}`, true);
}

// ---- one value ----

function closeEntry() {
  state.key = null;
  state.value = null;
  $('entry').hidden = true;
  $('editor').hidden = true;
}

async function openEntry(key) {
  const response = await api('GET', valuePath(state.bucket, key));
  state.key = key;
  state.value = new Uint8Array(await response.arrayBuffer());
  $('editor').hidden = true;
  $('entry').hidden = false;
  $('entry-key').textContent = key;
  const size = state.value.length;
  $('entry-size').textContent = `(${size} byte${size === 1 ? '' : 's'})`;
  render();
  for (const button of $('keys').querySelectorAll('button')) {
    button.setAttribute('aria-current', String(button.textContent === key));
  }
}

function render() {
  for (const button of document.querySelectorAll('[data-view]')) {
    button.setAttribute('aria-pressed', String(button.dataset.view === state.view));
  }
  const out = $('entry-value');
  const bytes = state.value || new Uint8Array();
  if (state.view === 'hex') {
    out.textContent = hexDump(bytes);
  } else if (state.view === 'json') {
    try {
      out.textContent = JSON.stringify(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)), null, 2);
    } catch (_) {
      out.textContent = '(not JSON: see Text or Hex)';
    }
  } else {
    out.textContent = new TextDecoder().decode(bytes);
  }
}

function hexDump(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = bytes.subarray(offset, offset + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
  return lines.join('\n');
}

// ---- create, edit, delete ----

function openEditor(key, text) {
  $('entry').hidden = true;
  $('editor').hidden = false;
  $('editor-key').value = key;
  $('editor-key').readOnly = key !== '';
  $('editor-value').value = text;
  $('editor-file').value = '';
  (key === '' ? $('editor-key') : $('editor-value')).focus();
}

async function save(event) {
  event.preventDefault();
  const key = $('editor-key').value;
  const file = $('editor-file').files[0];
  const body = file ? await file.arrayBuffer() : new TextEncoder().encode($('editor-value').value);
  await api('PUT', valuePath(state.bucket, key), body);
  await loadKeys(false);
  await openEntry(key);
  say(`Saved ${key}`, true);
}

function confirmed(question) {
  return new Promise((resolve) => {
    const dialog = $('confirm');
    $('confirm-text').textContent = question;
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
  });
}

async function remove() {
  const key = state.key;
  if (key === null || !(await confirmed(`Delete key “${key}” from bucket ${state.bucket}?`))) return;
  await api('DELETE', valuePath(state.bucket, key));
  closeEntry();
  await loadKeys(false);
  say(`Deleted ${key}`, true);
}

// ---- export and import ----

function showProgress(done, total) {
  const bar = $('transfer');
  bar.hidden = false;
  if (total > 0) {
    bar.max = total;
    bar.value = done;
  } else {
    bar.removeAttribute('value');
  }
}

async function exportBucket() {
  const bucket = state.bucket;
  const prefix = $('prefix').value;
  const response = await api('GET', `/api/v1/buckets/${encodeURIComponent(bucket)}/export?prefix=${encodeURIComponent(prefix)}`);
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    showProgress(received, 0);
    say(`Exporting ${bucket}: ${received} bytes`, true);
  }
  $('transfer').hidden = true;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob(chunks, { type: 'application/x-ndjson' }));
  link.download = `${bucket}.jsonl`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say(`Exported ${bucket} (${received} bytes)`, true);
}

function importFile(file) {
  const bucket = state.bucket;
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', `/api/v1/buckets/${encodeURIComponent(bucket)}/import`);
    request.setRequestHeader('Authorization', `Bearer ${state.token}`);
    request.upload.addEventListener('progress', (event) => {
      showProgress(event.loaded, event.lengthComputable ? event.total : 0);
      say(`Importing into ${bucket}: ${event.loaded} bytes sent`, true);
    });
    request.addEventListener('load', () => {
      $('transfer').hidden = true;
      let answer = {};
      try { answer = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 200) {
        resolve(answer.imported);
      } else {
        reject(new Error(answer.error || `${request.status} ${request.statusText}`));
      }
    });
    request.addEventListener('error', () => {
      $('transfer').hidden = true;
      reject(new Error('the upload failed'));
    });
    request.send(file);
  });
}

// ---- wiring ----

function debounce(run, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
}

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('token-input').value.trim());
  });
  $('sign-out').addEventListener('click', () => signOut('Token forgotten.'));
  $('prefix').addEventListener('input', debounce(() => loadKeys(false).catch(failed), 200));
  $('more').addEventListener('click', () => loadKeys(true).catch(failed));
  $('new-key').addEventListener('click', () => openEditor('', ''));
  $('edit').addEventListener('click', () => {
    const text = new TextDecoder().decode(state.value || new Uint8Array());
    openEditor(state.key, text);
  });
  $('editor-cancel').addEventListener('click', () => {
    $('editor').hidden = true;
    if (state.key !== null) $('entry').hidden = false;
  });
  $('editor-form').addEventListener('submit', (event) => save(event).catch(failed));
  $('delete').addEventListener('click', () => remove().catch(failed));
  for (const button of document.querySelectorAll('[data-view]')) {
    button.addEventListener('click', () => {
      state.view = button.dataset.view;
      render();
    });
  }
  $('export').addEventListener('click', () => exportBucket().catch(failed));
  $('import-file').addEventListener('change', () => {
    const file = $('import-file').files[0];
    if (!file) return;
    importFile(file)
      .then(async (count) => {
        await loadKeys(false);
        say(`Imported ${count} entries into ${state.bucket}`, true);
      })
      .catch(failed)
      .finally(() => { $('import-file').value = ''; });
  });
  document.addEventListener('keydown', (event) => {
    const typing = ['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName);
    if (event.key === '/' && !typing && !$('console').hidden) {
      event.preventDefault();
      $('prefix').focus();
    }
  });
  setInterval(refreshStats, STATS_EVERY_MS);

  // A token in the fragment (#token=...) is taken once and removed from the address bar;
  // fragments never reach the server.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token') || sessionStorage.getItem(TOKEN_KEY);
  if (fragment.has('token')) history.replaceState(null, '', location.pathname);
  if (token) {
    signIn(token);
  } else {
    signOut();
  }
}

start();
