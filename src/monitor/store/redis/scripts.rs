//! The Lua scripts. Each touches the keys of ONE hash tag (one Cluster slot): the global keys,
//! or one host's keys. Empty strings stand for "none" in arguments and hash fields.

/// Claim due links. KEYS: due, urls. ARGV: now, lease_until, limit, lease (1) or peek (0).
/// Returns `[id, url, id, url, ...]`; with a lease, each claimed link is re-scored to
/// `lease_until`, so no other worker takes it until the lease runs out.
pub const CLAIM: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  if ARGV[4] == '1' then redis.call('ZADD', KEYS[1], ARGV[2], id) end
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
"#;

/// Add or reactivate links. KEYS: ids, urls, active, due, link-seq, parked. ARGV: URLs.
/// Returns `[added, reactivated]`.
pub const SYNC_ADD: &str = r#"
local added, back = 0, 0
for i = 1, #ARGV do
  local url = ARGV[i]
  local id = redis.call('HGET', KEYS[1], url)
  if not id then
    id = redis.call('INCR', KEYS[5])
    redis.call('HSET', KEYS[1], url, id)
    redis.call('HSET', KEYS[2], id, url)
    redis.call('SADD', KEYS[3], id)
    redis.call('ZADD', KEYS[4], 0, id)
    added = added + 1
  elseif redis.call('SADD', KEYS[3], id) == 1 then
    local score = redis.call('HGET', KEYS[6], id) or 0
    redis.call('HDEL', KEYS[6], id)
    redis.call('ZADD', KEYS[4], score, id)
    back = back + 1
  end
end
return {added, back}
"#;

/// Deactivate links (history kept; the due score is parked). KEYS: active, due, parked.
/// ARGV: ids. Returns how many were active.
pub const SYNC_REMOVE: &str = r#"
local n = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[1], id) == 1 then
    local score = redis.call('ZSCORE', KEYS[2], id)
    if score then
      redis.call('HSET', KEYS[3], id, score)
      redis.call('ZREM', KEYS[2], id)
    end
    n = n + 1
  end
end
return n
"#;

/// Record one check on the host's keys. KEYS: link, history, queue.
/// ARGV: 1 id, 2 url, 3 observed_ms, 4 outcome, 5 http_status, 6 has_offer, 7 price,
/// 8 currency, 9 availability, 10 name, 11 source, 12 has_validators, 13 etag,
/// 14 last_modified, 15 body_hash, 16 error, 17 not_before_ms, 18 history kept per link (0: all).
/// Returns `[applied, pending]`: applied 0 for a replay (or an older record than the last);
/// `pending` the JSON of the link's event waiting to be published ('' if none) — a new change
/// replaces an older pending event only after that one was published (see `CLEAR_PENDING`).
pub const RECORD: &str = r#"
local link, hist = KEYS[1], KEYS[2]
local obs = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', link, 'last_checked') or '-1') or -1
if last >= obs then
  return {0, redis.call('HGET', link, 'pending') or ''}
end
local cur = redis.call('HMGET', link, 'has_offer', 'price', 'currency', 'availability', 'name', 'source')
local function s(x) if x then return x else return '' end end
-- A price without the trailing zeros of its fraction, as change.rs's canonical_price: 12.5
-- and 12.50 are one price.
local function canon(x)
  x = s(x)
  if string.find(x, '.', 1, true) then
    x = string.gsub(x, '0+$', '')
    x = string.gsub(x, '%.$', '')
  end
  return x
end
local outcome = ARGV[4]
local row
redis.call('HSET', link, 'id', ARGV[1], 'url', ARGV[2], 'last_checked', ARGV[3], 'last_outcome', outcome)
if outcome == 'ok' and ARGV[6] == '1' then
  local p, c, a, src = ARGV[7], ARGV[8], ARGV[9], ARGV[11]
  local changed = cur[1] ~= '1' or canon(cur[2]) ~= canon(p) or s(cur[3]) ~= c or s(cur[4]) ~= a
  local name = ARGV[10]
  if name == '' then name = s(cur[5]) end
  if changed then
    local pp, pc, pa = '', '', ''
    if cur[1] == '1' then pp, pc, pa = s(cur[2]), s(cur[3]), s(cur[4]) end
    local ev = cjson.encode({o = ARGV[3], name = name, price = p, currency = c,
      availability = a, previous_price = pp, previous_currency = pc,
      previous_availability = pa, source = src})
    local old = redis.call('HGET', link, 'pending')
    if old and old ~= '' then
      redis.call('RPUSH', KEYS[3], ev)
    else
      redis.call('HSET', link, 'pending', ev)
    end
    redis.call('HSET', link, 'last_change', ARGV[3])
  end
  redis.call('HSET', link, 'has_offer', '1', 'price', p, 'currency', c, 'availability', a,
    'name', name, 'source', src, 'failures', '0', 'last_error', '', 'not_before', '',
    'etag', ARGV[13], 'lm', ARGV[14], 'bh', ARGV[15])
  row = {o = ARGV[3], r = outcome, s = ARGV[5], p = p, c = c, a = a, src = src, e = ''}
elseif outcome == 'ok' or outcome == 'not_modified' then
  redis.call('HSET', link, 'failures', '0', 'last_error', '', 'not_before', '')
  if ARGV[12] == '1' then redis.call('HSET', link, 'etag', ARGV[13], 'lm', ARGV[14]) end
  local p, c, a, src = '', '', '', ''
  if cur[1] == '1' then p, c, a, src = s(cur[2]), s(cur[3]), s(cur[4]), s(cur[6]) end
  row = {o = ARGV[3], r = outcome, s = ARGV[5], p = p, c = c, a = a, src = src, e = ''}
else
  if outcome == 'failed' then
    redis.call('HINCRBY', link, 'failures', 1)
  else
    redis.call('HSET', link, 'failures', '0')
  end
  redis.call('HSET', link, 'last_error', ARGV[16], 'not_before', ARGV[17])
  row = {o = ARGV[3], r = outcome, s = ARGV[5], p = '', c = '', a = '', src = '', e = ARGV[16]}
end
redis.call('RPUSH', hist, cjson.encode(row))
local keep = tonumber(ARGV[18]) or 0
if keep > 0 then redis.call('LTRIM', hist, -keep, -1) end
return {1, redis.call('HGET', link, 'pending') or ''}
"#;

/// After the pending event `observed_ms` was published: drop it, and promote the next queued
/// one (if a second change came before the first was published). KEYS: link, queue.
/// ARGV: observed_ms. Returns the next pending event ('' if none).
pub const CLEAR_PENDING: &str = r#"
local link = KEYS[1]
local cur = redis.call('HGET', link, 'pending')
if cur and cur ~= '' then
  local ok, ev = pcall(cjson.decode, cur)
  if ok and ev['o'] == ARGV[1] then
    local nxt = redis.call('LPOP', KEYS[2])
    if nxt then
      redis.call('HSET', link, 'pending', nxt)
      return nxt
    end
    redis.call('HDEL', link, 'pending')
    return ''
  end
  return cur
end
return ''
"#;

/// The global side of a check (idempotent): re-score the link, keep counters, and append its
/// change event to the stream once. KEYS: due, active, checked, failing, disallowed, stats,
/// published, events, event-seq.
/// ARGV: 1 id, 2 observed_ms, 3 outcome ('' = only publish), 4 next_due, 5 has_event,
/// then the event fields: 6 link, 7 name, 8 price, 9 currency, 10 availability,
/// 11 previous_price, 12 previous_currency, 13 previous_availability, 14 source,
/// 15 observed_at, 16 event observed_ms.
/// Returns the event id given (0: no event, or published before).
pub const GLOBAL: &str = r#"
local id, obs = ARGV[1], tonumber(ARGV[2])
if ARGV[3] ~= '' then
  local prev = tonumber(redis.call('HGET', KEYS[3], id) or '-1') or -1
  if obs > prev then
    redis.call('HSET', KEYS[3], id, ARGV[2])
    if redis.call('SISMEMBER', KEYS[2], id) == 1 then
      redis.call('ZADD', KEYS[1], ARGV[4], id)
    end
    if ARGV[3] == 'failed' then redis.call('SADD', KEYS[4], id) else redis.call('SREM', KEYS[4], id) end
    if ARGV[3] == 'disallowed' then redis.call('SADD', KEYS[5], id) else redis.call('SREM', KEYS[5], id) end
    redis.call('HINCRBY', KEYS[6], 'observations', 1)
    local lc = tonumber(redis.call('HGET', KEYS[6], 'last_check_ms') or '-1') or -1
    if obs > lc then redis.call('HSET', KEYS[6], 'last_check_ms', ARGV[2]) end
  end
end
if ARGV[5] == '1' then
  local eobs = tonumber(ARGV[16])
  local pub = tonumber(redis.call('HGET', KEYS[7], id) or '-1') or -1
  if eobs > pub then
    redis.call('HSET', KEYS[7], id, ARGV[16])
    local seq = redis.call('INCR', KEYS[9])
    local fields = {'id', seq, 'link', ARGV[6]}
    local names = {'name', 'price', 'currency', 'availability', 'previous_price',
      'previous_currency', 'previous_availability', 'source', 'observed_at'}
    for i, n in ipairs(names) do
      if ARGV[6 + i] ~= '' then
        fields[#fields + 1] = n
        fields[#fields + 1] = ARGV[6 + i]
      end
    end
    fields[#fields + 1] = 'observed_ms'
    fields[#fields + 1] = ARGV[16]
    redis.call('XADD', KEYS[8], '*', unpack(fields))
    return seq
  end
end
return 0
"#;

/// Take a politeness slot on a host, across every worker. KEYS: slots, next.
/// ARGV: limit, spacing_ms, ttl_ms, token. Uses the server's clock. Returns 0 when granted,
/// else how many ms to wait before asking again. A slot whose holder died frees itself after
/// `ttl_ms`.
pub const SLOT_ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 10
end
local nxt = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if nxt > now then
  return nxt - now
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
local spacing = tonumber(ARGV[2])
if spacing > 0 then
  redis.call('SET', KEYS[2], now + spacing, 'PX', spacing + 1000)
end
return 0
"#;
