//! The Lua scripts every write runs, so a value and its bookkeeping change together.
//!
//! Each script touches the keys of one shard only (see `layout`): `KEYS[1]` the index zset,
//! `KEYS[2]` the versions hash, `KEYS[3]` the shard meta hash, `KEYS[4]` the change stream,
//! then per-script keys. Redis runs a script atomically, so no reader ever sees a value without
//! its index entry or version, and a change is logged exactly when it is made.
//!
//! Invariants the scripts keep (and `super` relies on):
//! * a key is in the index iff its data string exists, and then it has a version;
//! * every write takes a fresh version from the shard's `seq` counter (never reused, so
//!   A -> B -> A is a new version), stored as decimal digits (`%d`: Lua numbers are doubles,
//!   whose default formatting turns 1e14 into `1e+14`);
//! * every delete of an existing key records its stamp in `del`, so a swap on an absent key
//!   notices a create-then-delete in between;
//! * increment and swap remember their result under their operation id (`KEYS[6]`): a
//!   command the client library re-sends after a lost reply returns the first result instead of
//!   applying twice;
//! * when the shard's meta hash has `log` (a watched bucket: see `super::changes`), every
//!   version taken is logged, in the same script, as the change stream's entry `<version>-0`,
//!   and the stream is cut to `log` entries. So from the moment `log` is set, the stream's
//!   entry ids are consecutive versions, whichever kvhost process wrote: a reader that finds
//!   a gap after its position knows changes were cut, never guesses.

use std::sync::LazyLock;

use redis::Script;

/// The prelude of every write script: `log(version, key, value)` appends a change to the
/// shard's stream (`KEYS[4]`) if the shard keeps a log; `value` false is a delete.
const LOG: &str = r"
local keep = redis.call('HGET', KEYS[3], 'log')
local function log(version, key, value)
  if not keep then return end
  if value then
    redis.call('XADD', KEYS[4], 'MAXLEN', keep, version .. '-0', 'k', key, 'v', value)
  else
    redis.call('XADD', KEYS[4], 'MAXLEN', keep, version .. '-0', 'k', key)
  end
end
";

/// A write script: [`LOG`] then `body`.
fn write_script(body: &str) -> Script {
    Script::new(&format!("{LOG}{body}"))
}

/// `set_many`: KEYS = index, versions, meta, changes, data keys...; ARGV = key1, value1, key2,
/// ...
pub(crate) static SET: LazyLock<Script> = LazyLock::new(|| {
    write_script(
        r"
local n = #KEYS - 4
for i = 1, n do
  local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
  local key = ARGV[2 * i - 1]
  log(v, key, ARGV[2 * i])
  redis.call('SET', KEYS[4 + i], ARGV[2 * i])
  redis.call('HSET', KEYS[2], key, v)
  redis.call('ZADD', KEYS[1], 0, key)
end
return n
",
    )
});

/// `delete_many`: KEYS = index, versions, meta, changes, data keys...; ARGV = the keys.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    write_script(
        r"
local n = 0
for i = 1, #ARGV do
  if redis.call('DEL', KEYS[4 + i]) == 1 then
    n = n + 1
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
    redis.call('HSET', KEYS[3], 'del', v)
    log(v, ARGV[i], false)
  end
end
return n
",
    )
});

/// `increment`: KEYS = index, versions, meta, changes, data, op; ARGV = key, delta, op ttl.
/// Returns `{'ok', new value}`, `{'notint', current}` or `{'overflow', current}`; values are
/// strings so 64-bit integers survive Lua's doubles.
pub(crate) static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    write_script(
        r"
local done = redis.call('GET', KEYS[6])
if done then return {'ok', done} end
local cur = redis.call('GET', KEYS[5])
if cur then
  local canonical = (cur == '0') or (string.match(cur, '^%-?[1-9]%d*$') ~= nil)
  if not canonical or #cur > 20 then return {'notint', cur} end
end
local r = redis.pcall('INCRBY', KEYS[5], ARGV[2])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'overflow') then return {'overflow', cur or '0'} end
  return {'notint', cur or ''}
end
local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
local now = redis.call('GET', KEYS[5])
log(v, ARGV[1], now)
redis.call('SET', KEYS[6], now, 'EX', ARGV[3])
return {'ok', now}
",
    )
});

/// `cas_begin`: KEYS = versions, meta, data; ARGV = key.
/// Returns `{value or false, version}` where version is the key's, or for an absent key the
/// shard's `seq` now.
pub(crate) static CAS_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('GET', KEYS[3])
local version
if value then
  version = redis.call('HGET', KEYS[1], ARGV[1])
else
  version = redis.call('HGET', KEYS[2], 'seq')
end
return {value, version or '0'}
",
    )
});

/// `cas_swap`: KEYS = index, versions, meta, changes, data, op; ARGV = key, value, '1' if the
/// token saw
/// a value else '0', token version, op ttl.
/// Returns `{'swapped'}` or `{'stale', value or false, version}` (a fresh token).
pub(crate) static CAS_SWAP: LazyLock<Script> = LazyLock::new(|| {
    write_script(
        r"
if redis.call('GET', KEYS[6]) then return {'swapped'} end
local now = redis.call('HGET', KEYS[2], ARGV[1])
local ok
if ARGV[3] == '1' then
  ok = now and now == ARGV[4]
else
  local del = redis.call('HGET', KEYS[3], 'del') or '0'
  ok = (not now) and tonumber(del) <= tonumber(ARGV[4])
end
if ok then
  local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
  log(v, ARGV[1], ARGV[2])
  redis.call('SET', KEYS[5], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], v)
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('SET', KEYS[6], '1', 'EX', ARGV[5])
  return {'swapped'}
end
local value = redis.call('GET', KEYS[5])
if value then return {'stale', value, now} end
return {'stale', false, redis.call('HGET', KEYS[3], 'seq') or '0'}
",
    )
});

/// Reads a shard's change stream: KEYS = meta, changes; ARGV = the version read after (`-`:
/// from the oldest kept), how many at most.
/// Returns `{base, behind, version1, key1, value1 or false, ...}`: `base` is where a reader
/// stands after none of the entries (the version read after, or before the oldest kept, or
/// the shard's version when nothing is kept); `behind` is 1 when changes after the version
/// read after were cut (the next kept is not the next version).
pub(crate) static CHANGES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
local entries
local base = ARGV[1]
if base == '-' then
  entries = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[2])
else
  entries = redis.call('XRANGE', KEYS[2], '(' .. base .. '-0', '+', 'COUNT', ARGV[2])
end
local out = {base, '0'}
for i, entry in ipairs(entries) do
  local version = string.match(entry[1], '^(%d+)%-')
  local fields = entry[2]
  local key, value = false, false
  for j = 1, #fields, 2 do
    if fields[j] == 'k' then key = fields[j + 1] elseif fields[j] == 'v' then value = fields[j + 1] end
  end
  if i == 1 then
    if base == '-' then
      out[1] = string.format('%d', tonumber(version) - 1)
    elseif tonumber(version) > tonumber(base) + 1 then
      out[2] = '1'
    end
  end
  out[#out + 1] = version
  out[#out + 1] = key
  out[#out + 1] = value
end
if #entries == 0 then
  if base == '-' then
    out[1] = seq
  elseif tonumber(seq) > tonumber(base) then
    out[2] = '1'
  end
end
return out
",
    )
});

/// Reads the bucket's layout record, creating it with `ARGV` = format, shards if absent.
/// KEYS = layout key. Returns `{format, shards}` as stored.
pub(crate) static LAYOUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSETNX', KEYS[1], 'format', ARGV[1])
redis.call('HSETNX', KEYS[1], 'shards', ARGV[2])
return redis.call('HMGET', KEYS[1], 'format', 'shards')
",
    )
});
