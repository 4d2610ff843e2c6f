// The conformance checks of guests/draft2/app.py, written again in JavaScript: every function
// and error of wasi:keyvalue@0.2.0-draft2, through the bindings componentize-js makes.
//
// Run by crates/kvhost-cli/tests/guests.rs with the same config as the Python guest: buckets
// "default" and "other" (granted), "secret" (configured, not granted), and small limits:
// max_value_bytes = 1 MiB, list_page_keys = 100, max_batch_keys = 1000,
// max_open_buckets = 64. Prints "ok NAME" per passing check, in the Python guest's order and
// with its names; the first failure is printed to stderr and fails the run.
//
// How the JS bindings differ from Python's, and what the checks expect of them:
// - a `result` error is thrown as an Error whose `payload` is the variant,
//   `{ tag: 'other', val: message }`, `{ tag: 'no-such-store' }`, `{ tag: 'cas-failed', val }`;
// - `option<T>` is `undefined` when absent; `list<u8>` is a Uint8Array (of another realm, so
//   not `instanceof Uint8Array`); an `s64` result is a BigInt, an `s64` argument a Number
//   that must not be negative (see increment_counts_in_decimal); tuples are arrays;
// - a resource is freed with `[Symbol.dispose]()`, not when the garbage collector runs.

import { open } from 'wasi:keyvalue/store@0.2.0-draft2';
import { Cas, increment, swap } from 'wasi:keyvalue/atomics@0.2.0-draft2';
import { deleteMany, getMany, setMany } from 'wasi:keyvalue/batch@0.2.0-draft2';

const checks = [];
const check = (name, body) => checks.push([name, body]);

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text) => encoder.encode(text);
const text = (value) => (value === undefined ? undefined : decoder.decode(value));

function assert(condition, message) {
  if (!condition) {
    throw new Error(`assertion failed: ${message}`);
  }
}

// The bindings make their Uint8Arrays in another realm: `instanceof Uint8Array` is false for
// them, so a value is checked by its tag.
const isBytes = (value) => Object.prototype.toString.call(value) === '[object Uint8Array]';

function sameBytes(actual, expected, what) {
  assert(isBytes(actual), `${what}: not bytes but ${actual}`);
  assert(
    actual.length === expected.length && actual.every((byte, i) => byte === expected[i]),
    `${what}: ${actual.length} bytes, not the ${expected.length} expected`,
  );
}

// Calls `call()`, which must throw the interface error `tag` (whose message contains
// `contains`, for `other`); returns the error's payload.
function expectErr(call, tag, contains) {
  let result;
  try {
    result = call();
  } catch (err) {
    const payload = err.payload;
    assert(payload !== undefined, `expected ${tag}, got a thrown ${err}`);
    assert(payload.tag === tag, `expected ${tag}, got ${JSON.stringify(payload)}`);
    if (contains !== undefined) {
      assert(payload.val.includes(contains), `${contains} not in ${payload.val}`);
    }
    return payload;
  }
  throw new Error(`expected ${tag}, got a result: ${result}`);
}

const drop = (resource) => resource[Symbol.dispose]();

// Walks every page of bucket.listKeys; returns [keys in order, number of pages].
// `afterPage(pageNumber)` runs between pages (used to write while listing).
function listAll(bucket, afterPage) {
  const keys = [];
  let pages = 0;
  let cursor;
  for (;;) {
    const response = bucket.listKeys(cursor);
    pages += 1;
    keys.push(...response.keys);
    if (response.cursor === undefined) {
      return [keys, pages];
    }
    cursor = response.cursor;
    if (afterPage !== undefined) {
      afterPage(pages);
    }
  }
}

// Deletes every key of `bucket`, 500 at a time (the test config caps batches at 1000).
function clear(bucket) {
  const [keys] = listAll(bucket);
  for (let start = 0; start < keys.length; start += 500) {
    deleteMany(bucket, keys.slice(start, start + 500));
  }
}

const range = (count, make) => Array.from({ length: count }, (_, n) => make(n));
const pad = (n, width) => String(n).padStart(width, '0');

check('open_errors', () => {
  expectErr(() => open('nope'), 'no-such-store');
  expectErr(() => open('secret'), 'access-denied');
});

check('get_set_delete_exists', () => {
  const bucket = open('default');
  assert(bucket.get('missing') === undefined, 'a missing key is undefined');
  assert(bucket.exists('missing') === false, 'a missing key does not exist');
  bucket.set('k', bytes('v1'));
  assert(text(bucket.get('k')) === 'v1', 'read back v1');
  bucket.set('k', bytes('v2'));
  assert(text(bucket.get('k')) === 'v2', 'overwrite');
  assert(bucket.exists('k') === true, 'k exists');
  bucket.delete('k');
  assert(bucket.get('k') === undefined && bucket.exists('k') === false, 'deleted');
  bucket.delete('k'); // deleting a missing key does nothing
  bucket.set('empty', new Uint8Array());
  sameBytes(bucket.get('empty'), [], 'an empty value');
  assert(bucket.exists('empty'), 'an empty value exists');
  const everyByte = Uint8Array.from(range(256, (n) => n));
  bucket.set('binary', everyByte);
  sameBytes(bucket.get('binary'), everyByte, 'every byte');
  bucket.set('unicode-ключ-🔑', bytes('x'));
  assert(text(bucket.get('unicode-ключ-🔑')) === 'x', 'a unicode key');
});

check('read_your_writes', () => {
  const writer = open('default');
  const reader = open('default');
  for (let n = 0; n < 50; n++) {
    writer.set('ryw', bytes(String(n)));
    assert(text(reader.get('ryw')) === String(n), `read ${n} back`);
  }
  drop(writer);
  assert(text(reader.get('ryw')) === '49', 'the last write outlives its handle');
});

check('buckets_are_separate', () => {
  open('default').set('only-in-default', bytes('1'));
  assert(open('other').get('only-in-default') === undefined, 'other does not see it');
});

check('limits_are_errors', () => {
  const bucket = open('default');
  const longKey = 'k'.repeat(2000);
  expectErr(() => bucket.get(longKey), 'other', 'limits.max_key_bytes');
  expectErr(() => bucket.set(longKey, bytes('v')), 'other', 'limits.max_key_bytes');
  const mib = 1024 * 1024;
  expectErr(() => bucket.set('big', new Uint8Array(mib + 1)), 'other', 'limits.max_value_bytes');
  bucket.set('big', new Uint8Array(mib).fill(120)); // exactly at the limit is fine
  assert(bucket.get('big').length === mib, 'a 1 MiB value reads back');
  expectErr(() => bucket.listKeys('not-a-cursor!'), 'other', 'invalid cursor');
  const tooMany = range(1001, (n) => [String(n), new Uint8Array()]);
  expectErr(() => setMany(bucket, tooMany), 'other', 'limits.max_batch_keys');
});

check('pagination_across_many_pages', () => {
  const bucket = open('other');
  clear(bucket);
  const ordered = range(2500, (n) => `page-key-${pad(n, 5)}`);
  for (let start = 0; start < ordered.length; start += 500) {
    setMany(bucket, ordered.slice(start, start + 500).map((key) => [key, bytes(key)]));
  }
  const [keys, pages] = listAll(bucket);
  assert(new Set(keys).size === keys.length, 'a key was listed twice');
  const listed = new Set(keys);
  const missing = ordered.filter((key) => !listed.has(key));
  assert(missing.length === 0 && keys.length === ordered.length, `${missing.length} keys missing`);
  assert(pages >= 25, `only ${pages} pages; list_page_keys is 100`);
  const response = bucket.listKeys(undefined);
  assert(response.keys.length > 0 && response.keys.length <= 100, 'a first page of 1..100');
  assert(response.cursor !== undefined, 'the first page has a cursor');
});

check('pagination_while_writing', () => {
  const bucket = open('other');
  clear(bucket);
  const stable = range(600, (n) => `stable-${pad(n, 4)}`);
  const doomed = range(600, (n) => `doomed-${pad(n, 4)}`);
  setMany(bucket, stable.map((key) => [key, bytes('s')]));
  setMany(bucket, doomed.map((key) => [key, bytes('d')]));
  // Between pages: add keys everywhere in the key order and delete some not yet listed.
  const write = (page) => {
    setMany(bucket, range(20, (n) => [`added-${pad(page, 3)}-${n}`, bytes('a')]));
    deleteMany(bucket, doomed.slice(page * 20, page * 20 + 20));
  };
  const [keys, pages] = listAll(bucket, write);
  assert(pages > 10, `only ${pages} pages`);
  assert(new Set(keys).size === keys.length, 'a key was listed twice while writing');
  const listed = new Set(keys);
  const missing = stable.filter((key) => !listed.has(key));
  assert(missing.length === 0, `stable keys missing from the listing: ${missing.slice(0, 5)}`);
});

check('increment_counts_in_decimal', () => {
  const bucket = open('default');
  bucket.delete('counter');
  // componentize-js 0.23 takes an s64 argument as a Number (a BigInt aborts the instance)
  // and returns an s64 result as a BigInt. A negative s64 argument aborts the instance too
  // (ComponentizeJS#343), so where the Python guest adds -7 this one counts up from -9.
  assert(increment(bucket, 'counter', 5) === 5n, 'increment from nothing');
  bucket.set('counter', bytes('-9'));
  assert(increment(bucket, 'counter', 7) === -2n, 'a negative result');
  assert(text(bucket.get('counter')) === '-2', 'stored in decimal');
  bucket.set('counter', bytes('10'));
  assert(increment(bucket, 'counter', 5) === 15n, 'from a decimal value');
  assert(text(bucket.get('counter')) === '15', 'stored back in decimal');
  bucket.set('counter', bytes('abc'));
  expectErr(() => increment(bucket, 'counter', 1), 'other');
  const max = (1n << 63n) - 1n;
  bucket.set('counter', bytes(String(max)));
  expectErr(() => increment(bucket, 'counter', 1), 'other', 'overflow');
  assert(text(bucket.get('counter')) === String(max), 'an overflow changes nothing');
});

check('cas_conflict_and_retry', () => {
  const bucket = open('default');
  bucket.set('cas', bytes('1'));
  const cas = Cas.new(bucket, 'cas');
  assert(text(cas.current()) === '1', 'the handle holds the value');
  bucket.set('cas', bytes('2')); // a write between new and swap
  const failed = expectErr(() => swap(cas, bytes('3')), 'cas-failed');
  const fresh = failed.val;
  assert(text(fresh.current()) === '2', 'the fresh handle holds the latest value');
  swap(fresh, bytes('3'));
  assert(text(bucket.get('cas')) === '3', 'the retry swapped');
});

check('cas_detects_a_b_a_and_creates_absent_keys', () => {
  const bucket = open('default');
  bucket.set('aba', bytes('A'));
  const cas = Cas.new(bucket, 'aba');
  bucket.set('aba', bytes('B'));
  bucket.set('aba', bytes('A'));
  expectErr(() => swap(cas, bytes('C')), 'cas-failed');
  bucket.delete('absent');
  const absent = Cas.new(bucket, 'absent');
  assert(absent.current() === undefined, 'an absent key has no current value');
  swap(absent, bytes('created'));
  assert(text(bucket.get('absent')) === 'created', 'the swap created the key');
});

check('cas_outlives_its_bucket_handle', () => {
  const bucket = open('default');
  bucket.set('orphan', bytes('1'));
  const cas = Cas.new(bucket, 'orphan');
  drop(bucket);
  swap(cas, bytes('2'));
  assert(text(open('default').get('orphan')) === '2', 'swapped after the bucket was dropped');
});

check('batch_get_set_delete', () => {
  const bucket = open('default');
  setMany(bucket, [['b1', bytes('one')], ['b2', bytes('two')]]);
  const found = getMany(bucket, ['b1', 'b2', 'b-missing']);
  const shown = found.map(([key, value]) => [key, text(value)]);
  assert(
    JSON.stringify(shown) === JSON.stringify([['b1', 'one'], ['b2', 'two'], ['b-missing', undefined]]),
    `get-many gave ${JSON.stringify(shown)}`,
  );
  assert(found[2].length === 2 && found[2][1] === undefined, 'a missing value is undefined');
  deleteMany(bucket, ['b1', 'b2', 'b-missing']);
  const gone = getMany(bucket, ['b1', 'b2']);
  assert(gone.every(([, value]) => value === undefined) && gone.length === 2, 'deleted');
  setMany(bucket, []);
  assert(getMany(bucket, []).length === 0, 'an empty batch');
});

check('open_handles_are_capped', () => {
  const held = [];
  let error;
  for (let n = 0; n < 200; n++) {
    try {
      held.push(open('default'));
    } catch (err) {
      error = err;
      break;
    }
  }
  assert(error !== undefined, '200 opens succeeded; max_open_buckets is 64');
  const payload = error.payload;
  assert(payload.tag === 'other', `expected other, got ${JSON.stringify(payload)}`);
  assert(payload.val.includes('limits.max_open_buckets'), payload.val);
  assert(held.length < 64, `${held.length} handles held`);
  held.forEach(drop);
  open('default').set('after-cap', bytes('ok'));
});

check('leave_data_for_the_host', () => {
  open('default').set('persisted', bytes('from-js-draft2'));
});

// wasi:cli/run@0.2.6: an exception here is the run's error, so `kvhost run` fails.
export const run = {
  run() {
    for (const [name, body] of checks) {
      try {
        body();
      } catch (err) {
        console.error(`check ${name} failed: ${err}\n${err.stack ?? ''}`);
        throw err;
      }
      console.log(`ok ${name}`);
    }
  },
};
