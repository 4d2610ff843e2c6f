//! The Lua scripts every write runs, so a value and its bookkeeping change together.
//!
//! Each script touches the keys of one shard only (see `layout`): `KEYS[1]` the index zset,
//! `KEYS[2]` the versions hash, `KEYS[3]` the shard meta hash, then per-script keys. Redis runs
//! a script atomically, so no reader ever sees a value without its index entry or version.
//!
//! Invariants the scripts keep (and `super` relies on):
//! * a key is in the index iff its data string exists, and then it has a version;
//! * every write takes a fresh version from the shard's `seq` counter (never reused, so
//!   A -> B -> A is a new version), stored as decimal digits (`%d`: Lua numbers are doubles,
//!   whose default formatting turns 1e14 into `1e+14`);
//! * every delete of an existing key records its stamp in `del`, so a swap on an absent key
//!   notices a create-then-delete in between;
//! * increment and swap remember their result under their operation id (`KEYS[5]`): a
//!   command the client library re-sends after a lost reply returns the first result instead of
//!   applying twice.

use std::sync::LazyLock;

use redis::Script;

/// `set_many`: KEYS = index, versions, meta, data keys...; ARGV = key1, value1, key2, ...
pub(crate) static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = #KEYS - 3
for i = 1, n do
  local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
  local key = ARGV[2 * i - 1]
  redis.call('SET', KEYS[3 + i], ARGV[2 * i])
  redis.call('HSET', KEYS[2], key, v)
  redis.call('ZADD', KEYS[1], 0, key)
end
return n
",
    )
});

/// `delete_many`: KEYS = index, versions, meta, data keys...; ARGV = the keys.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i = 1, #ARGV do
  if redis.call('DEL', KEYS[3 + i]) == 1 then
    n = n + 1
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HSET', KEYS[3], 'del', string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1)))
  end
end
return n
",
    )
});

/// `increment`: KEYS = index, versions, meta, data, op; ARGV = key, delta, op ttl.
/// Returns `{'ok', new value}`, `{'notint', current}` or `{'overflow', current}`; values are
/// strings so 64-bit integers survive Lua's doubles.
pub(crate) static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = redis.call('GET', KEYS[5])
if done then return {'ok', done} end
local cur = redis.call('GET', KEYS[4])
if cur then
  local canonical = (cur == '0') or (string.match(cur, '^%-?[1-9]%d*$') ~= nil)
  if not canonical or #cur > 20 then return {'notint', cur} end
end
local r = redis.pcall('INCRBY', KEYS[4], ARGV[2])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'overflow') then return {'overflow', cur or '0'} end
  return {'notint', cur or ''}
end
local v = string.format('%d', redis.call('HINCRBY', KEYS[3], 'seq', 1))
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('ZADD', KEYS[1], 0, ARGV[1])
local now = redis.call('GET', KEYS[4])
redis.call('SET', KEYS[5], now, 'EX', ARGV[3])
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

/// `cas_swap`: KEYS = index, versions, meta, data, op; ARGV = key, value, '1' if the token saw
/// a value else '0', token version, op ttl.
/// Returns `{'swapped'}` or `{'stale', value or false, version}` (a fresh token).
pub(crate) static CAS_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[5]) then return {'swapped'} end
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
  redis.call('SET', KEYS[4], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], v)
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('SET', KEYS[5], '1', 'EX', ARGV[5])
  return {'swapped'}
end
local value = redis.call('GET', KEYS[4])
if value then return {'stale', value, now} end
return {'stale', false, redis.call('HGET', KEYS[3], 'seq') or '0'}
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
